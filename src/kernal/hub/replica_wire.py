"""The pieces of the cluster that are not its logic: the envelope of a bus message (a JSON
header line, then the frame it carries), the settings of a replica, and the stand-ins the
cluster hands the router for an AI on another replica (:class:`RemotePeer`) and for the sender
of a forwarded message (:class:`Proxy`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kernal.hub.peers import Profile
from kernal.protocol import encode
from kernal.protocol import messages as m


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
