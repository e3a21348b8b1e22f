"""Trainer behaviours: honest, and the poisoning / free-riding attacks the gate must withstand.

A behaviour changes three things only: the data a trainer trains on (``label_flip``,
``backdoor``), the model it shares (everything else) and, for ``sybil``, the scores it reports
to the hub. Its private model and validation data stay honest, which is the strongest position
for an attacker: it poisons others while still learning from them.

Non-adaptive attacks (measured on digits, 64 x 10, see ``tests/learning/test_attacks.py``):

* ``label_flip``: trains on ``n_classes - 1 - y``, so its model is confidently wrong.
* ``sign_flip``: shares ``r - u`` (``u`` its update from the shared start ``r``; for softmax
  ``r = 0``, so ``-W, -b``): accuracy of the shared model ~0.
* ``noise``: shares ``theta + N(0, sigma)`` with ``sigma = max(1.0, 3 * std(theta))``; on
  [0, 1] features that drowns the signal (the shared model scores near chance).
* ``scale``: shares ``r + 10 * u`` (boosting, to dominate any averaging).
* ``free_rider``: never trains; shares a copy of the last model it received (or a zero model)
  and claims ``1000`` samples of every class.
* ``on_off``: honest for 3 interactions, ``sign_flip`` for 3, and so on (starts honest).

Adaptive attacks (``alie``, ``ipm``, ``minmax``, ``gate_aware``, ``backdoor``): see
:mod:`kernal.learning.adaptive`, which names each one's source. ``sybil``: ``k`` colluding
identities that take turns: identity ``i`` of ``k`` shares a ``sign_flip`` model during its
turn (interactions ``3 * (i + j * k)`` to ``3 * (i + j * k) + 2``) and its honest model
otherwise, so that at any time one of them attacks while the others rebuild their standing;
all of them report the score 1 for a colluder's work and 0 for an honest peer's to the hub.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernal.learning import adaptive
from kernal.learning.adaptive import Knowledge
from kernal.learning.model import FloatArray, IntArray
from kernal.learning.models import Model, zeros_like

NON_ADAPTIVE = ("label_flip", "sign_flip", "noise", "scale", "free_rider", "on_off")
ADAPTIVE = ("alie", "ipm", "minmax", "gate_aware", "backdoor", "sybil")
BEHAVIOURS = ("honest", *NON_ADAPTIVE, *ADAPTIVE)
ALWAYS_MALICIOUS = ("label_flip", "sign_flip", "noise", "scale", "free_rider")

NOISE_MIN_SIGMA = 1.0
NOISE_STD_FACTOR = 3.0
SCALE_FACTOR = 10.0
FREE_RIDER_CLAIM = 1000
ON_OFF_PERIOD = 3


@dataclass(frozen=True)
class Behaviour:
    """One of :data:`BEHAVIOURS`; see the module docstring for what each does.

    ``sybil_index`` / ``sybil_count``: this identity's place among the ``sybil`` colluders.
    """

    name: str = "honest"
    sybil_index: int = 0
    sybil_count: int = 1

    def __post_init__(self) -> None:
        if self.name not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.name!r}: expected one of {BEHAVIOURS}")
        if not 0 <= self.sybil_index < max(1, self.sybil_count):
            raise ValueError(f"sybil_index {self.sybil_index} not in 0..{self.sybil_count - 1}")

    @property
    def malicious(self) -> bool:
        """Whether this behaviour ever shares something other than its honest model."""
        return self.name != "honest"

    def trains(self) -> bool:
        """False only for the free rider, which never trains."""
        return self.name != "free_rider"

    def training_labels(self, y: IntArray, n_classes: int) -> IntArray:
        """The labels this trainer trains (and validates) on: flipped for ``label_flip``."""
        if self.name == "label_flip":
            return (n_classes - 1 - y).astype(np.int64)
        return y

    def training_set(self, X: FloatArray, y: IntArray) -> tuple[FloatArray, IntArray]:
        """The data this trainer fits on, from its (already relabelled) shard: with triggered,
        relabelled copies added for ``backdoor``, unchanged otherwise."""
        if self.name == "backdoor":
            return adaptive.backdoor_training_set(X, y)
        return X, y

    def attacking(self, interaction: int) -> bool:
        """Whether the ``interaction``-th share (0-based) is malicious: always for an attack,
        every other period for ``on_off``, during its turns for a ``sybil``."""
        if self.name == "on_off":
            return (interaction // ON_OFF_PERIOD) % 2 == 1
        if self.name == "sybil":
            return (interaction // ON_OFF_PERIOD) % max(1, self.sybil_count) == self.sybil_index
        return self.malicious

    def reported_score(self, measured: float, partner_is_colluder: bool) -> float:
        """The score sent to the hub: the measurement, except that a sybil says 1 for a
        colluder and 0 for anyone else."""
        if self.name == "sybil":
            return 1.0 if partner_is_colluder else 0.0
        return measured

    def outgoing(
        self,
        model: Model,
        interaction: int,
        last_received: Model | None,
        rng: np.random.Generator,
        knowledge: Knowledge | None = None,
    ) -> Model:
        """The model this trainer shares at its ``interaction``-th exchange (0-based).

        ``knowledge`` feeds the adaptive attacks (without it they know only ``model``). Always
        a new object; ``model`` and ``last_received`` are never modified.
        """
        name = self.name
        known = knowledge or Knowledge(observed=[model])
        if name in ("on_off", "sybil"):
            name = "sign_flip" if self.attacking(interaction) else "honest"
        if name in ("honest", "label_flip"):
            return model.copy()
        theta = model.parameters()
        ref = (
            known.reference.parameters()
            if known.reference is not None and known.reference.signature == model.signature
            else np.zeros_like(theta)
        )
        if name == "sign_flip":
            return model.with_parameters(ref - (theta - ref))
        if name == "noise":
            sigma = max(NOISE_MIN_SIGMA, NOISE_STD_FACTOR * float(np.std(theta)))
            return model.with_parameters(theta + rng.normal(0.0, sigma, size=theta.shape))
        if name == "scale":
            return model.with_parameters(ref + SCALE_FACTOR * (theta - ref))
        if name == "alie":
            return adaptive.alie(model, known)
        if name == "ipm":
            return adaptive.ipm(model, known)
        if name == "minmax":
            return adaptive.minmax(model, known)
        if name == "gate_aware":
            return adaptive.gate_aware(model, known)
        if name == "backdoor":
            return adaptive.backdoor_share(model, known)
        # free_rider: someone else's work (or nothing), with inflated claims.
        base = last_received.copy() if last_received is not None else zeros_like(model)
        base.class_counts = np.full(base.n_classes, FREE_RIDER_CLAIM, dtype=np.int64)
        base.rounds += 1
        return base


def parse_behaviour(text: str) -> Behaviour:
    """``"sign_flip"`` -> ``Behaviour("sign_flip")``; ``ValueError`` listing the valid names."""
    name = text.strip().lower().replace("-", "_")
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {text!r}: expected one of {', '.join(BEHAVIOURS)}")
    return Behaviour(name)
