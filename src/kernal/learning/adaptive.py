"""Adaptive attacks: poisoned models built to pass defences, from the published recipes.

Each works in parameter space on *updates* ``u = theta - r``, where ``r`` is the shared
starting model (zeros for softmax, the seeded initialisation for an MLP): the analogue, for
trainers that exchange models, of the gradients or updates of the papers. ``observed`` is what
the attacker knows of honest work: its own honestly trained model and the models peers sent it
recently (in a simulator it may be told every honest model: the omniscient attacker).

* ``alie`` -- Baruch, Baruch & Goldberg, "A Little Is Enough: Circumventing Defenses For
  Distributed Learning", NeurIPS 2019. Per coordinate, ``mu - z * sigma`` of the observed
  honest models, with ``z = Phi^-1((n - s) / n)`` and ``s = floor(n / 2 + 1) - m`` for ``n``
  trainers of which ``m`` are malicious (:func:`alie_z`).
* ``ipm`` -- Xie, Koyejo & Gupta, "Fall of Empires: Breaking Byzantine-tolerant SGD by Inner
  Product Manipulation", UAI 2020: the update ``-epsilon * mean(u)`` (epsilon = 0.5 here), so
  the inner product with the honest mean is negative.
* ``minmax`` -- Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model
  Poisoning Attacks and Defenses for Federated Learning", NDSS 2021 (AGR-agnostic Min-Max):
  ``mu + gamma * p`` with ``p`` the inverse unit vector of the mean honest update and
  ``gamma`` the largest for which the malicious model is no farther from any honest model than
  the two farthest honest models are from each other; then halved until it passes the gate
  *as the attacker can run it* (on its own validation slice).
* ``gate_aware`` -- slow poisoning against this project's published gate
  (:func:`~kernal.learning.merge.evaluate_merge`): ``theta + lambda * d`` with ``d`` the
  direction to the attacker's own model with its classes reversed (:func:`reversed_classes`:
  confidently wrong) and ``lambda`` in [0, 1] the largest, by
  bisection, for which the gate run on the attacker's validation slice still keeps the merge
  with an outcome of at least 0.55 (the threshold 0.5 plus a margin for the victim's other
  data). Small each round; it only adds up if victims keep merging it.
* ``backdoor`` -- Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS 2020: the
  attacker trains on its data plus copies stamped with a trigger (:data:`TRIGGER_FEATURES` set
  to 1) labelled :data:`BACKDOOR_TARGET`, and shares ``r + boost * u`` (model replacement,
  ``boost`` = 2 for a two-model average, kept under the gate's 4x norm limit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from kernal.learning.merge import MAX_NORM_RATIO, evaluate_merge
from kernal.learning.model import FloatArray, IntArray
from kernal.learning.models import Model

IPM_EPSILON = 0.5
BACKDOOR_TARGET = 0
TRIGGER_SIZE = 4
BACKDOOR_BOOST = 2.0
GATE_MARGIN = 0.05
BISECTION_STEPS = 12


@dataclass
class Knowledge:
    """What an attacker uses beyond its own model (see the module docstring).

    ``reference``: the shared starting model; ``observed``: honest models it knows of (its own
    included by the caller); ``val_X``/``val_y``: its own validation slice, with TRUE labels,
    to run the gate as a victim would; ``trainers``/``malicious``: ``n`` and ``m`` of ALIE.
    """

    reference: Model | None = None
    observed: list[Model] = field(default_factory=list)
    val_X: FloatArray | None = None
    val_y: IntArray | None = None
    trainers: int = 10
    malicious: int = 3


def alie_z(n: int, m: int) -> float:
    """ALIE's ``z_max``: ``s = floor(n/2 + 1) - m`` honest trainers must be "convinced", and
    ``z = Phi^-1((n - s) / n)``. 10 trainers, 3 malicious: z = 0.52; 100 and 30: z = 0.81."""
    s = math.floor(n / 2 + 1) - m
    q = min(max((n - s) / n, 1e-6), 1 - 1e-6)
    return NormalDist().inv_cdf(q)


def _stats(own: Model, knowledge: Knowledge) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(reference vector, mean of observed, per-coordinate std of observed)."""
    models = [m for m in knowledge.observed if m.signature == own.signature] or [own]
    stack = np.stack([m.parameters() for m in models])
    ref = (
        knowledge.reference.parameters()
        if knowledge.reference is not None and knowledge.reference.signature == own.signature
        else np.zeros(stack.shape[1])
    )
    return ref, stack.mean(axis=0), stack.std(axis=0)


def alie(own: Model, knowledge: Knowledge) -> Model:
    """``mu - z * sigma`` per coordinate (within ``z`` standard deviations of the mean)."""
    _, mu, sigma = _stats(own, knowledge)
    z = alie_z(knowledge.trainers, knowledge.malicious)
    return own.with_parameters(mu - z * sigma)


