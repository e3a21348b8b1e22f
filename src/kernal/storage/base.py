"""The storage interface every backend implements (its records are in
:mod:`kernal.storage.records`, re-exported here).

The hub talks to storage only through :class:`Store`. Every method is a coroutine; a method that
writes returns only after its transaction has committed, so the hub can acknowledge a share the
moment the call returns. Backends must pass ``tests/storage/test_store_contract.py`` (subclass
its ``StoreContract`` to run the whole contract on a new backend).

Patterns and components are the two kinds of *item* (:class:`ItemKind`): the same thing, shared
by a contributor, counted when used, rated by FEEDBACK; components also carry a quality score.
The interface reads them by kind (:meth:`Store.get_item`, :meth:`Store.recent_items`), with
per-kind shorthands for callers that know which one they want.
"""

# ruff: noqa: F405  (the records come from the star import below: records.__all__ names them)
from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from kernal.storage import records
from kernal.storage.records import *  # noqa: F403  (re-exported: the interface's records)
from kernal.storage.retention import StatsRetention

__all__ = ["StatsRetention", "Store"]
__all__ += records.__all__


_Item = TypeVar("_Item", bound=ItemRecord)


class Store(abc.ABC):
    """Persistent state of a hub. One instance per hub process; safe to call from one event loop.

    ``timestamp`` arguments are Unix seconds taken from the hub's clock.
    """

    # ------------------------------------------------------------------ lifecycle

    def describe(self) -> str:
        """Where this store keeps its data, for messages to people (never a password)."""
        return repr(self)

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema to the latest migration."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release connections. Idempotent."""

    # ------------------------------------------------------------------ knowledge base

    @abc.abstractmethod
    async def add_pattern(
        self, record: PatternRecord, *, data_text: str | None = None
    ) -> ShareOutcome:
        """Store a pattern. Same id from the same contributor: DUPLICATE, nothing written.

        ``data_text``: the JSON text of ``record.pattern_data`` if the caller has it (as the
        client sent it); the store keeps it as is instead of encoding the data again.
        Raises :class:`ConflictError` if another contributor owns the id.
        """

    @abc.abstractmethod
    async def add_component(
        self,
        record: ComponentRecord,
        *,
        completes_collaboration: str | None = None,
        data_text: str | None = None,
        recipient: str | None = None,
    ) -> ShareOutcome:
        """Store a component (``data_text`` as for :meth:`add_pattern`; ``recipient``: the AI
        it was shared with alone, see :meth:`recipient_of`); with
        ``completes_collaboration``, also mark that collaboration
        completed (ended at ``record.timestamp``, outcome ``{"component_id": ...}``) in the same
        transaction. Raises :class:`ConflictError` as :meth:`add_pattern`, and
        :class:`NotFoundError` if the collaboration does not exist or is not active; in both
        cases nothing is written.
        """

    async def add_shares(self, shares: Sequence[NewShare]) -> list[ShareOutcome | Exception]:
        """Store many plain shares (no collaboration to complete) at once, each as
        :meth:`add_pattern` or :meth:`add_component` would, in order: one result per share, its
        :class:`ShareOutcome` or the exception it would have raised (:class:`ConflictError`,
        or an outage's error for all of them), in which case nothing of that share is written.
        Returns once every share written is committed. This implementation stores them
        concurrently (a backend with group commit puts them in one transaction anyway);
        backends may do better."""

        async def one(share: NewShare) -> ShareOutcome | Exception:
            record = share.record
            try:
                if isinstance(record, PatternRecord):
                    return await self.add_pattern(record, data_text=share.data_text)
                return await self.add_component(
                    record, data_text=share.data_text, recipient=share.recipient
                )
            except Exception as exc:
                return exc

        return list(await asyncio.gather(*(one(share) for share in shares)))

    @abc.abstractmethod
    async def recipient_of(self, component_id: str) -> str | None:
        """The AI a component was shared with alone, or None (shared with everyone, or
        unknown). Such components are left out of :meth:`recent_items`."""

    @abc.abstractmethod
    async def get_item(self, kind: ItemKind, item_id: str) -> ItemRecord | None:
        """The pattern or component (as ``kind`` says) with that id, or None. Ids are unique
        within a kind only: a pattern and a component may have the same id."""

    @abc.abstractmethod
    async def recent_items(self, kind: ItemKind, limit: int) -> list[ItemRecord]:
        """The newest ``limit`` items of ``kind`` shared with everyone (none if ``limit`` <= 0),
        newest first. Components shared with one AI only (``recipient``) are left out."""

    @abc.abstractmethod
    async def search_items(
        self, kind: ItemKind, words: Sequence[str], limit: int
    ) -> list[ItemRecord]:
        """The items of ``kind`` shared with everyone whose id, contributor or data (its JSON
        text) contain every one of ``words``, ASCII letters in any case, newest first, at most
        ``limit`` (none if ``limit`` <= 0). No words: the same as :meth:`recent_items`. Reads
        every item of the kind: for people and agents, not for the relay path."""

    @abc.abstractmethod
    async def list_items(
        self, kind: ItemKind, query: ItemQuery, limit: int, *, max_data: int
    ) -> list[ItemEntry]:
        """Up to ``limit`` items of ``kind`` shared with everyone that match ``query``, newest
        first (by timestamp, then id). Data longer than ``max_data`` bytes of JSON is not
        returned (see :class:`ItemEntry`), so a listing holds at most ``limit * max_data`` of
        data however large the items are."""

    async def get_pattern(self, pattern_id: str) -> PatternRecord | None:
        """:meth:`get_item` for a pattern."""
        found = await self.get_item(ItemKind.PATTERN, pattern_id)
        return None if found is None else self._checked(PatternRecord, found)

    async def get_component(self, component_id: str) -> ComponentRecord | None:
        """:meth:`get_item` for a component."""
        found = await self.get_item(ItemKind.COMPONENT, component_id)
        return None if found is None else self._checked(ComponentRecord, found)

    async def recent_patterns(self, limit: int) -> list[PatternRecord]:
        """:meth:`recent_items` of patterns."""
        found = await self.recent_items(ItemKind.PATTERN, limit)
        return [self._checked(PatternRecord, record) for record in found]

    async def recent_components(self, limit: int) -> list[ComponentRecord]:
        """:meth:`recent_items` of components."""
        found = await self.recent_items(ItemKind.COMPONENT, limit)
        return [self._checked(ComponentRecord, record) for record in found]

    def _checked(self, cls: type[_Item], record: ItemRecord) -> _Item:
        if not isinstance(record, cls):  # a backend bug, not a caller's: say whose
            raise TypeError(f"{type(self).__name__} returned a {record.kind} for a {cls.kind}")
        return record

    @abc.abstractmethod
    async def counts(self) -> KnowledgeCounts: ...

    @abc.abstractmethod
    async def record_feedback(
        self,
        kind: ItemKind,
        item_id: str,
        ai_id: str,
        score: float | None,
        timestamp: float,
        *,
        usefulness: float | None = None,
    ) -> FeedbackResult:
        """Record ``ai_id``'s vote on the item (see :class:`Vote`): one vote per rater per item,
        a new one with a score or usefulness replacing the old. ``usage_count`` counts distinct
        raters; a component's ``quality_score`` becomes the mean of its raters' current scores
        once one has a score. Returns the item's state, its contributor and the rater's vote
        before and after (see :class:`FeedbackResult`), read in the same transaction. Raises
        :class:`NotFoundError` (nothing written)."""

    @abc.abstractmethod
    async def ratings(self) -> list[RatingRecord]:
        """Every stored vote that rates its item (:attr:`Vote.rated`), in no particular order:
        what the hub recomputes its standings from at start. One per rater and item, so its
        size is bounded by raters x items, however many FEEDBACK frames were sent."""

    @abc.abstractmethod
    async def item_votes(self, kind: ItemKind, item_id: str, limit: int) -> list[ItemVote]:
        """Who rated the item and how: the current vote of each rater that rated it
        (:attr:`Vote.rated`), the rater's latest FEEDBACK on it first, at most ``limit``
        (none if ``limit`` <= 0). Unknown items have none. Read-only (for the dashboard and
        the API)."""

    @abc.abstractmethod
    async def collaboration_pairs(self) -> set[tuple[str, str]]:
        """``(requester, acceptor)`` of every completed collaboration, once per pair."""

    @abc.abstractmethod
    async def feedback_edges(self, since: float = 0.0, limit: int = 10_000) -> list[FeedbackEdge]:
        """Who rated whom: the FEEDBACK received since ``since`` (Unix seconds), summed per
        (rater, contributor) pair, self-ratings and items without a contributor left out. At
        most ``limit`` pairs, the most recently active first. Read-only (for the dashboard)."""

    @abc.abstractmethod
    async def feedback_scores(self, since: float = 0.0, limit: int = 10_000) -> list[FeedbackScore]:
        """The scored FEEDBACK received since ``since``, self-ratings and items without a
        contributor left out: the newest ``limit``, oldest first. Read-only (for the dashboard:
        how peers measured each AI's work over time)."""

    # ------------------------------------------------------------------ AIs

    @abc.abstractmethod
    async def upsert_ai(
        self, ai_id: str, specialization: str, capabilities: list[str], timestamp: float
    ) -> None:
        """Record an AI's HELLO: first_seen kept, last_seen and profile updated."""

    @abc.abstractmethod
    async def touch_ai(self, ai_id: str, timestamp: float) -> None:
        """Update last_seen of a known AI (no-op for an unknown one)."""

    @abc.abstractmethod
    async def list_ais(self) -> list[AiRecord]:
        """Every AI ever seen, ordered by ai_id."""

    # ------------------------------------------------------------------ collaborations

    @abc.abstractmethod
    async def create_collaboration(self, record: CollaborationRecord) -> None: ...

    @abc.abstractmethod
    async def set_collaboration_progress(self, collaboration_id: str, progress: float) -> None:
        """Raises :class:`NotFoundError` if it does not exist or is not active."""

    async def set_collaborations_progress(self, progress: Mapping[str, float]) -> None:
        """:meth:`set_collaboration_progress` for many collaborations at once, skipping those
        that do not exist or are no longer active (they ended since the progress came). A
        backend should store them in one transaction; this default does one at a time."""
        for collaboration_id, value in progress.items():
            with contextlib.suppress(NotFoundError):
                await self.set_collaboration_progress(collaboration_id, value)

    @abc.abstractmethod
    async def end_collaboration(
        self,
        collaboration_id: str,
        status: CollaborationStatus,
        timestamp: float,
        *,
        outcome: Any = None,
        reason: str | None = None,
    ) -> CollaborationRecord:
        """Close an active collaboration as completed or failed and return the closed record.
        Raises :class:`NotFoundError` if it does not exist or is not active."""

    @abc.abstractmethod
    async def get_collaboration(self, collaboration_id: str) -> CollaborationRecord | None: ...

    @abc.abstractmethod
    async def list_collaborations(
        self, status: CollaborationStatus | None = None, limit: int = 100
    ) -> list[CollaborationRecord]:
        """Newest (by started_at) first."""

    @abc.abstractmethod
    async def list_collaborations_page(
        self, query: CollaborationQuery, limit: int
    ) -> list[CollaborationRecord]:
        """Up to ``limit`` collaborations matching ``query``, newest (by started_at, then
        id) first."""

    @abc.abstractmethod
    async def fail_active_collaborations(self, timestamp: float, reason: str) -> int:
        """Mark every active collaboration failed (used at hub start after an unclean stop).
        Returns how many were closed."""

    # ------------------------------------------------------------------ tokens

    @abc.abstractmethod
    async def set_token_hash(
        self,
        ai_id: str,
        token_hash: str,
        timestamp: float,
        *,
        expires_at: float | None = None,
        source: str = "cli",
    ) -> TokenAction:
        """Create or replace the token of ``ai_id`` (``timestamp`` becomes its ``created_at``)
        and record the change in the same transaction. Returns ADDED or REPLACED."""

    @abc.abstractmethod
    async def get_token_hash(self, ai_id: str) -> str | None: ...

    @abc.abstractmethod
    async def get_token(self, ai_id: str) -> StoredToken | None: ...

    @abc.abstractmethod
    async def delete_token(self, ai_id: str, timestamp: float | None = None) -> bool:
        """Returns whether a token existed; if so, records the revocation (at ``timestamp``,
        by default now)."""

    @abc.abstractmethod
    async def token_changes_after(self, seq: int) -> list[TokenChange]:
        """The last change of each AI whose token changed after change ``seq``, oldest first.
        ``seq`` 0 gives every recorded change."""

    @abc.abstractmethod
    async def last_token_change(self) -> int:
        """The ``seq`` of the latest token change (0 when none was recorded)."""

    @abc.abstractmethod
    async def list_tokens(self) -> list[TokenInfo]:
        """Ordered by ai_id."""

    @abc.abstractmethod
    async def count_tokens(self) -> int: ...

    # ------------------------------------------------------------------ stats

    @abc.abstractmethod
    async def add_stats_snapshot(self, snapshot: StatsSnapshot) -> None: ...

    @abc.abstractmethod
    async def stats_history(self, since: float = 0.0, limit: int = 1000) -> list[StatsSnapshot]:
        """Snapshots with timestamp >= since, oldest first, the newest ``limit`` of them."""

    @abc.abstractmethod
    async def thin_stats(self, retention: StatsRetention, now: float) -> int:
        """Delete the snapshots ``retention`` does not keep at time ``now`` (see
        :meth:`StatsRetention.to_delete`: every one younger than the first tier's age when it
        keeps all, the oldest of each step after), in one transaction. Returns how many were
        deleted. Snapshots added while it runs are young, so kept."""

    # ------------------------------------------------------------------ trainer reports

    #: Reports kept per trainer: storing one more deletes that trainer's oldest beyond this.
    TRAINER_REPORTS_KEPT: ClassVar[int] = 500

    @abc.abstractmethod
    async def add_trainer_report(self, report: TrainerReportRecord) -> None:
        """Store ``report`` (returns once committed), then keep only the newest
        :attr:`TRAINER_REPORTS_KEPT` reports of its trainer."""

    @abc.abstractmethod
    async def trainer_reports(
        self,
        ai_id: str | None = None,
        since: float = 0.0,
        limit: int = 10_000,
        *,
        maps: bool = True,
    ) -> list[TrainerReportRecord]:
        """Reports with timestamp >= since (of ``ai_id`` only, if given), oldest first (in the
        order they were stored), the newest ``limit`` of them. ``maps=False``: without their
        ``trust`` and ``rejected`` (left empty), which can be most of a report's size, for
        callers that want the figures over time only."""

    @abc.abstractmethod
    async def latest_trainer_reports(self) -> list[TrainerReportRecord]:
        """The newest report of every trainer that sent one, ordered by ai_id."""
