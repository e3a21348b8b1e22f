"""Plain counters of what the hub does, read by whoever wants figures (the web app's
``/metrics`` turns them into Prometheus metrics at scrape time; the hub knows nothing of that).

The hot path pays integer increments and dict lookups, nothing more: no locks (one event loop
writes, and a reader on the same loop sees a consistent enough picture), no labels objects, no
allocation per frame beyond a new dict key the first time a type or code is seen. A frame
broadcast to many peers is counted once with the number of copies (by the registry of peers,
:class:`~kernal.hub.peers.Peers`), so a relay to a thousand peers costs one count.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

#: Seconds; covers a group commit on a fast disk (sub-millisecond) to a stalled one.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


@dataclass(eq=False)
class Histogram:
    """Observations counted per bucket: ``counts[i]`` holds those ``<= bounds[i]`` and above
    the bound before it; the last holds those above every bound (not cumulative)."""

    bounds: tuple[float, ...] = LATENCY_BOUNDS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def observe_many(self, value: float, times: int) -> None:
        """``observe(value)`` ``times`` times (a batch whose members all took ``value``)."""
        if times > 0:
            self.counts[bisect_left(self.bounds, value)] += times
            self.total += value * times
            self.count += times


def frame_type(frame: bytes) -> bytes:
    """``b"ACK"`` of ``b'{"type":"ACK",...'``; ``b"?"`` if there is no ``type``.

    Relays and ACKs start with their type; a model whose ``type`` field comes after inherited
    ones (``AI_JOINED``) ends with it. Free-form data (which could hold a ``"type":"``) is only
    ever in frames that start with their type, so the last ``"type":"`` of any other frame is
    its own: strings inside are JSON-escaped and cannot hold one.
    """
    if frame.startswith(b'{"type":"'):
        start = 9
    else:
        found = frame.rfind(b'"type":"')
        if found < 0:
            return b"?"
        start = found + 8
    end = frame.find(b'"', start)
    return frame[start:end] if end > start else b"?"


@dataclass(eq=False)
class HubCounters:
    """Everything counted since the hub was built. Keys of the dicts: frame types (as the
    protocol spells them; ``invalid`` for a frame that did not decode) and error codes."""

    connections_opened: int = 0
    connections_refused: int = 0  # over the connection limits
    logins: int = 0
    login_failures: int = 0
    frames_in: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_in: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    frames_out: defaultdict[bytes, int] = field(default_factory=lambda: defaultdict(int))
    bytes_out: defaultdict[bytes, int] = field(default_factory=lambda: defaultdict(int))
    errors: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    collaborations_started: int = 0
    collaborations_ended: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    persist_seconds: Histogram = field(default_factory=Histogram)
    """From a share handed to the store to its transaction committed."""
    ack_seconds: Histogram = field(default_factory=Histogram)
    """From a decoded frame handed to the router to its ACK queued (successes only)."""
    _last_frame: bytes = b""
    _last_type: bytes = b"?"

    def received(self, kind: str, size: int) -> None:
        self.frames_in[kind] += 1
        self.bytes_in[kind] += size

    def sent_many(self, kind: bytes, frames: int, size: int, copies: int = 1) -> None:
        """``frames`` frames of type ``kind``, ``size`` bytes in all, queued together for
        ``copies`` clients."""
        self.frames_out[kind] += frames * copies
        self.bytes_out[kind] += size * copies

    def sent(self, frame: bytes, copies: int = 1) -> None:
        """``frame`` queued for ``copies`` clients (a broadcast counts once for all)."""
        if frame is not self._last_frame:  # the same object sent again: its type is known
            self._last_frame = frame
            self._last_type = frame_type(frame)
        kind = self._last_type
        self.frames_out[kind] += copies
        self.bytes_out[kind] += len(frame) * copies
