"""The knowledge index behind the dashboard's views: summaries (no data) of the newest
:data:`INDEX_LIMIT` items of each kind, in memory.

It is read from the store incrementally: only when the hub's count of a kind grew, and then only
the new ones. Usage counts and quality of items older than the last read can lag behind (the
item's own endpoint is always current). An item's accuracy is what its data reports
(:func:`reported_accuracy`): the hub measures nothing itself.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from kernal.hub.server import Hub
from kernal.storage import ItemKind, ItemRecord, PatternRecord

__all__ = ["FETCH_LIMIT", "INDEX_LIMIT", "ItemSummary", "KnowledgeIndex", "reported_accuracy"]

INDEX_LIMIT = 20_000  # item summaries kept per kind
FETCH_LIMIT = 2_000  # items read from the store at once (first read, or a burst of shares)
ACCURACY_KEYS = ("val_accuracy", "accuracy")


@dataclass(frozen=True)
class ItemSummary:
    """One item without its data: also a row of ``GET /api/views/knowledge``."""

    kind: ItemKind
    item_id: str
    contributor: str
    timestamp: float
    usage_count: int
    quality_score: float | None
    accuracy: float | None


def reported_accuracy(data: dict[str, Any]) -> float | None:
    """The accuracy a share's data reports (a finite number in [0, 1]), or ``None``."""
    for key in ACCURACY_KEYS:
        value = data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number) and 0.0 <= number <= 1.0:
                return number
    return None


def _summary(record: ItemRecord) -> ItemSummary:
    if isinstance(record, PatternRecord):
        data, quality = record.pattern_data, None
    else:
        data, quality = record.component_data, record.quality_score
    return ItemSummary(
        kind=record.kind,
        item_id=record.item_id,
        contributor=record.contributor,
        timestamp=record.timestamp,
        usage_count=record.usage_count,
        quality_score=quality,
        accuracy=reported_accuracy(data),
    )


class KnowledgeIndex:
    """Summaries of the newest items of each kind, oldest first, read from the store only when
    the hub's counts say something new was shared (see the module docstring)."""

    def __init__(self, hub: Hub, limit: int = INDEX_LIMIT, fetch: int = FETCH_LIMIT) -> None:
        self._hub = hub
        self._limit = limit
        self._fetch = fetch
        self._items: dict[ItemKind, dict[str, ItemSummary]] = {kind: {} for kind in ItemKind}
        self._seen: dict[ItemKind, int] = {kind: -1 for kind in ItemKind}
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Bring the index up to date with the store (one read per kind that grew)."""
        async with self._lock:
            for kind in ItemKind:
                count = self._hub.knowledge.count(kind)
                if count == self._seen[kind]:
                    continue
                new = count - max(self._seen[kind], 0)
                # A few more than the new ones: shares committed while we read are not lost.
                wanted = min(self._fetch, max(new, 0) + 50)
                records = await self._hub.store.recent_items(kind, wanted)
                items = self._items[kind]
                for record in reversed(records):  # oldest first, so dict order is time order
                    summary = _summary(record)
                    items.pop(summary.item_id, None)
                    items[summary.item_id] = summary
                overflow = len(items) - self._limit
                for item_id in list(items)[: max(overflow, 0)]:
                    del items[item_id]
                self._seen[kind] = count

    def items(self, kind: ItemKind | None = None) -> list[ItemSummary]:
        """Summaries of ``kind`` (both if ``None``), oldest first."""
        kinds = list(ItemKind) if kind is None else [kind]
        found = [item for k in kinds for item in self._items[k].values()]
        if kind is None:
            found.sort(key=lambda item: (item.timestamp, item.item_id))
        return found
