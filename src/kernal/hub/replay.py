"""What was relayed lately, numbered, so a trainer that reconnects gets what it missed.

Every relayed share (``PATTERN_SHARE``, ``OS_COMPONENT_SHARE``) carries ``seq``, a number that
grows by one per share this hub run relays; ``STATE`` says which ``run`` this is and the latest
``seq``. A trainer that comes back says in its ``HELLO`` which run and seq it saw last, and the
hub sends it, right after ``STATE``, every share it would have received since, as long as they
are still in this bounded log (the newest ``max_items`` within ``max_bytes``). Past that, or
after a hub restart (another run), ``STATE`` says ``resumed: false``: its knowledge base is
what there is to catch up with.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple

from kernal.protocol.messages import Topic


class _Entry(NamedTuple):  # a tuple: made for every relayed share, it must be cheap
    seq: int
    frame: bytes
    sender: str
    topic: Topic
    to: str | None  # shared with this AI only


class ReplayLog:
    def __init__(self, *, max_items: int = 10_000, max_bytes: int = 64 * 2**20) -> None:
        self.run = secrets.token_hex(8)
        self.seq = 0
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._entries: deque[_Entry] = deque()
        self._bytes = 0

    def record(
        self, build: Callable[[int], bytes], *, sender: str, topic: Topic, to: str | None = None
    ) -> bytes:
        """The frame ``build(seq)`` makes for the next seq, kept for replays."""
        self.seq += 1
        frame = build(self.seq)
        self._entries.append(_Entry(self.seq, frame, sender, topic, to))
        self._bytes += len(frame)
        while self._entries and (
            len(self._entries) > self.max_items or self._bytes > self.max_bytes
        ):
            self._bytes -= len(self._entries.popleft().frame)
        return frame

    def can_resume(self, run: str, after: int) -> bool:
        """Whether everything relayed after ``after`` in ``run`` is still here."""
        if run != self.run or after > self.seq:
            return False
        oldest = self._entries[0].seq if self._entries else self.seq + 1
        return after >= oldest - 1

    def missed(self, after: int, ai_id: str, follows: frozenset[Topic]) -> Iterator[bytes]:
        """The frames ``ai_id`` would have received after ``after``: shared with it alone, or
        broadcast on a topic it follows, not its own."""
        for entry in self._entries:
            if entry.seq <= after or entry.sender == ai_id:
                continue
            if entry.to == ai_id or (entry.to is None and entry.topic in follows):
                yield entry.frame
