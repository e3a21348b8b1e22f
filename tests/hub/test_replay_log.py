"""The replay log's numbering by origin (pure): what lets one replica resume a trainer that
another replica served, and when it must refuse to."""

from __future__ import annotations

from kernal.hub.replay import ReplayLog
from kernal.protocol.messages import ResumePoint


def frame(name: str) -> object:
    return lambda tail: b'{"type":"PATTERN_SHARE","pattern_id":"%s"' % name.encode() + tail


def adopt(log: ReplayLog, name: str, origin: str, origin_seq: int, to: str | None = None) -> None:
    log.record(frame(name), sender="x", topic="patterns", to=to, origin=(origin, origin_seq))  # type: ignore[arg-type]


def names(log: ReplayLog, point: ResumePoint, ai_id: str = "me") -> list[str]:
    return [
        f.split(b'"pattern_id":"')[1].split(b'"')[0].decode()
        for f in log.missed(point, ai_id, frozenset({"patterns"}))
    ]


def test_own_shares_are_stamped_with_their_origin_on_a_replica() -> None:
    log = ReplayLog(stamp_origin=True)
    first = log.record(frame("a"), sender="x", topic="patterns")  # type: ignore[arg-type]
    private = log.record(frame("b"), sender="x", topic="patterns", to="y")  # type: ignore[arg-type]
    assert first.endswith(b',"origin":"%s","origin_seq":1,"seq":1}\n' % log.run.encode())
    assert private.endswith(b',"seq":2}\n') and b"origin" not in private  # not numbered
    assert log.origins() == {log.run: 1}
    plain = ReplayLog()
    assert b"origin" not in plain.record(frame("a"), sender="x", topic="patterns")  # type: ignore[arg-type]


def test_resume_by_origins_sends_what_was_not_seen() -> None:
    log = ReplayLog(stamp_origin=True)
    log.heard("A", 4)  # replica A had stored 4 shares when this one first heard of it
    log.heard("B", 0)
    adopt(log, "a5", "A", 5)
    adopt(log, "b1", "B", 1)
    adopt(log, "a6", "A", 6)
    adopt(log, "for-me", "", 0, to="me")  # a private one: never replayed by origins
    log.record(frame("own1"), sender="x", topic="patterns")  # type: ignore[arg-type]
    point = ResumePoint(run="A", after=99, origins={"A": 5, "B": 0, log.run: 0})
    assert log.can_resume(point)
    assert names(log, point) == ["b1", "a6", "own1"]
    # Missing an origin counts as having seen none of it: fine while all of it is held.
    assert log.can_resume(ResumePoint(run="A", after=0, origins={"A": 4}))
    # Shares of A before this replica heard of it may have been missed: not resumable.
    assert not log.can_resume(ResumePoint(run="A", after=0, origins={"A": 3, "B": 0}))
    # An origin this replica never heard of may have shared meanwhile.
    assert not log.can_resume(ResumePoint(run="C", after=0, origins={"A": 6, "C": 1}))
    assert not log.can_resume(ResumePoint(run="C", after=0))  # no origins at all


def test_a_gap_or_a_dropped_entry_raises_the_floor() -> None:
    log = ReplayLog(stamp_origin=True, max_items=3)
    log.heard("A", 0)
    adopt(log, "a1", "A", 1)
    adopt(log, "a3", "A", 3)  # a2 never arrived (a bus outage)
    seen_one = ResumePoint(run="A", after=0, origins={"A": 1, log.run: 0})
    assert not log.can_resume(seen_one)
    assert log.can_resume(ResumePoint(run="A", after=0, origins={"A": 2, log.run: 0}))
    for n in (4, 5, 6):  # three items at most: a1, then a3 drop out of the log
        adopt(log, f"a{n}", "A", n)
    assert not log.can_resume(ResumePoint(run="A", after=0, origins={"A": 2, log.run: 0}))
    assert log.can_resume(ResumePoint(run="A", after=0, origins={"A": 3, log.run: 0}))
    assert names(log, ResumePoint(run="A", after=0, origins={"A": 4})) == ["a5", "a6"]


def test_same_run_resume_still_goes_by_seq() -> None:
    log = ReplayLog(stamp_origin=True)
    for name in ("p1", "p2", "p3"):
        log.record(frame(name), sender="x", topic="patterns")  # type: ignore[arg-type]
    point = ResumePoint(run=log.run, after=1, origins={"whatever": 9})
    assert log.can_resume(point)
    assert names(log, point) == ["p2", "p3"]


def test_a_replay_cut_short_is_finished_on_reconnecting_to_the_same_replica() -> None:
    # A trainer moved here from replica A: STATE said seq 4, and the replay by origins (a2, b1,
    # a3, all numbered before STATE) was cut after a2. It comes back with this run, seq 4 and
    # the origins it saw: it gets b1 and a3, then what came after, and nothing twice.
    log = ReplayLog(stamp_origin=True)
    log.heard("A", 1)
    log.heard("B", 0)
    for name, origin, n in (("a2", "A", 2), ("b1", "B", 1), ("a3", "A", 3)):
        adopt(log, name, origin, n)
    log.record(frame("own1"), sender="x", topic="patterns")  # type: ignore[arg-type]
    adopt(log, "for-me", "", 0, to="me")  # seq 5: after STATE
    adopt(log, "a4", "A", 4)
    cut = ResumePoint(run=log.run, after=4, origins={"A": 2, "B": 0, log.run: 1})
    assert log.can_resume(cut)
    assert names(log, cut) == ["b1", "a3", "for-me", "a4"]
    # Nothing of an origin the trainer does not name comes back from before its seq.
    assert names(log, ResumePoint(run=log.run, after=4, origins={"B": 1})) == ["for-me", "a4"]
