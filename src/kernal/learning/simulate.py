"""An offline, in-process simulator of the collaborative protocol, to tune the design quickly.

The real system runs trainers over the network; this mirrors its logic in one process:

1. Every trainer draws its own shard (``make_shard`` with its own seed, or its part of a
   partition of the pool, ``layout="partition"``) and trains
   ``warmup_epochs`` before it shares anything (an untrained model would be refused).
2. Each round, in a seeded random order, every honest trainer (and, unless
   ``attackers_initiate=False``, every attacker: in the real system they run the same loop)
   picks a random peer it trusts (reputation >= threshold) that it has not met yet this round.
   The peer accepts only if it trusts the requester in turn (attackers accept anyone).
3. They exchange the models they SHARE (an attacker's is ``behaviour.outgoing(...)``); the
   requester shares first, so a free rider answering can echo what it just received.
4. Each side runs :func:`evaluate_merge` on its own validation slice, updates its reputation
   of the partner with the outcome (the trainer's own ReputationBook: EMA and strikes) and
   keeps the merged model if kept. With
   ``merge="fedavg"`` it averages instead (pairwise :func:`fedavg`, no gate, no reputation).
   Attackers run the same gate on their own (for label_flip: flipped) validation labels.
5. At the end of the round everyone who trains runs ``local_epochs`` epochs (warm start).

The shared test set is used only to report accuracies, never to decide anything. Baselines get
the same epoch budget (``warmup_epochs + rounds * local_epochs``): a local-only model per
trainer on its own shard, and one centralized model on the whole pool.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kernal.hub.credibility import Opinion, Verdicts, judge, rater_weight
from kernal.learning.adaptive import Knowledge, attack_success_rate
from kernal.learning.attacks import Behaviour, parse_behaviour
from kernal.learning.data import (
    SHARD_LAYOUTS,
    Dataset,
    Shard,
    holdout,
    load_digits,
    trainer_shards,
)
from kernal.learning.merge import (
    TYPICAL_WINDOW,
    evaluate_merge,
    fedavg,
    hijack_rate,
    typical_change,
    typical_norm,
    typical_rise,
)
from kernal.learning.mlp import (
    COLLABORATIVE_LR,
    COLLABORATIVE_PROX,
    DEFAULT_HIDDEN,
    INIT_SEED,
    MLPModel,
)
from kernal.learning.model import FloatArray, IntArray
from kernal.learning.models import DEFAULT_MODEL, MODEL_KINDS, Model, new_model, schedule
from kernal.trainer import policy
from kernal.trainer.reputation import ReputationBook

HISTORY = 6  # own recently shared models remembered by the free-rider guard
DETECTION_LIMIT = 5
OBSERVED = 8  # received models an attacker remembers to estimate honest statistics


@dataclass
class _Trainer:
    index: int
    behaviour: Behaviour
    shard: Shard
    train_X: FloatArray
    train_y: IntArray
    val_y: IntArray
    model: Model
    shares: int = 0
    last_received: Model | None = None
    history: list[Model] = field(default_factory=list)
    received: list[Model] = field(default_factory=list)
    hijack_reference: float | None = None  # its model's trigger-scan rate before any merge
    changes: list[float] = field(default_factory=list)  # dp of its measured merges, in order
    norms: list[float] = field(default_factory=list)  # its partners' parameter norms, in order
    rises: list[float] = field(default_factory=list)  # its merges' scan rises (rise check)


@dataclass
class SimResult:
    """Everything a run measured. Index ``i`` is trainer ``i``; matrices are [viewer, peer].

    ``reputation[r]`` is the reputation table after round ``r`` (``[0]`` is the start).
    ``detection[(h, p)]`` is the number of honest ``h``'s evaluations of poisoner ``p`` after
    which ``h``'s reputation of ``p`` first fell below the threshold (``None``: never); pairs
    that never interacted are absent.
    """

    behaviours: list[str]
    local_accuracy: list[float]
    final_accuracy: list[float]
    centralized_accuracy: float
    reputation: list[NDArray[np.float64]]
    interactions: NDArray[np.int64]
    detection: dict[tuple[int, int], int | None]
    kept: int = 0
    refused: int = 0
    threshold: float = 0.5
    backdoor_success: list[float] = field(default_factory=list)
    # The same trigger on each trainer's local-only model: what it does with no merge at all.
    local_backdoor_success: list[float] = field(default_factory=list)
    hub_standing: list[float] = field(default_factory=list)
    poisoned_pairs: list[tuple[int, int]] = field(default_factory=list)  # (receiver, sender)

    @property
    def mean_backdoor_success(self) -> float:
        """Mean over honest trainers of the backdoor's success on triggered test inputs."""
        return float(np.mean([self.backdoor_success[i] for i in self.honest]))

    @property
    def mean_local_backdoor_success(self) -> float:
        """The same over their local-only models: the trigger's rate on this data by itself
        (NaN without local-only models)."""
        if not self.local_backdoor_success:
            return float("nan")
        return float(np.mean([self.local_backdoor_success[i] for i in self.honest]))

    @property
    def honest(self) -> list[int]:
        return [i for i, b in enumerate(self.behaviours) if b == "honest"]

    @property
    def poisoners(self) -> list[int]:
        return [i for i, b in enumerate(self.behaviours) if b != "honest"]

    @property
    def mean_honest_accuracy(self) -> float:
        return float(np.mean([self.final_accuracy[i] for i in self.honest]))

    @property
    def mean_local_accuracy(self) -> float:
        """Mean local-only test accuracy of the honest trainers."""
        return float(np.mean([self.local_accuracy[i] for i in self.honest]))

    def poisoner_reputation(self) -> list[float]:
        """Mean reputation of poisoners as seen by honest trainers, per round (start included)."""
        h, p = self.honest, self.poisoners
        if not p:
            return []
        return [float(rep[np.ix_(h, p)].mean()) for rep in self.reputation]

    def detected_within(self, limit: int = DETECTION_LIMIT) -> float:
        """Fraction of interacting honest-poisoner pairs below threshold within ``limit``.

        Conservative: a pair that interacted fewer than ``limit`` times without falling below
        counts as a miss. NaN when no such pair interacted.
        """
        if not self.detection:
            return float("nan")
        return float(np.mean([n is not None and n <= limit for n in self.detection.values()]))

    def poisoned_and_distrusted(self) -> tuple[int, int]:
        """(honest-poisoner pairs in which the poisoner sent the honest trainer at least one
        malicious model, those of them in which the honest trainer distrusts it at the end)."""
        pairs = [(h, p) for h, p in self.poisoned_pairs if h in self.honest]
        final = self.reputation[-1]
        return len(pairs), sum(bool(final[h, p] < self.threshold) for h, p in pairs)

    def _below(self, pairs: list[tuple[int, int]], empty: float) -> float:
        """Fraction of ``pairs`` (receiver, sender) whose final reputation is below threshold."""
        if not pairs:
            return empty
        final = self.reputation[-1]
        return float(np.mean([final[a, b] < self.threshold for a, b in pairs]))

    def honest_pairs_below(self) -> float:
        """Fraction of ordered honest-honest pairs whose final reputation is below threshold."""
        return self._below([(a, b) for a in self.honest for b in self.honest if a != b], 0.0)

    def honest_met_pairs_below(self) -> float:
        """:meth:`honest_pairs_below` over the ordered honest pairs that interacted at least
        once (the harness's figure): a pair that never met keeps its seeded trust, which says
        nothing of the gate. NaN when no honest pair met."""
        met = self.interactions
        pairs = [(a, b) for a in self.honest for b in self.honest if a != b and met[a, b] > 0]
        return self._below(pairs, float("nan"))

    def worst_gain(self) -> float:
        """Min over honest trainers of final minus local-only test accuracy."""
        return min(self.final_accuracy[i] - self.local_accuracy[i] for i in self.honest)

    def summary(self) -> dict[str, float]:
        """The headline figures as a flat dict (for logs and reports)."""
        return {
            "mean_honest_accuracy": self.mean_honest_accuracy,
            "mean_local_accuracy": self.mean_local_accuracy,
            "centralized_accuracy": self.centralized_accuracy,
            "worst_gain": self.worst_gain(),
            "detected_within_5": self.detected_within(),
            "honest_pairs_below": self.honest_pairs_below(),
            "honest_met_pairs_below": self.honest_met_pairs_below(),
            "final_poisoner_reputation": (self.poisoner_reputation() or [float("nan")])[-1],
            "kept": float(self.kept),
            "refused": float(self.refused),
            "backdoor_success": self.mean_backdoor_success,
            "backdoor_success_alone": self.mean_local_backdoor_success,
        }


