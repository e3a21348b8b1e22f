"""One trainer connection, from the first byte to the last: AUTH, then HELLO, then frames.

A :class:`Session` owns its :class:`~kernal.hub.connection.Connection` (framing, the send
queue) and the protocol state of that connection (who it is, what it said in HELLO). What each
message *does* is the router's business; who else is online is the registry's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from kernal.hub.auth import Authenticator, Grant
from kernal.hub.connection import Connection
from kernal.hub.counters import HubCounters
from kernal.hub.limits import AddressBook, RateLimits, Throttle, address_of
from kernal.hub.peers import Peer, Peers, Profile
from kernal.hub.presence import Presence
from kernal.hub.router import Router
from kernal.protocol import (
    CLOSING_CODES,
    PROTOCOL_VERSION,
    ErrorCode,
    FrameTooLarge,
    ProtocolError,
    decode_auth,
    decode_client_frame,
    encode,
)
from kernal.protocol.codec import RawFields
from kernal.protocol.messages import (
    TOPICS,
    AiLeft,
    AuthFailed,
    AuthOk,
    ClientMessage,
    CollaborationFailed,
    CollaborationRequest,
    Error,
    Hello,
    ListAis,
    Ping,
    Pong,
    ServerMessage,
)
from kernal.storage import Store
from kernal.timing import Clock

log = logging.getLogger("kernal.hub")

Received = tuple[ClientMessage, RawFields]  # a decoded frame and its fields as sent

_PONG = encode(Pong())  # the answer to every PING without a msg_id, encoded once
EVICTED_CLOSE_TIMEOUT = 1.0  # real seconds a replaced session gets to flush its ERROR
CLOSE_TIMEOUT = 2.0
# A connection's turn lasts at most this many ``turn_seconds`` however long the others took.
TURN_STRETCH = 10


class Forwarder(Protocol):
    """Clustered hubs: messages whose state lives on another replica are handled there."""

    def owner_of(self, message: ClientMessage) -> str | None:
        """The replica that must handle ``message`` (its collaboration's), None if this one."""

    async def forward(self, peer: Peer, message: ClientMessage, raw: RawFields, owner: str) -> None:
        """Have ``owner`` handle ``message`` (``raw``: as sent) from ``peer`` and queue its
        replies for ``peer``; raises ProtocolError if it cannot."""


@dataclass(frozen=True)
class SessionServices:
    """What every session of a hub shares."""

    store: Store
    peers: Peers
    router: Router
    presence: Presence
    auth: Authenticator
    clock: Clock
    auth_timeout: float
    addresses: AddressBook
    rate_limits: RateLimits
    idle_timeout: float  # real seconds; 0: none
    counters: HubCounters = field(default_factory=HubCounters)
    cluster: Forwarder | None = None  # set on a clustered hub


class Session:
    """The protocol state and frame loop of one connection. ``await session.run()`` serves it
    until EOF, then departs: fails its collaborations, tells the others, closes."""

    def __init__(self, conn: Connection, services: SessionServices) -> None:
        self.conn = conn
        self._services = services
        self._ai_id: str | None = None
        self._profile: Profile | None = None
        self._authenticated_at = 0.0
        self.evicted = False  # a newer session of the same AI took over, or its token ended
        self.grant: Grant | None = None  # what it was let in with (see hub.tokens)
        self._predecessor: asyncio.Task[None] | None = None
        self._departure: asyncio.Task[None] | None = None
        self.address = address_of(conn.peer)
        self._throttle = Throttle(services.rate_limits)
        self._slowed = False
        self._counters = services.counters

    @property
    def ai_id(self) -> str | None:
        """Set once authenticated."""
        return self._ai_id

    @property
    def profile(self) -> Profile | None:
        """Set by the first HELLO, replaced by later ones."""
        return self._profile

    @property
    def joined(self) -> bool:
        return self._profile is not None

    def send(self, message: ServerMessage) -> None:
        self.conn.send(message)

    def send_raw(self, frame: bytes) -> None:
        self.conn.send_raw(frame)

    @property
    def raw_sender(self) -> Callable[[bytes], None]:
        return self.conn.send_uncounted  # the registry of peers counts what it sends

    # ------------------------------------------------------------------ life

    def _send_error(self, error: Error) -> None:
        """Send an ERROR, counted by code."""
        self._counters.errors[error.code] += 1
        self.conn.send(error)

    async def run(self) -> None:
        refused = self._services.addresses.admit(self.address)
        if refused is not None:
            self._counters.connections_refused += 1
            log.warning("[?] Refused a connection from %s: %s", self.conn.peer, refused)
            self._send_error(Error(code=ErrorCode.RATE_LIMITED, error=f"{refused}; try later"))
            await self.conn.close(timeout=1.0)
            return
        self._counters.connections_opened += 1
        try:
            if await self._authenticate():
                await self._serve()
        except FrameTooLarge as exc:
            log.warning("[%s] %s from %s", self._ai_id or "?", exc.reason, self.conn.peer)
            self._send_error(Error(code=exc.code, error=exc.reason))
        except Exception:
            log.exception("[%s] Connection handler failed; closing it", self._ai_id or "?")
        finally:
            self._services.addresses.release(self.address)
            await asyncio.shield(self.depart())

    def evict(self, reason: str) -> None:
        """A newer session of the same AI took over: tell this client why, then depart."""
        self.evicted = True
        self._send_error(Error(code=ErrorCode.REPLACED, error=reason))
        self.depart(close_timeout=EVICTED_CLOSE_TIMEOUT)

    def revoke(self, reason: str) -> None:
        """The token this session logged in with is no longer valid: tell the client, depart."""
        if self.evicted:
            return
        self.evicted = True
        self.grant = None
        self.conn.send(Error(code=ErrorCode.TOKEN_REVOKED, error=reason))
        self.depart(close_timeout=EVICTED_CLOSE_TIMEOUT)

    def depart(self, *, close_timeout: float = CLOSE_TIMEOUT) -> asyncio.Task[None]:
        """Start leaving (once; later calls return the same task): fail this AI's active
        collaborations, tell the others, close the connection."""
        if self._departure is None:
            self._departure = asyncio.create_task(self._leave(close_timeout))
            if self._ai_id is not None:
                self._services.peers.departing(self._ai_id, self._departure)
        return self._departure

    async def _leave(self, close_timeout: float) -> None:
        services = self._services
        try:
            if self._predecessor is not None:
                # Its AI_LEFT and failed collaborations go out before anything of ours.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._predecessor)
            ai_id = self._ai_id
            if ai_id is None:
                return
            services.peers.release(self)
            for record in services.router.detach(ai_id) if self.joined else []:
                ending = CollaborationFailed(
                    collaboration_id=record.collaboration_id,
                    reason=f"partner {ai_id} disconnected",
                )
                await services.router.end_collaboration(record, ending, sender=ai_id)
            if self.joined:
                with contextlib.suppress(Exception):
                    await services.store.touch_ai(ai_id, services.clock.now())
                if services.presence.announced(leaving=True):
                    services.peers.broadcast(AiLeft(ai_id=ai_id), topic="presence")
            services.presence.forget(ai_id)
            log.info("[-] AI Trainer disconnected: %s", ai_id)
        finally:
            await self.conn.close(timeout=close_timeout)

    # ------------------------------------------------------------------ AUTH

    async def _first_frame(self) -> bytes | None:
        """The first frame (AUTH), or None at EOF. Blank lines before it count against the
        rate limits as they do after login: a flood of them before any login is paced (and the
        connection's reading pauses meanwhile) until the auth timeout ends it."""
        while (frames := await self.conn.next_frames(limit=1)) is not None:
            if frames:
                return frames[0]
            blank = self.conn.take_blank_lines()
            wait, _ = self._throttle.charge(blank, blank)
            if wait > 0:
                await asyncio.sleep(wait)
        return None

    async def _authenticate(self) -> bool:
        services = self._services
        conn = self.conn
        try:
            async with asyncio.timeout(services.auth_timeout):
                frame = await self._first_frame()
        except TimeoutError:
            self._counters.login_failures += 1
            conn.send(AuthFailed(error=f"no AUTH within {services.auth_timeout:g} s"))
            return False
        if frame is None:
            return False
        try:
            auth = decode_auth(frame)
        except ProtocolError as exc:
            self._counters.received("invalid", len(frame))
            self._counters.login_failures += 1
            log.warning("[?] Authentication failed from %s: %s", conn.peer, exc.reason)
            conn.send(AuthFailed(error=exc.reason))
            return False
        self._counters.received("AUTH", len(frame))
        addresses = services.addresses
        # Failed logins from here: checked (and answered) only after the backoff, one guess
        # for an id at a time however many connections they come on.
        async with addresses.checking(self.address, auth.ai_id, conn.ended) as turn:
            if not turn or conn.lost:  # reset while it waited: its guess costs no hashing
                return False
            verdict = await services.auth.authenticate(auth.ai_id, auth.token)
            # Recorded while the turn is held: the next guess waits for the backoff it earns.
            if isinstance(verdict, str):
                addresses.failed(self.address, auth.ai_id)
            else:
                addresses.succeeded(self.address, auth.ai_id)
        if isinstance(verdict, str):
            self._counters.login_failures += 1
            log.warning("[-] Authentication failed for %s @ %s", auth.ai_id, conn.peer)
            conn.send(AuthFailed(error=verdict))
            return False
        self.grant = verdict
        self._ai_id = conn.name = auth.ai_id
        self._authenticated_at = services.clock.now()
        # One step, no await: of simultaneous logins of one AI, the last to get here is live.
        previous = services.peers.claim(self)
        if isinstance(previous, Session):
            log.info("[%s] New connection from %s takes over", auth.ai_id, conn.peer)
            previous.evict(
                f"{auth.ai_id} connected again from {conn.peer}; closing this connection"
            )
        self._predecessor = services.peers.departure_of(auth.ai_id)
        if self._predecessor is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._predecessor)
        if not services.peers.is_live(self):
            return False  # an even newer login took over while we waited
        self._counters.logins += 1
        conn.send(AuthOk(ai_id=auth.ai_id))
        log.info("[+] AI Trainer authenticated: %s @ %s", auth.ai_id, conn.peer)
        return True

    # ------------------------------------------------------------------ frames

    async def _serve(self) -> None:
        """Serve frames until EOF. Replies keep the order of the frames they answer.

        Runs of plain shares that arrived together are stored together (one write job, one
        commit with the other connections' shares), and their ACKs and relays go out in order.
        Anything else waits for the shares before it, so it sees their effects. Plain shares
        are never forwarded to another replica (they belong to no collaboration). Runs of
        ``COLLABORATION_REQUEST``s are carried out together too (:meth:`Router.requests`),
        without an await: before anything else, and before this connection's turn ends.
        """
        can_pipeline = self._services.router.can_pipeline
        received_one = self._counters.received
        turn = self._services.rate_limits.turn_seconds
        clock = time.perf_counter
        while (frames := await self._next_frames()) is not None:
            if not await self._pace(frames):
                return
            shares: list[Received] = []
            requests: list[CollaborationRequest] = []
            started = clock()
            budget = turn
            for frame in frames:
                if turn and clock() - started > budget:
                    # Our turn is over: the others' frames (and our writes) go first, so a
                    # client pipelining thousands of frames delays nobody by much more than a
                    # turn. A run of shares carries on across it (nothing else was handled).
                    if requests and not self._request_all(requests):
                        return
                    requests = []
                    yielded = clock()
                    await asyncio.sleep(0)
                    started = clock()
                    # The next turn may last as long as the loop took meanwhile (up to
                    # TURN_STRETCH turns): that time includes the writes our frames queued, one
                    # per recipient, and a relay to 1,000 subscribers cut into one-frame turns
                    # would pay 1,000 writes a frame. Among quiet clients the loop comes back at
                    # once, so a pipeliner keeps its short turn; busy ones share it evenly.
                    budget = min(max(turn, started - yielded), turn * TURN_STRETCH)
                if self.evicted:
                    return
                decoded = False
                try:
                    received = decode_client_frame(frame)
                    decoded = True
                    message = received[0]
                    received_one(message.type, len(frame))
                    if type(message) is CollaborationRequest and self.joined:
                        if shares:
                            await self._dispatch_all(shares)
                            shares = []
                        requests.append(message)
                        continue
                    if requests:
                        if not self._request_all(requests):
                            return
                        requests = []
                    if self.joined and can_pipeline(message):
                        shares.append(received)
                        continue
                    await self._dispatch_all(shares)
                    shares = []
                    await self._dispatch(received)
                except ProtocolError as exc:
                    if not decoded:
                        received_one("invalid", len(frame))
                    if requests:
                        if not self._request_all(requests):
                            return
                        requests = []
                    await self._dispatch_all(shares)
                    shares = []
                    if not self._reply_error(exc):
                        return
            if requests and not self._request_all(requests):
                return
            await self._dispatch_all(shares)
            # Let other connections (and this one's writes) have a turn between batches, so a
            # client pipelining thousands of cheap frames cannot hold the loop.
            await asyncio.sleep(0)

    def _request_all(self, requests: list[CollaborationRequest]) -> bool:
        """Carry out a run of requests (:meth:`Router.requests`), answered in order; False if
        one of their ERRORs closes the connection."""
        stays = True

        def fail(exc: ProtocolError) -> bool:
            nonlocal stays
            stays = self._reply_error(exc)
            return stays

        started = time.perf_counter()
        acked = self._services.router.requests(self, requests, fail)
        self._counters.ack_seconds.observe_many(time.perf_counter() - started, acked)
        return stays

    async def _next_frames(self) -> list[bytes] | None:
        """The next frames (none if only blank lines came), or None at EOF or after
        ``idle_timeout`` seconds without any."""
        idle = self._services.idle_timeout
        if idle <= 0:
            return await self.conn.next_frames()
        try:
            async with asyncio.timeout(idle):
                return await self.conn.next_frames()
        except TimeoutError:
            log.info("[%s] Idle for %g s; closing", self._ai_id, idle)
            self._send_error(
                Error(
                    code=ErrorCode.IDLE_TIMEOUT,
                    error=f"no frame for {idle:g} s; send PING at least that often to stay",
                )
            )
            return None

    async def _pace(self, frames: list[bytes]) -> bool:
        """Hold this connection to its rate limits (blank lines count as frames): wait while it
        is over them (TCP pushes back on the client meanwhile), and tell it once per episode;
        False if it stayed over them for too long (it is told, then closed)."""
        count = len(frames) + self.conn.take_blank_lines()
        wait, abusive = self._throttle.charge(count, sum(map(len, frames)) + count)
        if wait <= 0:
            self._slowed = False
            return True
        limits = self._services.rate_limits
        self._tell_slow_down(limits)
        # Wait until the debt is paid, in slices, without taking anything more from this
        # client meanwhile: a client far over its limits is found out within abuse_seconds
        # even when everything it sent arrived at once.
        while wait > 0 and not abusive:
            await asyncio.sleep(min(wait, max(0.05, limits.abuse_seconds / 10)))
            wait, abusive = self._throttle.charge(0, 0)
        if abusive:
            log.warning(
                "[%s] Over the rate limits for %g s; disconnecting",
                self._ai_id,
                limits.abuse_seconds,
            )
            self._send_error(
                Error(
                    code=ErrorCode.RATE_LIMITED,
                    error=f"over the rate limits for more than {limits.abuse_seconds:g} s; "
                    "disconnecting",
                )
            )
            return False
        return True

    def _tell_slow_down(self, limits: RateLimits) -> None:
        """Once per episode of being over the limits."""
        if not self._slowed:
            self._slowed = True
            self._send_error(
                Error(
                    code=ErrorCode.RATE_LIMITED,
                    error=f"slow down: at most {_rates(limits)} per second; the frames are "
                    "handled, later",
                )
            )

    async def _dispatch(self, received: Received) -> None:
        message, raw = received
        try:
            await self._carry_out(message, raw)
        except ProtocolError:
            raise
        except Exception:
            # A bug or an outage must cost this frame, not the connection or the hub.
            log.exception("[%s] Failed to handle %s", self._ai_id, message.type)
            raise ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                f"the hub failed to handle this {message.type}; nothing was stored",
                message.msg_id,
            ) from None

    async def _carry_out(self, message: ClientMessage, raw: RawFields) -> None:
        if isinstance(message, Ping):
            if message.msg_id is None:
                self.conn.send_raw(_PONG)
            else:
                self.conn.send(Pong(ref=message.msg_id))
        elif isinstance(message, Hello):
            await self._hello(message)
        elif not self.joined:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "send HELLO before other messages", message.msg_id
            )
        elif isinstance(message, ListAis):
            presence = self._services.presence
            self.conn.send_raw(
                presence.page(
                    message.after,
                    message.limit,
                    message.specialization,
                    message.msg_id,
                    message.ids,
                )
            )
        else:
            started = time.perf_counter()
            cluster = self._services.cluster
            if cluster is not None and (owner := cluster.owner_of(message)) is not None:
                await cluster.forward(self, message, raw, owner)
            else:
                await self._services.router.dispatch(self, message, raw)
            self._counters.ack_seconds.observe(time.perf_counter() - started)

    async def _dispatch_all(self, messages: list[Received]) -> None:
        """Carry out a run of plain shares: stored with one write, answered in order."""
        if not messages:
            return
        started = time.perf_counter()
        try:
            acked = await self._services.router.share_many(self, messages, self._reply_error)
        except Exception:
            # A bug must cost these frames, not the connection or the hub.
            log.exception("[%s] Failed to handle %d shares", self._ai_id, len(messages))
            for message, _ in messages:
                self._reply_error(
                    ProtocolError(
                        ErrorCode.INTERNAL_ERROR,
                        f"the hub failed to handle this {message.type}; nothing was stored",
                        message.msg_id,
                    )
                )
            return
        self._counters.ack_seconds.observe_many(time.perf_counter() - started, acked)

    def _reply_error(self, exc: ProtocolError) -> bool:
        """Send the ERROR; return whether the connection stays open."""
        log.info("[%s] ERROR %s: %s", self._ai_id, exc.code, exc.reason)
        self._send_error(Error(code=exc.code, error=exc.reason, ref=exc.ref))
        return exc.code not in CLOSING_CODES

    # ------------------------------------------------------------------ HELLO

    async def _hello(self, hello: Hello) -> None:
        services = self._services
        ai_id = self._ai_id
        assert ai_id is not None
        if hello.protocol_version != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"protocol_version {hello.protocol_version} is not supported; "
                f"this hub speaks {PROTOCOL_VERSION}",
                hello.msg_id,
            )
        first = self._profile is None
        profile = Profile(
            ai_id=ai_id,
            specialization=hello.specialization,
            capabilities=tuple(hello.capabilities),
            connected_at=self._authenticated_at,
            follows=frozenset(TOPICS if hello.follow is None else hello.follow),
        )
        await services.store.upsert_ai(
            ai_id, profile.specialization, list(profile.capabilities), services.clock.now()
        )
        resume = hello.resume
        replay = services.router.replay
        resumed = None if resume is None else replay.can_resume(resume)
        state = await services.presence.welcome(profile, resumed=resumed)
        # No await from here to the broadcast: STATE is the first frame after HELLO, before any
        # AI_JOINED, AI_LEFT or relay that other connections cause once this one counts as joined.
        if self.evicted:
            return
        self._profile = profile
        services.peers.join(self)  # again after a later HELLO: what it follows may change
        self.conn.send_raw(state)
        if resume is not None and resumed:  # what it missed, before anything newer
            for frame in replay.missed(resume, ai_id, profile.follows):
                self.conn.send_raw(frame)
        log.info(
            "AI %s joined: specialization=%s, capabilities=%s",
            ai_id,
            profile.specialization,
            list(profile.capabilities),
        )
        if first and services.presence.announced():
            announcement = services.presence.joined(profile)
            services.peers.broadcast(announcement, exclude=ai_id, topic="presence")


def _rates(limits: RateLimits) -> str:
    """The limits in force (0 is off), as the slow-down ERROR names them."""
    rates = []
    if limits.frames_per_second > 0:
        rates.append(f"{limits.frames_per_second:g} frames")
    if limits.bytes_per_second > 0:
        rates.append(f"{limits.bytes_per_second / 2**20:g} MiB")
    return " and ".join(rates)
