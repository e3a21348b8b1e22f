"""The dashboard's views (``/api/views/...``) against a real hub, real clients over TCP and a
real SQLite store, called in-process."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator

import httpx
import pytest

from kernal.config import TrainerSettings
from kernal.hub.server import Hub
from kernal.storage import FeedbackScore, StatsSnapshot, TrainerReportRecord
from kernal.web.app import create_app
from kernal.web.views import (
    SHUT_OUT_BELOW,
    RecentAnswers,
    every_nth,
    held_trust,
    reported_accuracy,
    thin,
    thin_scores,
)
from tests.helpers import RawClient, login
from tests.web.test_api import Login, eventually, share_component, share_pattern


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.fixture
async def connect(hub: Hub) -> AsyncIterator[Login]:
    clients: list[RawClient] = []

    async def factory(ai_id: str, specialization: str = "networking") -> RawClient:
        client = await login(hub, ai_id, specialization)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


async def feedback(client: RawClient, kind: str, item_id: str, score: float | None) -> None:
    message = {"type": "FEEDBACK", "kind": kind, "id": item_id}
    if score is not None:
        message["score"] = score  # type: ignore[assignment]
    await client.send(message)
    await client.recv_type("ACK")


@pytest.fixture
async def scene(connect: Login) -> tuple[RawClient, RawClient, RawClient]:
    """Three AIs: one shares (reporting accuracy), two rate it, one badly."""
    one = await connect("AI_Node_1", "networking")
    two = await connect("AI_Node_2", "graphics")
    three = await connect("AI_Node_3", "storage")
    await share_pattern(one, "p-early", {"val_accuracy": 0.41, "round": 1})
    await share_pattern(one, "p-late", {"val_accuracy": 0.83, "round": 2})
    await share_component(one, "c-model", {"accuracy": 0.9}, 0.9)
    await share_pattern(two, "p-two", {"note": "no accuracy here"})
    await feedback(two, "pattern", "p-late", 0.8)
    await feedback(two, "component", "c-model", None)
    await feedback(three, "component", "c-model", 0.1)
    await feedback(one, "pattern", "p-two", 0.7)
    return one, two, three


def test_reported_accuracy_takes_only_fractions() -> None:
    assert reported_accuracy({"val_accuracy": 0.5, "accuracy": 0.1}) == 0.5
    assert reported_accuracy({"accuracy": 1}) == 1.0
    for bad in ({"val_accuracy": True}, {"accuracy": "0.9"}, {"accuracy": 1.5}, {}):
        assert reported_accuracy(bad) is None
    assert reported_accuracy({"val_accuracy": float("nan"), "accuracy": 0.2}) == 0.2


def test_shut_out_line_is_the_trainers_default_trust_threshold() -> None:
    default = next(
        f.default for f in dataclasses.fields(TrainerSettings) if f.name == "trust_threshold"
    )
    assert default == SHUT_OUT_BELOW


async def test_run_says_when_this_run_started(api: httpx.AsyncClient, hub: Hub) -> None:
    body = (await api.get("/api/views/run")).json()
    assert body["started_at"] == hub.started_at > 0
    assert body["stats_interval"] == hub.clock.real(hub.settings.stats_interval)
    assert body["server_time"] >= hub.started_at
    assert body["shut_out_below"] == SHUT_OUT_BELOW


async def test_ais_have_standing_and_shares(
    api: httpx.AsyncClient, scene: tuple[RawClient, RawClient, RawClient]
) -> None:
    response = await api.get("/api/views/ais")
    assert response.headers["cache-control"] == "no-store"
    rows = {row["ai_id"]: row for row in response.json()}
    assert list(rows) == ["AI_Node_1", "AI_Node_2", "AI_Node_3"]
    one, two, three = rows.values()
    # The hub's standings, as relayed: these raters never completed a collaboration with the
    # AIs they rated, so no rating counts yet and every standing is the prior.
    assert (one["patterns"], one["components"], one["ratings"], one["standing"]) == (2, 1, 0, 0.5)
    assert (two["patterns"], two["ratings"], two["standing"]) == (1, 0, 0.5)
    assert (three["patterns"], three["ratings"], three["standing"]) == (0, 0, 0.5)
    assert three["last_shared"] is None and one["last_shared"] > 0
    assert all(row["online"] and row["connected_at"] for row in rows.values())
    assert two["specialization"] == "graphics" and two["capabilities"] == ["x"]

    await scene[2].close()

    async def three_offline() -> bool:
        found = {r["ai_id"]: r for r in (await api.get("/api/views/ais")).json()}
        return not found["AI_Node_3"]["online"] and found["AI_Node_3"]["connected_at"] is None

    await eventually(three_offline)


async def test_trust_graph_says_who_rated_whom(
    api: httpx.AsyncClient, scene: tuple[RawClient, RawClient, RawClient]
) -> None:
    body = (await api.get("/api/views/trust")).json()
    pairs = {(e["rater"], e["contributor"]): e for e in body["edges"]}
    assert set(pairs) == {
        ("AI_Node_2", "AI_Node_1"),
        ("AI_Node_3", "AI_Node_1"),
        ("AI_Node_1", "AI_Node_2"),
    }
    two_on_one = pairs["AI_Node_2", "AI_Node_1"]
    assert (two_on_one["count"], two_on_one["scored"], two_on_one["mean_score"]) == (2, 1, 0.8)
    assert pairs["AI_Node_3", "AI_Node_1"]["mean_score"] == 0.1
    assert body["standings"]["AI_Node_3"] == 0.5  # nobody rated its work: the prior
    assert body["standings"]["AI_Node_1"] == 0.5  # rated by strangers only: they do not count
    assert body["shut_out_below"] == SHUT_OUT_BELOW
    later = (await api.get("/api/views/trust", params={"since": 4e9})).json()
    assert later["edges"] == [] and later["standings"] == {}
    assert (await api.get("/api/views/trust", params={"since": -1})).status_code == 422


async def test_learning_is_the_accuracy_shares_report(
    api: httpx.AsyncClient, scene: tuple[RawClient, RawClient, RawClient]
) -> None:
    body = (await api.get("/api/views/learning")).json()
    assert list(body["series"]) == ["AI_Node_1"]  # AI_Node_2 reported no accuracy
    points = body["series"]["AI_Node_1"]
    assert [(p["item_id"], p["accuracy"], p["kind"]) for p in points] == [
        ("p-early", 0.41, "pattern"),
        ("p-late", 0.83, "pattern"),
        ("c-model", 0.9, "component"),
    ]
    assert points[0]["timestamp"] <= points[1]["timestamp"] <= points[2]["timestamp"]
    rated = body["rated"]
    assert [(p["rater"], p["score"]) for p in rated["AI_Node_1"]] == [
        ("AI_Node_2", 0.8),
        ("AI_Node_3", 0.1),
    ]
    assert [(p["rater"], p["score"]) for p in rated["AI_Node_2"]] == [("AI_Node_1", 0.7)]
    since = points[2]["timestamp"]
    later = (await api.get("/api/views/learning", params={"since": since})).json()
    assert [p["item_id"] for p in later["series"]["AI_Node_1"]] == ["c-model"]
    assert [p["rater"] for p in later["rated"]["AI_Node_1"]] == ["AI_Node_2", "AI_Node_3"]


async def test_knowledge_filters_and_follows_new_shares(
    api: httpx.AsyncClient, scene: tuple[RawClient, RawClient, RawClient]
) -> None:
    async def ids(**params: object) -> list[str]:
        response = await api.get("/api/views/knowledge", params=params)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        return [item["item_id"] for item in response.json()["items"]]

    assert await ids() == ["p-two", "c-model", "p-late", "p-early"]  # newest first
    assert await ids(kind="component") == ["c-model"]
    assert await ids(contributor="AI_Node_2") == ["p-two"]
    assert await ids(q="LATE") == ["p-late"]
    assert await ids(limit=2, offset=1) == ["c-model", "p-late"]
    page = (await api.get("/api/views/knowledge", params={"limit": 1})).json()
    assert page["total"] == 4 and page["contributors"] == ["AI_Node_1", "AI_Node_2"]
    first = page["items"][0]
    assert (first["kind"], first["contributor"], first["accuracy"]) == (
        "pattern",
        "AI_Node_2",
        None,
    )
    everything = (await api.get("/api/views/knowledge")).json()["items"]
    model = next(item for item in everything if item["item_id"] == "c-model")
    assert (model["usage_count"], model["quality_score"], model["accuracy"]) == (2, 0.1, 0.9)
    stamp = model["timestamp"]
    assert await ids(since=stamp, until=stamp) == ["c-model"]

    # A share after the index was read is found on the next call.
    await share_pattern(scene[2], "p-three", {"val_accuracy": 0.5})
    assert (await ids(contributor="AI_Node_3")) == ["p-three"]
    bad = await api.get("/api/views/knowledge", params={"kind": "opinion"})
    assert bad.status_code == 422 and "kind" in bad.json()["error"]


def test_thin_keeps_the_last_of_each_bucket_and_the_gaps() -> None:
    def snap(t: float, n: int) -> StatsSnapshot:
        return StatsSnapshot(t, n, n, n, n)

    run = [snap(float(t), t) for t in range(100)] + [snap(1000.0 + t, 1000 + t) for t in range(100)]
    kept, bucket = thin(run, 20, 1.0)
    assert bucket == (1099 - 0) / 20
    assert kept[-1] == run[-1] and len(kept) <= 21
    stamps = [s.timestamp for s in kept]
    assert stamps == sorted(stamps)
    assert max(b - a for a, b in itertools.pairwise(stamps)) > 800  # the gap stayed
    assert thin(run[:5], 20, 1.0) == (run[:5], 1.0)


async def test_history_is_thinned_and_says_its_bucket(api: httpx.AsyncClient, hub: Hub) -> None:
    base = 4e9  # after any snapshot the hub takes itself
    for t in range(50):
        await hub.store.add_stats_snapshot(StatsSnapshot(base + t, t, 0, 0, 0))
    body = (await api.get("/api/views/history", params={"points": 10, "since": base})).json()
    assert body["started_at"] == hub.started_at and not body["truncated"]
    assert body["bucket"] == 49 / 10 and body["stats_interval"] > 0
    assert body["points"][-1]["timestamp"] == base + 49
    assert len(body["points"]) <= 11
    recent = (await api.get("/api/views/history", params={"since": base + 45})).json()
    assert [p["connected_ais"] for p in recent["points"]][:5] == [45, 46, 47, 48, 49]
    assert (await api.get("/api/views/history", params={"points": 1})).status_code == 422


async def test_recent_answers_are_reused_within_their_ttl() -> None:
    calls: list[int] = []

    async def compute() -> int:
        calls.append(1)
        return len(calls)

    kept = RecentAnswers(ttl=3600)
    assert [await kept.get("k", compute), await kept.get("k", compute)] == [1, 1]
    assert await kept.get("other", compute) == 2
    fresh = RecentAnswers(ttl=0)
    assert [await fresh.get("k", compute), await fresh.get("k", compute)] == [3, 4]


def test_thin_scores_averages_consecutive_scores() -> None:
    scores = [FeedbackScore("r", "c", s / 10, float(t)) for t, s in enumerate(range(10))]
    assert [(p.score, p.rater, p.count) for p in thin_scores(scores[:2], 5)] == [
        (0.0, "r", 1),
        (0.1, "r", 1),
    ]
    thinned = thin_scores(scores, 3)  # chunks of 4: 0-3, 4-7, 8-9
    assert [(p.score, p.count, p.timestamp, p.rater) for p in thinned] == [
        (0.15, 4, 3.0, ""),
        (0.55, 4, 7.0, ""),
        (0.85, 2, 9.0, ""),
    ]


def test_every_nth_keeps_the_newest() -> None:
    assert every_nth(list(range(10)), 20) == list(range(10))
    assert every_nth(list(range(10)), 3) == [1, 5, 9]
    assert every_nth(list(range(10)), 5) == [1, 3, 5, 7, 9]


async def report(client: RawClient, **fields: object) -> None:
    await client.send({"type": "TRAINER_REPORT", "msg_id": "r", **fields})
    assert (await client.recv_type("ACK"))["of"] == "TRAINER_REPORT"


async def test_learning_and_trust_show_what_trainers_reported(
    api: httpx.AsyncClient, connect: Login
) -> None:
    one = await connect("AI_Node_1")
    two = await connect("AI_Node_2", "graphics")
    await report(one, accuracy=0.5, trust={"AI_Node_2": 0.5})
    await report(
        one,
        accuracy=0.75,
        local_only_accuracy=0.6,
        centralized_baseline=0.9,
        trust={"AI_Node_2": 0.2, "AI_Node_3": 0.8},
        rejected={"AI_Node_2": {"count": 3}},
        refused_merges={"AI_Node_4": {"count": 2, "reason": "worse on our validation data"}},
        final=True,
    )
    await report(two, accuracy=0.25)
    learning = (await api.get("/api/views/learning")).json()
    assert {ai: [p["accuracy"] for p in points] for ai, points in learning["reported"].items()} == {
        "AI_Node_1": [0.5, 0.75],
        "AI_Node_2": [0.25],
    }
    assert learning["baselines"] == {
        "AI_Node_1": {"local_only_accuracy": 0.6, "centralized_baseline": 0.9}
    }
    assert learning["series"] == {}  # nothing shared: the fallback stays empty
    trust = (await api.get("/api/views/trust")).json()
    held = {(e["truster"], e["peer"]): e for e in trust["held"]}
    assert set(held) == {  # the latest report's
        ("AI_Node_1", "AI_Node_2"),
        ("AI_Node_1", "AI_Node_3"),
        ("AI_Node_1", "AI_Node_4"),
    }
    distrusted = held["AI_Node_1", "AI_Node_2"]
    assert (distrusted["reputation"], distrusted["distrusted"]) == (0.2, True)
    assert (distrusted["rejected"], distrusted["reason"]) == (3, "low reputation")
    trusted = held["AI_Node_1", "AI_Node_3"]
    assert (trusted["reputation"], trusted["distrusted"], trusted["rejected"]) == (0.8, False, 0)
    assert (trusted["merges_refused"], trusted["merge_reason"]) == (0, None)
    refused = held["AI_Node_1", "AI_Node_4"]  # no reputation sent: not marked distrusted
    assert (refused["reputation"], refused["distrusted"], refused["rejected"]) == (None, False, 0)
    assert (refused["merges_refused"], refused["merge_reason"]) == (
        2,
        "worse on our validation data",
    )
    later = (await api.get("/api/views/trust", params={"since": 4e9})).json()
    assert later["held"] == []


def test_held_trust_past_the_bound_keeps_the_distrusted_and_refused() -> None:
    trust = {f"p{i:02d}": 0.9 for i in range(20)} | {"p05": 0.1, "p17": 0.3}
    latest = [
        TrainerReportRecord("a", 10.0, 0.5, trust=trust, rejected={"p09": (2, "low reputation")}),
        TrainerReportRecord("b", 1.0, 0.5, trust={"a": 0.1}),
    ]
    edges = held_trust(latest, since=5.0, most=3)  # b's report is older than since
    assert [(e.truster, e.peer) for e in edges] == [("a", "p05"), ("a", "p09"), ("a", "p17")]
    assert len(held_trust(latest, since=0.0)) == 21
