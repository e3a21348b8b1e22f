"""``/metrics`` parses as Prometheus text and its figures move with real traffic; ``/docs`` and
``/openapi.json`` work offline under the page's CSP."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kernal.hub.counters import Histogram, HubCounters, frame_type
from kernal.hub.server import Hub
from kernal.web.app import create_app
from tests.conftest import ServiceFactory
from tests.helpers import RawClient, login

GRAFANA = Path(__file__).resolve().parents[2] / "docs" / "grafana-kernal.json"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


async def scrape(api: httpx.AsyncClient) -> Samples:
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_with_traffic(hub: Hub, api: httpx.AsyncClient) -> None:
    before = await scrape(api)
    assert value(before, "kernal_connections") == 0
    one = await login(hub, "AI_Node_1")
    two = await login(hub, "AI_Node_2", "graphics")
    three = await login(hub, "AI_Node_4", "audio")
    try:
        await one.send({"type": "PATTERN_SHARE", "pattern_id": "p1", "pattern_data": {"a": 1}})
        await one.recv_type("ACK")
        await two.recv_type("PATTERN_SHARE")
        await three.recv_type("PATTERN_SHARE")
        await one.send_bytes(b"{not json}\n")
        await one.recv_type("ERROR")
        await two.send({"type": "FEEDBACK", "kind": "pattern", "id": "p1", "score": 1.0})
        await two.recv_type("ACK")
        bad = await RawClient.connect(hub)
        await bad.send({"ai_id": "AI_Node_3", "token": "wrong"})
        assert (await bad.recv())["type"] == "AUTH_FAILED"
        await bad.close()
        after = await scrape(api)
    finally:
        await one.close()
        await two.close()
        await three.close()

    assert value(after, "kernal_connected_ais") == 3
    assert value(after, "kernal_connections") >= 3
    assert value(after, "kernal_logins_total") == 3
    assert value(after, "kernal_login_failures_total") == 1
    assert value(after, "kernal_frames_total", direction="in", type="PATTERN_SHARE") == 1
    assert value(after, "kernal_frames_total", direction="in", type="HELLO") == 3
    assert value(after, "kernal_frames_total", direction="in", type="invalid") == 1
    assert value(after, "kernal_frame_bytes_total", direction="in", type="PATTERN_SHARE") > 20
    # One broadcast to the two others, the ACKs (share, feedback), an AI_JOINED to each AI
    # already there (1 + 2), a STATE to each.
    assert value(after, "kernal_frames_total", direction="out", type="PATTERN_SHARE") == 2
    assert value(after, "kernal_frames_total", direction="out", type="ACK") == 2
    assert value(after, "kernal_frames_total", direction="out", type="AI_JOINED") == 3
    assert value(after, "kernal_frames_total", direction="out", type="STATE") == 3
    assert value(after, "kernal_errors_total", code="bad_json") == 1
    assert value(after, "kernal_persist_seconds_count") == 1
    assert value(after, "kernal_persist_seconds_bucket", le="+Inf") == 1
    assert value(after, "kernal_ack_seconds_count") == 2
    assert value(after, "kernal_shared_patterns") == 1
    # The hub's standing (a stranger's vote does not move it: docs/protocol.md, Standing).
    assert value(after, "kernal_ai_reputation", ai_id="AI_Node_1") == hub.standings.of("AI_Node_1")
    assert value(after, "kernal_ai_reputation", ai_id="AI_Node_2") == 0.5
    assert value(after, "kernal_collaborations", state="active") == 0


async def test_trainer_report_gauges(hub: Hub, api: httpx.AsyncClient) -> None:
    assert value(await scrape(api), "kernal_trainer_accuracy", ai_id="AI_Node_1") == 0.0
    one = await login(hub, "AI_Node_1")
    try:
        for accuracy in (0.5, 0.875):
            await one.send(
                {
                    "type": "TRAINER_REPORT",
                    "accuracy": accuracy,
                    "trust": {"AI_Node_2": 0.25, "AI_Node_3": 0.75, "AI_Node_4": 0.1},
                    "rejected": {"AI_Node_2": {"count": 2}, "AI_Node_4": {"count": 1}},
                }
            )
            await one.recv_type("ACK")
        after = await scrape(api)
    finally:
        await one.close()
    assert value(after, "kernal_trainer_accuracy", ai_id="AI_Node_1") == 0.875  # the latest
    assert value(after, "kernal_trainer_distrusted_peers", ai_id="AI_Node_1") == 2
    assert value(after, "kernal_trainer_rejected_requests", ai_id="AI_Node_1") == 3


async def test_collaboration_metrics(hub: Hub, api: httpx.AsyncClient) -> None:
    one = await login(hub, "AI_Node_1")
    two = await login(hub, "AI_Node_2", "graphics")
    try:
        await one.send(
            {
                "type": "COLLABORATION_REQUEST",
                "request_id": "r1",
                "expertise_offered": ["a"],
                "seeking_expertise": ["b"],
            }
        )
        await one.recv_type("ACK")
        await two.recv_type("COLLABORATION_REQUEST")
        await two.send({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_1"})
        collaboration_id = (await two.recv_type("ACK"))["collaboration_id"]
        during = await scrape(api)
        await one.send(
            {"type": "COLLABORATION_FAILED", "collaboration_id": collaboration_id, "reason": "x"}
        )
        await one.recv_type("ACK")
        after = await scrape(api)
    finally:
        await one.close()
        await two.close()
    assert value(during, "kernal_collaborations", state="active") == 1
    assert value(during, "kernal_collaborations_started_total") == 1
    assert value(after, "kernal_collaborations", state="active") == 0
    assert value(after, "kernal_collaborations_ended_total", state="failed") == 1
    assert value(after, "kernal_collaborations_ended_total", state="completed") == 0


def test_histogram_buckets_and_frame_types() -> None:
    histogram = Histogram(bounds=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(seconds)
    assert histogram.counts == [2, 1, 1]  # <= 0.1, <= 1.0, above
    assert (histogram.count, histogram.total) == (4, pytest.approx(3.65))
    assert frame_type(b'{"type":"ACK","ref":"x"}\n') == b"ACK"
    assert frame_type(b'{"ai_id":"a","capabilities":["x"],"type":"AI_JOINED"}\n') == b"AI_JOINED"
    assert frame_type(b"garbage") == b"?"
    counters = HubCounters()
    frame = b'{"type":"PATTERN_SHARE"}\n'
    for _ in range(3):  # one broadcast: the same bytes to three peers
        counters.sent(frame)
    counters.sent(b'{"type":"ACK"}\n')
    counters.sent(frame, 10)  # a broadcast to ten peers, counted once
    assert dict(counters.frames_out) == {b"PATTERN_SHARE": 13, b"ACK": 1}
    assert counters.bytes_out[b"PATTERN_SHARE"] == 13 * len(frame)


async def test_two_apps_of_one_hub_have_their_own_registries(hub: Hub) -> None:
    # No global registry: a second app (as each test builds) must not clash with the first.
    for _ in range(2):
        transport = httpx.ASGITransport(app=create_app(hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            assert value(await scrape(api), "kernal_connections") == 0


# ---------------------------------------------------------------------- OpenAPI and /docs


async def test_openapi_lists_every_route(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    for path in (
        "/status",
        "/api/patterns",
        "/api/patterns/{item_id}",
        "/api/components",
        "/api/components/{item_id}",
        "/api/collaborations",
        "/api/collaborations/{collaboration_id}",
        "/api/ais/{ai_id}",
        "/api/reputation",
        "/api/stats/history",
        "/api/tokens/{ai_id}",
        "/metrics",
    ):
        assert path in schema["paths"], path
    listing = schema["paths"]["/api/patterns"]["get"]
    names = {parameter["name"] for parameter in listing["parameters"]}
    assert {"limit", "cursor", "contributor", "since", "until", "q", "format"} <= names
    assert (await api.get("/api/openapi.json")).json() == schema  # the former address


async def test_docs_page_loads_only_its_own_assets(api: httpx.AsyncClient) -> None:
    page = await api.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") or s.startswith("data:") for s in sources), sources
    for asset in ("/docs/docs.js", "/docs/docs.css"):
        response = await api.get(asset)
        assert response.status_code == 200, asset
        assert "http" not in response.text.replace("HTTP", ""), asset  # nothing from elsewhere
    assert (await api.get("/docs/../app.py")).status_code == 404
    script = (await api.get("/docs/docs.js")).text
    assert "innerHTML" not in script  # schema text is never parsed as markup


# ---------------------------------------------------------------------- Grafana dashboard


async def test_grafana_dashboard_asks_only_for_metrics_the_hub_exposes(
    api: httpx.AsyncClient,
) -> None:
    dashboard = json.loads(GRAFANA.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = {name for expr in exprs for name in re.findall(r"kernal_[a-z_]+", expr)}
    response = await api.get("/metrics")
    # By family: a labelled family the hub has no sample of yet is still declared.
    families = {family.name for family in text_string_to_metric_families(response.text)}
    unknown = {
        name for name in asked if re.sub(r"_(total|bucket|count|sum)$", "", name) not in families
    }
    assert asked and not unknown, unknown


async def test_metrics_over_a_live_port_with_a_read_token(make_service: ServiceFactory) -> None:
    service = await make_service(dashboard_port=0, read_token="scrape-me")
    assert service.dashboard_address is not None
    host, port = service.dashboard_address
    client = await login(service.hub, "AI_Node_1")
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            assert (await http.get("/metrics")).status_code == 401
            response = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    finally:
        await client.close()
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    [sample] = families["kernal_connected_ais"].samples
    assert sample.value == 1
