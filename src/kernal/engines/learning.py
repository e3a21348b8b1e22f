"""The learning engine: a trainer that really learns, and judges partners by measured results.

Each trainer draws its own shard of a dataset (scikit-learn's bundled digits by default, the
built-in ``waves``, or ``--data FILE``), keeps a private validation slice of it, and trains a
small MLP or a softmax classifier (``model``). In a
collaboration both partners send their current model; each merges the partner's model into
its own through a gate measured on its private validation data (a merge that makes things
worse is not kept), and the measured result is the partner's outcome: it feeds reputation and
the FEEDBACK the hub keeps (its usefulness). The held-out test set is only used for reporting.

Options (``EngineContext.options``, from the command line or the harness):

``data``            ``digits`` (default), ``waves`` or the path of a CSV/NPZ file
``model``           ``mlp`` (default, see docs/learning.md for the measurement) or ``softmax``
``hidden``          the MLP's hidden layers, e.g. ``64`` (default) or ``64,32``
``split``           ``iid``, ``dirichlet:ALPHA`` (default ``dirichlet:0.5``) or ``shards:K``
``shard_size``      samples per trainer; default: a tenth of the training pool
``behaviour``       ``honest`` (default) or an adversary, see :mod:`kernal.learning.attacks`
``merge``           ``gated`` (default) or ``fedavg`` (plain averaging, no gate: a baseline)
``local_epochs``    epochs of the first, local-only training (default: 10 for the MLP, 30 for
                    softmax, :data:`~kernal.learning.models.TRAINER_EPOCHS`)
``epochs_per_tick`` epochs per collaboration tick and after each kept merge (default: 3 for
                    the MLP, 5 for softmax)
``colluders``       for ``behaviour=sybil``: the ids of every sybil, this one included, in turn
                    order (the harness fills it in)
``peers``           how many trainers the run has (ALIE's ``n``; the harness fills it in)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import zlib
from collections import deque
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from kernal.engines.base import (
    Artifact,
    Assessment,
    CollaborationTask,
    Engine,
    EngineOptions,
    Figures,
)
from kernal.learning.adaptive import Knowledge, attack_success_rate
from kernal.learning.attacks import Behaviour, parse_behaviour
from kernal.learning.data import Dataset, FloatArray, IntArray, holdout, make_shard, parse_split
from kernal.learning.datasets import load_source
from kernal.learning.merge import (
    TYPICAL_WINDOW,
    evaluate_merge,
    fedavg,
    hijack_rate,
    scan_blind_spot,
    typical_change,
    typical_norm,
    typical_rise,
)
from kernal.learning.mlp import COLLABORATIVE_LR, COLLABORATIVE_PROX, MLPModel, parse_hidden
from kernal.learning.models import (
    DEFAULT_MODEL,
    TRAINER_EPOCHS,
    Model,
    ModelKind,
    model_from_json,
    new_model,
)

log = logging.getLogger(__name__)

MERGE_MODES = ("gated", "fedavg")
OBSERVED = 8  # received models an adaptive attacker keeps to estimate honest statistics


class LearningOptions(EngineOptions):
    """The learning engine's options (see the module docstring)."""

    data: str | None = None
    split: str = "dirichlet:0.5"
    shard_size: int | None = Field(default=None, ge=1)
    behaviour: str = "honest"
    merge: Literal["gated", "fedavg"] = "gated"
    model: ModelKind = DEFAULT_MODEL
    hidden: str = "64"
    local_epochs: int | None = Field(default=None, ge=0)  # None: the model's own
    epochs_per_tick: int | None = Field(default=None, ge=0)
    colluders: str = ""
    peers: int = Field(default=10, ge=1)

    @field_validator("hidden", mode="before")
    @classmethod
    def _hidden(cls, value: object) -> str:
        return ",".join(map(str, parse_hidden(str(value))))

    @field_validator("split")
    @classmethod
    def _split(cls, value: str) -> str:
        parse_split(value)
        return value

    @field_validator("behaviour")
    @classmethod
    def _behaviour(cls, value: str) -> str:
        return parse_behaviour(value).name


TICKS_PER_COLLABORATION = 4
HISTORY = 5  # recent models kept to recognise a free rider sending one back


@functools.lru_cache(maxsize=8)
def dataset_for(source: str | None) -> tuple[Dataset, Dataset]:
    """(training pool, held-out test set): the same split for every trainer of a dataset."""
    return holdout(load_source(source), seed=0)


