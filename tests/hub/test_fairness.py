"""One client's heavy traffic is spread out so that it never hurts the others: big shares
commit a megabyte at a time, a session takes a megabyte of frames at a time, FEEDBACK is
paced per AI. Behaviour only (what is stored, answered, committed), never timings."""

from __future__ import annotations

import json

import pytest

from kernal.hub.connection import TAKE_BYTES
from kernal.hub.limits import Pace
from tests.conftest import HubFactory
from tests.hub.test_limits import FakeClock, close_clients, joined  # noqa: F401 (fixture)


def test_pace_makes_each_key_wait_and_says_so_once_per_episode() -> None:
    clock = FakeClock()
    pace = Pace(rate=10, burst=4, clock=clock)
    assert [pace.take("a") for _ in range(4)] == [(0.0, False)] * 4
    wait, first = pace.take("a")
    assert wait == pytest.approx(0.1) and first
    wait, first = pace.take("a")
    assert wait == pytest.approx(0.2) and not first  # the same episode
    assert pace.take("b") == (0.0, False)  # keys are apart
    clock.now += 1.0  # saved up again: the episode is over
    assert pace.take("a") == (0.0, False)
    assert pace.take("a", 10)[1]  # a new one, told again
    assert Pace(rate=0, burst=0).take("a", 10**9) == (0.0, False)  # off


def test_pace_forgets_keys_in_bulk_past_its_bound() -> None:
    pace = Pace(rate=1, burst=1, max_keys=3, clock=FakeClock())
    for key in "abc":
        pace.take(key)
    assert pace.take("a")[0] > 0
    pace.take("d")  # past the bound: everyone forgotten
    assert pace.take("a") == (0.0, False)


async def test_a_session_takes_frames_a_megabyte_at_a_time(make_hub: HubFactory) -> None:
    """Frames bigger than a megabyte in all, sent at once, are all carried out in order (the
    session takes them in portions of at most TAKE_BYTES, or one larger frame)."""
    hub = await make_hub()
    client = await joined(hub, 1)
    data = json.dumps({"blob": "x" * (TAKE_BYTES // 3)}).encode()
    frames = b"".join(
        b'{"type":"PATTERN_SHARE","msg_id":"s%d","pattern_id":"p%d","pattern_data":%s}\n'
        % (n, n, data)
        for n in range(7)
    )
    frames += b'{"type":"PING","msg_id":"after"}\n'
    await client.send_bytes(frames)
    replies = [await client.recv(timeout=10) for _ in range(8)]
    assert [r.get("ref") for r in replies] == [f"s{n}" for n in range(7)] + ["after"]


async def test_a_feedback_flood_is_paced_told_once_and_every_feedback_counts(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(rate_feedback=20, rate_feedback_burst=5)
    author, rater = await joined(hub, 1), await joined(hub, 2)
    await author.send({"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": {"w": 1}})
    await author.recv_type("ACK")
    await rater.send_bytes(
        b"".join(
            b'{"type":"FEEDBACK","msg_id":"f%d","kind":"pattern","id":"p","score":0.5}\n' % n
            for n in range(10)
        )
    )
    replies = []
    while sum(r["type"] == "ACK" for r in replies) < 10:
        replies.append(await rater.recv(timeout=10))  # (the author's share is relayed too)
    acks = [r["ref"] for r in replies if r["type"] == "ACK"]
    errors = [r for r in replies if r["type"] == "ERROR"]
    assert acks == [f"f{n}" for n in range(10)]  # all carried out, in order: none refused
    assert [(e["code"], e.get("ref")) for e in errors] == [("rate_limited", None)]
    assert "FEEDBACK per second" in errors[0]["error"]
