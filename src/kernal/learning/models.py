"""The models a trainer can use, behind one name: ``softmax`` (linear) or ``mlp``.

Both have the same methods (``fit``, ``predict_proba``, ``accuracy``, ``parameters``,
``with_parameters``, ``signature``, ``layers``, ``class_counts``, ``rounds``, ``to_json``), so
merging, the gate and the attacks take either. :func:`model_from_json` is the one entry point
for a peer's model: it dispatches on ``kind`` and raises ``ValueError`` (only) on anything else.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from kernal.learning.mlp import DEFAULT_HIDDEN, INIT_SEED, MLPModel
from kernal.learning.model import SoftmaxModel

Model = SoftmaxModel | MLPModel
ModelKind = Literal["softmax", "mlp"]
MODEL_KINDS: tuple[ModelKind, ...] = ("softmax", "mlp")
# What a trainer, the harness, the simulator's command line and the scorecard use unless told:
# the MLP is ahead of softmax on both built-in datasets, through the simulator and the harness
# (docs/learning.md, "The default is the MLP, by measurement").
DEFAULT_MODEL: ModelKind = "mlp"
# Rounds x local epochs per round of the simulator and the scorecard for each model, the best
# of the settings measured (docs/learning.md): an MLP gains from merging more often.
SCHEDULES = {"softmax": (20, 10), "mlp": (40, 3)}
# A real trainer's (the learning engine's) epochs for each model: before it shares anything,
# and at each collaboration tick and after each merge it keeps. The MLP's are the simulator's
# (10 epochs of warm-up, 3 per round): with 30 and 5, trainers drifted apart before they first
# merged and on some runs kept almost no merge (docs/learning.md, "A real trainer's epochs").
TRAINER_EPOCHS = {"softmax": (30, 5), "mlp": (10, 3)}


def schedule(kind: str, rounds: int | None, epochs: int | None) -> tuple[int, int]:
    """``(rounds, epochs)``: the ones given, else ``kind``'s from :data:`SCHEDULES`."""
    default_rounds, default_epochs = SCHEDULES[kind]
    return (
        default_rounds if rounds is None else rounds,
        default_epochs if epochs is None else epochs,
    )


def new_model(
    kind: str, d: int, k: int, hidden: tuple[int, ...] = DEFAULT_HIDDEN, seed: int = INIT_SEED
) -> Model:
    """The starting model every trainer of a run shares: zeros for ``softmax``, the seeded
    initialisation of :meth:`MLPModel.initial` for ``mlp`` (``seed``: see there).
    ``ValueError`` for another kind."""
    if kind == "softmax":
        return SoftmaxModel.zeros(d, k)
    if kind == "mlp":
        return MLPModel.initial(d, k, hidden, seed)
    raise ValueError(f"unknown model {kind!r}: expected one of {', '.join(MODEL_KINDS)}")


def model_from_json(data: Any) -> Model:
    """A peer's model, strictly validated by its kind's ``from_json``; ``ValueError`` only."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "mlp":
        return MLPModel.from_json(data)
    return SoftmaxModel.from_json(data)


def zeros_like(model: Model) -> Model:
    """A model of the same shape with every parameter zero (counts and rounds reset)."""
    out = model.with_parameters(np.zeros_like(model.parameters()))
    out.class_counts = np.zeros_like(model.class_counts)
    out.rounds = 0
    return out
