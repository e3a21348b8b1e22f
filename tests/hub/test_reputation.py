"""Standing that cannot be bought: one vote per rater per item, one voice per rater, only
partners count and only established raters weigh (``kernal.hub.reputation``).

Real hubs on port 0, raw clients over real sockets; standings are read as clients read them,
from ``LIST_AIS``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernal.config import TrainerSettings
from kernal.hub.reputation import FULL_PARTNERS, MIN_PARTNERS
from kernal.hub.server import Hub
from kernal.trainer.policy import consider_request
from kernal.trainer.reputation import ReputationBook
from tests.conftest import HubFactory
from tests.helpers import RawClient, login

_REFERENCE = TrainerSettings(ai_id="AI_Node_9", specialization="networking", token="t")
THRESHOLD = _REFERENCE.trust_threshold  # the reference trainer's defaults
INITIAL = _REFERENCE.initial_reputation


class World:
    """Logged-in demo AIs by number, and the moves the tests are made of."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.clients: dict[int, RawClient] = {}
        self._serial = 0

    async def ai(self, n: int) -> RawClient:
        if n not in self.clients:
            self.clients[n] = await login(self.hub, f"AI_Node_{n}")
        return self.clients[n]

    def _next(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}{self._serial}"

    async def request(self, n: int, frame: dict[str, Any]) -> dict[str, Any]:
        """Send ``frame`` from AI ``n``; the reply to it (``ACK``, ``ERROR``, ``AIS``...)."""
        client = await self.ai(n)
        ref = self._next("m")
        await client.send({**frame, "msg_id": ref})
        while True:
            reply = await client.recv()
            if reply.get("ref") == ref:
                return reply

    async def ok(self, n: int, frame: dict[str, Any]) -> dict[str, Any]:
        reply = await self.request(n, frame)
        assert reply["type"] == "ACK", reply
        return reply

    async def share(self, n: int, component_id: str) -> None:
        frame = {"type": "OS_COMPONENT_SHARE", "component_id": component_id, "component_data": {}}
        await self.ok(n, frame)

    async def collaborate(self, a: int, b: int) -> None:
        """A collaboration between ``a`` and ``b``, requested by ``a``, completed."""
        await self.ai(b)
        request_id = self._next("r")
        await self.ok(
            a, {"type": "COLLABORATION_REQUEST", "request_id": request_id, "to": f"AI_Node_{b}"}
        )
        accepted = await self.ok(
            b, {"type": "COLLABORATION_ACCEPT", "request_id": request_id, "to": f"AI_Node_{a}"}
        )
        cid = accepted["collaboration_id"]
        await self.ok(a, {"type": "COLLABORATION_COMPLETE", "collaboration_id": cid})

    async def rate(self, n: int, component_id: str, score: float, **extra: float) -> None:
        frame = {"type": "FEEDBACK", "kind": "component", "id": component_id, "score": score}
        await self.ok(n, {**frame, **extra})

    async def standings(self, via: int = 8) -> dict[str, float]:
        """Every joined AI's standing, as ``LIST_AIS`` reports it to AI ``via``."""
        reply = await self.request(via, {"type": "LIST_AIS"})
        assert reply["type"] == "AIS", reply
        return {ai["ai_id"]: ai["reputation"] for ai in reply["ais"]}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


@pytest.fixture
async def world(make_hub: HubFactory) -> Any:
    # FEEDBACK pacing (tests/hub/test_fairness.py) would make a 1,000-vote flood take 50 s;
    # these tests are about what votes count for, not how fast they may arrive.
    world = World(await make_hub(rate_feedback=100_000, rate_feedback_burst=100_000))
    yield world
    await world.close()


def prior_mean(*opinions: tuple[float, float]) -> float:
    """The standing rule, written out: two virtual ratings of 0.5 and weighted opinions."""
    return (1.0 + sum(w * o for w, o in opinions)) / (2.0 + sum(w for w, _ in opinions))


async def established(world: World, rater: int, *partners: int) -> None:
    """Make ``rater`` complete a collaboration with each of ``partners``."""
    for partner in partners:
        await world.collaborate(rater, partner)


def trusted_by_reference_trainer(standing: float) -> bool:
    """Whether a reference trainer meeting an AI of this hub standing accepts its request."""
    book = ReputationBook(initial=INITIAL)
    book.seed("peer", standing)
    decision = consider_request(
        trained=True, trust=book.get("peer"), threshold=THRESHOLD, is_complementary=True, active=0
    )
    return decision.accept


