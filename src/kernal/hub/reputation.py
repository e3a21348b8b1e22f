"""The hub's standing of each AI: how the partners that used its work rated it.

The rule (``docs/protocol.md``, "Standing"), with ``P`` = 0.5 and ``W0`` = 2::

    standing(X) = (P * W0 + sum of weight(r) * opinion(r, X)) / (W0 + sum of weight(r))

over the raters ``r`` that count for ``X``:

* **One voice per rater.** ``opinion(r, X)`` is the mean of ``r``'s current votes on ``X``'s
  items, one vote per item (the store keeps only a rater's latest, :class:`kernal.storage.Vote`);
  a vote's value is its ``usefulness`` when it has one, else its ``score``. However many
  FEEDBACK frames ``r`` sends, it is one rater in the sum.
* **Only partners count.** ``r`` counts for ``X`` only once a collaboration between the two
  completed (the hub saw it): ``X`` agreed to work with ``r`` and ``r`` had ``X``'s work in
  hand. A stranger, or a swarm of them, cannot move ``X`` at all.
* **Only established raters weigh.** ``weight(r, X)`` is 0 until ``r`` has completed
  collaborations with :data:`MIN_PARTNERS` distinct AIs besides ``X``, then
  ``partners / FULL_PARTNERS``, at most 1. A clique of three new accounts that collaborate with
  one another, and even with the honest AI they want to sink, has two partners each besides
  the one it rates: no weight, so it can neither lift itself nor push anybody down.
* **Credible raters weigh, and liars stand low.** Each rater's opinions are checked against
  the other raters' opinions of the same AIs; a rater whose verdicts contradict theirs beyond
  their own disagreement loses weight (its agreement multiplies it), and, if it also favours
  the AIs the hub doubts over the others (a clique sparing its own), credibility: its own
  standing is at most that (:mod:`kernal.hub.credibility`, :func:`judge`).

Why not weight raters by their own standing: that standing is what a clique writes for itself,
so it would be circular; the number of distinct completed collaborations is a fact only the hub
records, and every one of them needs a counterpart's consent. What this does not stop (no
reputation rule without a trusted seed can): a group of more than :data:`MIN_PARTNERS`
accounts completing collaborations among themselves gains weight among themselves, and can
sink an AI that completed a collaboration with each of them. It still cannot touch an AI that
never worked with its members, and the reference trainer never seeds a peer above its initial
trust from the hub's standing, so a lifted standing buys no more than a newcomer's.

Everything is in memory: :meth:`Standings.restore` reads the votes and the completed
collaborations once, at hub start; after that each FEEDBACK and each completed collaboration
updates the tables here (the store has already committed them) and marks the verdicts stale;
the next read judges them again (:func:`judge`, vectorised: a few milliseconds for thousands of
opinions), so a burst of votes costs one judgement and :meth:`Standings.of` is otherwise one
dictionary lookup on the relay path. On a large table a read judges again only once
:data:`JUDGE_FRACTION` of its opinions' worth of changes piled up (a standing may lag that
many votes). A recomputation after a restart gives the same numbers as a judgement of the same
tables (:func:`judge` sorts the opinions first, and the final sums are exact-rounded with
:func:`math.fsum`).

On a replica of a cluster, :attr:`Standings.feed` hears every change committed here (and
publishes it on the bus); the changes other replicas committed arrive through
:meth:`Standings.apply_vote` and :meth:`Standings.apply_pair`, which do not feed them back.
Both are idempotent (a vote replaces the rater's vote on the item, a pair is a set member), so
a change heard twice, or both from the bus and from the database at start, counts once.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from kernal.hub.credibility import (
    FULL_PARTNERS,
    MIN_PARTNERS,
    REPUTATION_PRIOR,
    REPUTATION_PRIOR_WEIGHT,
    Opinion,
    Verdicts,
    hub_reputation,
    judge,
    rater_weight,
)
from kernal.storage import Store, Vote

__all__ = [
    "FULL_PARTNERS",
    "MIN_PARTNERS",
    "REPUTATION_PRIOR",
    "REPUTATION_PRIOR_WEIGHT",
    "Standings",
    "StandingsFeed",
    "hub_reputation",
    "rater_weight",
    "vote_value",
]


def vote_value(vote: Vote | None) -> float | None:
    """What a vote says of its item, in [0, 1]: its usefulness (the measured outcome of using
    it) when given, else its score; None for no vote or a vote that only reports a use."""
    if vote is None:
        return None
    return vote.usefulness if vote.usefulness is not None else vote.score


JUDGE_FRACTION = 1 / 200
"""Changes (votes, pairs), as a fraction of the opinions last judged, that make a read judge
again: a table of up to 200 opinions is judged at every read after a change; one of 4,000
(100 AIs with 40 partners each) every 20 changes."""
JUDGE_NOW = 1 << 62  # restore(): judge at the next read whatever the size


class StandingsFeed(Protocol):
    """Hears each standing change committed by this hub (a cluster publishes it)."""

    def vote_committed(
        self, rater: str, contributor: str, item: tuple[str, str], vote: Vote
    ) -> None: ...

    def pair_completed(self, a: str, b: str) -> None: ...


@dataclass
class _Opinion:
    """A rater's current votes on one AI's items, by item, and their mean."""

    values: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, item) -> value
    mean: float | None = None

    def set(self, item: tuple[str, str], value: float | None) -> None:
        if value is None:
            self.values.pop(item, None)
        else:
            self.values[item] = value
        # Recomputed, not adjusted: an adjusted sum drifts, and a restart must give the same.
        self.mean = math.fsum(self.values.values()) / len(self.values) if self.values else None


class Standings:
    """Standings of every AI, by id, outliving its connections (see the module's rule)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._opinions: defaultdict[str, dict[str, _Opinion]] = defaultdict(dict)  # of X, by r
        self._partners: defaultdict[str, set[str]] = defaultdict(set)
        self._verdicts = Verdicts()
        self._changes = 0  # votes and pairs changed since _verdicts was judged
        self._judged_size = 0  # opinions in that judgement
        self.feed: StandingsFeed | None = None
        # Changes from other replicas heard while restore() reads the store: its snapshot may
        # predate them, so they are applied again once it is rebuilt (votes in the order they
        # were heard; pairs in any order, as a set of pairs does not depend on it).
        self._reading = False
        self._heard_votes: list[tuple[str, str, tuple[str, str], Vote]] = []
        self._heard_pairs: list[tuple[str, str]] = []

    async def restore(self) -> None:
        """Rebuild everything from the store (hub start): its votes and completed
        collaborations. Forgets what was there before, except the changes other replicas
        announced while it read."""
        self._reading = True
        try:
            ratings = await self._store.ratings()
            pairs = await self._store.collaboration_pairs()
        finally:
            self._reading = False
            heard_votes, self._heard_votes = self._heard_votes, []
            heard_pairs, self._heard_pairs = self._heard_pairs, []
        self._opinions.clear()
        self._partners.clear()
        self._changes = JUDGE_NOW
        for a, b in pairs:
            if a != b:
                self._partners[a].add(b)
                self._partners[b].add(a)
        for rating in ratings:
            item = (rating.kind.value, rating.item_id)
            self._set(rating.rater, rating.contributor, item, vote_value(rating.vote))
        for pair in heard_pairs:
            self.apply_pair(*pair)
        for vote in heard_votes:
            self.apply_vote(*vote)

    def of(self, ai_id: str) -> float:
        """The standing of ``ai_id`` (the prior for an AI no counting rater rated)."""
        return self._judged().standing.get(ai_id, REPUTATION_PRIOR)

    def raters(self, ai_id: str) -> int:
        """How many raters' opinions the standing of ``ai_id`` counts (0: it is the prior)."""
        return self._judged().raters.get(ai_id, 0)

    def credibility(self, ai_id: str) -> float:
        """How far ``ai_id``'s own verdicts on others are free of a clique's mark (they
        contradict what their other raters measured, in favour of the AIs the hub doubts), in
        [0, 1] (1: no evidence against it); see :mod:`kernal.hub.credibility`."""
        return self._judged().credibility.get(ai_id, 1.0)

    def doubted(self, ai_id: str) -> float | None:
        """:meth:`credibility` when below 1, else None (what the hub tells clients)."""
        found = self._judged().credibility.get(ai_id)
        return None if found is None else round(found, 4)

    def partners(self, ai_id: str) -> int:
        """How many distinct AIs ``ai_id`` completed a collaboration with."""
        return len(self._partners.get(ai_id, ()))

    def voted(self, rater: str, contributor: str, item: tuple[str, str], vote: Vote) -> None:
        """A FEEDBACK committed here: ``rater``'s vote on ``contributor``'s ``item`` (kind, id)
        is now ``vote`` (replacing whatever it was). Told to :attr:`feed`."""
        self.apply_vote(rater, contributor, item, vote)
        if self.feed is not None:
            self.feed.vote_committed(rater, contributor, item, vote)

    def collaborated(self, a: str, b: str) -> None:
        """A collaboration between ``a`` and ``b`` completed here. Told to :attr:`feed`."""
        self.apply_pair(a, b)
        if self.feed is not None:
            self.feed.pair_completed(a, b)

    def apply_vote(self, rater: str, contributor: str, item: tuple[str, str], vote: Vote) -> None:
        """A vote committed (here or by another replica): as :meth:`voted`, not fed back."""
        if self._reading:
            self._heard_votes.append((rater, contributor, item, vote))
        changed = self._set(rater, contributor, item, vote_value(vote))
        if changed and rater in self._partners.get(contributor, ()):
            self._changes += 1  # a stranger's vote is kept, but changes no verdict

    def apply_pair(self, a: str, b: str) -> None:
        """A completed collaboration (here or elsewhere). A new pair changes both weights (and
        through credibility, possibly every standing): judged again at the next read."""
        if self._reading:
            self._heard_pairs.append((a, b))
        if a == b or b in self._partners[a]:
            return
        self._partners[a].add(b)
        self._partners[b].add(a)
        self._changes += 1

    def _set(
        self, rater: str, contributor: str, item: tuple[str, str], value: float | None
    ) -> bool:
        """Set ``rater``'s value for ``item`` in its opinion of ``contributor``; whether that
        opinion can have changed. A self-rating never counts (the router refuses it; a row
        written before it did may hold one), nor does an item without a contributor."""
        if rater == contributor or not contributor:
            return False
        opinions = self._opinions[contributor]
        opinion = opinions.get(rater)
        if opinion is None:
            if value is None:
                return False
            opinion = opinions[rater] = _Opinion()
        opinion.set(item, value)
        return True

    def _judged(self) -> Verdicts:
        """The verdicts on the current tables, judged again only if they changed since (so a
        burst of votes between two reads costs one judgement), and on a large table only once
        :data:`JUDGE_FRACTION` of its opinions' worth of changes piled up: a judgement costs
        about 2 us per opinion, and a hub with thousands of opinions hears tens of votes a
        second. Counted, not timed, so the same changes give the same verdicts."""
        if self._changes >= max(1, int(self._judged_size * JUDGE_FRACTION)):
            counted = self._counted()
            self._verdicts = judge(counted)
            self._judged_size = len(counted)
            self._changes = 0
        return self._verdicts

    def _counted(self) -> list[Opinion]:
        # Over each AI's partners only: strangers' opinions are kept (a later collaboration
        # may make them count) but never judged, so a swarm of them costs nothing here.
        counted: list[Opinion] = []
        for ai_id, opinions in self._opinions.items():
            partners = self._partners.get(ai_id, ())
            for rater, opinion in opinions.items():
                if rater not in partners or opinion.mean is None:
                    continue
                # Besides ai_id itself (a partner, or the opinion would not count): the AI
                # being rated cannot be what makes its rater established.
                weight = rater_weight(len(self._partners[rater]) - 1)
                counted.append(Opinion(rater, ai_id, weight, opinion.mean))
        return counted
