"""Read-only views the dashboard draws from, under ``/api/views/``: the AI table, the trust graph,
learning curves and a searchable knowledge index. Each is assembled from what the hub and its
store already keep; none writes anything.

* ``GET /api/views/run``: when this run of the hub started and how often it snapshots its stats,
  so the page can tell this run from earlier ones and break its lines where the hub was down.
* ``GET /api/views/history``: the stats snapshots since a time, thinned to at most ``points``
  (the last snapshot of each equal time bucket), so that 24 hours fit one chart.
* ``GET /api/views/ais``: every known AI with its standing, the ratings behind it and how much
  it shared (from the knowledge index below).
* ``GET /api/views/trust``: who rated whom (FEEDBACK summed per pair, see
  :meth:`~kernal.storage.Store.feedback_edges`) and each rated AI's standing; and ``held``: the
  reputation each trainer holds of each peer and the requests it refused, from its latest
  ``TRAINER_REPORT``.
* ``GET /api/views/learning``: for each trainer, the accuracy it sent in ``TRAINER_REPORT``
  over time with its baselines (``reported``, ``baselines``); for each contributor, the
  accuracy its shares reported over time, and the scores peers' FEEDBACK gave its work over
  time. The hub measures nothing itself: trainers report accuracy in ``TRAINER_REPORT`` and in
  the data they share (``val_accuracy``, or ``accuracy``, a number
  between 0 and 1, as the learning engine does), and reference trainers score a partner's model
  by its accuracy on their own validation data.
* ``GET /api/views/knowledge``: item summaries (no data), filtered by kind, contributor, time
  and id substring, newest first; ``GET /api/patterns/{id}`` (:mod:`kernal.web.api`) has the data.

The knowledge index (:mod:`kernal.web.knowledge_index`) holds summaries of the newest items of
each kind in memory, read from the store incrementally.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from kernal.hub.server import Hub
from kernal.storage import (
    FeedbackScore,
    ItemKind,
    StatsSnapshot,
    TrainerReportRecord,
)
from kernal.web.knowledge_index import ItemSummary, KnowledgeIndex
from kernal.web.knowledge_index import reported_accuracy as reported_accuracy  # its old home

MAX_LEARNING_POINTS = 100  # per contributor: evenly spaced reports beyond that, the last kept
MAX_SCORES = 20_000  # scored FEEDBACK read for one learning view
MAX_RATED_POINTS = 100  # per contributor: means of consecutive scores beyond that
ANSWER_TTL = 2.5  # seconds a trust, learning or history answer is reused (pages poll every 3)
MAX_CACHED = 64
MAX_EDGES = 5_000
MAX_REPORTS = 20_000  # TRAINER_REPORTs read for one learning view
MAX_SNAPSHOTS = 100_000  # read for one history chart (a day at one a second)
# Reference trainers refuse to work with an AI whose standing is below their trust threshold
# (TrainerSettings.trust_threshold, 0.5 by default): such an AI is being shut out.
SHUT_OUT_BELOW = 0.5
T = TypeVar("T")
P = TypeVar("P")


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


class RatedPoint(BaseModel):
    timestamp: float
    score: float
    """The score, or the mean of ``count`` consecutive ones when there were many."""
    rater: str
    """Who gave it (``""`` for a mean of several)."""
    count: int = 1


class RecentAnswers:
    """Answers computed less than ``ttl`` seconds ago, by key: however many pages poll the same
    view, the store is read for it at most once per ``ttl``. Bounded: expired answers are
    dropped whenever more than :data:`MAX_CACHED` are kept."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._answers: dict[Hashable, tuple[float, Any]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        hit = self._answers.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return cast(T, hit[1])
        value = await compute()
        self._answers[key] = (now, value)
        if len(self._answers) > MAX_CACHED:
            self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self._ttl}
        return value


def every_nth(points: list[P], most: int) -> list[P]:
    """At most about ``most`` of ``points``, evenly spaced, always with the last one."""
    step = max(1, math.ceil(len(points) / most))
    kept = points[::-1][::step][::-1]  # counted from the newest, so the newest stays
    return kept