async def test_a_flood_from_one_rater_weighs_what_one_vote_weighs(world: World) -> None:
    await world.share(1, "victim-work")
    # AI_Node_2 worked with the victim and three others: an established rater (weight 0.5).
    await established(world, 2, 1, 3, 4, 5)
    assert MIN_PARTNERS == 3 and FULL_PARTNERS == 6  # the weights below assume these
    await world.rate(2, "victim-work", 0.0)
    one_vote = (await world.standings())["AI_Node_1"]
    assert one_vote == pytest.approx(prior_mean((0.5, 0.0)))  # 0.4: a real partner's verdict

    client = await world.ai(2)
    flood = {"type": "FEEDBACK", "kind": "component", "id": "victim-work", "score": 0.0}
    await client.send_bytes((json.dumps(flood) + "\n").encode() * 999)
    for _ in range(999):
        await client.recv_type("ACK")
    assert (await world.standings())["AI_Node_1"] == one_vote

    # A stranger's flood (it never collaborated with the victim) does not count at all.
    stranger = await world.ai(6)
    await stranger.send_bytes((json.dumps(flood) + "\n").encode() * 100)
    for _ in range(100):
        await stranger.recv_type("ACK")
    assert (await world.standings())["AI_Node_1"] == one_vote


async def test_a_clique_of_new_accounts_can_neither_lift_itself_nor_sink_the_honest(
    world: World,
) -> None:
    honest, clique = 1, (2, 3, 4)
    await world.share(honest, "honest-work")
    for member in clique:
        await world.share(member, f"clique-work-{member}")
    # Even collaborating among themselves and with the honest AI, each member has two partners
    # besides the one it rates: below MIN_PARTNERS.
    await world.collaborate(2, 3)
    await world.collaborate(2, 4)
    await world.collaborate(3, 4)
    for member in clique:
        await world.collaborate(member, honest)
    for member in clique:
        for other in clique:
            if other != member:
                for _ in range(20):
                    await world.rate(member, f"clique-work-{other}", 1.0, usefulness=1.0)
        for _ in range(20):
            await world.rate(member, "honest-work", 0.0, usefulness=0.0)
    standings = await world.standings()
    for member in clique:
        assert standings[f"AI_Node_{member}"] <= THRESHOLD
    assert standings["AI_Node_1"] >= THRESHOLD
    assert trusted_by_reference_trainer(standings["AI_Node_1"])
    # The votes were counted as uses and are kept: they are ignored for standing, not lost.
    component = await _component(world, "honest-work")
    assert (component["usage_count"], component["quality_score"]) == (3, 0.0)


async def test_an_honest_newcomer_starts_at_the_initial_reputation(world: World) -> None:
    await world.share(1, "fresh")
    standings = await world.standings()
    assert standings["AI_Node_1"] == INITIAL == 0.5
    assert trusted_by_reference_trainer(standings["AI_Node_1"])


async def test_a_new_vote_replaces_the_old_and_usefulness_decides(world: World) -> None:
    await world.share(1, "work")
    await established(world, 2, 1, 3, 4, 5)
    await world.rate(2, "work", 0.0)
    assert (await world.standings())["AI_Node_1"] == pytest.approx(prior_mean((0.5, 0.0)))
    await world.rate(2, "work", 1.0)
    assert (await world.standings())["AI_Node_1"] == pytest.approx(prior_mean((0.5, 1.0)))
    component = await _component(world, "work")
    assert (component["usage_count"], component["quality_score"]) == (1, 1.0)
    # The measured usefulness, when sent, is what the standing goes by.
    await world.rate(2, "work", 1.0, usefulness=0.25)
    assert (await world.standings())["AI_Node_1"] == pytest.approx(prior_mean((0.5, 0.25)))
    # A use without a rating keeps the vote.
    await world.ok(2, {"type": "FEEDBACK", "kind": "component", "id": "work"})
    assert (await world.standings())["AI_Node_1"] == pytest.approx(prior_mean((0.5, 0.25)))


async def test_votes_cast_before_the_collaboration_completed_count_once_it_does(
    world: World,
) -> None:
    await world.share(1, "work")
    await established(world, 2, 3, 4, 5)
    await world.rate(2, "work", 1.0)
    assert (await world.standings())["AI_Node_1"] == 0.5  # not partners (yet)
    await world.collaborate(1, 2)  # partners now, and AI_Node_2 has three others: weight 0.5
    assert (await world.standings())["AI_Node_1"] == pytest.approx(prior_mean((0.5, 1.0)))