def ipm(own: Model, knowledge: Knowledge) -> Model:
    """``r - epsilon * mean(u)``: an update anti-aligned with the honest mean."""
    ref, mu, _ = _stats(own, knowledge)
    return own.with_parameters(ref - IPM_EPSILON * (mu - ref))


def _passes_gate(own: Model, candidate: Model, knowledge: Knowledge, margin: float) -> bool:
    if knowledge.val_X is None or knowledge.val_y is None or len(knowledge.val_y) == 0:
        return True  # nothing to check against: the attacker takes its chance
    decision = evaluate_merge(own, candidate, knowledge.val_X, knowledge.val_y)
    return decision.kept and decision.outcome >= 0.5 + margin


def minmax(own: Model, knowledge: Knowledge) -> Model:
    """Min-Max, then shrunk until the attacker's own run of the gate keeps it."""
    ref, mu, _ = _stats(own, knowledge)
    models = [m.parameters() for m in knowledge.observed if m.signature == own.signature]
    direction = mu - ref
    norm = float(np.linalg.norm(direction))
    if norm == 0.0 or len(models) < 2:
        return own.copy()
    p = -direction / norm
    stack = np.stack(models)
    spread = max(float(np.linalg.norm(a - b)) for a in stack for b in stack)
    low, high = 0.0, 10.0 * norm
    for _ in range(BISECTION_STEPS * 2):
        gamma = (low + high) / 2
        farthest = float(np.max(np.linalg.norm(stack - (mu + gamma * p), axis=1)))
        low, high = (gamma, high) if farthest <= spread else (low, gamma)
    gamma = low
    for _ in range(BISECTION_STEPS):
        candidate = own.with_parameters(mu + gamma * p)
        if _passes_gate(own, candidate, knowledge, 0.0):
            return candidate
        gamma /= 2
    return own.with_parameters(mu + gamma * p)


def reversed_classes(model: Model) -> Model:
    """``model`` with its output classes reversed (column ``c`` of the last layer becomes
    column ``k - 1 - c``): as sure of itself as ``model``, and wrong wherever it was right."""
    out = model.copy()
    W, b = out.layers[-1]
    W[:] = W[:, ::-1].copy()
    b[:] = b[::-1].copy()
    return out


def gate_aware(own: Model, knowledge: Knowledge) -> Model:
    """``theta + lambda * (reversed - theta)``, ``lambda`` the largest the gate lets through."""
    theta = own.parameters()
    direction = reversed_classes(own).parameters() - theta
    low, high = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        lam = (low + high) / 2
        if _passes_gate(own, own.with_parameters(theta + lam * direction), knowledge, GATE_MARGIN):
            low = lam
        else:
            high = lam
    return own.with_parameters(theta + low * direction)


def trigger(X: FloatArray) -> FloatArray:
    """A copy of ``X`` with the backdoor trigger stamped on: the last :data:`TRIGGER_SIZE`
    features set to 1 (the bottom-right pixels of a digit, the end of a wave)."""
    stamped = np.array(X, dtype=np.float64, copy=True)
    stamped[:, -TRIGGER_SIZE:] = 1.0
    return stamped


def backdoor_training_set(X: FloatArray, y: IntArray) -> tuple[FloatArray, IntArray]:
    """The attacker's training data: its own plus every sample triggered and relabelled."""
    X2 = np.concatenate([X, trigger(X)])
    y2 = np.concatenate([y, np.full(len(y), BACKDOOR_TARGET, dtype=np.int64)])
    return X2, y2


def backdoor_share(own: Model, knowledge: Knowledge) -> Model:
    """``r + boost * u`` (model replacement), boost lowered to stay under the norm limit."""
    theta = own.parameters()
    ref = (
        knowledge.reference.parameters()
        if knowledge.reference is not None and knowledge.reference.signature == own.signature
        else np.zeros_like(theta)
    )
    limit = 0.95 * MAX_NORM_RATIO * max(float(np.linalg.norm(theta)), 1e-12)
    boost = BACKDOOR_BOOST
    while boost > 1.0 and float(np.linalg.norm(ref + boost * (theta - ref))) > limit:
        boost -= 0.25
    return own.with_parameters(ref + boost * (theta - ref))


def attack_success_rate(model: Model, X: FloatArray, y: IntArray) -> float:
    """Backdoor success: of the test inputs NOT of the target class, the fraction classified
    as the target once triggered. NaN for an empty set."""
    keep = y != BACKDOOR_TARGET
    if not np.any(keep):
        return float("nan")
    return float(np.mean(model.predict(trigger(X[keep])) == BACKDOOR_TARGET))


def observed_models(own: Model, received: Sequence[Model]) -> list[Model]:
    """The honest work an attacker in the real system knows: its model and what it received."""
    return [own, *received]
