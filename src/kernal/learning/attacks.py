"""Trainer behaviours: honest, and the poisoning / free-riding attacks the gate must withstand.

A behaviour changes two things only: the labels a trainer trains on (``label_flip``) and the
model it shares (everything else). Its private model and validation data stay honest, which is
the strongest position for an attacker: it poisons others while still learning from them.

Attack parameters (measured on digits, 64 x 10, see ``tests/learning/test_attacks.py``):

* ``label_flip``: trains on ``n_classes - 1 - y``, so its model is confidently wrong.
* ``sign_flip``: shares ``-W, -b`` (accuracy of the shared model ~0).
* ``noise``: shares ``W + N(0, sigma)`` with ``sigma = max(1.0, 3 * std(W, b))``; on [0, 1]
  pixel features that drowns the signal (the shared model scores near chance).
* ``scale``: shares ``10 * (W, b)`` (boosting, to dominate any averaging; same argmax).
* ``free_rider``: never trains; shares a copy of the last model it received (or a zero model)
  and claims ``1000`` samples of every class.
* ``on_off``: honest for 3 interactions, ``sign_flip`` for 3, and so on (starts honest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernal.learning.model import IntArray, SoftmaxModel

BEHAVIOURS = ("honest", "label_flip", "sign_flip", "noise", "scale", "free_rider", "on_off")
ALWAYS_MALICIOUS = ("label_flip", "sign_flip", "noise", "scale", "free_rider")

NOISE_MIN_SIGMA = 1.0
NOISE_STD_FACTOR = 3.0
SCALE_FACTOR = 10.0
FREE_RIDER_CLAIM = 1000
ON_OFF_PERIOD = 3


@dataclass(frozen=True)
class Behaviour:
    """One of :data:`BEHAVIOURS`; see the module docstring for what each does."""

    name: str = "honest"

    def __post_init__(self) -> None:
        if self.name not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.name!r}: expected one of {BEHAVIOURS}")

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

    def outgoing(
        self,
        model: SoftmaxModel,
        interaction: int,
        last_received: SoftmaxModel | None,
        rng: np.random.Generator,
    ) -> SoftmaxModel:
        """The model this trainer shares at its ``interaction``-th exchange (0-based).

        Always a new object; ``model`` and ``last_received`` are never modified.
        """
        name = self.name
        if name == "on_off":
            malicious_phase = (interaction // ON_OFF_PERIOD) % 2 == 1
            name = "sign_flip" if malicious_phase else "honest"
        if name in ("honest", "label_flip"):
            return model.copy()
        if name == "sign_flip":
            return SoftmaxModel(-model.W, -model.b, model.class_counts.copy(), model.rounds)
        if name == "noise":
            sigma = max(NOISE_MIN_SIGMA, NOISE_STD_FACTOR * float(np.std(model.parameters())))
            W = model.W + rng.normal(0.0, sigma, size=model.W.shape)
            b = model.b + rng.normal(0.0, sigma, size=model.b.shape)
            return SoftmaxModel(W, b, model.class_counts.copy(), model.rounds)
        if name == "scale":
            return SoftmaxModel(
                SCALE_FACTOR * model.W,
                SCALE_FACTOR * model.b,
                model.class_counts.copy(),
                model.rounds,
            )
        # free_rider: someone else's work (or nothing), with inflated claims.
        base = (
            last_received.copy()
            if last_received is not None
            else SoftmaxModel.zeros(model.n_features, model.n_classes)
        )
        claim = np.full(base.n_classes, FREE_RIDER_CLAIM, dtype=np.int64)
        return SoftmaxModel(base.W, base.b, claim, base.rounds + 1)


def parse_behaviour(text: str) -> Behaviour:
    """``"sign_flip"`` -> ``Behaviour("sign_flip")``; ``ValueError`` listing the valid names."""
    name = text.strip().lower().replace("-", "_")
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {text!r}: expected one of {', '.join(BEHAVIOURS)}")
    return Behaviour(name)