def data_seed(seed: int | None, ai_id: str) -> int:
    """A trainer's data seed: from its seed and id, so each trainer of a run draws its own
    shard and a rerun with the same seeds draws the same ones."""
    return zlib.crc32(f"{seed}:{ai_id}".encode())


def _fit(
    model: Model, X: FloatArray, y: IntArray, epochs: int, seed: int, prox: float | None
) -> None:
    """One local fit; with ``prox`` (MLP only, between merges) a proximal term and
    :data:`~kernal.learning.mlp.COLLABORATIVE_LR`."""
    if prox is not None and isinstance(model, MLPModel):
        model.fit(X, y, epochs, seed=seed, prox=prox, lr=COLLABORATIVE_LR)
    else:
        model.fit(X, y, epochs, seed=seed)


class LearningEngine(Engine):
    name = "learning"
    Options = LearningOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.options
        assert isinstance(options, LearningOptions)
        self.source = options.data
        self.split = options.split
        self.behaviour = parse_behaviour(options.behaviour)
        self.colluders = [c for c in options.colluders.split(",") if c]
        if self.behaviour.name == "sybil" and self.context.ai_id in self.colluders:
            self.behaviour = Behaviour(
                "sybil", self.colluders.index(self.context.ai_id), len(self.colluders)
            )
        self.peers = options.peers
        self.merge_mode = options.merge
        first_epochs, tick_epochs = TRAINER_EPOCHS[options.model]
        self.local_epochs = first_epochs if options.local_epochs is None else options.local_epochs
        self.epochs_per_tick = (
            tick_epochs if options.epochs_per_tick is None else options.epochs_per_tick
        )
        shard_size = options.shard_size
        self.seed = data_seed(self.context.seed, self.context.ai_id)
        self.rng = np.random.default_rng(self.seed)
        pool, self.test = dataset_for(self.source)
        self.shard = make_shard(pool, self.split, self.seed, shard_size)
        n_classes = pool.n_classes
        # What this trainer learns from (flipped labels for a label-flipping adversary).
        train_y = self.behaviour.training_labels(self.shard.train.y, n_classes)
        self.train_X, self.train_y = self.behaviour.training_set(self.shard.train.X, train_y)
        self.val_y = self.behaviour.training_labels(self.shard.val.y, n_classes)
        self.model_kind = options.model
        # Every trainer of a run starts from this same model (see kernal.learning.mlp).
        self.start: Model = new_model(
            options.model, pool.X.shape[1], n_classes, parse_hidden(options.hidden)
        )
        self.model: Model = self.start.copy()
        self.local_only_accuracy: float | None = None
        # The trigger scan's rate of our model before any merge: the gate's fixed reference.
        self.hijack_reference: float | None = None
        self.last_received: Model | None = None
        self.received: deque[Model] = deque(maxlen=OBSERVED)
        self.recent: deque[Model] = deque(maxlen=HISTORY)
        # dp of our last measured merges: what merging a partner typically costs us, the
        # baseline of the gate's outcome (kernal.learning.merge.typical_change).
        self.changes: deque[float] = deque(maxlen=TYPICAL_WINDOW)
        # Parameter norms of the last partner models we measured: the norm check's reference
        # when larger than our own (kernal.learning.merge.typical_norm).
        self.norms: deque[float] = deque(maxlen=TYPICAL_WINDOW)
        # How much each of our last merges that reached the rise check raised the trigger
        # scan: the check's reference (kernal.learning.merge.typical_rise).
        self.rises: deque[float] = deque(maxlen=TYPICAL_WINDOW)
        self.interactions = 0
        self.kept = 0
        self.rejected = 0
        self.refused: dict[str, tuple[int, str]] = {}  # partner -> (models refused, why)
        self.history: list[tuple[float, float]] = []
        self._fits = 0
        # The same training without any merge, fitted beside the model (the same epochs, seeds
        # and proximal term): the same-budget local-only baseline, ready at any time. Replaying
        # every fit at the end instead kept a harness worker of 50 MLP trainers busy past its
        # stop allowance, and its trainers' reports were lost.
        self._alone = self.start.copy()
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ learning
    # Training runs in a worker thread on a copy that is swapped in when done, under a lock:
    # the event loop stays responsive, and whatever is shared meanwhile is a whole model.

    async def _train(self, epochs: int) -> None:
        if not self.behaviour.trains() or epochs <= 0:
            return
        async with self._lock:
            self._fits += 1
            model = self.model.copy()
            # Until a merge is kept the two are the same model fitted the same way, so the
            # baseline is a copy, not a second fit (a fifth of an MLP trainer's CPU at 100
            # trainers).
            alone = self._alone.copy() if self.kept else None
            train_X, train_y, seed = self.train_X, self.train_y, self.seed + self._fits
            # Between merges an MLP stays near where it was (FedProx); softmax needs no term.
            prox = COLLABORATIVE_PROX if isinstance(model, MLPModel) and self._fits > 1 else None

            def fit_both() -> Model:
                _fit(model, train_X, train_y, epochs, seed, prox)
                if alone is None:
                    return model.copy()
                _fit(alone, train_X, train_y, epochs, seed, prox)
                return alone

            self._alone = await asyncio.to_thread(fit_both)
            self.model = model
            self._record()

    def _record(self) -> None:
        self.history.append((time.time(), self.test_accuracy()))

    def test_accuracy(self) -> float:
        """Accuracy on the held-out test set: for reports only, never for decisions."""
        return self.model.accuracy(self.test.X, self.test.y)

    def val_accuracy(self) -> float:
        return self.model.accuracy(self.shard.val.X, self.val_y)

    async def train(self) -> dict[str, Any]:
        await self._train(self.local_epochs)
        self.local_only_accuracy = self.test_accuracy()
        self.hijack_reference = hijack_rate(self.model, self.shard.val.X)
        if self.behaviour.trains() and (blind := scan_blind_spot(self.hijack_reference)):
            log.warning("[%s] %s", self.context.ai_id, blind)
        if not self.history:
            self._record()
        return {
            "samples": len(self.shard.train),
            "validation_samples": len(self.shard.val),
            "classes": self.shard.train.counts().tolist(),
            "local_only_accuracy": round(self.local_only_accuracy, 4),
        }

    def _shared(self) -> Model:
        """The model this trainer shares now: its own, or what its behaviour makes of it."""
        knowledge = None
        if self.behaviour.malicious:
            n_bad = len(self.colluders) or round(0.3 * self.peers)
            knowledge = Knowledge(
                reference=self.start,
                observed=[self.model, *self.received],
                val_X=self.shard.val.X,
                val_y=self.shard.val.y,
                trainers=self.peers,
                malicious=n_bad,
            )
        shared = self.behaviour.outgoing(
            self.model, self.interactions, self.last_received, self.rng, knowledge
        )
        self.interactions += 1
        # What we shared coming back unchanged is an echo, not a contribution.
        self.recent.append(shared)
        return shared

    def _describe(self, model: Model) -> dict[str, Any]:
        return {
            "model": model.to_json(),
            "classes_seen": [int(c) for c in np.flatnonzero(model.class_counts)],
            "samples": int(model.class_counts.sum()),
            "val_accuracy": round(self.val_accuracy(), 4),
            "round": model.rounds,
        }

    # ------------------------------------------------------------------ sharing

    def make_pattern(self, index: int) -> Artifact:
        return Artifact({"kind": "model_update", **self._describe(self._shared())})

    def make_component(self, index: int) -> Artifact:
        return Artifact(
            {"kind": "model_snapshot", **self._describe(self._shared())},
            quality_score=round(self.val_accuracy(), 4),
        )

    def build_for_collaboration(self, task: CollaborationTask) -> Artifact:
        return Artifact(
            {
                "kind": "collaboration_result",
                "partner": task.partner,
                **self._describe(self._shared()),
            },
            quality_score=round(self.val_accuracy(), 4),
        )

    # ------------------------------------------------------------------ collaboration

    def offer(self, task: CollaborationTask) -> Artifact:
        return Artifact(
            {"kind": "model_offer", **self._describe(self._shared())},
            quality_score=round(self.val_accuracy(), 4),
        )

    async def assess(self, task: CollaborationTask, data: dict[str, Any]) -> Assessment:
        try:
            other = model_from_json(data.get("model"))
        except ValueError:
            self._refuse(task.partner, "malformed model")
            # Malformed: nothing usable.
            return Assessment(outcome=0.0, score=0.0, kept=False, usefulness=0.0)
        self.last_received = other.copy()
        colluder = task.partner in self.colluders
        if not colluder:
            self.received.append(other)
        val_X, val_y = self.shard.val.X, self.val_y
        if self.merge_mode == "fedavg":
            # The undefended baseline: average whatever arrives and trust everyone.
            async with self._lock:
                partner_accuracy = other.accuracy(val_X, val_y)
                self.model = fedavg([self.model, other])
                self.kept += 1
                self._record()
            return Assessment(outcome=1.0, score=round(partner_accuracy, 4), kept=True)
        async with self._lock:
            decision = await asyncio.to_thread(
                evaluate_merge,
                self.model,
                other,
                val_X,
                val_y,
                history=tuple(self.recent),
                hijack_reference=self.hijack_reference,
                typical=typical_change(self.changes),
                norm_reference=typical_norm(self.norms),
                usual_rise=typical_rise(self.rises),
            )
            if decision.measured:
                self.changes.append(decision.likelihood_change)
            if decision.partner_norm > 0.0:
                self.norms.append(decision.partner_norm)
            if decision.scan_rise is not None:
                self.rises.append(decision.scan_rise)
            if decision.kept:
                self.kept += 1
                self.model = decision.model
                self._record()
            else:
                self._refuse(task.partner, decision.reason)
        if decision.kept:
            await self._train(self.epochs_per_tick)  # settle the merged model on our own data
        score = self.behaviour.reported_score(decision.partner_accuracy, colluder)
        # The merge's measured effect on our validation set (clip(1 + (dp - baseline) / tau,
        # 0, 1): beyond what a merge typically costs us, or what averaging costs when the
        # partner is right on the rows it would move), as a sybil reports it (its colluders
        # up, everyone else down) when it is one.
        usefulness = self.behaviour.reported_score(decision.outcome, colluder)
        return Assessment(
            outcome=decision.outcome,
            score=round(score, 4),
            kept=decision.kept,
            usefulness=round(usefulness, 4),
        )

    def _refuse(self, partner: str, reason: str) -> None:
        self.rejected += 1
        count, _ = self.refused.get(partner, (0, reason))
        self.refused[partner] = (count + 1, reason)

    async def work(self, task: CollaborationTask, progress: float) -> float:
        """One tick of real training on our shard; progress is the share of the planned
        epochs done."""
        await self._train(self.epochs_per_tick)
        return min(100.0, progress + 100.0 / TICKS_PER_COLLABORATION)

    # ------------------------------------------------------------------ reporting

    def same_budget_local_accuracy(self) -> float:
        """Test accuracy of this trainer's own training schedule without any merge (fitted
        beside the model, fit for fit): what it would have reached alone with the same epochs
        (and seeds). A trainer that kept no merge gets exactly its final accuracy; one that
        merged is compared on equal terms."""
        return self._alone.accuracy(self.test.X, self.test.y)

    def figures(self, *, final: bool = False) -> Figures:
        """Test accuracy (what reports use, never decisions: validation accuracy drives those),
        rounded as :meth:`summary` rounds it so the hub's record and the report agree; the
        equal-budget local-only baseline only in the final report."""
        return Figures(
            accuracy=round(self.test_accuracy(), 4),
            local_only_accuracy=round(self.same_budget_local_accuracy(), 4) if final else None,
            merges_kept=self.kept,
            merges_rejected=self.rejected,
            refused_merges=dict(self.refused),
        )

    def summary(self) -> dict[str, Any]:
        return {
            "behaviour": self.behaviour.name,
            "data": self.source,
            "split": self.split,
            "merge": self.merge_mode,
            "model": self.model_kind,
            # The figure the first local epochs gave (also in the HELLO's training report)...
            "initial_local_accuracy": None
            if self.local_only_accuracy is None
            else round(self.local_only_accuracy, 4),
            # ...and the baseline every comparison uses: the same training without merges.
            "local_only_accuracy": round(self.same_budget_local_accuracy(), 4),
            "final_accuracy": round(self.test_accuracy(), 4),
            "val_accuracy": round(self.val_accuracy(), 4),
            "merges_kept": self.kept,
            "merges_rejected": self.rejected,
            "backdoor_success": round(attack_success_rate(self.model, self.test.X, self.test.y), 4),
            # The same trigger on the same training without merges: what it does on this data
            # by itself (on some tables an honest model reads it as a class's sign).
            "backdoor_success_alone": round(
                attack_success_rate(self._alone, self.test.X, self.test.y), 4
            ),
            # The trigger scan's reference: above 0.7 the scan refuses nobody
            # (kernal.learning.merge.scan_blind_spot).
            "trigger_scan_reference": None
            if self.hijack_reference is None
            else round(self.hijack_reference, 4),
            "accuracy_history": [[round(t, 3), round(a, 4)] for t, a in self.history],
        }
