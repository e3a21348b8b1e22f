"""The cluster on the NATS bus (``--bus nats://``, JetStream for the heartbeat keys): the same
scenarios as over Redis, run again with every replica on the real NATS at
``$KERNAL_TEST_NATS_URL`` (default ``nats://127.0.0.1:4222``)."""

from __future__ import annotations

import functools
import os

import pytest

from kernal.hub.bus import open_bus
from kernal.hub.nats_bus import NatsBus, subject_of
from tests.cluster import test_collaboration as collaboration
from tests.cluster import test_presence as presence
from tests.cluster import test_relay as relay
from tests.cluster import test_reputation as reputation
from tests.cluster import test_status as status
from tests.cluster.conftest import ReplicaFactory
from tests.helpers import RawClient

NATS_URL = os.environ.get("KERNAL_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
def on_nats(make_replica: ReplicaFactory) -> ReplicaFactory:
    return functools.partial(make_replica, bus=NATS_URL)


def test_every_channel_of_a_namespace_is_one_subject() -> None:
    assert isinstance(open_bus(NATS_URL), NatsBus)
    assert subject_of("kt_1:all") == subject_of("kt_1:r:r2") == "kernal.bus.kt_1"
    assert subject_of("kt_2:all") != subject_of("kt_1:all")


async def test_shares(on_nats: ReplicaFactory, clients: list[RawClient]) -> None:
    await relay.test_a_share_reaches_every_replica_once_and_is_stored_once(on_nats, clients)


async def test_requests(on_nats: ReplicaFactory, clients: list[RawClient]) -> None:
    await relay.test_requests_to_everyone_and_to_one_ai_cross_replicas(on_nats, clients)


async def test_presence(on_nats: ReplicaFactory, clients: list[RawClient]) -> None:
    await presence.test_state_and_arrivals_and_departures_span_the_cluster(on_nats, clients)


async def test_takeover(on_nats: ReplicaFactory, clients: list[RawClient]) -> None:
    await presence.test_the_same_ai_on_another_replica_takes_over(on_nats, clients)


async def test_a_dead_replica(on_nats: ReplicaFactory, clients: list[RawClient]) -> None:
    await presence.test_a_dead_replica_s_ais_leave_and_its_trainers_move(on_nats, clients)


async def test_collaboration(on_nats: ReplicaFactory, clients: list[RawClient]) -> None:
    await collaboration.test_a_collaboration_across_replicas_runs_to_completion(on_nats, clients)


async def test_status_and_a_death(on_nats: ReplicaFactory, clients: list[RawClient]) -> None:
    await status.test_every_replica_reports_the_same_cluster(on_nats, clients)


async def test_standings(on_nats: ReplicaFactory, clients: list[RawClient]) -> None:
    await reputation.test_a_vote_on_one_replica_moves_the_standing_every_replica_reports(
        on_nats, clients
    )
