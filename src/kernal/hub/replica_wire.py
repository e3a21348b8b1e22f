"""The pieces of the cluster that are not its logic: the envelope of a bus message (a JSON
header line, then the frame it carries), the settings of a replica, the stand-ins the cluster
hands the router for an AI on another replica (:class:`RemotePeer`) and for the sender of a
forwarded message (:class:`Proxy`), the :class:`Outbox` of frames for AIs elsewhere, and what a
share relayed by another replica holds (:class:`RelayedShare`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kernal.hub.peers import Profile
from kernal.protocol import encode
from kernal.protocol import messages as m
from kernal.storage import ComponentRecord, ItemRecord, PatternRecord


@runtime_checkable
class Evictable(Protocol):
    def evict(self, reason: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    namespace: str = "kernal"  # prefix of every channel and key: one cluster per namespace
    replica_id: str = ""  # empty: the host name and a random suffix
    heartbeat: float = 1.0  # seconds between heartbeats
    ttl: float = 3.0  # a replica silent this long is dead
    address: str = ""  # where trainers reach this replica (for /status)


@dataclass(frozen=True, slots=True)
class Mirrored:
    """A collaboration owned by another replica with a member here."""

    owner: str
    member: str
    partner: str


def pack(header: dict[str, Any], body: bytes = b"") -> bytes:
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body


def optional_float(value: Any) -> float | None:
    """A number field of a bus message that may be null; raises TypeError/ValueError."""
    return None if value is None else float(value)


def unpack(data: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, body = data.partition(b"\n")
    header = json.loads(head)
    if not isinstance(header, dict):
        raise ValueError("bus header is not an object")
    return header, body


class RemotePeer:
    """An AI on another replica, as the router sees a peer: frames for it go over the bus."""

    def __init__(self, profile: Profile, send: Callable[[bytes], None]) -> None:
        self._profile = profile
        self._send = send

    @property
    def ai_id(self) -> str | None:
        return self._profile.ai_id

    @property
    def profile(self) -> Profile | None:
        return self._profile

    def send(self, message: m.ServerMessage) -> None:
        self._send(encode(message))

    def send_raw(self, frame: bytes) -> None:
        self._send(frame)

    @property
    def raw_sender(self) -> Callable[[bytes], None]:
        return self._send


@dataclass
class Proxy:
    """The sender of a forwarded message, on the owner: its replies are collected and sent
    back together."""

    ai_id: str | None
    profile: Profile | None
    frames: list[bytes] = field(default_factory=list)

    def send(self, message: m.ServerMessage) -> None:
        self.frames.append(encode(message))

    def send_raw(self, frame: bytes) -> None:
        self.frames.append(frame)

    @property
    def raw_sender(self) -> Callable[[bytes], None]:
        return self.frames.append


class Outbox:
    """Frames for AIs on other replicas, gathered for the rest of this event-loop turn: one
    frame for several AIs of one replica leaves as one bus message (a request to everyone
    costs a message per replica, not one per recipient). For each replica the frames keep
    their order: a frame joins the replica's last group only if it is the same frame.

    ``publish(replica, frame, ai_ids)`` sends one group. The cluster flushes before anything
    else it publishes, so the bus keeps the order of everything this replica says."""

    def __init__(self, publish: Callable[[str, bytes, list[str]], None]) -> None:
        self._publish = publish
        self._groups: dict[str, list[tuple[bytes, list[str]]]] = {}
        self._scheduled = False

    def add(self, replica: str, ai_id: str, frame: bytes) -> None:
        groups = self._groups.setdefault(replica, [])
        if groups and (groups[-1][0] is frame or groups[-1][0] == frame):
            groups[-1][1].append(ai_id)
        else:
            groups.append((frame, [ai_id]))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._groups:
            return
        groups, self._groups = self._groups, {}
        for replica, frames in groups.items():
            for frame, ai_ids in frames:
                self._publish(replica, frame, ai_ids)

    def __bool__(self) -> bool:
        return bool(self._groups)

    def clear(self) -> None:
        self._groups.clear()


@dataclass(frozen=True)
class RelayedShare:
    """A share another replica relayed (the router's frame, as its own AIs got it)."""

    record: ItemRecord
    head: bytes | None
    """The frame up to its ``seq`` (this replica numbers it anew); None when the frame does
    not end with one (not the router's: relayed as it is, not numbered)."""
    origin: tuple[str, int]
    """Its ``origin`` and ``origin_seq``; ("", 0) for one without (shared with one AI only, or
    from an older replica): replayed by this replica only, never by origin."""

    @classmethod
    def parse(cls, frame: bytes, topic: m.Topic) -> RelayedShare:
        """Raises ValueError, KeyError or TypeError for a frame that is not a relayed share."""
        obj = json.loads(frame)
        record: ItemRecord
        if topic == "patterns":
            record = PatternRecord(
                obj["pattern_id"], obj["pattern_data"], obj["from"], obj["timestamp"]
            )
        else:
            record = ComponentRecord(
                obj["component_id"],
                obj["component_data"],
                obj["from"],
                obj["timestamp"],
                obj.get("quality_score"),
            )
        cut = frame.rfind(b',"seq":')
        numbered = cut >= 0 and frame.endswith(b"}\n") and frame[cut + 7 : -2].isdigit()
        origin, origin_seq = obj.get("origin"), obj.get("origin_seq")
        if not isinstance(origin, str) or type(origin_seq) is not int or origin_seq < 1:
            origin, origin_seq = "", 0
        return cls(record, frame[:cut] if numbered else None, (origin, origin_seq))
