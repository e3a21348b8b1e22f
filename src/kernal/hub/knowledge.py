"""What the knowledge base holds, as ``STATE`` and ``/status`` show it: the counts and the
newest items of each kind, in memory. Loaded from the store when the hub starts and updated as
shares and feedback commit, so a HELLO reads nothing from the database.

On a replica of a cluster, :attr:`Knowledge.feed` hears each feedback committed here (the
cluster publishes the item's new figures), and the figures other replicas committed arrive
through :meth:`Knowledge.apply_rated`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kernal.protocol import encode
from kernal.protocol.messages import RecentComponent, RecentPattern
from kernal.storage import (
    ComponentRecord,
    FeedbackResult,
    ItemKind,
    ItemRecord,
    PatternRecord,
    Store,
)

Recent = RecentPattern | RecentComponent
RatedFeed = Callable[[ItemKind, str, int, float | None], None]
"""Hears (kind, item id, usage count, quality score) of each feedback committed here."""


def _recent(record: ItemRecord) -> Recent:
    # The records have the listed fields by the same names, checked when they were stored.
    if isinstance(record, PatternRecord):
        return RecentPattern.model_construct(
            pattern_id=record.pattern_id,
            contributor=record.contributor,
            timestamp=record.timestamp,
            usage_count=record.usage_count,
            pattern_data=record.pattern_data,
        )
    return RecentComponent.model_construct(
        component_id=record.component_id,
        contributor=record.contributor,
        timestamp=record.timestamp,
        quality_score=record.quality_score,
        usage_count=record.usage_count,
        component_data=record.component_data,
    )


def _order(record: ItemRecord) -> tuple[float, str]:
    # The store's order: newest first, ties by id (descending).
    return record.timestamp, record.item_id


class Knowledge:
    """Counts and newest ``limit`` items of each kind."""

    def __init__(self, store: Store, limit: int) -> None:
        self._store = store
        self.limit = limit
        self._counts = {ItemKind.PATTERN: 0, ItemKind.COMPONENT: 0}
        # Records, newest first: the listed models are built only when read (shares come far
        # more often than HELLOs).
        self._recent: dict[ItemKind, list[ItemRecord]] = {
            ItemKind.PATTERN: [],
            ItemKind.COMPONENT: [],
        }
        self._encoded: dict[ItemKind, list[bytes]] = {}  # as STATE lists them, when unchanged
        self.feed: RatedFeed | None = None

    async def load(self) -> None:
        counts = await self._store.counts()
        self._counts = {
            ItemKind.PATTERN: counts.shared_patterns,
            ItemKind.COMPONENT: counts.shared_components,
        }
        for kind in ItemKind:
            items = await self._store.recent_items(kind, self.limit)
            self._recent[kind] = list(items)
        self._encoded.clear()

    def count(self, kind: ItemKind) -> int:
        return self._counts[kind]

    def encoded(self, kind: ItemKind) -> list[bytes]:
        """The newest items of ``kind`` as JSON (newest first), encoded once per change."""
        found = self._encoded.get(kind)
        if found is None:
            found = self._encoded[kind] = [
                encode(_recent(record))[:-1] for record in self._recent[kind]
            ]
        return found

    def recent_patterns(self) -> list[RecentPattern]:
        items = map(_recent, self._recent[ItemKind.PATTERN])
        return [item for item in items if isinstance(item, RecentPattern)]

    def recent_components(self) -> list[RecentComponent]:
        items = map(_recent, self._recent[ItemKind.COMPONENT])
        return [item for item in items if isinstance(item, RecentComponent)]

    def shared(self, record: ItemRecord, *, private: bool = False) -> None:
        """A new item was committed (``private``: shared with one AI only: counted, not
        listed)."""
        self._counts[record.kind] += 1
        if private:
            return
        items = self._recent[record.kind]
        if not items or _order(record) >= _order(items[0]):
            items.insert(0, record)  # the usual case: the newest
        else:
            items.append(record)
            items.sort(key=_order, reverse=True)
        del items[self.limit :]
        self._encoded.pop(record.kind, None)

    def shared_many(self, records: list[ItemRecord]) -> None:
        """Many new items were committed (none private): :meth:`shared` for each."""
        for kind in ItemKind:
            mine = [record for record in records if record.kind is kind]
            if not mine:
                continue
            self._counts[kind] += len(mine)
            items = self._recent[kind]
            mine.sort(key=_order, reverse=True)
            del mine[self.limit :]
            if mine and (not items or _order(mine[-1]) > _order(items[0])):
                items[:0] = mine  # the usual case: all newer than what was kept, no merge
            else:
                items += mine
                items.sort(key=_order, reverse=True)
            del items[self.limit :]
            self._encoded.pop(kind, None)

    def rated(self, kind: ItemKind, item_id: str, result: FeedbackResult) -> None:
        """A feedback on an item was committed here: its usage count and quality changed. Told
        to :attr:`feed`."""
        self.apply_rated(kind, item_id, result.usage_count, result.quality_score)
        if self.feed is not None:
            self.feed(kind, item_id, result.usage_count, result.quality_score)

    def apply_rated(
        self, kind: ItemKind, item_id: str, usage_count: int, quality_score: float | None
    ) -> None:
        """An item's figures after a feedback committed (here or by another replica)."""
        items = self._recent[kind]
        for n, item in enumerate(items):
            if item.item_id == item_id:
                if isinstance(item, ComponentRecord):
                    items[n] = dataclasses.replace(
                        item, usage_count=usage_count, quality_score=quality_score
                    )
                else:
                    items[n] = dataclasses.replace(item, usage_count=usage_count)
                self._encoded.pop(kind, None)
