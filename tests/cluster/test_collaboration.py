"""Collaborations between trainers on different replicas: the requester's replica holds the
book; the partner's messages are forwarded to it and answered through it."""

from __future__ import annotations

from typing import Any

from kernal.serve import Service
from kernal.storage import CollaborationStatus
from tests.cluster.conftest import ReplicaFactory
from tests.cluster.test_presence import crash
from tests.cluster.test_relay import join, seen_all
from tests.helpers import RawClient


async def two(make_replica: ReplicaFactory) -> list[Service]:
    replicas = [await make_replica() for _ in range(2)]
    return replicas


async def open_across(
    replicas: list[Service], clients: list[RawClient]
) -> tuple[RawClient, RawClient, str]:
    """AI_Node_1 on r1 requests, AI_Node_2 on r2 accepts."""
    requester = await join(replicas[0], "AI_Node_1", clients, "networking")
    acceptor = await join(replicas[1], "AI_Node_2", clients, "graphics")
    await seen_all(replicas, 2)
    await requester.send(
        {
            "type": "COLLABORATION_REQUEST",
            "msg_id": "q",
            "request_id": "r1",
            "expertise_offered": ["a"],
            "seeking_expertise": ["b"],
            "to": "AI_Node_2",
        }
    )
    assert (await requester.recv_type("ACK"))["ref"] == "q"
    assert (await acceptor.recv_type("COLLABORATION_REQUEST"))["request_id"] == "r1"
    await acceptor.send(
        {"type": "COLLABORATION_ACCEPT", "msg_id": "a", "request_id": "r1", "to": "AI_Node_1"}
    )
    ack = await acceptor.recv_type("ACK")
    assert ack["ref"] == "a"
    cid: str = ack["collaboration_id"]
    accepted = await requester.recv_type("COLLABORATION_ACCEPT")
    assert (accepted["from"], accepted["collaboration_id"]) == ("AI_Node_2", cid)
    return requester, acceptor, cid


async def status_of(service: Service, cid: str) -> Any:
    record = await service.hub.store.get_collaboration(cid)
    assert record is not None
    return record.status


async def test_a_collaboration_across_replicas_runs_to_completion(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await two(make_replica)
    requester, acceptor, cid = await open_across(replicas, clients)

    await acceptor.send(
        {"type": "COLLABORATION_PROGRESS", "msg_id": "p", "collaboration_id": cid, "progress": 40}
    )
    assert (await acceptor.recv_type("ACK"))["ref"] == "p"
    progress = await requester.recv_type("COLLABORATION_PROGRESS")
    assert (progress["from"], progress["progress"]) == ("AI_Node_2", 40)

    await requester.send(
        {"type": "COLLABORATION_PROGRESS", "msg_id": "p2", "collaboration_id": cid, "progress": 60}
    )
    assert (await requester.recv_type("ACK"))["ref"] == "p2"
    assert (await acceptor.recv_type("COLLABORATION_PROGRESS"))["from"] == "AI_Node_1"

    # A second accept of the same request is refused by the owner, through the forwarder.
    await acceptor.send(
        {"type": "COLLABORATION_ACCEPT", "msg_id": "a2", "request_id": "r1", "to": "AI_Node_1"}
    )
    error = await acceptor.recv_type("ERROR")
    assert (error["code"], error["ref"]) == ("conflict", "a2")

    await acceptor.send(
        {
            "type": "COLLABORATION_COMPLETE",
            "msg_id": "c",
            "collaboration_id": cid,
            "result": {"ok": True},
        }
    )
    assert (await acceptor.recv_type("ACK"))["ref"] == "c"
    assert (await requester.recv_type("COLLABORATION_COMPLETE"))["from"] == "AI_Node_2"
    assert await status_of(replicas[1], cid) == CollaborationStatus.COMPLETED
    assert len(replicas[0].hub.collaborations) == 0

    await acceptor.send(
        {"type": "COLLABORATION_PROGRESS", "msg_id": "late", "collaboration_id": cid, "progress": 1}
    )
    late = await acceptor.recv_type("ERROR")
    assert (late["code"], late["ref"]) == ("not_found", "late")


async def test_a_dead_partner_replica_fails_the_collaboration_for_the_survivor(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await two(make_replica)
    requester, _, cid = await open_across(replicas, clients)
    await crash(replicas[1])
    failed = await requester.recv_type("COLLABORATION_FAILED", timeout=10)
    assert (failed["collaboration_id"], failed["from"]) == (cid, "AI_Node_2")
    assert await status_of(replicas[0], cid) == CollaborationStatus.FAILED


async def test_a_dead_owner_replica_fails_the_collaboration_for_the_survivor(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await two(make_replica)
    _, acceptor, cid = await open_across(replicas, clients)
    await crash(replicas[0])
    failed = await acceptor.recv_type("COLLABORATION_FAILED", timeout=10)
    assert (failed["collaboration_id"], failed["from"]) == (cid, "AI_Node_1")
    assert await status_of(replicas[1], cid) == CollaborationStatus.FAILED
    await acceptor.send(
        {"type": "COLLABORATION_PROGRESS", "msg_id": "p", "collaboration_id": cid, "progress": 5}
    )
    assert (await acceptor.recv_type("ERROR"))["code"] == "not_found"


async def test_a_partner_elsewhere_completes_it_with_a_component(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await two(make_replica)
    requester, acceptor, cid = await open_across(replicas, clients)
    await acceptor.send(
        {
            "type": "OS_COMPONENT_SHARE",
            "msg_id": "k",
            "component_id": "k1",
            "component_data": {"code": "x"},
            "collaboration_id": cid,
            "collaboration_complete": True,
            "to": "AI_Node_1",
        }
    )
    ack = await acceptor.recv_type("ACK")
    assert (ack["ref"], ack["id"]) == ("k", "k1")
    relayed = await requester.recv_type("OS_COMPONENT_SHARE")
    assert (relayed["component_id"], relayed["from"]) == ("k1", "AI_Node_2")
    assert await status_of(replicas[0], cid) == CollaborationStatus.COMPLETED
    assert (await replicas[1].hub.store.counts()).shared_components == 1


async def test_a_partner_leaving_another_replica_fails_it_for_the_owner_s_member(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await two(make_replica)
    requester, acceptor, cid = await open_across(replicas, clients)
    await acceptor.close()
    failed = await requester.recv_type("COLLABORATION_FAILED")
    assert (failed["collaboration_id"], failed["from"]) == (cid, "AI_Node_2")
    assert "disconnected" in failed["reason"]
    assert len(replicas[0].hub.collaborations) == 0
    assert await status_of(replicas[0], cid) == CollaborationStatus.FAILED


async def test_the_requester_leaving_fails_it_for_the_partner_elsewhere(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await two(make_replica)
    requester, acceptor, cid = await open_across(replicas, clients)
    await requester.close()
    failed = await acceptor.recv_type("COLLABORATION_FAILED")
    assert (failed["collaboration_id"], failed["from"]) == (cid, "AI_Node_1")
    assert await status_of(replicas[1], cid) == CollaborationStatus.FAILED
    cluster = replicas[1].hub.cluster
    assert cluster is not None
    assert cluster.owner_of_collaboration(cid) is None  # told, so nothing left to fail later