def thin_scores(scores: list[FeedbackScore], points: int) -> list[RatedPoint]:
    """At most ``points`` points, oldest first: each the mean of consecutive scores (as many as
    it takes), stamped with the last one's time; ``rater`` is kept only for a single score."""
    size = max(1, math.ceil(len(scores) / points))
    out = []
    for start in range(0, len(scores), size):
        chunk = scores[start : start + size]
        out.append(
            RatedPoint(
                timestamp=chunk[-1].timestamp,
                score=round(sum(s.score for s in chunk) / len(chunk), 4),
                rater=chunk[0].rater if len(chunk) == 1 else "",
                count=len(chunk),
            )
        )
    return out


# ---------------------------------------------------------------------- response models


class RunInfo(BaseModel):
    started_at: float
    """Unix seconds when this run of the hub started: earlier snapshots are earlier runs."""
    server_time: float
    stats_interval: float
    """Real seconds between stats snapshots: a longer gap means the hub was down."""
    shut_out_below: float
    """Standing below which reference trainers refuse to work with an AI."""


class HistoryPoint(BaseModel):
    timestamp: float
    connected_ais: int
    shared_patterns: int
    shared_components: int
    active_collaborations: int


class History(BaseModel):
    points: list[HistoryPoint]
    """Oldest first: the last snapshot of each ``bucket`` seconds."""
    bucket: float
    """Seconds each point stands for (the stats interval when nothing was thinned)."""
    stats_interval: float
    started_at: float
    truncated: bool
    """More snapshots matched than are read at once: the oldest are missing."""