def simulate(
    n_trainers: int = 10,
    split: str = "dirichlet:0.5",
    seed: int = 0,
    rounds: int = 20,
    malicious: Sequence[int] = (),
    attack: str = "label_flip",
    merge: str = "gated",
    alpha: float = 0.3,
    threshold: float = 0.5,
    local_epochs: int = 10,
    warmup_epochs: int = 10,
    attackers_initiate: bool = True,
    data: Dataset | None = None,
    gate: Mapping[str, Any] | None = None,
    fit_options: Mapping[str, Any] | None = None,
    model: str = "softmax",
    hidden: tuple[int, ...] = DEFAULT_HIDDEN,
    shared_init: bool = True,
    omniscient: bool = False,
    seed_from_hub: bool = False,
    feedback: str = "accuracy",
    typical_window: int = TYPICAL_WINDOW,
    typical_norms: bool = True,
    layout: str = "draw",
) -> SimResult:
    """Run the protocol offline (see the module docstring); deterministic given ``seed``.

    ``malicious`` lists the indices of the trainers behaving as ``attack`` (for ``sybil``,
    they are the colluders, taking turns in that order); ``data`` defaults to the bundled
    digits; ``gate`` and ``fit_options`` are extra keyword arguments for
    :func:`evaluate_merge` and the model's ``fit`` (for tuning). ``model`` is ``softmax`` or
    ``mlp`` (``hidden`` layers; the function's default stays ``softmax`` with its 20 x 10
    schedule, which its tests and the v1 figures use, while the command line and the scorecard
    take :data:`~kernal.learning.models.DEFAULT_MODEL` and its schedule);
    ``shared_init=False`` starts each MLP from its own seed (only to measure what the shared
    start is worth). ``omniscient``: adaptive attackers know
    every honest trainer's current model (else only their own and the last models they
    received, as in the real system). ``seed_from_hub``: as the reference trainer does, each
    trainer takes the hub's standing of every peer at the start of each round (its periodic
    ``LIST_AIS``) and when it first meets one (:meth:`ReputationBook.seed`: the start of an
    unknown peer, and a cap while it stands below the initial reputation); the standing is the
    hub's rule itself (:func:`kernal.hub.credibility.judge`: one voice per rater, the mean of
    its votes, one vote per item; only partners count, established raters weigh, credibility
    checked), so colluders' ratings count as they would. ``feedback``: what a trainer reports
    as the vote's value, the partner model's validation ``accuracy`` (the score) or the gate's
    ``outcome`` (the usefulness, which the hub counts before the score when the engine sends
    both, as the learning engine does). ``typical_window``: how many of its last measured
    merges each trainer keeps for the gate's baseline (:func:`typical_change`, as the learning
    engine does); 0 keeps none (``gate={"competent_allowance": 0.0, "check_claims": False}``
    as well measures every outcome absolutely, as before either allowance existed).
    ``typical_norms``: the gate's norm check compares a partner with the larger of the
    receiver's own norm and its :func:`typical_norm` of the partners it measured (as the
    learning engine does); False compares with its own norm only, as before. ``layout``: the
    shards are each trainer's own draw (``"draw"``, as trainers on their own machines) or a
    partition of the pool (``"partition"``, the usual federated benchmark): see
    :func:`~kernal.learning.data.trainer_shards`.
    """
    if feedback not in ("accuracy", "outcome"):
        raise ValueError(f"feedback must be 'accuracy' or 'outcome', got {feedback!r}")
    if merge not in ("gated", "fedavg"):
        raise ValueError(f"merge must be 'gated' or 'fedavg', got {merge!r}")
    behaviour, bad = parse_behaviour(attack), list(dict.fromkeys(malicious))
    pool, test = holdout(data if data is not None else load_digits(), seed=seed)
    d, k = pool.X.shape[1], pool.n_classes
    fit_kwargs = dict(fit_options or {})
    start = new_model(model, d, k, hidden)

    def fresh(i: int) -> Model:
        if shared_init or model != "mlp":
            return start.copy()
        return new_model(model, d, k, hidden, seed=INIT_SEED + 1 + i)

    def train(m: Model, X: FloatArray, y: IntArray, epochs: int, s: int, after: bool) -> None:
        """``after``: training between merges (an MLP then keeps near what it merged)."""
        extra: dict[str, float] = {}
        if after and isinstance(m, MLPModel):
            extra = {"prox": COLLABORATIVE_PROX, "lr": COLLABORATIVE_LR}
        m.fit(X, y, epochs, seed=s, **{**extra, **fit_kwargs})

    rng = np.random.default_rng(seed)
    trainers: list[_Trainer] = []
    shards = trainer_shards(pool, split, n_trainers, seed, layout)
    for i, shard in enumerate(shards):
        b = Behaviour("honest")
        if i in bad:
            b = (
                Behaviour(behaviour.name, bad.index(i), len(bad))
                if attack == "sybil"
                else behaviour
            )
        train_y, val_y = b.training_labels(shard.train.y, k), b.training_labels(shard.val.y, k)
        train_X, train_y = b.training_set(shard.train.X, train_y)
        trainers.append(_Trainer(i, b, shard, train_X, train_y, val_y, fresh(i)))
    budget = warmup_epochs + rounds * local_epochs
    local_acc, local_backdoor = [], []
    for t in trainers:
        alone = fresh(t.index)
        train(alone, t.shard.train.X, t.shard.train.y, budget, seed, False)
        local_acc.append(alone.accuracy(test.X, test.y))
        local_backdoor.append(attack_success_rate(alone, test.X, test.y))
    central = start.copy()
    train(central, pool.X, pool.y, budget, seed, False)

    rep = np.full((n_trainers, n_trainers), 0.5)
    # Each trainer's own book, as the real trainer keeps it (strikes included); ``rep`` mirrors
    # what they say, for the tables.
    books = [ReputationBook(alpha, 0.5) for _ in range(n_trainers)]
    touched = np.zeros((n_trainers, n_trainers), dtype=bool)
    # (rater, ratee) -> [sum, count] of the votes, one per shared model (an item)
    reported: dict[tuple[int, int], list[float]] = {}
    partners: list[set[int]] = [set() for _ in range(n_trainers)]  # completed collaborations
    hub: dict[int, float] = {}  # the hub's standings, as of the last refresh
    doubted: dict[int, float] = {}  # and its credibilities below 1
    reputation = [rep.copy()]
    counts = np.zeros((n_trainers, n_trainers), dtype=np.int64)
    detection: dict[tuple[int, int], int | None] = {}
    tally = {"kept": 0, "refused": 0}
    poisoned: set[tuple[int, int]] = set()  # (receiver, sender) of a malicious share

    def verdicts() -> Verdicts:
        opinions = [
            Opinion(str(rater), str(ratee), rater_weight(len(partners[rater]) - 1), s / n)
            for (rater, ratee), (s, n) in sorted(reported.items())
            if ratee in partners[rater]
        ]
        return judge(opinions)

    def standings() -> dict[int, float]:
        judged = verdicts()
        return {i: judged.standing.get(str(i), 0.5) for i in range(n_trainers)}

    def refresh() -> None:
        """Every trainer reads the hub's standings (the reference trainer's LIST_AIS)."""
        judged = verdicts()
        hub.update({i: judged.standing.get(str(i), 0.5) for i in range(n_trainers)})
        doubted.clear()
        doubted.update({int(ai): c for ai, c in judged.credibility.items()})
        for viewer in range(n_trainers):
            for peer in range(n_trainers):
                if peer == viewer or not touched[viewer, peer]:
                    continue
                books[viewer].seed(str(peer), hub[peer], doubted.get(peer))
                rep[viewer, peer] = books[viewer].get(str(peer))
                key = (viewer, peer)
                if key in detection and detection[key] is None and rep[key] < threshold:
                    detection[key] = int(counts[key])

    def meet(viewer: int, peer: int) -> None:
        if seed_from_hub and not touched[viewer, peer]:
            books[viewer].seed(str(peer), hub.get(peer, 0.5), doubted.get(peer))
            rep[viewer, peer] = books[viewer].get(str(peer))
        touched[viewer, peer] = True

    def receive(me: _Trainer, sender: int, incoming: Model) -> None:
        me.last_received = incoming
        if not trainers[sender].behaviour.malicious:
            me.received = [*me.received, incoming][-OBSERVED:]
        if not me.behaviour.trains():
            return  # the free rider merges nothing: it only relays
        if merge == "fedavg":
            me.model = fedavg([me.model, incoming])
            return
        decision = evaluate_merge(
            me.model,
            incoming,
            me.shard.val.X,
            me.val_y,
            history=me.history,
            hijack_reference=me.hijack_reference,
            typical=typical_change(me.changes, typical_window),
            norm_reference=typical_norm(me.norms) if typical_norms else 0.0,
            **{"usual_rise": typical_rise(me.rises), **(gate or {})},
        )
        if decision.measured:
            me.changes = [*me.changes, decision.likelihood_change][-max(typical_window, 1) :]
        if decision.partner_norm > 0.0:
            me.norms = [*me.norms, decision.partner_norm][-TYPICAL_WINDOW:]
        if decision.scan_rise is not None:
            me.rises = [*me.rises, decision.scan_rise][-TYPICAL_WINDOW:]
        tally["kept" if decision.kept else "refused"] += 1
        me.model = decision.model
        colluder = me.behaviour.malicious and trainers[sender].behaviour.malicious
        measured = decision.partner_accuracy if feedback == "accuracy" else decision.outcome
        vote = reported.setdefault((me.index, sender), [0.0, 0])
        vote[0] += me.behaviour.reported_score(measured, colluder)
        vote[1] += 1
        partners[me.index].add(sender)
        partners[sender].add(me.index)
        if trainers[sender].behaviour.attacking(trainers[sender].shares - 1):
            poisoned.add((me.index, sender))
        rep[me.index, sender] = books[me.index].update(str(sender), decision.outcome, measured=True)
        counts[me.index, sender] += 1
        if not me.behaviour.malicious and trainers[sender].behaviour.malicious:
            key = (me.index, sender)
            if detection.setdefault(key, None) is None and rep[me.index, sender] < threshold:
                detection[key] = int(counts[me.index, sender])

    def share(t: _Trainer) -> Model:
        knowledge = None
        if t.behaviour.malicious:
            if omniscient:
                observed = [u.model for u in trainers if not u.behaviour.malicious]
            else:
                observed = [t.model, *t.received]
            knowledge = Knowledge(
                reference=start,
                observed=observed,
                val_X=t.shard.val.X,
                val_y=t.shard.val.y,
                trainers=n_trainers,
                malicious=len(bad),
            )
        out = t.behaviour.outgoing(t.model, t.shares, t.last_received, rng, knowledge)
        t.shares += 1
        # What we gave away must not come back as someone's "contribution" (free-rider guard).
        t.history = [*t.history, t.model.copy()][-HISTORY:]
        return out

    def trusts(viewer: int, peer: int) -> bool:
        if merge == "fedavg":
            return True
        meet(viewer, peer)
        return bool(rep[viewer, peer] >= threshold)

    def accepts(viewer: int, requester: int) -> bool:
        """The reference trainer's own decision: every simulated pair is complementary and
        trained, so trust decides."""
        if merge == "fedavg":
            return True
        meet(viewer, requester)
        return policy.consider_request(
            trained=True,
            trust=float(rep[viewer, requester]),
            threshold=threshold,
            is_complementary=True,
            active=0,
        ).accept

    for t in trainers:
        if t.behaviour.trains():
            train(t.model, t.train_X, t.train_y, warmup_epochs, seed * 7919 + t.index, False)
            t.hijack_reference = hijack_rate(t.model, t.shard.val.X)
    for r in range(rounds):
        if seed_from_hub:
            refresh()
        initiators = [t for t in trainers if attackers_initiate or not t.behaviour.malicious]
        met: set[tuple[int, int]] = set()
        for pos in rng.permutation(len(initiators)):
            me = initiators[int(pos)]
            # At most one exchange per pair per round: without training in between, a second
            # one offers nothing new (and the symmetric merge would make it look like an echo).
            peers = [
                j
                for j in range(n_trainers)
                if j != me.index and (min(me.index, j), max(me.index, j)) not in met
                if trusts(me.index, j)
            ]
            if not peers:
                continue
            partner = trainers[int(rng.choice(peers))]
            if not partner.behaviour.malicious and not accepts(partner.index, me.index):
                continue  # rejected: below the partner's trust threshold
            met.add((min(me.index, partner.index), max(me.index, partner.index)))
            sent = share(me)
            partner.last_received = sent
            answer = share(partner)
            receive(partner, me.index, sent)
            receive(me, partner.index, answer)
        for t in trainers:
            if t.behaviour.trains():
                s = seed * 7919 + (r + 1) * 101 + t.index
                train(t.model, t.train_X, t.train_y, local_epochs, s, True)
        reputation.append(rep.copy())
    return SimResult(
        behaviours=[t.behaviour.name for t in trainers],
        local_accuracy=local_acc,
        local_backdoor_success=local_backdoor,
        final_accuracy=[t.model.accuracy(test.X, test.y) for t in trainers],
        centralized_accuracy=central.accuracy(test.X, test.y),
        reputation=reputation,
        interactions=counts,
        detection=detection,
        kept=tally["kept"],
        refused=tally["refused"],
        threshold=threshold,
        backdoor_success=[attack_success_rate(t.model, test.X, test.y) for t in trainers],
        hub_standing=list(standings().values()),
        poisoned_pairs=sorted(poisoned),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Print one summary line per seed, e.g. ``--attack sign_flip --malicious 3``."""
    parser = argparse.ArgumentParser(prog="python -m kernal.learning.simulate")
    parser.add_argument("--trainers", type=int, default=10)
    parser.add_argument("--split", default="dirichlet:0.5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=None, help="default: the model's schedule")
    parser.add_argument("--malicious", type=int, default=0, help="how many attackers (first N)")
    parser.add_argument("--attack", default="label_flip")
    parser.add_argument("--merge", default="gated", choices=["gated", "fedavg"])
    parser.add_argument(
        "--epochs", type=int, default=None, help="local epochs per round (default: the schedule)"
    )
    parser.add_argument("--honest-only-initiate", action="store_true")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list(MODEL_KINDS))
    parser.add_argument("--data", default=None, help="digits (default), waves or a CSV/NPZ")
    parser.add_argument("--omniscient", action="store_true")
    parser.add_argument(
        "--seed-from-hub",
        action="store_true",
        help="trainers take the hub's standings and credibilities, as the real trainer does",
    )
    parser.add_argument("--feedback", default="accuracy", choices=["accuracy", "outcome"])
    parser.add_argument(
        "--typical-window",
        type=int,
        default=TYPICAL_WINDOW,
        help="merges kept for the gate's typical-cost baseline (0: none; a partner right on "
        "the rows its merge would move still gets the competent allowance)",
    )
    parser.add_argument(
        "--own-norm",
        action="store_true",
        help="the gate's norm check against our own norm only (not a typical partner's)",
    )
    parser.add_argument(
        "--layout",
        default="draw",
        choices=list(SHARD_LAYOUTS),
        help="each trainer's own draw of the pool (overlapping, as on separate machines) or a "
        "partition of it (every row to one trainer, the usual federated benchmark)",
    )
    args = parser.parse_args(argv)
    from kernal.learning.datasets import load_source

    dataset = load_source(args.data)
    rounds, epochs = schedule(args.model, args.rounds, args.epochs)
    for s in args.seeds:
        res = simulate(
            args.trainers,
            args.split,
            s,
            rounds,
            malicious=range(args.malicious),
            attack=args.attack,
            merge=args.merge,
            local_epochs=epochs,
            attackers_initiate=not args.honest_only_initiate,
            data=dataset,
            model=args.model,
            omniscient=args.omniscient,
            seed_from_hub=args.seed_from_hub,
            feedback=args.feedback,
            typical_window=args.typical_window,
            typical_norms=not args.own_norm,
            layout=args.layout,
        )
        figures = " ".join(f"{key} {value:.3f}" for key, value in res.summary().items())
        print(f"seed {s}: {figures}")


if __name__ == "__main__":
    main()
