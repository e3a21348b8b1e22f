"""``GET /metrics``: the hub's figures for Prometheus (text exposition format 0.0.4).

A :class:`HubCollector` reads the hub's plain counters (:class:`~kernal.hub.counters.
HubCounters`) and live state at scrape time, so the hub pays nothing for Prometheus between
scrapes and never imports it. Each app has its own registry (no global state: two hubs in one
process, as in the tests, never mix their figures). Metrics, all prefixed ``kernal_``:

=====================================  =========  ===========================================
name                                   type       labels / meaning
=====================================  =========  ===========================================
connections                            gauge      trainer connections open now
connected_ais                          gauge      AIs that said HELLO, connected now
connections_opened_total               counter    connections admitted
connections_refused_total              counter    over the connection limits
logins_total / login_failures_total    counter    AUTH accepted / refused or timed out
frames_total, frame_bytes_total        counter    ``direction`` (in/out), ``type`` (frame type;
                                                  ``invalid``: did not decode)
errors_total                           counter    ``code``: ERROR frames sent
persist_seconds                        histogram  share handed to the store until committed
ack_seconds                            histogram  frame handed to the router until its ACK
collaborations                         gauge      ``state="active"``
collaborations_started_total           counter
collaborations_ended_total             counter    ``state`` (completed/failed)
shared_patterns, shared_components     gauge      in the store (the /status figures)
ai_reputation                          gauge      ``ai_id``: standing of each connected AI
trainer_accuracy                       gauge      ``ai_id``: accuracy in its latest TRAINER_REPORT
trainer_distrusted_peers               gauge      ``ai_id``: peers it holds below 0.5 (same report)
trainer_rejected_requests              gauge      ``ai_id``: requests it refused for low reputation
uptime_seconds                         gauge
=====================================  =========  ===========================================

A replica of a cluster (``--bus``) adds, from the replicas' heartbeats (at most a second or
two old; this replica's own figures are current):

=====================================  =========  ===========================================
replica_info                           gauge      ``replica``: this replica's name (always 1)
cluster_replicas                       gauge      live replicas, this one included
cluster_connected_ais                  gauge      ``replica``: AIs connected to each replica
cluster_active_collaborations          gauge      ``replica``: collaborations each one holds
=====================================  =========  ===========================================

``connected_ais`` and ``collaborations`` stay this replica's; ``ai_reputation`` covers every
AI of the cluster (each replica holds every standing).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from kernal.hub.counters import Histogram
from kernal.hub.server import Hub
from kernal.storage import ItemKind, TrainerReportRecord
from kernal.web.views import SHUT_OUT_BELOW

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    cumulative = list(itertools.accumulate(histogram.counts))
    buckets = [
        (repr(bound), float(n)) for bound, n in zip(histogram.bounds, cumulative, strict=False)
    ]
    buckets.append(("+Inf", float(cumulative[-1])))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.total)


class HubCollector(Collector):
    """The metrics of one hub, read when scraped (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self._hub
        c = hub.counters
        yield GaugeMetricFamily(
            "kernal_connections", "Trainer connections open now.", value=hub.open_connections
        )
        yield GaugeMetricFamily(
            "kernal_connected_ais", "AIs connected now (said HELLO).", value=len(hub.peers)
        )
        yield CounterMetricFamily(
            "kernal_connections_opened", "Connections admitted.", value=c.connections_opened
        )
        yield CounterMetricFamily(
            "kernal_connections_refused",
            "Connections refused by the connection limits.",
            value=c.connections_refused,
        )
        yield CounterMetricFamily("kernal_logins", "AUTH accepted.", value=c.logins)
        yield CounterMetricFamily(
            "kernal_login_failures", "AUTH refused, malformed or late.", value=c.login_failures
        )
        frames = CounterMetricFamily(
            "kernal_frames", "Frames by direction and type.", labels=["direction", "type"]
        )
        sizes = CounterMetricFamily(
            "kernal_frame_bytes",
            "Bytes of frames by direction and type.",
            labels=["direction", "type"],
        )
        # list(): a frame may arrive while a scrape runs (same loop, but be safe for threads).
        for kind, n in list(c.frames_in.items()):
            frames.add_metric(["in", kind], n)
            sizes.add_metric(["in", kind], c.bytes_in.get(kind, 0))
        for raw, n in list(c.frames_out.items()):
            kind = raw.decode("ascii", "replace")
            frames.add_metric(["out", kind], n)
            sizes.add_metric(["out", kind], c.bytes_out.get(raw, 0))
        yield frames
        yield sizes
        errors = CounterMetricFamily(
            "kernal_errors", "ERROR frames sent, by code.", labels=["code"]
        )
        for code, n in sorted(c.errors.items()):
            errors.add_metric([str(code)], n)
        yield errors
        yield _histogram(
            "kernal_persist_seconds",
            "From a share handed to the store to its transaction committed.",
            c.persist_seconds,
        )
        yield _histogram(
            "kernal_ack_seconds",
            "From a decoded frame handed to the router to its ACK queued.",
            c.ack_seconds,
        )
        active = GaugeMetricFamily("kernal_collaborations", "Collaborations now.", labels=["state"])
        active.add_metric(["active"], len(hub.collaborations))
        yield active
        yield CounterMetricFamily(
            "kernal_collaborations_started",
            "Collaborations started.",
            value=c.collaborations_started,
        )
        ended = CounterMetricFamily(
            "kernal_collaborations_ended", "Collaborations ended, by state.", labels=["state"]
        )
        for state in ("completed", "failed"):
            ended.add_metric([state], c.collaborations_ended.get(state, 0))
        yield ended
        yield GaugeMetricFamily(
            "kernal_shared_patterns",
            "Patterns in the store.",
            value=hub.knowledge.count(ItemKind.PATTERN),
        )
        yield GaugeMetricFamily(
            "kernal_shared_components",
            "Components in the store.",
            value=hub.knowledge.count(ItemKind.COMPONENT),
        )
        standing = GaugeMetricFamily(
            "kernal_ai_reputation",
            "The hub's standing of each connected AI (0 to 1; 0.5 unrated).",
            labels=["ai_id"],
        )
        for profile in hub.peers.profiles():
            standing.add_metric([profile.ai_id], hub.standings.of(profile.ai_id))
        yield standing
        yield GaugeMetricFamily(
            "kernal_uptime_seconds",
            "Seconds since the hub started (scenario time).",
            value=max(0.0, hub.clock.now() - hub.started_at) if hub.started_at else 0.0,
        )


class ClusterCollector(Collector):
    """The cluster's figures, on a replica (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        cluster = self._hub.cluster
        if cluster is None:
            return
        replicas = cluster.replicas()
        info = GaugeMetricFamily(
            "kernal_replica_info", "This replica's name (--replica-id).", labels=["replica"]
        )
        info.add_metric([cluster.replica_id], 1.0)
        yield info
        yield GaugeMetricFamily(
            "kernal_cluster_replicas", "Live replicas, this one included.", value=len(replicas)
        )
        connected = GaugeMetricFamily(
            "kernal_cluster_connected_ais",
            "AIs connected to each replica (from its heartbeat).",
            labels=["replica"],
        )
        collaborations = GaugeMetricFamily(
            "kernal_cluster_active_collaborations",
            "Active collaborations each replica holds the book of (from its heartbeat).",
            labels=["replica"],
        )
        for replica, figures in sorted(replicas.items()):
            connected.add_metric([replica], _figure(figures, "connected_ais"))
            collaborations.add_metric([replica], _figure(figures, "active_collaborations"))
        yield connected
        yield collaborations


def _figure(figures: dict[str, object], name: str) -> float:
    # A replica heard from but whose heartbeat was not read yet has no figures: 0 until then.
    value = figures.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


class ReportCollector(Collector):
    """The latest TRAINER_REPORT of each trainer, read from the store by the endpoint before
    each scrape (a collector cannot await). One series per trainer, never per pair of
    trainers: a pair per series would grow with the square of the trainers."""

    def __init__(self) -> None:
        self.latest: list[TrainerReportRecord] = []

    def collect(self) -> Iterator[Metric]:
        accuracy = GaugeMetricFamily(
            "kernal_trainer_accuracy",
            "Accuracy each trainer reported in its latest TRAINER_REPORT (0 to 1).",
            labels=["ai_id"],
        )
        distrusted = GaugeMetricFamily(
            "kernal_trainer_distrusted_peers",
            f"Peers each trainer holds below {SHUT_OUT_BELOW} in its latest TRAINER_REPORT.",
            labels=["ai_id"],
        )
        rejected = GaugeMetricFamily(
            "kernal_trainer_rejected_requests",
            "Collaboration requests each trainer refused for low reputation (latest report).",
            labels=["ai_id"],
        )
        for report in self.latest:
            accuracy.add_metric([report.ai_id], report.accuracy)
            low = sum(1 for score in report.trust.values() if score < SHUT_OUT_BELOW)
            distrusted.add_metric([report.ai_id], float(low))
            refused = sum(count for count, _ in report.rejected.values())
            rejected.add_metric([report.ai_id], float(refused))
        yield accuracy
        yield distrusted
        yield rejected


def metrics_router(hub: Hub) -> APIRouter:
    """``GET /metrics`` for ``hub``, on a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub))
    if hub.cluster is not None:
        registry.register(ClusterCollector(hub))
    reports = ReportCollector()
    registry.register(reports)
    router = APIRouter()

    @router.get("/metrics", tags=["status"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format: connections, frames and bytes by type and direction,
        latencies, collaborations, errors, standings, trainers' reported figures (see
        docs/http-api.md)."""
        reports.latest = await hub.store.latest_trainer_reports()
        return Response(
            generate_latest(registry),
            media_type=CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )

    return router
