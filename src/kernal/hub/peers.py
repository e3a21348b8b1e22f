"""Who is connected: the registry of live sessions, and sending to them.

This is the seam a clustered registry will implement: everything else in the hub asks it who is
online and hands it frames to deliver, and never touches a connection directly.

Each AI id has at most one *live* session. :meth:`Peers.claim` makes a newly authenticated
session the live one in a single step (no await), so any number of simultaneous logins of one
AI leave exactly one live session; the replaced one is told by the caller and departs. A live
session becomes *joined* when it has said HELLO: only joined peers get relays and presence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from kernal.protocol import ErrorCode, ProtocolError, encode
from kernal.protocol.messages import ServerMessage


@dataclass(frozen=True)
class Profile:
    """What an AI said about itself in its latest HELLO."""

    ai_id: str
    specialization: str
    capabilities: tuple[str, ...]
    connected_at: float


class Peer(Protocol):
    """A session as the registry sees it."""

    @property
    def ai_id(self) -> str | None: ...

    @property
    def profile(self) -> Profile | None:
        """None until the session's first HELLO."""

    def send(self, message: ServerMessage) -> None:
        """Queue ``message`` for this peer; never waits for the network."""

    def send_raw(self, frame: bytes) -> None:
        """Queue an already encoded frame."""

    @property
    def raw_sender(self) -> Callable[[bytes], None]:
        """The fastest way to queue an encoded frame for this peer (the registry keeps it, so
        a broadcast is one call per peer)."""


class Peers:
    """The live session of each AI id, and which of them have joined."""

    def __init__(self) -> None:
        self._live: dict[str, Peer] = {}
        self._joined: dict[str, Peer] = {}
        self._senders: dict[str, Callable[[bytes], None]] = {}  # of the joined peers
        self._departures: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------ membership

    def claim(self, peer: Peer) -> Peer | None:
        """Make ``peer`` the live session of its AI id; return the session it replaces."""
        assert peer.ai_id is not None, "claim after authentication"
        previous = self._live.get(peer.ai_id)
        self._live[peer.ai_id] = peer
        self._joined.pop(peer.ai_id, None)
        self._senders.pop(peer.ai_id, None)
        return previous if previous is not peer else None

    def is_live(self, peer: Peer) -> bool:
        return peer.ai_id is not None and self._live.get(peer.ai_id) is peer

    def join(self, peer: Peer) -> bool:
        """Count a live session that said HELLO as joined; False if it is no longer live."""
        if not self.is_live(peer) or peer.ai_id is None:
            return False
        self._joined[peer.ai_id] = peer
        self._senders[peer.ai_id] = peer.raw_sender
        return True

    def release(self, peer: Peer) -> bool:
        """Forget ``peer`` if it is still the live session of its id; return whether it was."""
        if not self.is_live(peer) or peer.ai_id is None:
            return False
        del self._live[peer.ai_id]
        self._joined.pop(peer.ai_id, None)
        self._senders.pop(peer.ai_id, None)
        return True

    def sessions(self) -> dict[str, Peer]:
        """Every live session by AI id, joined or not (a copy)."""
        return dict(self._live)

    # ------------------------------------------------------------------ departures

    def departing(self, ai_id: str, task: asyncio.Task[None]) -> None:
        """Record that a session of ``ai_id`` is departing (failing its collaborations, telling
        the others); a new session of the same AI waits for it before it is admitted."""
        self._departures[ai_id] = task
        task.add_done_callback(lambda done: self._forget_departure(ai_id, done))

    def departure_of(self, ai_id: str) -> asyncio.Task[None] | None:
        """The latest departure of ``ai_id`` still under way, if any."""
        return self._departures.get(ai_id)

    def _forget_departure(self, ai_id: str, task: asyncio.Task[None]) -> None:
        if self._departures.get(ai_id) is task:
            del self._departures[ai_id]

    # ------------------------------------------------------------------ lookups

    def get(self, ai_id: str) -> Peer | None:
        """The joined peer ``ai_id``, if it is online."""
        return self._joined.get(ai_id)

    def require_online(self, ai_id: str, ref: str | None = None) -> Peer:
        """The joined peer ``ai_id``, or ``not_found`` (with ``ref``) if it is not online."""
        peer = self._joined.get(ai_id)
        if peer is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"{ai_id} is not connected", ref)
        return peer

    def joined(self) -> Iterator[Peer]:
        """Joined peers, in the order they joined."""
        return iter(list(self._joined.values()))

    def profiles(self) -> list[Profile]:
        """Profiles of the joined peers, ordered by AI id."""
        found = [peer.profile for peer in self._joined.values() if peer.profile is not None]
        return sorted(found, key=lambda profile: profile.ai_id)

    def __len__(self) -> int:
        """How many peers have joined."""
        return len(self._joined)

    def __contains__(self, ai_id: object) -> bool:
        return ai_id in self._joined

    # ------------------------------------------------------------------ sending

    def send_to(self, ai_id: str, message: ServerMessage | bytes) -> bool:
        """Queue ``message`` (a model or an encoded frame) for the joined peer ``ai_id``; False
        if it is not online."""
        send = self._senders.get(ai_id)
        if send is None:
            return False
        send(message if isinstance(message, bytes) else encode(message))
        return True

    def broadcast(self, message: ServerMessage | bytes, *, exclude: str | None = None) -> int:
        """Queue ``message`` for every joined peer but ``exclude``; returns how many got it."""
        frame = message if isinstance(message, bytes) else encode(message)  # once for all
        senders = self._senders
        if exclude in senders:
            for ai_id, send in list(senders.items()):
                if ai_id != exclude:
                    send(frame)
            return len(senders) - 1
        for send in list(senders.values()):
            send(frame)
        return len(senders)

    def route(self, message: ServerMessage | bytes, *, to: str | None, sender: str) -> None:
        """Deliver to ``to`` only, or to every joined peer but the ``sender``."""
        if to is not None:
            self.send_to(to, message)
        else:
            self.broadcast(message, exclude=sender)
