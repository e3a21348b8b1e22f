"""TRAINER_REPORT: a hub that takes it says so in STATE, stores it under the sender's identity
(never a field), ACKs it after commit, and refuses bad ones with an ERROR, storing nothing."""

from __future__ import annotations

import json

import pytest

from kernal.hub.server import Hub
from kernal.protocol.messages import MAX_TRUST_PEERS
from kernal.storage import TrainerReportRecord
from tests.helpers import RawClient, login


async def test_state_advertises_trainer_reports(hub: Hub) -> None:
    client = await RawClient.connect(hub)
    state = await client.login("AI_Node_1", "secret1")
    assert "trainer_report" in state["features"]
    await client.close()


async def test_report_is_stored_under_the_sender_and_acked(hub: Hub) -> None:
    client = await login(hub, "AI_Node_1")
    await client.send(
        {
            "type": "TRAINER_REPORT",
            "msg_id": "r1",
            "ai_id": "AI_Node_7",  # not a field of the frame: ignored
            "accuracy": 0.75,
            "local_only_accuracy": 0.5,
            "merges_kept": 2,
            "merges_rejected": 1,
            "trust": {"AI_Node_2": 0.25, "AI_Node_3": 1},
            "rejected": {"AI_Node_2": {"count": 3, "reason": "low reputation"}},
            "refused_merges": {"AI_Node_3": {"count": 2, "reason": "parameter norm 9.0x ours"}},
            "final": True,
        }
    )
    assert await client.recv() == {"type": "ACK", "ref": "r1", "of": "TRAINER_REPORT"}
    [stored] = await hub.store.trainer_reports()
    assert stored == TrainerReportRecord(
        ai_id="AI_Node_1",
        timestamp=stored.timestamp,
        accuracy=0.75,
        local_only_accuracy=0.5,
        merges_kept=2,
        merges_rejected=1,
        trust={"AI_Node_2": 0.25, "AI_Node_3": 1.0},
        rejected={"AI_Node_2": (3, "low reputation")},
        final=True,
        refused_merges={"AI_Node_3": (2, "parameter norm 9.0x ours")},
    )
    await client.close()


BAD_REPORTS: list[tuple[dict[str, object], str]] = [
    ({}, "accuracy"),
    ({"accuracy": 1.5}, "accuracy"),
    ({"accuracy": -0.1}, "accuracy"),
    ({"accuracy": "0.5"}, "accuracy"),
    ({"accuracy": 0.5, "local_only_accuracy": 2}, "local_only_accuracy"),
    ({"accuracy": 0.5, "merges_kept": -1}, "merges_kept"),
    ({"accuracy": 0.5, "merges_rejected": 0.5}, "merges_rejected"),
    ({"accuracy": 0.5, "trust": {"AI_Node_2": 1.01}}, "trust"),
    ({"accuracy": 0.5, "trust": {"bad id!": 0.5}}, "trust"),
    ({"accuracy": 0.5, "trust": [0.5]}, "trust"),
    ({"accuracy": 0.5, "trust": {f"p{i}": 0.5 for i in range(MAX_TRUST_PEERS + 1)}}, "trust"),
    ({"accuracy": 0.5, "trust": {"AI_Node_1": 0.9}}, "itself"),
    ({"accuracy": 0.5, "rejected": {"AI_Node_2": {"count": 0}}}, "rejected"),
    ({"accuracy": 0.5, "rejected": {"AI_Node_2": 4}}, "rejected"),
    ({"accuracy": 0.5, "rejected": {"AI_Node_2": {"count": 1, "reason": "x" * 200}}}, "rejected"),
    ({"accuracy": 0.5, "refused_merges": {"AI_Node_2": {"count": 0}}}, "refused_merges"),
    ({"accuracy": 0.5, "refused_merges": {"AI_Node_1": {"count": 1}}}, "itself"),
]


@pytest.mark.parametrize(("fields", "named"), BAD_REPORTS)
async def test_bad_report_gets_error_and_nothing_is_stored(
    hub: Hub, fields: dict[str, object], named: str
) -> None:
    client = await login(hub, "AI_Node_1")
    await client.send({"type": "TRAINER_REPORT", "msg_id": "bad", **fields})
    error = await client.recv()
    assert (error["type"], error["code"], error["ref"]) == ("ERROR", "invalid_field", "bad")
    assert named in error["error"], error
    await client.send({"type": "PING", "msg_id": "after"})
    assert await client.recv() == {"type": "PONG", "ref": "after"}
    assert await hub.store.trainer_reports() == []
    await client.close()


async def test_nan_accuracy_is_refused_by_the_codec(hub: Hub) -> None:
    client = await login(hub, "AI_Node_1")
    await client.send_bytes(b'{"type":"TRAINER_REPORT","accuracy":NaN}\n')
    assert (await client.recv())["code"] == "bad_json"
    await client.send_bytes(json.dumps({"type": "TRAINER_REPORT", "accuracy": 1e400}).encode())
    await client.send_bytes(b"\n")
    assert (await client.recv())["type"] == "ERROR"
    assert await hub.store.trainer_reports() == []
    await client.close()
