"""The collaboration lifecycle over real sockets, as recorded in the real database."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kernal.hub.server import Hub
from tests.helpers import RawClient, login, query


def _collab(hub: Hub, collaboration_id: str) -> dict[str, Any]:
    rows = query(
        hub, "SELECT * FROM collaborations WHERE collaboration_id = :id", id=collaboration_id
    )
    assert rows
    return dict(rows[0]._mapping)


async def _open(hub: Hub) -> tuple[RawClient, RawClient, str]:
    """AI_Node_1 requests, AI_Node_2 accepts; returns both clients and the collaboration id."""
    requester = await login(hub, "AI_Node_1", "networking")
    acceptor = await login(hub, "AI_Node_2", "graphics")
    await requester.send(
        {
            "type": "COLLABORATION_REQUEST",
            "msg_id": "q",
            "request_id": "r1",
            "expertise_offered": ["network_protocols"],
            "seeking_expertise": ["rendering"],
        }
    )
    assert (await requester.recv_type("ACK"))["ref"] == "q"
    request = await acceptor.recv_type("COLLABORATION_REQUEST")
    assert request["from"] == "AI_Node_1"
    assert request["specialization"] == "networking"
    assert request["seeking_expertise"] == ["rendering"]
    await acceptor.send(
        {"type": "COLLABORATION_ACCEPT", "msg_id": "a", "request_id": "r1", "to": "AI_Node_1"}
    )
    ack = await acceptor.recv_type("ACK")
    collaboration_id: str = ack["collaboration_id"]
    accepted = await requester.recv_type("COLLABORATION_ACCEPT")
    assert accepted == {
        "type": "COLLABORATION_ACCEPT",
        "from": "AI_Node_2",
        "request_id": "r1",
        "collaboration_id": collaboration_id,
    }
    return requester, acceptor, collaboration_id


async def test_full_lifecycle_completed_by_component(hub: Hub) -> None:
    requester, acceptor, cid = await _open(hub)
    assert (await hub.status()).active_collaborations == 1
    row = _collab(hub, cid)
    assert (row["requester"], row["acceptor"], row["status"]) == (
        "AI_Node_1",
        "AI_Node_2",
        "active",
    )
    assert json.loads(row["request"])["seeking_expertise"] == ["rendering"]

    for progress in (10, 50, 90):
        await acceptor.send(
            {"type": "COLLABORATION_PROGRESS", "collaboration_id": cid, "progress": progress}
        )
        await acceptor.recv_type("ACK")
        relayed = await requester.recv_type("COLLABORATION_PROGRESS")
        assert (relayed["from"], relayed["progress"]) == ("AI_Node_2", progress)
    assert hub.collaborations.progress_of(cid) == 90
    await asyncio.sleep(0.3)  # progress is stored in batches, every stats tick (0.1 s here)
    assert _collab(hub, cid)["progress"] == 90

    await acceptor.send(
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "feature-1",
            "component_data": {"built": True},
            "to": "AI_Node_1",
            "collaboration_id": cid,
            "collaboration_complete": True,
        }
    )
    await acceptor.recv_type("ACK")
    delivered = await requester.recv_type("OS_COMPONENT_SHARE")
    assert (delivered["collaboration_id"], delivered["collaboration_complete"]) == (cid, True)
    row = _collab(hub, cid)
    assert (row["status"], row["progress"]) == ("completed", 100)
    assert json.loads(row["outcome"]) == {"component_id": "feature-1"}
    assert row["ended_at"] >= row["started_at"]
    assert (await hub.status()).active_collaborations == 0

    # Once ended, nobody can speak on it any more.
    await acceptor.send({"type": "COLLABORATION_PROGRESS", "collaboration_id": cid, "progress": 5})
    assert (await acceptor.recv_type("ERROR"))["code"] == "not_found"
    await requester.close()
    await acceptor.close()


async def test_complete_and_failed_messages_are_recorded_and_relayed(hub: Hub) -> None:
    requester, acceptor, cid = await _open(hub)
    await requester.send(
        {"type": "COLLABORATION_COMPLETE", "collaboration_id": cid, "result": {"score": 0.9}}
    )
    await requester.recv_type("ACK")
    relayed = await acceptor.recv_type("COLLABORATION_COMPLETE")
    assert (relayed["from"], relayed["result"]) == ("AI_Node_1", {"score": 0.9})
    assert _collab(hub, cid)["status"] == "completed"

    await requester.send(
        {
            "type": "COLLABORATION_REQUEST",
            "request_id": "r2",
            "expertise_offered": [],
            "seeking_expertise": [],
        }
    )
    await acceptor.recv_type("COLLABORATION_REQUEST")
    await acceptor.send({"type": "COLLABORATION_ACCEPT", "request_id": "r2", "to": "AI_Node_1"})
    cid2 = (await acceptor.recv_type("ACK"))["collaboration_id"]
    await acceptor.send(
        {"type": "COLLABORATION_FAILED", "collaboration_id": cid2, "reason": "ran out of memory"}
    )
    await acceptor.recv_type("ACK")
    failed = await requester.recv_type("COLLABORATION_FAILED")
    assert (failed["from"], failed["reason"]) == ("AI_Node_2", "ran out of memory")
    row = _collab(hub, cid2)
    assert (row["status"], row["reason"]) == ("failed", "ran out of memory")
    await requester.close()
    await acceptor.close()


async def test_reject_is_relayed(hub: Hub) -> None:
    requester = await login(hub, "AI_Node_1")
    peer = await login(hub, "AI_Node_2")
    await requester.send({"type": "COLLABORATION_REQUEST", "request_id": "r1", "to": "AI_Node_2"})
    await peer.recv_type("COLLABORATION_REQUEST")
    await peer.send(
        {"type": "COLLABORATION_REJECT", "request_id": "r1", "to": "AI_Node_1", "reason": "busy"}
    )
    await peer.recv_type("ACK")
    rejected = await requester.recv_type("COLLABORATION_REJECT")
    assert (rejected["from"], rejected["request_id"], rejected["reason"]) == (
        "AI_Node_2",
        "r1",
        "busy",
    )
    await requester.close()
    await peer.close()


async def test_partner_disconnect_fails_the_collaboration(hub: Hub) -> None:
    requester, acceptor, cid = await _open(hub)
    await acceptor.close()
    failed = await requester.recv_type("COLLABORATION_FAILED")
    assert (failed["collaboration_id"], failed["from"]) == (cid, "AI_Node_2")
    assert "disconnected" in failed["reason"]
    row = _collab(hub, cid)
    assert row["status"] == "failed" and "AI_Node_2 disconnected" in row["reason"]
    assert (await hub.status()).active_collaborations == 0
    await requester.close()


async def test_only_members_may_speak(hub: Hub) -> None:
    requester, acceptor, cid = await _open(hub)
    outsider = await login(hub, "AI_Node_3")
    for frame in (
        {"type": "COLLABORATION_PROGRESS", "collaboration_id": cid, "progress": 50},
        {"type": "COLLABORATION_COMPLETE", "collaboration_id": cid},
        {"type": "COLLABORATION_FAILED", "collaboration_id": cid, "reason": "sabotage"},
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "evil",
            "component_data": {},
            "collaboration_id": cid,
            "collaboration_complete": True,
        },
    ):
        await outsider.send(frame)
        assert (await outsider.recv_type("ERROR"))["code"] == "forbidden"
    row = _collab(hub, cid)
    assert row["status"] == "active"
    assert tuple(query(hub, "SELECT COUNT(*) FROM shared_components")[0]) == (0,)
    for client in (requester, acceptor, outsider):
        await client.close()


async def test_accept_rules(hub: Hub) -> None:
    requester = await login(hub, "AI_Node_1")
    acceptor = await login(hub, "AI_Node_2")
    third = await login(hub, "AI_Node_3")
    await requester.send({"type": "COLLABORATION_REQUEST", "request_id": "r1"})
    await requester.recv_type("ACK")
    # Unknown request, own request, duplicate accept, and a request aimed at someone else.
    await acceptor.send({"type": "COLLABORATION_ACCEPT", "request_id": "nope", "to": "AI_Node_1"})
    assert (await acceptor.recv_type("ERROR"))["code"] == "not_found"
    await requester.send({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_1"})
    assert (await requester.recv_type("ERROR"))["code"] == "forbidden"
    await acceptor.send({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_1"})
    await acceptor.recv_type("ACK")
    await acceptor.send({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_1"})
    assert (await acceptor.recv_type("ERROR"))["code"] == "conflict"
    # A request finds one partner: the first accept wins, later ones are told who took it.
    await third.send({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_1"})
    taken = await third.recv_type("ERROR")
    assert taken["code"] == "conflict" and "already accepted by AI_Node_2" in taken["error"]
    await requester.send({"type": "COLLABORATION_REQUEST", "request_id": "r2", "to": "AI_Node_2"})
    await requester.recv_type("ACK")
    await third.send({"type": "COLLABORATION_ACCEPT", "request_id": "r2", "to": "AI_Node_1"})
    assert (await third.recv_type("ERROR"))["code"] == "forbidden"
    assert (await hub.status()).active_collaborations == 1
    for client in (requester, acceptor, third):
        await client.close()


async def test_stats_snapshots_are_recorded(hub: Hub) -> None:
    # The fixture hub runs at speed 50: a 5 s stats interval is 0.1 s.
    requester, acceptor, _ = await _open(hub)
    await asyncio.sleep(0.35)
    history = await hub.store.stats_history()
    assert len(history) >= 2
    assert history[-1].connected_ais == 2
    assert history[-1].active_collaborations == 1
    await requester.close()
    await acceptor.close()


async def test_restart_marks_leftover_collaborations_failed(hub: Hub, make_hub: Any) -> None:
    requester, acceptor, cid = await _open(hub)
    requester.writer.transport.abort()
    acceptor.writer.transport.abort()
    await hub.stop()
    restarted = await make_hub(db=hub.settings.db)
    assert (await restarted.status()).active_collaborations == 0
    assert _collab(restarted, cid)["status"] == "failed"


async def test_component_on_a_collaboration_needs_membership_and_the_partner(hub: Hub) -> None:
    requester, acceptor, cid = await _open(hub)
    outsider = await login(hub, "AI_Node_3")
    share = {"type": "OS_COMPONENT_SHARE", "component_id": "x", "component_data": {}}
    await outsider.send({**share, "collaboration_id": cid})
    assert (await outsider.recv_type("ERROR"))["code"] == "forbidden"
    await acceptor.send(
        {**share, "collaboration_id": cid, "collaboration_complete": True, "to": "AI_Node_3"}
    )
    error = await acceptor.recv_type("ERROR")
    assert error["code"] == "forbidden" and "partner AI_Node_1" in error["error"]
    assert _collab(hub, cid)["status"] == "active"
    assert tuple(query(hub, "SELECT COUNT(*) FROM shared_components")[0]) == (0,)
    for client in (requester, acceptor, outsider):
        await client.close()


async def test_request_to_yourself_is_refused(hub: Hub) -> None:
    client = await login(hub, "AI_Node_1")
    await client.send({"type": "COLLABORATION_REQUEST", "request_id": "r", "to": "AI_Node_1"})
    assert (await client.recv_type("ERROR"))["code"] == "forbidden"
    await client.close()


async def test_a_run_of_requests_reaches_everyone_in_order_and_counted(hub: Hub) -> None:
    """Requests to everyone that arrive together leave as one write per recipient (queued
    together, see Peers.send_to_many); a request to one AI and a share in the middle of the
    run still reach each recipient exactly where they were sent, and every copy is counted."""
    sender = await login(hub, "AI_Node_1", "networking")
    two = await login(hub, "AI_Node_2", "graphics")
    three = await login(hub, "AI_Node_3", "audio")
    before = hub.counters.frames_out[b"COLLABORATION_REQUEST"]

    def request(n: int, to: str | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "COLLABORATION_REQUEST", "request_id": f"r{n}"}
        return frame if to is None else {**frame, "to": to}

    sent = [request(n) for n in range(20)] + [request(20, to="AI_Node_2")]
    sent += [request(n) for n in range(21, 26)]
    sent += [{"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": {"w": 1}}]
    sent += [request(n) for n in range(26, 31)]
    try:
        await sender.send_bytes(b"".join(json.dumps(f).encode() + b"\n" for f in sent))
        for client, name in ((two, "AI_Node_2"), (three, "AI_Node_3")):
            expected = [
                f.get("request_id", f.get("pattern_id"))
                for f in sent
                if f.get("to") in (None, name)
            ]
            got = []
            while len(got) < len(expected):
                frame = await client.recv()
                if frame["type"] in ("COLLABORATION_REQUEST", "PATTERN_SHARE"):
                    assert frame["from"] == "AI_Node_1"
                    got.append(frame.get("request_id", frame.get("pattern_id")))
            assert got == expected
        acks = [await sender.recv_type("ACK") for _ in sent]
        assert len(acks) == len(sent)
    finally:
        for client in (sender, two, three):
            await client.close()
    if getattr(hub, "settle", None) is None:  # one hub (as one hub, replicas count their own)
        assert hub.counters.frames_out[b"COLLABORATION_REQUEST"] - before == 30 * 2 + 1


async def test_a_run_of_requests_answers_each_in_order_errors_included(hub: Hub) -> None:
    """A run of requests is carried out together (Router.requests): each still gets its own
    ACK or ERROR, in the order sent, and only the valid ones are relayed and booked."""
    sender = await login(hub, "AI_Node_1", "networking")
    peer = await login(hub, "AI_Node_2", "graphics")
    sent = [
        {"type": "COLLABORATION_REQUEST", "msg_id": "q1", "request_id": "r1"},
        {"type": "COLLABORATION_REQUEST", "msg_id": "q2", "request_id": "r2", "to": "AI_Node_1"},
        {"type": "COLLABORATION_REQUEST", "msg_id": "q3", "request_id": "r3", "to": "AI_Nobody"},
        {"type": "COLLABORATION_REQUEST", "msg_id": "q4", "request_id": "r4", "to": "AI_Node_2"},
        {"type": "COLLABORATION_REQUEST", "msg_id": "q5", "request_id": "r5"},
    ]
    try:
        await sender.send_bytes(b"".join(json.dumps(f).encode() + b"\n" for f in sent))
        replies: list[dict[str, Any]] = []
        while len(replies) < len(sent):
            frame = await sender.recv()
            if frame["type"] in ("ACK", "ERROR"):  # not AI_Node_2's AI_JOINED
                replies.append(frame)
        assert [(r["type"], r.get("ref"), r.get("code")) for r in replies] == [
            ("ACK", "q1", None),
            ("ERROR", "q2", "forbidden"),
            ("ERROR", "q3", "not_found"),
            ("ACK", "q4", None),
            ("ACK", "q5", None),
        ]
        assert [r.get("id") for r in replies if r["type"] == "ACK"] == ["r1", "r4", "r5"]
        relayed = [await peer.recv_type("COLLABORATION_REQUEST") for _ in range(3)]
        assert [r["request_id"] for r in relayed] == ["r1", "r4", "r5"]
        for frame in relayed:
            assert frame["from"] == "AI_Node_1"
            assert frame["specialization"] == "networking"
            assert frame["expertise_offered"] == [] and frame["seeking_expertise"] == []
            assert "to" not in frame and "msg_id" not in frame
        # Only the relayed ones were booked: r4 may be accepted, r2 never existed.
        await peer.send(
            {"type": "COLLABORATION_ACCEPT", "msg_id": "a", "request_id": "r4", "to": "AI_Node_1"}
        )
        assert (await peer.recv_type("ACK"))["ref"] == "a"
        await peer.send(
            {"type": "COLLABORATION_ACCEPT", "msg_id": "b", "request_id": "r2", "to": "AI_Node_1"}
        )
        assert (await peer.recv_type("ERROR"))["code"] == "not_found"
    finally:
        for client in (sender, peer):
            await client.close()