def thin(
    snapshots: list[StatsSnapshot], points: int, interval: float
) -> tuple[list[StatsSnapshot], float]:
    """At most about ``points`` snapshots: the last of each bucket of equal seconds (at least
    ``interval``), so gaps stay gaps and the newest snapshot is always kept."""
    if len(snapshots) <= points:
        return snapshots, interval
    span = snapshots[-1].timestamp - snapshots[0].timestamp
    bucket = max(interval, span / points)
    kept: list[StatsSnapshot] = []
    last_key: int | None = None
    for snapshot in snapshots:
        key = int((snapshot.timestamp - snapshots[0].timestamp) // bucket)
        if key == last_key:
            kept[-1] = snapshot
        else:
            kept.append(snapshot)
            last_key = key
    return kept, bucket


class AiRow(BaseModel):
    ai_id: str
    specialization: str
    capabilities: list[str]
    first_seen: float
    last_seen: float
    online: bool
    connected_at: float | None
    standing: float
    """The hub's standing of the AI, as relayed (docs/protocol.md, Standing)."""
    ratings: int
    """Raters whose opinion the standing counts (established partners; 0: the prior)."""
    patterns: int
    components: int
    last_shared: float | None
    replica: str | None = None
    """The replica it is connected to, on a cluster (``--bus``); null offline or on one hub."""


class TrustEdge(BaseModel):
    rater: str
    contributor: str
    count: int
    scored: int
    mean_score: float | None
    first_at: float
    last_at: float


class HeldTrust(BaseModel):
    """The reputation one trainer holds of a peer, as its latest ``TRAINER_REPORT`` said."""

    truster: str
    peer: str
    reputation: float | None
    """None: it refused the peer's requests but sent no reputation for it."""
    distrusted: bool
    """Below :data:`SHUT_OUT_BELOW`, the reference trainers' default trust threshold."""
    rejected: int
    """Collaboration requests of ``peer`` it refused for low reputation."""
    reason: str | None
    reported_at: float
    merges_refused: int = 0
    """Models of ``peer`` its gate refused to merge."""
    merge_reason: str | None = None
    """Why, the latest time."""


class TrustGraph(BaseModel):
    edges: list[TrustEdge]
    """Newest activity first."""
    standings: dict[str, float]
    """Standing of every AI that appears in an edge."""
    shut_out_below: float
    held: list[HeldTrust] = []
    """What trainers report they trust (TRAINER_REPORT), by truster then peer: the trust the
    trainers act on, where ``edges`` is what their FEEDBACK told the hub."""


class LearningPoint(BaseModel):
    timestamp: float
    accuracy: float
    kind: ItemKind
    item_id: str


class ReportedPoint(BaseModel):
    timestamp: float
    accuracy: float


class Baselines(BaseModel):
    """What a trainer last reported it would reach alone, and one model on all the data."""

    local_only_accuracy: float | None
    centralized_baseline: float | None


class Learning(BaseModel):
    series: dict[str, list[LearningPoint]]
    """Per contributor, the accuracy its own shares reported: oldest first, at most about
    :data:`MAX_LEARNING_POINTS` (evenly spaced, the newest kept)."""
    source: str
    reported: dict[str, list[ReportedPoint]] = {}
    """Per trainer, the accuracy it measured and sent in ``TRAINER_REPORT`` (the reference
    trainer: held-out test accuracy), oldest first, thinned as ``series``. Prefer it to
    ``series`` for a trainer that has it."""
    baselines: dict[str, Baselines] = {}
    """Per trainer that reported any, its latest baselines."""
    rated: dict[str, list[RatedPoint]]
    """Per contributor, the scores peers' FEEDBACK gave its work (for reference trainers: the
    accuracy of its model on the rater's own validation data): oldest first, at most
    :data:`MAX_RATED_POINTS` (means of consecutive scores beyond that)."""


class KnowledgePage(BaseModel):
    total: int
    """Items matching the filters (in the index)."""
    items: list[ItemSummary]
    """Newest first, ``offset`` skipped, at most ``limit``."""
    contributors: list[str]
    """Every contributor in the index, for the filter's choices."""


def reported_series(
    reports: list[TrainerReportRecord],
) -> tuple[dict[str, list[ReportedPoint]], dict[str, Baselines]]:
    """Per trainer, its reported accuracy over time (thinned) and its latest baselines."""
    series: dict[str, list[ReportedPoint]] = {}
    local: dict[str, float] = {}
    central: dict[str, float] = {}
    for report in reports:  # oldest first: the latest baseline wins
        series.setdefault(report.ai_id, []).append(
            ReportedPoint(timestamp=report.timestamp, accuracy=report.accuracy)
        )
        if report.local_only_accuracy is not None:
            local[report.ai_id] = report.local_only_accuracy
        if report.centralized_baseline is not None:
            central[report.ai_id] = report.centralized_baseline
    baselines = {
        ai: Baselines(local_only_accuracy=local.get(ai), centralized_baseline=central.get(ai))
        for ai in sorted(local.keys() | central.keys())
    }
    thinned = {ai: every_nth(points, MAX_LEARNING_POINTS) for ai, points in sorted(series.items())}
    return thinned, baselines


def held_trust(
    latest: list[TrainerReportRecord], since: float, most: int = MAX_EDGES
) -> list[HeldTrust]:
    """The trust maps of the trainers' latest reports (those since ``since``) as edges, by
    truster then peer; past ``most`` edges, the distrusted and refused ones are kept first
    (they are what the page marks)."""
    edges: list[HeldTrust] = []
    for report in latest:
        if report.timestamp < since:
            continue
        for peer in sorted(
            report.trust.keys() | report.rejected.keys() | report.refused_merges.keys()
        ):
            reputation = report.trust.get(peer)
            refused, reason = report.rejected.get(peer, (0, None))
            merges, merge_reason = report.refused_merges.get(peer, (0, None))
            edges.append(
                HeldTrust(
                    truster=report.ai_id,
                    peer=peer,
                    reputation=reputation,
                    distrusted=refused > 0 if reputation is None else reputation < SHUT_OUT_BELOW,
                    rejected=refused,
                    reason=reason,
                    reported_at=report.timestamp,
                    merges_refused=merges,
                    merge_reason=merge_reason,
                )
            )
    if len(edges) > most:
        keep = sorted(
            edges,
            key=lambda e: (not e.distrusted, -e.rejected - e.merges_refused, e.truster, e.peer),
        )
        edges = sorted(keep[:most], key=lambda e: (e.truster, e.peer))
    return edges


def views_router(hub: Hub) -> APIRouter:
    """The ``/api/views/`` routes of ``hub`` (started)."""
    router = APIRouter(prefix="/api/views", tags=["views"], dependencies=[Depends(_no_store)])
    index = KnowledgeIndex(hub)
    cached = RecentAnswers(ANSWER_TTL)
    store = hub.store

    def run_info() -> RunInfo:
        return RunInfo(
            started_at=hub.started_at,
            server_time=time.time(),
            stats_interval=hub.clock.real(hub.settings.stats_interval),
            shut_out_below=SHUT_OUT_BELOW,
        )

    async def standings(ai_ids: list[str]) -> dict[str, tuple[float, int]]:
        """The hub's standing of each AI and how many raters it counts (in memory)."""
        return {ai_id: (hub.standings.of(ai_id), hub.standings.raters(ai_id)) for ai_id in ai_ids}

    @router.get("/run")
    async def run() -> RunInfo:
        """This run's start, the server's clock and the stats interval (real seconds)."""
        return run_info()

    @router.get("/history")
    async def history(
        since: Annotated[float, Query(ge=0, description="Unix seconds; 0 for all.")] = 0.0,
        points: Annotated[int, Query(ge=10, le=5_000, description="At most this many.")] = 600,
    ) -> History:
        """Stats snapshots since ``since``, oldest first, thinned to about ``points``."""
        found = await cached.get(
            ("history", since), lambda: store.stats_history(since, MAX_SNAPSHOTS)
        )
        interval = hub.clock.real(hub.settings.stats_interval)
        kept, bucket = thin(found, points, interval)
        return History(
            points=[HistoryPoint(**dataclasses.asdict(s)) for s in kept],
            bucket=bucket,
            stats_interval=interval,
            started_at=hub.started_at,
            truncated=len(found) >= MAX_SNAPSHOTS,
        )

    @router.get("/ais")
    async def ais() -> list[AiRow]:
        """Every known AI (connected ones included), ordered by ai_id, with its standing and
        what it shared (counted in the knowledge index)."""
        await index.refresh()
        online = {profile.ai_id: profile for profile in hub.peers.profiles()}
        records = {record.ai_id: record for record in await store.list_ais()}
        shared: dict[str, Counter[ItemKind]] = {}
        last: dict[str, float] = {}
        for item in index.items():
            shared.setdefault(item.contributor, Counter())[item.kind] += 1
            last[item.contributor] = max(last.get(item.contributor, 0.0), item.timestamp)
        ids = sorted(set(records) | set(online))
        stand = await standings(ids)
        rows = []
        for ai_id in ids:
            record = records.get(ai_id)
            profile = online.get(ai_id)
            # An AI between its connection and its stored HELLO has only its live profile.
            if profile is not None:
                specialization, capabilities = profile.specialization, list(profile.capabilities)
                seen = (profile.connected_at, profile.connected_at)
            if record is not None:
                seen = (record.first_seen, max(record.last_seen, seen[1] if profile else 0.0))
                if profile is None:
                    specialization, capabilities = record.specialization, record.capabilities
            counts = shared.get(ai_id, Counter())
            rows.append(
                AiRow(
                    ai_id=ai_id,
                    specialization=specialization,
                    capabilities=capabilities,
                    first_seen=seen[0],
                    last_seen=seen[1],
                    online=profile is not None,
                    connected_at=profile.connected_at if profile else None,
                    standing=round(stand[ai_id][0], 4),
                    ratings=stand[ai_id][1],
                    patterns=counts[ItemKind.PATTERN],
                    components=counts[ItemKind.COMPONENT],
                    last_shared=last.get(ai_id),
                    replica=(
                        hub.cluster.replica_of(ai_id)
                        if hub.cluster is not None and profile is not None
                        else None
                    ),
                )
            )
        return rows

    @router.get("/trust")
    async def trust(
        since: Annotated[float, Query(ge=0, description="Unix seconds; 0 for all.")] = 0.0,
    ) -> TrustGraph:
        """Who rated whom since ``since``: FEEDBACK summed per (rater, contributor) pair,
        newest activity first, with the standing of every AI in the graph."""
        edges = await cached.get(("edges", since), lambda: store.feedback_edges(since, MAX_EDGES))
        ids = sorted({e.rater for e in edges} | {e.contributor for e in edges})
        stand = await standings(ids)
        return TrustGraph(
            edges=[
                TrustEdge(
                    rater=e.rater,
                    contributor=e.contributor,
                    count=e.count,
                    scored=e.scored,
                    mean_score=None if e.mean_score is None else round(e.mean_score, 4),
                    first_at=e.first_at,
                    last_at=e.last_at,
                )
                for e in edges
            ],
            standings={ai_id: round(stand[ai_id][0], 4) for ai_id in ids},
            shut_out_below=SHUT_OUT_BELOW,
            held=held_trust(
                await cached.get("latest_reports", store.latest_trainer_reports), since
            ),
        )

    @router.get("/learning")
    async def learning(
        since: Annotated[float, Query(ge=0, description="Unix seconds; 0 for all.")] = 0.0,
    ) -> Learning:
        """Per contributor, the accuracy its shares reported (``val_accuracy`` in their data)
        and the scores its work received, since ``since``, oldest first; contributors with
        neither are left out."""
        await index.refresh()
        series: dict[str, list[LearningPoint]] = {}
        for item in index.items():
            if item.accuracy is None or item.timestamp < since:
                continue
            series.setdefault(item.contributor, []).append(
                LearningPoint(
                    timestamp=item.timestamp,
                    accuracy=item.accuracy,
                    kind=item.kind,
                    item_id=item.item_id,
                )
            )
        by_contributor: dict[str, list[FeedbackScore]] = {}
        for score in await cached.get(
            ("scores", since), lambda: store.feedback_scores(since, MAX_SCORES)
        ):
            by_contributor.setdefault(score.contributor, []).append(score)
        reports = await cached.get(
            ("reports", since),
            lambda: store.trainer_reports(since=since, limit=MAX_REPORTS, maps=False),
        )
        reported, baselines = reported_series(reports)
        return Learning(
            series={
                ai: every_nth(points, MAX_LEARNING_POINTS) for ai, points in sorted(series.items())
            },
            source=(
                "accuracy each trainer measured and sent in TRAINER_REPORT (reported), else "
                "reported in the data it shared (series, val_accuracy)"
            ),
            reported=reported,
            baselines=baselines,
            rated={
                ai: thin_scores(scores, MAX_RATED_POINTS)
                for ai, scores in sorted(by_contributor.items())
            },
        )

    @router.get("/knowledge")
    async def knowledge(
        kind: Annotated[ItemKind | None, Query(description="pattern or component")] = None,
        contributor: Annotated[str | None, Query(max_length=200)] = None,
        q: Annotated[str | None, Query(max_length=200, description="In the id")] = None,
        since: Annotated[float, Query(ge=0)] = 0.0,
        until: Annotated[float | None, Query(ge=0)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> KnowledgePage:
        """Item summaries matching every filter given, newest first (data not included)."""
        await index.refresh()
        all_items = index.items(kind)
        needle = q.lower() if q else None
        found = [
            item
            for item in reversed(all_items)
            if item.timestamp >= since
            and (until is None or item.timestamp <= until)
            and (contributor is None or item.contributor == contributor)
            and (needle is None or needle in item.item_id.lower())
        ]
        return KnowledgePage(
            total=len(found),
            items=found[offset : offset + limit],
            contributors=sorted({item.contributor for item in index.items()}),
        )

    return router
