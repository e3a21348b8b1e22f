"""Limits on what one client controls: rates (blank lines too), connections, failed logins,
idle connections, data size, collaborations; the abuser pays, nobody else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from kernal.hub.limits import AddressBook, RateLimits, Throttle, TokenBucket
from tests.conftest import HubFactory
from tests.helpers import RawClient, login

OPEN: list[RawClient] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while OPEN:
        await OPEN.pop().close()


async def joined(hub: object, n: int) -> RawClient:
    client = await login(hub, f"AI_Node_{n}")  # type: ignore[arg-type]
    OPEN.append(client)
    return client


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------- pure


def test_token_bucket_waits_for_what_it_lacks() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take(1) for _ in range(5)] == [0.0] * 5
    assert bucket.take(1) == pytest.approx(0.1)  # one token short, at 10 per second
    clock.now += 1.0
    assert bucket.take(5) == 0.0  # refilled (capped at the burst)
    assert TokenBucket(rate=0, burst=0, clock=clock).take(10**9) == 0.0  # off


def test_throttle_calls_it_abuse_only_when_it_lasts() -> None:
    clock = FakeClock()
    throttle = Throttle(RateLimits(10, 10, 0, 0, abuse_seconds=2.0), clock)
    assert throttle.charge(10, 100) == (0.0, False)
    wait, abusive = throttle.charge(10, 100)
    assert wait == pytest.approx(1.0) and not abusive
    clock.now += 1.0
    assert not throttle.charge(20, 100)[1]  # over the limits for 1 s only
    clock.now += 1.5
    assert throttle.charge(20, 100)[1]  # over them for 2.5 s without a break: abuse
    clock.now += 100
    assert throttle.charge(1, 1) == (0.0, False)  # a break clears it


def test_failed_logins_back_off_per_ai_and_address_and_floods_per_address() -> None:
    clock = FakeClock()
    book = AddressBook(
        max_connections=0,
        max_per_address=0,
        backoff_initial=1.0,
        backoff_max=4.0,
        failures_per_second=1,
        failure_burst=3,
        clock=clock,
    )
    for expected in (1.0, 2.0, 4.0, 4.0):
        book.failed("10.0.0.1", "AI_X")
        assert book.wait_before_login("10.0.0.1", "AI_X") >= expected
        clock.now += 10
    assert book.wait_before_login("10.0.0.1", "AI_Y") == 0.0  # another AI from there: fine
    assert book.wait_before_login("10.0.0.2", "AI_X") == 0.0  # another address: fine
    book.succeeded("10.0.0.1", "AI_X")
    assert book.wait_before_login("10.0.0.1", "AI_X") == 0.0
    for n in range(6):  # a flood of failures for many ids: the whole address waits
        book.failed("10.0.0.3", f"AI_{n}")
    assert book.wait_before_login("10.0.0.3", "AI_honest") > 0


def test_connections_in_all_and_per_address() -> None:
    book = AddressBook(max_connections=3, max_per_address=2)
    assert book.admit("a") is None and book.admit("a") is None
    assert "too many connections from a" in (book.admit("a") or "")
    assert book.admit("b") is None
    assert "full" in (book.admit("c") or "")
    book.release("a")
    assert book.admit("c") is None


# ---------------------------------------------------------------------- against a hub


async def test_a_pipelining_client_is_slowed_not_dropped(make_hub: HubFactory) -> None:
    hub = await make_hub(rate_frames=100, rate_frame_burst=50)
    client = await joined(hub, 1)
    await client.send_bytes(b"".join(b'{"type":"PING","msg_id":"%d"}\n' % n for n in range(150)))
    frames = [await client.recv(timeout=10) for _ in range(151)]
    errors = [f for f in frames if f["type"] == "ERROR"]
    assert [e["code"] for e in errors] == ["rate_limited"]
    assert "slow down" in errors[0]["error"]
    assert [f["ref"] for f in frames if f["type"] == "PONG"] == [str(n) for n in range(150)]


async def test_sustained_abuse_is_disconnected_and_others_are_served(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(rate_frames=50, rate_frame_burst=20, abuse_seconds=0.5)
    honest = await joined(hub, 2)
    abuser = await RawClient.connect(hub)
    OPEN.append(abuser)
    await abuser.send_bytes(b'{"ai_id":"AI_Node_1","token":"secret1"}\n')
    assert (await abuser.recv())["type"] == "AUTH_OK"
    blank_flood = b"\n" * 65536  # blank lines count as frames

    async def flood() -> None:
        try:
            for _ in range(200):
                await abuser.send_bytes(blank_flood)
        except (ConnectionError, OSError):
            pass

    flooding = asyncio.create_task(flood())
    await honest.send({"type": "PING", "msg_id": "still-here"})
    assert (await honest.recv_type("PONG", timeout=10))["ref"] == "still-here"
    codes = []
    try:
        while True:
            frame = await abuser.recv(timeout=10)
            codes.append((frame["code"], "disconnecting" in frame["error"]))
    except ConnectionError:
        pass
    assert codes == [("rate_limited", False), ("rate_limited", True)]
    flooding.cancel()
    await asyncio.gather(flooding, return_exceptions=True)


async def test_connections_per_address_are_limited(make_hub: HubFactory) -> None:
    hub = await make_hub(max_connections_per_address=2)
    await joined(hub, 1)
    await joined(hub, 2)
    third = await RawClient.connect(hub)
    OPEN.append(third)
    refusal = await third.recv()
    assert refusal["code"] == "rate_limited" and "too many connections" in refusal["error"]
    await third.expect_closed()


async def test_wrong_token_and_unknown_ai_get_the_same_answer(make_hub: HubFactory) -> None:
    from kernal.hub.auth import hash_token

    hub = await make_hub()
    await hub.store.set_token_hash("AI_Known", hash_token("right", iterations=1000), 0.0)
    answers = []
    for ai_id in ("AI_Known", "AI_Unknown"):
        client = await RawClient.connect(hub)
        OPEN.append(client)
        await client.send({"ai_id": ai_id, "token": "wrong"})
        answers.append((await client.recv())["error"].replace(ai_id, "<id>"))
    assert answers[0] == answers[1]


async def test_failed_logins_wait_longer_each_time(make_hub: HubFactory) -> None:
    hub = await make_hub()
    for _ in range(3):
        client = await RawClient.connect(hub)
        OPEN.append(client)
        await client.send({"ai_id": "AI_Node_1", "token": "wrong"})
        assert (await client.recv())["type"] == "AUTH_FAILED"
    services = hub._services
    assert services.addresses.wait_before_login("127.0.0.1", "AI_Node_1") > 0.5
    # The right token still gets in, after the wait, and clears it.
    good = await RawClient.connect(hub)
    OPEN.append(good)
    await good.send({"ai_id": "AI_Node_1", "token": "secret1"})
    assert (await good.recv(timeout=10))["type"] == "AUTH_OK"
    assert services.addresses.wait_before_login("127.0.0.1", "AI_Node_1") == 0.0


async def test_idle_connections_are_closed_and_ping_keeps_one(make_hub: HubFactory) -> None:
    hub = await make_hub(idle_timeout=0.4)
    quiet = await joined(hub, 1)
    pinger = await joined(hub, 2)
    state_says = await RawClient.connect(hub)
    OPEN.append(state_says)
    assert (await state_says.login("AI_Node_3", "secret3"))["idle_timeout"] == 0.4
    for n in range(6):
        await asyncio.sleep(0.15)
        await pinger.send({"type": "PING", "msg_id": str(n)})
        await pinger.recv_type("PONG")
    error = await quiet.recv_type("ERROR", timeout=5)
    assert error["code"] == "idle_timeout"
    await quiet.expect_closed()


async def test_data_larger_than_the_limit_is_refused_and_not_stored(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(max_data_bytes=1000)
    client = await joined(hub, 1)
    await client.send(
        {
            "type": "PATTERN_SHARE",
            "msg_id": "m",
            "pattern_id": "big",
            "pattern_data": {"x": "y" * 2000},
        }
    )
    error = await client.recv_type("ERROR")
    assert (error["code"], error["ref"]) == ("invalid_field", "m")
    assert error["error"].startswith("pattern_data")
    assert await hub.store.get_pattern("big") is None


async def test_collaborations_per_ai_are_limited_and_a_resent_request_stays_taken(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(max_collaborations_per_ai=1)
    one, two, three = [await joined(hub, n) for n in (1, 2, 3)]
    for request_id in ("r1", "r1", "r2"):  # r1 twice: re-sent after it was taken
        await one.send({"type": "COLLABORATION_REQUEST", "request_id": request_id})
        await one.recv_type("ACK")
    await two.send({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_1"})
    assert "collaboration_id" in await two.recv_type("ACK")
    await three.send({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_1"})
    assert (await three.recv_type("ERROR"))["code"] == "conflict"
    await three.send({"type": "COLLABORATION_ACCEPT", "request_id": "r2", "to": "AI_Node_1"})
    error = await three.recv_type("ERROR")
    assert error["code"] == "forbidden" and "AI_Node_1 is already in 1" in error["error"]
    assert (await hub.status()).active_collaborations == 1


async def test_a_collaboration_nobody_speaks_on_fails_for_both_members(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(collaboration_timeout=0.3, stats_interval=0.5)
    one, two = [await joined(hub, n) for n in (1, 2)]
    await one.send({"type": "COLLABORATION_REQUEST", "request_id": "r1"})
    await one.recv_type("ACK")
    await two.send({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_1"})
    collaboration_id = (await two.recv_type("ACK"))["collaboration_id"]
    assert (await hub.status()).active_collaborations == 1
    for member in (one, two):  # silent on it: the hub fails it and tells each member
        failed = await member.recv_type("COLLABORATION_FAILED", timeout=10)
        assert failed["collaboration_id"] == collaboration_id
        assert "no member spoke on it" in failed["reason"]
    assert (await hub.status()).active_collaborations == 0
    record = await hub.store.get_collaboration(collaboration_id)
    assert record is not None and record.status == "failed"


async def _flood_blank_lines(client: RawClient, chunks: int) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        for _ in range(chunks):
            await client.send_bytes(b"\n" * 65536)


async def test_blank_lines_before_login_are_paced_and_end_with_the_auth_timeout(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(rate_frames=1000, rate_frame_burst=1000, auth_timeout=1.5)
    honest = await joined(hub, 2)
    flooder = await RawClient.connect(hub)
    OPEN.append(flooder)
    flooding = asyncio.create_task(_flood_blank_lines(flooder, 300))  # 19.7M blank lines
    await asyncio.sleep(0.3)
    await honest.send({"type": "PING", "msg_id": "still-here"})
    assert (await honest.recv_type("PONG", timeout=10))["ref"] == "still-here"
    (session,) = [s for s in hub._sessions if s.ai_id is None]
    await asyncio.sleep(0.5)
    # Paced like frames: the hub stopped reading it (TCP pushes back on the flooder) instead of
    # scanning everything it sent while its session waits.
    read = session.conn._framer.blank_lines
    assert read < 1_000_000
    failed = await flooder.recv(timeout=10)
    assert failed["type"] == "AUTH_FAILED" and "no AUTH within" in failed["error"]
    flooding.cancel()
    await asyncio.gather(flooding, return_exceptions=True)


async def test_concurrent_guesses_are_hashed_one_backoff_at_a_time_and_dropped_unhashed(
    make_hub: HubFactory,
) -> None:
    from kernal.hub.auth import GENERATED_TOKEN_ITERATIONS, hash_token

    hub = await make_hub()
    addresses = hub._services.addresses
    addresses.backoff_initial = 3600.0  # after one failure, the next guess would wait an hour
    # A token a person chose (full stretching: each guess costs real hashing) and a generated one.
    await hub.store.set_token_hash("AI_Guarded", hash_token("a chosen secret"), 0.0)
    honest_hash = hash_token("honest-token", iterations=GENERATED_TOKEN_ITERATIONS)
    await hub.store.set_token_hash("AI_Honest", honest_hash, 0.0)
    host, port = hub.address
    guesses = []
    for n in range(20):  # all at once, from another address, as an attacker on another machine
        reader, writer = await asyncio.open_connection(host, port, local_addr=("127.0.0.2", 0))
        writer.write(b'{"ai_id":"AI_Guarded","token":"guess-%d"}\n' % n)
        guesses.append((reader, writer))
    answered = await asyncio.wait(
        [asyncio.create_task(reader.readline()) for reader, _ in guesses],
        timeout=30,
        return_when=asyncio.FIRST_COMPLETED,
    )
    (first,) = answered[0]
    assert json.loads(first.result())["type"] == "AUTH_FAILED"
    # The other nineteen wait for the backoff the first one earned, unhashed: one check so far.
    assert addresses.checks == 1
    honest = await RawClient.connect(hub)
    OPEN.append(honest)
    await honest.send({"ai_id": "AI_Honest", "token": "honest-token"})
    assert (await honest.recv(timeout=30))["type"] == "AUTH_OK"
    assert addresses.checks == 2
    for task in answered[1]:
        task.cancel()
    for _, writer in guesses:  # reset: the hub sees them gone at once
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    for _ in range(500):
        if len(hub._sessions) <= 1:
            break
        await asyncio.sleep(0.01)
    assert len(hub._sessions) == 1  # the honest one: the guesses gave up waiting
    assert addresses.checks == 2  # and none of them was checked


async def test_token_checks_take_turns_per_id_per_address_and_for_suspects() -> None:
    book = AddressBook(
        max_connections=0, max_per_address=0, backoff_initial=0.0, failures_per_second=0
    )
    inside: dict[str, int] = {}
    most: dict[str, int] = {}

    async def check(label: str, address: str, ai_id: str) -> None:
        async with book.checking(address, ai_id) as turn:
            assert turn
            inside[label] = inside.get(label, 0) + 1
            most[label] = max(most.get(label, 0), inside[label])
            await asyncio.sleep(0.01)
            inside[label] -= 1

    book.failed("10.0.0.8", "AI_Typo")  # one failure each: suspects for backoff_max seconds
    book.failed("10.0.0.9", "AI_Typo")
    await asyncio.gather(
        *(check("one id", "10.0.0.1", "AI_Same") for _ in range(5)),
        *(check("one address", "10.0.0.2", f"AI_{n}") for n in range(5)),
        *(check("suspects", f"10.0.0.{8 + n % 2}", f"AI_{n}") for n in range(6)),
    )
    assert most == {"one id": 1, "one address": 2, "suspects": 1}
    assert book.checks == 16


async def _arrivals(client: RawClient, kind: str, count: int, order: list[str], name: str) -> int:
    """Read until ``count`` frames of ``kind`` came; note ``name`` in ``order`` at the end."""
    got = 0
    while got < count:
        got += (await client.recv(timeout=30))["type"] == kind
    order.append(name)
    return got


async def test_a_client_repeating_hello_does_not_hold_up_others(make_hub: HubFactory) -> None:
    hub = await make_hub()
    sharer = await joined(hub, 3)
    # Recent items for every STATE to carry; small, so that reading the STATEs costs this test
    # little and the order of arrivals is the order the hub served them in.
    for n in range(10):
        await sharer.send(
            {
                "type": "OS_COMPONENT_SHARE",
                "component_id": f"big-{n}",
                "component_data": {"blob": "x" * 1000},
            }
        )
        await sharer.recv_type("ACK")
    repeater, honest = await joined(hub, 1), await joined(hub, 2)
    hello = b'{"type":"HELLO","specialization":"security","follow":[]}\n'
    await repeater.send_bytes(hello * 100 + b'{"type":"PING","msg_id":"last"}\n')
    order: list[str] = []
    reading = asyncio.create_task(_arrivals(repeater, "STATE", 100, order, "repeater"))
    await honest.send({"type": "PING", "msg_id": "mine"})
    assert (await honest.recv_type("PONG", timeout=30))["ref"] == "mine"
    order.append("honest")
    assert await reading == 100  # every HELLO answered: served, not dropped
    assert order == ["honest", "repeater"]  # and the honest PING did not wait for them all


async def test_pipelined_pings_are_all_answered_without_starving_others(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub()
    pinger, honest = await joined(hub, 1), await joined(hub, 2)
    await pinger.send_bytes(b'{"type":"PING"}\n' * 5000)
    order: list[str] = []
    reading = asyncio.create_task(_arrivals(pinger, "PONG", 5000, order, "pinger"))
    await honest.send({"type": "PING", "msg_id": "mine"})
    assert (await honest.recv_type("PONG", timeout=30))["ref"] == "mine"
    order.append("honest")
    assert await reading == 5000  # not dropped as a slow reader of its own PONGs
    assert order == ["honest", "pinger"]


async def test_a_self_targeted_reader_that_never_reads_is_dropped(
    make_hub: HubFactory, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await make_hub(send_buffer_bytes=2**20)
    slow, honest = await joined(hub, 1), await joined(hub, 2)
    slow.writer.transport.pause_reading()  # it never reads what it asked the hub to send it
    data = json.dumps({"blob": "s" * 100_000})
    sent = 0
    with contextlib.suppress(ConnectionError, OSError):
        for n in range(1000):  # 100 MB at most: far past every buffer on the way
            await slow.send_bytes(
                b'{"type":"OS_COMPONENT_SHARE","component_id":"s%d","to":"AI_Node_1",'
                b'"component_data":%s}\n' % (n, data.encode())
            )
            sent += 1
    assert sent < 1000  # the hub closed it
    assert "[AI_Node_1] dropping slow client" in caplog.text
    await honest.send({"type": "PING", "msg_id": "fine"})
    assert (await honest.recv_type("PONG"))["ref"] == "fine"
    for _ in range(100):
        if hub.peers.get("AI_Node_1") is None:
            break
        await asyncio.sleep(0.02)
    assert hub.peers.get("AI_Node_1") is None
