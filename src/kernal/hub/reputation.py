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
updates the tables here (the store has already committed them), and :meth:`Standings.of` is one
dictionary lookup on the relay path. A recomputation after a restart gives the same numbers
(sums are exact-rounded with :func:`math.fsum`, so their order does not matter).

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

from kernal.storage import Store, Vote

REPUTATION_PRIOR = 0.5
REPUTATION_PRIOR_WEIGHT = 2.0
MIN_PARTNERS = 3
"""Distinct completed-collaboration partners, besides the AI it rates, that a rater needs
before its opinion of that AI weighs anything."""
FULL_PARTNERS = 6
"""Such partners at which a rater's opinion weighs fully (1)."""


def vote_value(vote: Vote | None) -> float | None:
    """What a vote says of its item, in [0, 1]: its usefulness (the measured outcome of using
    it) when given, else its score; None for no vote or a vote that only reports a use."""
    if vote is None:
        return None
    return vote.usefulness if vote.usefulness is not None else vote.score


def rater_weight(partners: int) -> float:
    """The weight of a rater's opinion of an AI when it has ``partners`` distinct
    completed-collaboration partners besides that AI."""
    if partners < MIN_PARTNERS:
        return 0.0
    return min(1.0, partners / FULL_PARTNERS)


def hub_reputation(opinions: list[tuple[float, float]]) -> float:
    """The weighted mean of ``(weight, opinion)`` pairs, pulled toward 0.5 by two virtual
    ratings, so that a single rater does not decide and an AI nobody rated stands at 0.5."""
    total = math.fsum(weight * opinion for weight, opinion in opinions)
    weights = math.fsum(weight for weight, _ in opinions)
    return (total + REPUTATION_PRIOR * REPUTATION_PRIOR_WEIGHT) / (
        weights + REPUTATION_PRIOR_WEIGHT
    )


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
        self._standing: dict[str, float] = {}  # only AIs that differ from the prior
        self._raters: dict[str, int] = {}  # raters counted in each such standing
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
        self._standing.clear()
        self._raters.clear()
        for a, b in pairs:
            if a != b:
                self._partners[a].add(b)
                self._partners[b].add(a)
        for rating in ratings:
            item = (rating.kind.value, rating.item_id)
            self._set(rating.rater, rating.contributor, item, vote_value(rating.vote))
        for ai_id in list(self._opinions):
            self._recompute(ai_id)
        for pair in heard_pairs:
            self.apply_pair(*pair)
        for vote in heard_votes:
            self.apply_vote(*vote)

    def of(self, ai_id: str) -> float:
        """The standing of ``ai_id`` (the prior for an AI no counting rater rated)."""
        return self._standing.get(ai_id, REPUTATION_PRIOR)

    def raters(self, ai_id: str) -> int:
        """How many raters' opinions the standing of ``ai_id`` counts (0: it is the prior)."""
        return self._raters.get(ai_id, 0)

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
        if self._set(rater, contributor, item, vote_value(vote)):
            self._recompute(contributor)

    def apply_pair(self, a: str, b: str) -> None:
        """A completed collaboration (here or elsewhere). A new pair changes both weights, so
        every standing either of them counts in is recomputed (in memory, a rare event)."""
        if self._reading:
            self._heard_pairs.append((a, b))
        if a == b or b in self._partners[a]:
            return
        self._partners[a].add(b)
        self._partners[b].add(a)
        touched = {a, b} | self._partners[a] | self._partners[b]
        for ai_id in touched:
            self._recompute(ai_id)

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

    def _recompute(self, ai_id: str) -> None:
        # Over the AI's partners only: strangers' opinions are kept (a later collaboration may
        # make them count) but never summed, so a swarm of them costs nothing here.
        opinions = self._opinions.get(ai_id, {})
        counted: list[tuple[float, float]] = []
        for rater in self._partners.get(ai_id, ()):
            opinion = opinions.get(rater)
            mean = None if opinion is None else opinion.mean
            # Besides ai_id itself (a partner, or the opinion would not count): the AI being
            # rated cannot be what makes its rater established.
            weight = rater_weight(len(self._partners[rater]) - 1)
            if mean is not None and weight > 0:
                counted.append((weight, mean))
        if counted:
            self._standing[ai_id] = hub_reputation(counted)
            self._raters[ai_id] = len(counted)
        else:
            self._standing.pop(ai_id, None)
            self._raters.pop(ai_id, None)
