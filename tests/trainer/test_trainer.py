"""Reference trainers against a real hub over TCP, at high speed."""

from __future__ import annotations

import asyncio
from typing import Any

from kernal.config import TrainerSettings
from kernal.hub.server import Hub
from kernal.trainer.trainer import Trainer
from tests.conftest import HubFactory
from tests.helpers import login

SPEED = 100.0


def _trainer(hub: Hub, n: int, specialization: str, **options: Any) -> Trainer:
    settings = TrainerSettings(
        ai_id=f"AI_Node_{n}",
        specialization=specialization,
        token=options.pop("token", f"secret{n}"),
        hub_host=hub.address[0],
        hub_port=hub.address[1],
        speed=options.pop("speed", SPEED),
        seed=options.pop("seed", 1),
        engine=options.pop("engine", "simulated"),  # protocol behaviour, not learning
        **options,
    )
    return Trainer(settings)


async def test_two_trainers_share_and_collaborate(make_hub: HubFactory) -> None:
    hub = await make_hub(speed=SPEED)
    one, two = _trainer(hub, 1, "networking"), _trainer(hub, 2, "graphics")
    results = await asyncio.gather(one.run(duration=150), two.run(duration=150))
    for trainer, result in zip((one, two), results, strict=True):
        assert trainer.succeeded(), result
        assert result.patterns_shared == 3 and result.components_shared == 2
        assert result.collaborations_completed >= 1
        assert result.hub_errors == []
    assert results[0].trust.scores["AI_Node_2"] > 0.5
    assert results[1].trust.scores["AI_Node_1"] > 0.5
    status = await hub.status()
    assert status.shared_patterns == 6
    # 4 shared components plus one per completed collaboration.
    completed = await hub.store.list_collaborations()
    assert status.shared_components == 4 + sum(c.status == "completed" for c in completed)


async def test_learning_trainers_tell_the_hub_the_usefulness_they_measured(
    make_hub: HubFactory,
) -> None:
    # Half the usual speed: a learning engine trains for real, and 1.5 s of a loaded CI
    # machine was once too short for both trainers to share everything they planned.
    hub = await make_hub(speed=SPEED / 2)
    one = _trainer(hub, 1, "networking", engine="learning", speed=SPEED / 2)
    two = _trainer(hub, 2, "graphics", engine="learning", speed=SPEED / 2)
    await asyncio.gather(one.run(duration=150), two.run(duration=150))
    assert one.succeeded(), one.failure_reason()
    assert two.succeeded(), two.failure_reason()
    measured = {*one.stats.assessments, *two.stats.assessments}
    ratings = [r for r in await hub.store.ratings() if r.vote.usefulness is not None]
    assert ratings, "no FEEDBACK with usefulness reached the hub"
    for rating in ratings:
        assert {rating.rater, rating.contributor} == {"AI_Node_1", "AI_Node_2"}
        assert rating.vote.usefulness in measured  # the merge outcome the engine measured


async def test_trust_threshold_rejects_unknown_peers(make_hub: HubFactory) -> None:
    hub = await make_hub(speed=SPEED)
    picky = _trainer(hub, 1, "networking", trust_threshold=0.9)
    asker = _trainer(hub, 2, "graphics")
    await asyncio.gather(picky.run(duration=40), asker.run(duration=40))
    assert picky.stats.requests_rejected >= 1
    assert asker.stats.rejections_received >= 1
    assert picky.stats.requests_accepted == 0


async def test_partner_lost_midway_lowers_its_reputation(make_hub: HubFactory) -> None:
    hub = await make_hub(speed=SPEED)
    trainer = _trainer(hub, 1, "networking")
    task = asyncio.create_task(trainer.run())
    peer = await login(hub, "AI_Node_2", "graphics")
    request = await peer.recv_type("COLLABORATION_REQUEST", timeout=10)
    await peer.send(
        {"type": "COLLABORATION_ACCEPT", "request_id": request["request_id"], "to": "AI_Node_1"}
    )
    await peer.recv_type("ACK")
    await asyncio.sleep(0.05)
    assert len(trainer.active) == 1
    await peer.close()  # the partner vanishes mid-way
    for _ in range(100):
        if trainer.stats.collaborations_failed:
            break
        await asyncio.sleep(0.02)
    assert trainer.stats.collaborations_failed == 1
    assert trainer.reputation.get("AI_Node_2") < 0.5
    trainer.stop()
    await task


async def test_bad_token_stops_without_retrying(hub: Hub) -> None:
    trainer = _trainer(hub, 1, "networking", token="wrong")
    result = await asyncio.wait_for(trainer.run(duration=1000), 10)
    assert "invalid token" in (result.auth_error or "")
    assert not result.connected
    assert not trainer.succeeded()


async def test_trainer_reconnects_after_hub_restart(make_hub: HubFactory) -> None:
    hub = await make_hub(speed=SPEED)
    port = hub.address[1]
    trainer = _trainer(hub, 1, "networking")
    task = asyncio.create_task(trainer.run())
    await asyncio.wait_for(trainer.client.connected.wait(), 5)
    await hub.stop()
    await asyncio.sleep(0.3)
    restarted = await make_hub(speed=SPEED, port=port, db=hub.settings.db)
    for _ in range(200):
        if trainer.client.connections >= 2 and trainer.stats.patterns_shared == 3:
            break
        await asyncio.sleep(0.05)
    assert trainer.client.connections >= 2
    assert "AI_Node_1" in restarted.peers.sessions()
    trainer.stop()
    result = await task
    assert result.reconnects >= 1
    # Nothing was lost or duplicated across the restart.
    patterns = await restarted.store.recent_patterns(100)
    assert len(patterns) == result.patterns_shared


async def test_replaced_trainer_does_not_fight_back(hub: Hub) -> None:
    first = _trainer(hub, 1, "networking")
    first_task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.client.connected.wait(), 5)
    second = _trainer(hub, 1, "networking")
    second_task = asyncio.create_task(second.run())
    await asyncio.wait_for(second.client.connected.wait(), 5)
    await asyncio.sleep(0.5)
    assert first.client.connections == 1 and not first.client.connected.is_set()
    assert second.client.connections == 1 and second.client.connected.is_set()
    second.stop()
    first.stop()
    await asyncio.gather(first_task, second_task)


async def test_a_quiet_client_stays_connected_past_the_idle_timeout(make_hub: HubFactory) -> None:
    from kernal.trainer.client import HubClient

    hub = await make_hub(idle_timeout=0.3)
    client = HubClient(
        *hub.address, "AI_Node_1", "secret1", specialization="networking", capabilities=[]
    )
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(client.connected.wait(), 5)
    await asyncio.sleep(1.0)  # several idle timeouts without a frame of its own
    assert client.connections == 1 and "AI_Node_1" in hub.peers
    await client.close()
    await asyncio.wait_for(task, 5)


async def test_a_threshold_above_the_initial_reputation_warns_at_start(
    make_hub: HubFactory, caplog: Any
) -> None:
    hub = await make_hub(speed=SPEED)
    caplog.set_level("WARNING", logger="kernal")
    trapped = _trainer(hub, 1, "networking", trust_threshold=0.6)
    await trapped.run(duration=5)
    warnings = [r.getMessage() for r in caplog.records if "initial reputation" in r.getMessage()]
    assert len(warnings) == 1
    assert "AI_Node_1" in warnings[0] and "--trust-threshold" in warnings[0]
    caplog.clear()
    await _trainer(hub, 2, "graphics").run(duration=5)
    assert not [r for r in caplog.records if "initial reputation" in r.getMessage()]