async def test_rating_your_own_work_is_refused_and_not_stored(world: World) -> None:
    await world.share(1, "mine")
    frame = {"type": "FEEDBACK", "kind": "component", "id": "mine", "score": 1.0}
    reply = await world.request(1, {**frame, "usefulness": 1.0})
    assert reply["type"] == "ERROR"
    assert reply["code"] == "forbidden"
    assert "cannot rate its own component 'mine'" in reply["error"]
    component = await _component(world, "mine")
    assert component["usage_count"] == 0
    assert (await world.standings())["AI_Node_1"] == 0.5


async def test_standings_survive_a_hub_restart(make_hub: HubFactory) -> None:
    hub = await make_hub()
    world = World(hub)
    await world.share(1, "work")
    await world.share(3, "other-work")
    await established(world, 2, 1, 3, 4, 5)
    await world.rate(2, "work", 0.5, usefulness=0.0)
    await world.rate(2, "other-work", 1.0)
    before = await world.standings()
    assert before["AI_Node_1"] == pytest.approx(prior_mean((0.5, 0.0)))
    assert before["AI_Node_3"] == pytest.approx(prior_mean((0.5, 1.0)))
    await world.close()
    await hub.stop()

    restarted = await make_hub(db=hub.settings.db)
    again = World(restarted)
    for n in (1, 3):
        await again.ai(n)
    after = await again.standings()
    assert (after["AI_Node_1"], after["AI_Node_3"]) == (before["AI_Node_1"], before["AI_Node_3"])
    # And the rater's weight came back with its collaborations: a new vote moves by it.
    await again.rate(2, "work", 0.5, usefulness=1.0)
    assert (await again.standings())["AI_Node_1"] == pytest.approx(prior_mean((0.5, 1.0)))
    await again.close()


async def test_bad_ratings_follow_an_ai_across_reconnects(world: World) -> None:
    """No whitewashing: the hub's standing of an AI is kept by ai_id, not by connection.
    (Moved from test_sharing.py: the raters are now established partners, as counting needs.)"""
    for n in range(3):
        await world.share(1, f"bad{n}")
    for rater in (2, 3):
        await established(world, rater, 1, 4, 5, 6)
        for n in range(3):
            await world.rate(rater, f"bad{n}", 0.0)
    expected = prior_mean((0.5, 0.0), (0.5, 0.0))  # 1/3: two half-weight raters at 0
    await world.clients.pop(1).close()
    again = await RawClient.connect(world.hub)
    state = await again.login("AI_Node_1", "secret1")
    (me,) = [ai for ai in state["active_ais"] if ai["ai_id"] == "AI_Node_1"]
    assert me["reputation"] == pytest.approx(expected)
    rater = world.clients[2]
    joined = await rater.recv_type("AI_JOINED")
    while joined["ai_id"] != "AI_Node_1":  # the others joined earlier
        joined = await rater.recv_type("AI_JOINED")
    assert joined["reputation"] == pytest.approx(expected)
    await again.send({"type": "COLLABORATION_REQUEST", "request_id": "r"})
    request = await rater.recv_type("COLLABORATION_REQUEST")
    assert request["reputation"] == pytest.approx(expected)
    assert not trusted_by_reference_trainer(request["reputation"])
    await again.close()


async def _component(world: World, component_id: str) -> dict[str, Any]:
    """The component as a newcomer's ``STATE`` lists it."""
    newcomer = await RawClient.connect(world.hub)
    try:
        state = await newcomer.login("AI_Node_7", "secret7")
    finally:
        await newcomer.close()
    (found,) = [
        c for c in state["knowledge_base"]["recent_components"] if c["component_id"] == component_id
    ]
    return found


async def everyone_works_with_everyone(world: World, ais: list[int]) -> None:
    for i, a in enumerate(ais):
        await world.share(a, f"work-{a}")
        for b in ais[i + 1 :]:
            await world.collaborate(a, b)


async def listed(world: World, via: int = 1) -> dict[str, dict[str, Any]]:
    reply = await world.request(via, {"type": "LIST_AIS"})
    return {ai["ai_id"]: ai for ai in reply["ais"]}


