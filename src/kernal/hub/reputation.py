"""The hub's standing of each AI: how the work it shared was rated by others.

Kept in memory and written through: the store is read once per AI (at its HELLO) and then
updated from each recorded FEEDBACK, so relaying a request never touches the database.
"""

from __future__ import annotations

from collections.abc import Iterable

from kernal.storage import ScoreTally, Store

REPUTATION_PRIOR = 0.5
REPUTATION_PRIOR_WEIGHT = 2.0


def hub_reputation(total: float, count: int) -> float:
    """Mean of the scores received, pulled toward 0.5 by two virtual ratings, so that a single
    rating does not decide and an AI nobody rated stands at 0.5."""
    return (total + REPUTATION_PRIOR * REPUTATION_PRIOR_WEIGHT) / (count + REPUTATION_PRIOR_WEIGHT)


class Standings:
    """Scores each AI received, by id, outliving its connections."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._tallies: dict[str, ScoreTally] = {}

    async def load(self, ai_ids: Iterable[str]) -> None:
        """Read the tallies of the AIs not known yet (one query for all of them)."""
        missing = [ai_id for ai_id in ai_ids if ai_id not in self._tallies]
        if not missing:
            return
        found = await self._store.received_scores(missing)
        for ai_id in missing:
            self._tallies[ai_id] = found.get(ai_id, ScoreTally(0.0, 0))

    def of(self, ai_id: str) -> float:
        """The standing of ``ai_id`` (the prior for an AI with no scores, or not loaded)."""
        tally = self._tallies.get(ai_id)
        return REPUTATION_PRIOR if tally is None else hub_reputation(tally.total, tally.count)

    def update(self, ai_id: str, tally: ScoreTally) -> None:
        """Record the tally the store holds for ``ai_id`` after a feedback was committed."""
        self._tallies[ai_id] = tally
