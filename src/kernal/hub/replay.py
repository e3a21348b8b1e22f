"""What was relayed lately, numbered, so a trainer that reconnects gets what it missed.

Every relayed share (``PATTERN_SHARE``, ``OS_COMPONENT_SHARE``) carries ``seq``, a number that
grows by one per share this hub run relays; ``STATE`` says which ``run`` this is and the latest
``seq``. A trainer that comes back says in its ``HELLO`` which run and seq it saw last, and the
hub sends it, right after ``STATE``, every share it would have received since, as long as they
are still in this bounded log (the newest ``max_items`` within ``max_bytes``). Past that, or
after a hub restart (another run), ``STATE`` says ``resumed: false``: its knowledge base is
what there is to catch up with.

**On a cluster of replicas** each replica numbers what it relays in its own ``seq``, so a
trainer that moves to another replica cannot be resumed by those numbers. There, every share
also carries its ``origin`` (the run of the replica that stored it) and ``origin_seq`` (that
replica's count of the shares it stored), which are the same on every replica; ``STATE`` gives
the latest ``origin_seq`` of each origin this replica holds (``origins``), and a trainer keeps
them up to date from the shares it receives. Another replica resumes it when, for every
origin it has heard of, it holds every share after what the trainer saw (:meth:`can_resume`).
An origin keeps its order across replicas (the bus delivers one publisher's messages in order),
so "after" is well defined per origin. A component shared with one AI only reaches that AI's
replica alone: it is replayed by the replica it went to, never from another one.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

from kernal.protocol.messages import MAX_ORIGINS, ResumePoint, Topic


class _Entry(NamedTuple):  # a tuple: made for every relayed share, it must be cheap
    seq: int
    frame: bytes
    sender: str
    topic: Topic
    to: str | None  # shared with this AI only
    origin: str  # run of the replica that stored the share (this run's own: self.run)
    origin_seq: int


class ReplayLog:
    def __init__(
        self, *, max_items: int = 10_000, max_bytes: int = 64 * 2**20, stamp_origin: bool = False
    ) -> None:
        self.run = secrets.token_hex(8)
        self.seq = 0
        self.own_seq = 0  # shares this run stored itself: their origin_seq
        self.stamp_origin = stamp_origin  # a replica: its frames say their origin
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._entries: deque[_Entry] = deque()
        self._bytes = 0
        # Per origin heard of: the origin_seq from which every share of it this replica could
        # deliver is still held (``floor``), and the latest one held or announced. Bounded:
        # an origin forgotten cannot be resumed from, which is the safe way to fail.
        self._floor: OrderedDict[str, int] = OrderedDict({self.run: 1})
        self._latest: dict[str, int] = {self.run: 0}

    def record(
        self,
        build: Callable[[bytes], bytes],
        *,
        sender: str,
        topic: Topic,
        to: str | None = None,
        origin: tuple[str, int] | None = None,
    ) -> bytes:
        """The frame ``build(tail)`` makes, kept for replays: ``tail`` closes the frame with
        its ``seq`` (and, for a share this run stored, on a replica, its ``origin``).
        ``origin``: the (run, origin_seq) a share another replica stored says, already in its
        frame; ``origin_seq`` 0 for one without (shared with one AI only)."""
        self.seq += 1
        stamp = b""
        if origin is None:
            origin = (self.run, 0)
            if to is None:  # only what every replica receives is numbered by origin
                self.own_seq += 1
                origin = (self.run, self.own_seq)
                if self.stamp_origin:
                    stamp = b',"origin":"%s","origin_seq":%d' % (self.run.encode(), self.own_seq)
        elif origin[1] > 0:
            self._hold(*origin)
        if origin[1] > 0:
            self._latest[origin[0]] = max(self._latest.get(origin[0], 0), origin[1])
        frame = build(stamp + b',"seq":%d}\n' % self.seq)
        self._entries.append(_Entry(self.seq, frame, sender, topic, to, *origin))
        self._bytes += len(frame)
        while self._entries and (
            len(self._entries) > self.max_items or self._bytes > self.max_bytes
        ):
            dropped = self._entries.popleft()
            self._bytes -= len(dropped.frame)
            if dropped.origin_seq and self._floor.get(dropped.origin, 0) <= dropped.origin_seq:
                self._floor[dropped.origin] = dropped.origin_seq + 1
        return frame

    def heard(self, origin: str, latest: int) -> None:
        """Another replica (run ``origin``) said it had stored ``latest`` shares: this one
        holds what it stores from now on (what it relays later reaches this replica)."""
        if origin not in self._floor:
            self._remember(origin, latest + 1)
            self._latest[origin] = max(self._latest.get(origin, 0), latest)

    def _hold(self, origin: str, origin_seq: int) -> None:
        if origin not in self._floor:  # its first share here, before what it said of itself
            self._remember(origin, origin_seq)
        elif origin_seq > self._latest.get(origin, 0) + 1:
            # Some of its shares never arrived (a bus outage): nobody resumes across the gap.
            self._floor[origin] = max(self._floor[origin], origin_seq)

    def _remember(self, origin: str, floor: int) -> None:
        self._floor[origin] = floor
        while len(self._floor) > MAX_ORIGINS:
            forgotten, _ = self._floor.popitem(last=False)
            self._latest.pop(forgotten, None)

    def origins(self) -> dict[str, int]:
        """The latest origin_seq of every origin held, for ``STATE``."""
        return {origin: self._latest.get(origin, 0) for origin in self._floor}

    def can_resume(self, point: ResumePoint) -> bool:
        """Whether everything relayed since ``point`` is still here: in this run by its seq;
        from another replica's run by the origins the trainer saw."""
        if point.run == self.run:
            if point.after > self.seq:
                return False
            oldest = self._entries[0].seq if self._entries else self.seq + 1
            return point.after >= oldest - 1
        if point.origins is None or any(origin not in self._floor for origin in point.origins):
            return False  # an origin this replica never heard of may have shared meanwhile
        seen = point.origins
        return all(floor <= seen.get(origin, 0) + 1 for origin, floor in self._floor.items())

    def missed(self, point: ResumePoint, ai_id: str, follows: frozenset[Topic]) -> Iterator[bytes]:
        """The frames ``ai_id`` would have received since ``point`` (see :meth:`can_resume`):
        shared with it alone, or broadcast on a topic it follows, not its own. In this run,
        those after its seq, and those before it of an origin it names with a lower
        ``origin_seq`` (the rest of a replay it was cut off from)."""
        same_run = point.run == self.run
        seen: Mapping[str, int] = point.origins or {}
        for entry in self._entries:
            if same_run:
                # Before the point, unless the trainer says it has not seen it: a replay by
                # origins (after a move from another replica) comes before live frames but is
                # numbered before the STATE that started it, so a connection cut in the middle
                # of one comes back with a seq past what it did not get.
                if entry.seq <= point.after and not (
                    entry.origin_seq and entry.origin_seq > seen.get(entry.origin, entry.origin_seq)
                ):
                    continue
            elif entry.origin_seq <= seen.get(entry.origin, 0):
                continue  # seen; or shared with one AI only, which no origin numbers
            if entry.sender == ai_id:
                continue
            if entry.to == ai_id or (entry.to is None and entry.topic in follows):
                yield entry.frame
