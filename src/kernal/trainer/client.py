"""Client SDK: one authenticated connection to a hub, kept alive across hub restarts.

    client = HubClient(host, port, "AI_Node_1", "secret1", specialization="networking",
                       capabilities=[...], on_message=handle)
    runner = asyncio.create_task(client.run())     # connects, reconnects with backoff
    await client.connected.wait()
    ack = await client.request(PatternShare(pattern_id="p1", pattern_data={...}))

For a hub with TLS, pass ``ssl=kernal.tls.client_context(ca=...)`` (with ``cert``/``key`` for
a hub that requires client certificates).

``request`` stamps a ``msg_id`` and waits for the hub's ``ACK`` (or raises :class:`HubError` on its
``ERROR``); incoming relays, ``AI_JOINED``/``AI_LEFT`` and other frames go to ``on_message``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import ssl as ssl_module
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kernal.protocol import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    ErrorCode,
    LineFramer,
    ProtocolError,
    decode_server_message,
    encode,
)
from kernal.protocol.messages import (
    MAX_ORIGINS,
    Ack,
    Auth,
    AuthFailed,
    AuthOk,
    Error,
    Hello,
    Message,
    Ping,
    Pong,
    RelayedComponentShare,
    RelayedPatternShare,
    ResumePoint,
    ServerMessage,
    State,
    Topic,
)
from kernal.runtime import cancel_and_wait

log = logging.getLogger("kernal.trainer")

Incoming = ServerMessage | dict[str, Any]
MessageHandler = Callable[[Incoming], Awaitable[None]]
StateHandler = Callable[[State], Awaitable[None]]


class HubError(Exception):
    """The hub answered a request with ``ERROR``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class AuthenticationError(Exception):
    """The hub refused our token. Not retried: a wrong token does not fix itself."""


class ConnectionLost(ConnectionError):
    """The connection closed before the hub answered."""