async def test_an_established_clique_rating_the_honest_zero_is_discredited(world: World) -> None:
    """Three established accounts among nine (the sybil target's proportion) rate each other
    1 and every honest AI 0; the six honest AIs measured one another and the clique's work as
    useful. The clique's verdicts contradict every other rater of the honest AIs: it loses its
    weight (the honest keep their standing) and its own standing falls below the threshold,
    although every honest AI rated its work 1, so a trainer distrusts it without having been
    attacked. The honest, whose verdicts agree, keep full credibility."""
    honest, clique = [1, 2, 3, 4, 5], [6, 7, 8]
    await everyone_works_with_everyone(world, honest + clique)
    for rater in honest + clique:
        for other in honest + clique:
            if other == rater:
                continue
            value = 0.0 if rater in clique and other in honest else 1.0
            await world.rate(rater, f"work-{other}", value, usefulness=value)
    ais = await listed(world)
    for member in clique:
        ai = ais[f"AI_Node_{member}"]
        assert ai["credibility"] < INITIAL  # told to clients, so they cap their trust by it
        assert ai["reputation"] < THRESHOLD
        assert not trusted_by_reference_trainer(ai["reputation"])
        book = ReputationBook(initial=INITIAL)
        book.update("member", 1.0, measured=True)  # it treated this trainer well
        book.seed("member", ai["reputation"], ai["credibility"])
        assert book.get("member") < THRESHOLD
    for n in honest:
        ai = ais[f"AI_Node_{n}"]
        assert "credibility" not in ai  # full credibility is not sent
        assert ai["reputation"] >= THRESHOLD
        assert trusted_by_reference_trainer(ai["reputation"])


async def test_an_honest_ai_that_finds_everyone_costly_is_not_taken_for_the_clique(
    world: World,
) -> None:
    """An honest AI whose own validation data finds every partner's model costly (a shard of
    one class) rates everyone 0, the clique as well as the honest: it contradicts the other
    raters as much as the clique does, so its votes weigh nothing, but it does not spare the
    AIs the hub doubts, so it keeps its credibility and the standing its partners gave its
    work; trainers do not cap it. The clique, which rates its own 1, is still discredited."""
    honest, harsh, clique = [1, 2, 3, 4, 5], 6, [7, 8]
    await everyone_works_with_everyone(world, [*honest, harsh, *clique])
    for rater in [*honest, harsh, *clique]:
        for other in [*honest, harsh, *clique]:
            if other == rater:
                continue
            if rater == harsh:
                value = 0.0
            elif rater in clique:
                value = 1.0 if other in clique else 0.0
            else:
                value = 1.0
            await world.rate(rater, f"work-{other}", value, usefulness=value)
    ais = await listed(world)
    mine = ais[f"AI_Node_{harsh}"]
    assert "credibility" not in mine
    assert mine["reputation"] >= THRESHOLD
    assert trusted_by_reference_trainer(mine["reputation"])
    for member in clique:
        ai = ais[f"AI_Node_{member}"]
        assert ai["credibility"] < INITIAL
        assert ai["reputation"] < THRESHOLD
    for n in honest:
        assert "credibility" not in ais[f"AI_Node_{n}"]
        assert ais[f"AI_Node_{n}"]["reputation"] >= THRESHOLD


async def test_a_victim_reporting_its_poisoner_keeps_its_credibility(world: World) -> None:
    """An honest AI that one partner poisoned rates it 0 while the others rate it 1: the
    poisoner's other raters are the consensus, but one contradicted verdict among agreeing
    ones does not discredit the victim (nor anyone else)."""
    ais = [1, 2, 3, 4, 5, 6]
    victim, poisoner = 1, 6
    await everyone_works_with_everyone(world, ais)
    for rater in ais:
        for other in ais:
            if other != rater:
                value = 0.0 if (rater, other) == (victim, poisoner) else 1.0
                await world.rate(rater, f"work-{other}", value, usefulness=value)
    listing = await listed(world)
    assert all("credibility" not in listing[f"AI_Node_{n}"] for n in ais)
    assert listing[f"AI_Node_{victim}"]["reputation"] >= THRESHOLD
    # The poisoner's standing moves by the victim's voice, as before credibility existed
    # (every rater has four partners besides the one it rates: weight 4 / 6).
    weight = 4 / FULL_PARTNERS
    expected = prior_mean(*[(weight, 1.0)] * 4, (weight, 0.0))
    assert listing[f"AI_Node_{poisoner}"]["reputation"] == pytest.approx(expected)
