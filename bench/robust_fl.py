"""Server-based federated learning with robust aggregation rules, in numpy (ours, not Flower's).

The scorecard's reference for "what the field would use": a trusted server, every client every
round, and one of these aggregators over the submitted models (all trainers start from the
same model, so averaging parameters is meaningful):

* ``fedavg``: weighted by training-shard size (McMahan et al. 2017);
* ``krum``: the one model whose ``n - f - 2`` nearest neighbours are closest (Blanchard et al.
  2017, "Machine learning with adversaries: Byzantine tolerant gradient descent");
* ``multikrum``: the mean of the ``n - f`` best-scored models by the same score;
* ``trimmed_mean``: per coordinate, the mean after dropping the ``f`` largest and ``f``
  smallest values (Yin et al. 2018, "Byzantine-robust distributed learning");
* ``median``: the per-coordinate median (Yin et al. 2018).

``f`` is the true number of attackers (the defender is told it: the rules' best case).
Attackers are omniscient, as in the attack papers: an adaptive attacker is given every honest
client's model of the round (``Knowledge.observed``) and the round's global model as the
reference. These are our implementations of the published rules; Flower ships the same
strategies (``FedAvg``, ``Krum``, ``FedTrimmedAvg``, ``FedMedian``), which we did not run here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kernal.learning.adaptive import Knowledge, attack_success_rate
from kernal.learning.attacks import Behaviour, parse_behaviour
from kernal.learning.data import Dataset, holdout, trainer_shards
from kernal.learning.models import Model, new_model

AGGREGATORS = ("fedavg", "krum", "multikrum", "trimmed_mean", "median")
Vectors = NDArray[np.float64]


def _krum_scores(stack: Vectors, f: int) -> Vectors:
    n = len(stack)
    nearest = max(1, n - f - 2)
    d2 = ((stack[:, None, :] - stack[None, :, :]) ** 2).sum(axis=2)
    scores = np.sort(d2, axis=1)[:, 1 : nearest + 1].sum(axis=1)  # 0 is the distance to itself
    return scores


def aggregate(rule: str, stack: Vectors, weights: Vectors, f: int) -> Vectors:
    """One aggregated parameter vector from ``stack`` (clients x parameters)."""
    if rule == "fedavg":
        w = weights / weights.sum()
        out: Vectors = w @ stack
        return out
    if rule == "krum":
        return stack[int(np.argmin(_krum_scores(stack, f)))].copy()
    if rule == "multikrum":
        best = np.argsort(_krum_scores(stack, f))[: max(1, len(stack) - f)]
        return stack[best].mean(axis=0)
    if rule == "trimmed_mean":
        ordered = np.sort(stack, axis=0)
        trim = min(f, (len(stack) - 1) // 2)
        return ordered[trim : len(stack) - trim].mean(axis=0)
    if rule == "median":
        return np.median(stack, axis=0)
    raise ValueError(f"unknown aggregator {rule!r}: expected one of {', '.join(AGGREGATORS)}")


@dataclass
class FLResult:
    accuracy: float
    backdoor_success: float
    history: list[float]


def run_fl(
    data: Dataset,
    rule: str,
    *,
    n_trainers: int = 10,
    malicious: Sequence[int] = (),
    attack: str = "label_flip",
    split: str = "dirichlet:0.5",
    seed: int = 0,
    rounds: int = 20,
    epochs: int = 10,
    model: str = "softmax",
    layout: str = "draw",
) -> FLResult:
    """``rounds`` rounds of server FL with ``rule``; the same shards as
    :func:`kernal.learning.simulate.simulate` with the same ``seed`` and ``layout``
    (:func:`~kernal.learning.data.trainer_shards`, test split ``holdout(data, seed=seed)``)."""
    pool, test = holdout(data, seed=seed)
    d, k = pool.X.shape[1], pool.n_classes
    bad = list(dict.fromkeys(malicious))
    base = parse_behaviour(attack)
    behaviours = [
        (Behaviour(base.name, bad.index(i), len(bad)) if base.name == "sybil" else base)
        if i in bad
        else Behaviour("honest")
        for i in range(n_trainers)
    ]
    shards = trainer_shards(pool, split, n_trainers, seed, layout)
    train_sets = []
    for b, shard in zip(behaviours, shards, strict=True):
        y = b.training_labels(shard.train.y, k)
        train_sets.append(b.training_set(shard.train.X, y))
    rng = np.random.default_rng(seed)
    global_model: Model = new_model(model, d, k)
    weights = np.array([float(len(s.train)) for s in shards])
    history: list[float] = []
    for r in range(rounds):
        trained: list[Model] = []
        for i, b in enumerate(behaviours):
            local = global_model.copy()
            if b.trains():
                X, y = train_sets[i]
                local.fit(X, y, epochs, seed=seed * 7919 + (r + 1) * 101 + i)
            trained.append(local)
        honest = [m for m, b in zip(trained, behaviours, strict=True) if not b.malicious]
        submitted: list[Vectors] = []
        for i, (m, b) in enumerate(zip(trained, behaviours, strict=True)):
            if not b.malicious:
                submitted.append(m.parameters())
                continue
            knowledge = Knowledge(
                reference=global_model,
                observed=honest,
                val_X=shards[i].val.X,
                val_y=shards[i].val.y,
                trainers=n_trainers,
                malicious=len(bad),
            )
            submitted.append(b.outgoing(m, r, global_model, rng, knowledge).parameters())
        vector = aggregate(rule, np.stack(submitted), weights, len(bad))
        global_model = global_model.with_parameters(vector)
        history.append(global_model.accuracy(test.X, test.y))
    return FLResult(
        accuracy=global_model.accuracy(test.X, test.y),
        backdoor_success=attack_success_rate(global_model, test.X, test.y),
        history=history,
    )