class HubClient:
    """One authenticated connection to a hub, kept alive across hub restarts (see the module
    docstring for an example). ``run()`` connects and reconnects with jittered backoff;
    ``request()`` sends a frame and waits for its ACK. ``addresses``: replicas of one hub
    (``host``/``port`` is ignored then): each failed attempt or lost connection moves on to
    the next, in turn."""

    def __init__(
        self,
        host: str,
        port: int,
        ai_id: str,
        token: str,
        *,
        specialization: str,
        capabilities: list[str],
        on_message: MessageHandler | None = None,
        on_state: StateHandler | None = None,
        follow: list[Topic] | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        reconnect: bool = True,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        request_timeout: float = 30.0,
        ssl: ssl_module.SSLContext | None = None,
        addresses: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        self._addresses = list(addresses) if addresses else [(host, port)]
        self._turn = 0
        self.host, self.port = self._addresses[0]
        self._ssl = ssl  # None: plain TCP
        self.ai_id = ai_id
        self._token = token
        self.specialization = specialization
        self.capabilities = capabilities
        self.follow = follow  # None: every broadcast (see Hello.follow)
        self._on_message = on_message
        self._on_state = on_state
        self._max_frame = max_frame
        self._reconnect = reconnect
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._request_timeout = request_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[Ack | Pong]] = {}
        self._ids = itertools.count(1)
        self._inbox: asyncio.Queue[Incoming] = asyncio.Queue()
        self._ready: deque[bytes] = deque()
        self._framer = LineFramer(2 * max_frame)
        self._closed = False
        self.connected = asyncio.Event()
        self.connections = 0  # successful logins, so reconnects = connections - 1
        self.state: State | None = None
        # The last relayed share seen (the hub's run and seq), to resume after a reconnect.
        self._run: str | None = None
        self._last_seq = 0
        # On a cluster, per origin (the run of the replica that stored a share), the last
        # origin_seq seen or that STATE said: another replica resumes this client by them.
        self._origins: dict[str, int] | None = None
        # Why the last connection attempt failed or the last connection ended, for reports:
        # "connect: [Errno 111] ...", "timed out waiting for STATE", "auth refused: ...".
        self.last_error: str | None = None
        self._phase = "connect"

    # ------------------------------------------------------------------ public

    async def run(self) -> None:
        """Stay connected until :meth:`close`. Raises AuthenticationError on a refused token."""
        consumer = asyncio.create_task(self._consume()) if self._on_message else None
        try:
            await self._stay_connected()
        finally:
            await cancel_and_wait(consumer)

    async def _stay_connected(self) -> None:
        backoff = self._backoff_initial
        while not self._closed:
            try:
                reader = await self._connect()
                backoff = self._backoff_initial
                await self._read_loop(reader)
            except (ConnectionError, OSError, TimeoutError, ProtocolError) as exc:
                if not self._closed:
                    self.last_error = self._describe_failure(exc)
                    log.warning(
                        "[%s] Hub connection lost: %s", self.ai_id, exc or type(exc).__name__
                    )
            except _Replaced as exc:
                self.last_error = f"replaced: {exc}"
                log.warning("[%s] %s; not reconnecting", self.ai_id, exc)
                self._closed = True
            finally:
                self._drop_connection()
            if self._closed or not self._reconnect:
                return
            if len(self._addresses) > 1:  # the next replica, in turn
                self._turn = (self._turn + 1) % len(self._addresses)
                self.host, self.port = self._addresses[self._turn]
            delay = backoff * random.uniform(0.8, 1.2)
            log.info(
                "[%s] Reconnecting to %s:%d in %.1f s", self.ai_id, self.host, self.port, delay
            )
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self._backoff_max)

    @property
    def address(self) -> tuple[str, int]:
        """The hub address this client is connected to (or tries next)."""
        return self.host, self.port

    async def request(self, message: Message, *, timeout: float | None = None) -> Ack:
        """Send ``message`` with a fresh ``msg_id`` and wait for the ACK; raises HubError,
        ConnectionLost, or TimeoutError."""
        reply = await self._roundtrip(message, timeout)
        assert isinstance(reply, Ack)
        return reply

    async def ping(self, *, timeout: float | None = None) -> None:
        await self._roundtrip(Ping(), timeout)

    def supports(self, feature: str) -> bool:
        """Whether the hub's latest ``STATE`` lists ``feature`` (e.g. ``"trainer_report"``):
        send a frame newer than the first v1 set only to a hub that does (an older hub lists
        nothing and answers such a frame ``unknown_type``)."""
        return self.state is not None and feature in self.state.features

    async def send(self, message: Message) -> None:
        """Send without waiting for an answer (the ACK or ERROR still arrives, unmatched)."""
        writer = self._writer
        # is_closing(): uvloop raises RuntimeError on writing to a closed transport.
        if writer is None or not self.connected.is_set() or writer.is_closing():
            raise ConnectionLost("not connected to the hub")
        try:
            writer.write(encode(message))
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost(f"connection to the hub was lost: {exc}") from exc

    async def close(self) -> None:
        self._closed = True
        writer = self._writer
        if writer is not None:
            writer.close()
            try:
                # Bounded: with unsent data and a hub that does not read, a graceful close
                # would wait forever.
                async with asyncio.timeout(2):
                    await writer.wait_closed()
            except TimeoutError:
                writer.transport.abort()
            except (ConnectionError, OSError):
                pass

    # ------------------------------------------------------------------ internals

    async def _roundtrip(self, message: Message, timeout: float | None) -> Ack | Pong:
        msg_id = f"{self.ai_id}-{next(self._ids)}"
        future: asyncio.Future[Ack | Pong] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            await self.send(message.model_copy(update={"msg_id": msg_id}))
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # lands in the same iteration as the reply, leaving a cancelled caller running.
            async with asyncio.timeout(timeout or self._request_timeout):
                return await future
        finally:
            self._pending.pop(msg_id, None)
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: a send that failed first already raised

    def _describe_failure(self, exc: BaseException) -> str:
        """One line, the same for every client that failed the same way (no ids in it)."""
        if isinstance(exc, TimeoutError):
            phase = self._phase
            return f"timed out {phase}" if phase.startswith("waiting") else f"{phase}: timed out"
        return f"{self._phase}: {str(exc) or type(exc).__name__}"

    async def _connect(self) -> asyncio.StreamReader:
        self._phase = "connect"
        async with asyncio.timeout(10):
            if self._ssl is None:
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=2**16)
            else:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=2**16, ssl=self._ssl, ssl_handshake_timeout=10
                )
        self._writer = writer
        # A relay carries more than the frame its sender sent (``from``, ``timestamp``, numbers
        # re-encoded), so read with room to spare over the hub's frame limit.
        self._framer = LineFramer(2 * self._max_frame)
        self._ready.clear()
        writer.write(encode(Auth(ai_id=self.ai_id, token=self._token)))
        self._phase = "waiting for AUTH_OK"
        async with asyncio.timeout(15):
            reply = await self._next(reader)
        if isinstance(reply, AuthFailed):
            self._closed = True
            self.last_error = f"auth refused: {reply.error}"
            raise AuthenticationError(f"hub refused {self.ai_id}: {reply.error}")
        if not isinstance(reply, AuthOk):
            raise ConnectionLost(f"expected AUTH_OK, got {reply!r}")
        writer.write(
            encode(
                Hello(
                    specialization=self.specialization,
                    capabilities=self.capabilities,
                    protocol_version=PROTOCOL_VERSION,
                    follow=self.follow,
                    resume=None
                    if self._run is None
                    else ResumePoint(run=self._run, after=self._last_seq, origins=self._origins),
                )
            )
        )
        self._phase = "waiting for STATE"
        async with asyncio.timeout(15):
            state = await self._next(reader)
        if not isinstance(state, State):
            raise ConnectionLost(f"expected STATE, got {state!r}")
        self.state = state
        if not state.resumed:  # a fresh start (or too much missed): count from now
            self._run, self._last_seq = state.run, state.seq or 0
            self._origins = None if state.origins is None else dict(state.origins)
        elif state.run != self._run:  # resumed by another replica: count in its numbers now
            # What it missed follows STATE; this replica's seq starts at what STATE said.
            self._run, self._last_seq = state.run, state.seq or 0
        self._phase = "connection lost"
        self.connections += 1
        self.connected.set()
        log.info(
            "[%s] Connected to hub at %s:%d%s",
            self.ai_id,
            self.host,
            self.port,
            "" if self._ssl is None else " (TLS)",
        )
        if self._on_state is not None:
            await self._on_state(state)
        return reader

    async def _next(self, reader: asyncio.StreamReader) -> Incoming:
        """The next frame from the hub; frames that came in the same read wait in ``_ready``."""
        while not self._ready:
            if self._framer.error is not None:
                raise self._framer.error
            data = await reader.read(65536)
            if not data:
                if self._phase == "waiting for AUTH_OK":
                    # What a TLS hub does to a plain-text client, and a hub that requires
                    # client certificates to a client without one: it says nothing, it closes.
                    hint = (
                        "if the hub uses TLS, connect with a tls://HOST:PORT address"
                        if self._ssl is None
                        else "if the hub requires client certificates, give one signed by "
                        "its client CA"
                    )
                    raise ConnectionLost(
                        f"hub closed the connection before answering AUTH ({hint})"
                    )
                raise ConnectionLost("hub closed the connection")
            self._ready.extend(self._framer.feed(data))
        return decode_server_message(self._ready.popleft())

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        keepalive = None
        idle = self.state.idle_timeout if self.state is not None else None
        if idle:
            keepalive = asyncio.create_task(self._keep_alive(idle / 3))
        try:
            while True:
                await self._dispatch(await self._next(reader))
        finally:
            if keepalive is not None:
                keepalive.cancel()

    async def _keep_alive(self, every: float) -> None:
        """PING often enough that the hub's idle timeout never closes a quiet connection."""
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(ConnectionLost, TimeoutError, HubError):
                await self.ping(timeout=every)

    async def _dispatch(self, message: Incoming) -> None:
        if isinstance(message, RelayedPatternShare | RelayedComponentShare):
            if message.seq:
                self._last_seq = max(self._last_seq, message.seq)
            origins, origin, at = self._origins, message.origin, message.origin_seq
            known = origins is not None and (origin in origins or len(origins) < MAX_ORIGINS)
            if origins is not None and known and origin is not None and at:
                origins[origin] = max(origins.get(origin, 0), at)
        if isinstance(message, Ack | Pong) and message.ref in self._pending:
            waiting = self._pending[message.ref]
            if not waiting.done():
                waiting.set_result(message)
            return
        if isinstance(message, Error):
            if message.code == ErrorCode.REPLACED:
                raise _Replaced(message.error)
            if message.code == ErrorCode.TOKEN_REVOKED:
                # Like a refused token, it does not fix itself: reconnecting would be refused.
                self._closed = True
                self.last_error = f"token revoked: {message.error}"
                raise AuthenticationError(f"hub disconnected {self.ai_id}: {message.error}")
            future = self._pending.get(message.ref or "")
            if future is not None and not future.done():
                future.set_exception(HubError(message.code, message.error))
                return
            log.warning("[%s] Hub error %s: %s", self.ai_id, message.code, message.error)
        if self._on_message is not None:
            self._inbox.put_nowait(message)

    async def _consume(self) -> None:
        # Handlers run here, not in the read loop, so they may await request() themselves.
        assert self._on_message is not None
        while True:
            message = await self._inbox.get()
            try:
                await self._on_message(message)
            except Exception:
                log.exception("[%s] Message handler failed on %r", self.ai_id, message)

    def _drop_connection(self) -> None:
        self.connected.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost("connection to the hub was lost"))


class _Replaced(Exception):
    """Another process logged in with our ai_id."""
