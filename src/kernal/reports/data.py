"""What a report shows, read from a store (never raw SQL), and the series derived from it."""

from __future__ import annotations

from dataclasses import dataclass

from kernal.storage import (
    AiRecord,
    CollaborationRecord,
    CollaborationStatus,
    ComponentRecord,
    PatternRecord,
    StatsSnapshot,
    Store,
)

MAX_ROWS = 100_000  # a report of a very long run reads this many of each, newest kept
TOP = 10


@dataclass(frozen=True)
class RunData:
    """Everything a report draws, oldest first where time matters."""

    stats: list[StatsSnapshot]
    ais: list[AiRecord]
    top_patterns: list[PatternRecord]
    top_components: list[ComponentRecord]
    collaborations: list[CollaborationRecord]
    pattern_count: int
    component_count: int


async def load_run(store: Store, *, top: int = TOP) -> RunData:
    """The run in ``store`` (opened). Top items are the most used, then the newest."""
    patterns = await store.recent_patterns(MAX_ROWS)
    components = await store.recent_components(MAX_ROWS)
    counts = await store.counts()
    collaborations = await store.list_collaborations(None, MAX_ROWS)
    return RunData(
        stats=await store.stats_history(0.0, MAX_ROWS),
        ais=await store.list_ais(),
        # sorted() is stable: equal usage keeps the newest first.
        top_patterns=sorted(patterns, key=lambda item: -item.usage_count)[:top],
        top_components=sorted(components, key=lambda item: -item.usage_count)[:top],
        collaborations=sorted(collaborations, key=lambda c: c.started_at),
        pattern_count=counts.shared_patterns,
        component_count=counts.shared_components,
    )


def collaboration_timeline(
    collaborations: list[CollaborationRecord],
) -> list[tuple[float, dict[CollaborationStatus, int]]]:
    """How many collaborations were active, completed and failed (cumulative) after each start
    or end, oldest first: one point per event. An active collaboration without an end is
    active to the end of the timeline."""
    events: list[tuple[float, int, CollaborationStatus | None]] = []
    for c in collaborations:
        events.append((c.started_at, 0, None))  # 0: a start sorts before an end at the same time
        if c.ended_at is not None and c.status is not CollaborationStatus.ACTIVE:
            events.append((c.ended_at, 1, c.status))
    counts = dict.fromkeys(CollaborationStatus, 0)
    timeline = []
    for when, _, ended in sorted(events, key=lambda e: (e[0], e[1])):
        if ended is None:
            counts[CollaborationStatus.ACTIVE] += 1
        else:
            counts[CollaborationStatus.ACTIVE] -= 1
            counts[ended] += 1
        timeline.append((when, dict(counts)))
    return timeline
