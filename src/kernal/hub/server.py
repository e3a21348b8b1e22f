"""The hub: accepts trainers over TCP, authenticates them, and serves the dashboard in-process.

Lifecycle: ``await hub.start()`` binds (port 0 picks a free port; see :attr:`Hub.address`),
``await hub.stop()`` disconnects everyone, records active collaborations as failed and closes the
store. ``async with Hub(...)`` does both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kernal.config import HubSettings
from kernal.hub.auth import Authenticator, is_loopback
from kernal.hub.collaborations import CollaborationBook
from kernal.hub.connection import Connection
from kernal.hub.router import Router
from kernal.protocol import (
    CLOSING_CODES,
    ErrorCode,
    FrameTooLarge,
    ProtocolError,
    decode_auth,
    decode_client_message,
    encode,
)
from kernal.protocol.messages import (
    AiInfo,
    AiJoined,
    AiLeft,
    AuthFailed,
    AuthOk,
    ClientMessage,
    Error,
    Hello,
    KnowledgeBase,
    Ping,
    Pong,
    ServerMessage,
    State,
)
from kernal.storage import CollaborationStatus, NotFoundError, StatsSnapshot, Store

if TYPE_CHECKING:
    from kernal.web.server import WebServer

log = logging.getLogger("kernal.hub")


REPUTATION_PRIOR = 0.5
REPUTATION_PRIOR_WEIGHT = 2.0


def hub_reputation(total: float, count: int) -> float:
    """Mean of the scores received, pulled toward 0.5 by two virtual ratings, so that a single
    rating does not decide and an AI nobody rated stands at 0.5."""
    return (total + REPUTATION_PRIOR * REPUTATION_PRIOR_WEIGHT) / (count + REPUTATION_PRIOR_WEIGHT)


class HubConfigError(Exception):
    """The hub refuses to start with these settings; the message says how to fix them."""


def describe_store_error(db: str, exc: Exception) -> str:
    """One line for a database that would not open, naming it and what to check."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return (
        f"cannot open the database {db!r}: {first_line}. Use a SQLite file path or a "
        "postgresql://host/dbname URL, and check that the server is reachable."
    )


class Hub:
    """A running hub. Owns its connections; the store is opened and closed with the hub."""

    def __init__(self, settings: HubSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.clock = settings.clock
        self.connections: dict[str, Connection] = {}
        self.collaborations = CollaborationBook()
        self.auth = Authenticator(store, allow_demo_tokens=is_loopback(settings.host))
        self.router = Router(self)
        self.started_at = 0.0
        self._server: asyncio.Server | None = None
        self._web: WebServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._stats_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.address: tuple[str, int] = (settings.host, settings.port)
        self.dashboard_address: tuple[str, int] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        try:
            await self.store.open()
        except Exception as exc:
            raise HubConfigError(describe_store_error(self.settings.db, exc)) from exc
        self.started_at = self.clock.now()
        try:
            await self._check_security()
            closed = await self.store.fail_active_collaborations(
                self.clock.now(), "hub restarted while the collaboration was active"
            )
            if closed:
                log.info("Marked %d collaborations left active by the last run as failed", closed)
            self._server = await asyncio.start_server(
                self._on_connect, self.settings.host, self.settings.port, limit=2**16
            )
            sockname = self._server.sockets[0].getsockname()
            self.address = (sockname[0], sockname[1])
            if self.settings.dashboard_port is not None:
                from kernal.web.server import start_web

                self._web = await start_web(self)
                self.dashboard_address = self._web.address
        except BaseException:
            await self._close_listeners()
            await self.store.close()
            raise
        self._stats_task = asyncio.create_task(self._stats_loop())
        log.info("Hub listening for trainers on %s:%d", *self.address)
        if self.dashboard_address:
            log.info("Dashboard on http://%s:%d/", *self.dashboard_address)

    async def _check_security(self) -> None:
        tokens = await self.store.count_tokens()
        if tokens == 0 and not is_loopback(self.settings.host):
            raise HubConfigError(
                f"refusing to listen on {self.settings.host} with no tokens configured: anyone "
                "could connect. Add a token first with `kernal token add AI_ID` (same --db), "
                "or listen on 127.0.0.1."
            )
        if await self.auth.demo_mode():
            log.warning(
                "Demo tokens are active (AI_Node_1..AI_Node_8 / secret1..secret8) because no "
                "token is stored; they stop working once you `kernal token add` any AI"
            )

    async def _close_listeners(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._web is not None:
            await self._web.stop()
            self._web = None

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        await self._close_listeners()
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
        for conn in list(self.connections.values()):
            conn.abort()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
        await self.store.close()
        log.info("Hub stopped")

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        assert self._server is not None, "call start() first"
        await self._server.serve_forever()

    # ------------------------------------------------------------------ state

    async def reputations(self, ai_ids: list[str]) -> dict[str, float]:
        """The hub's standing of each AI (see :func:`hub_reputation`), newcomers at the prior."""
        tallies = await self.store.received_scores(ai_ids)
        return {
            ai_id: hub_reputation(tallies[ai_id].total, tallies[ai_id].count)
            if ai_id in tallies
            else REPUTATION_PRIOR
            for ai_id in ai_ids
        }

    def joined(self) -> list[Connection]:
        return [conn for conn in self.connections.values() if conn.joined]

    async def status(self) -> dict[str, Any]:
        """The figures the dashboard shows (``GET /status``)."""
        counts = await self.store.counts()
        return {
            "connected_ais": len(self.joined()),
            "shared_patterns": counts.shared_patterns,
            "shared_components": counts.shared_components,
            "active_collaborations": len(self.collaborations),
            "uptime": round(self.clock.now() - self.started_at, 3),
            "demo_tokens": await self.auth.demo_mode(),
        }

    async def save_progress(self) -> None:
        """Write the collaboration progress reported since the last call (one group commit)."""
        unsaved = self.collaborations.take_progress()
        results = await asyncio.gather(
            *(self.store.set_collaboration_progress(cid, p) for cid, p in unsaved.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, NotFoundError):
                log.error("Could not store collaboration progress: %s", result)

    async def _stats_loop(self) -> None:
        while True:
            await self.clock.sleep(self.settings.stats_interval)
            await self.save_progress()
            try:
                figures = await self.status()
                await self.store.add_stats_snapshot(
                    StatsSnapshot(
                        timestamp=self.clock.now(),
                        connected_ais=figures["connected_ais"],
                        shared_patterns=figures["shared_patterns"],
                        shared_components=figures["shared_components"],
                        active_collaborations=figures["active_collaborations"],
                    )
                )
            except Exception:
                log.exception("Could not record a stats snapshot")

    # ------------------------------------------------------------------ messaging

    def broadcast(self, message: ServerMessage, *, exclude: str | None = None) -> int:
        """Send to every AI that said HELLO, except ``exclude``. Returns how many got it."""
        frame = encode(message)  # once, not once per recipient
        sent = 0
        for conn in self.joined():
            if conn.ai_id != exclude:
                conn.send_raw(frame)
                sent += 1
        return sent

    def send_to(self, ai_id: str, message: ServerMessage) -> bool:
        conn = self.connections.get(ai_id)
        if conn is None or not conn.joined:
            return False
        conn.send(message)
        return True

    # ------------------------------------------------------------------ one connection

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.close()
            return
        task = asyncio.create_task(self._serve(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(
            reader,
            writer,
            max_frame=self.settings.max_frame,
            send_queue_limit=self.settings.send_queue_limit,
        )
        try:
            if await self._authenticate(conn):
                await self._session(conn)
        except FrameTooLarge as exc:
            log.warning("[%s] %s from %s", conn.ai_id or "?", exc.reason, conn.peer)
            conn.send(Error(code=exc.code, error=exc.reason))
        except Exception:
            log.exception("[%s] Connection handler failed; closing it", conn.ai_id or "?")
        finally:
            await self._leave(conn)
            await conn.close()

    async def _authenticate(self, conn: Connection) -> bool:
        try:
            async with asyncio.timeout(self.settings.auth_timeout):
                frame = await conn.next_frame()
        except TimeoutError:
            conn.send(AuthFailed(error=f"no AUTH within {self.settings.auth_timeout:g} s"))
            return False
        if frame is None:
            return False
        try:
            auth = decode_auth(frame)
        except ProtocolError as exc:
            log.warning("[?] Authentication failed from %s: %s", conn.peer, exc.reason)
            conn.send(AuthFailed(error=exc.reason))
            return False
        problem = await self.auth.check(auth.ai_id, auth.token)
        if problem is not None:
            log.warning("[-] Authentication failed for %s @ %s: %s", auth.ai_id, conn.peer, problem)
            conn.send(AuthFailed(error=problem))
            return False
        previous = self.connections.get(auth.ai_id)
        if previous is not None:
            log.info("[%s] New connection from %s takes over", auth.ai_id, conn.peer)
            previous.evicted = True
            previous.send(
                Error(
                    code=ErrorCode.REPLACED,
                    error=f"{auth.ai_id} connected again from {conn.peer}; closing this connection",
                )
            )
            await self._leave(previous)
            await previous.close(timeout=1.0)
        conn.ai_id = auth.ai_id
        conn.connected_at = self.clock.now()
        self.connections[auth.ai_id] = conn
        conn.send(AuthOk(ai_id=auth.ai_id))
        log.info("[+] AI Trainer authenticated: %s @ %s", auth.ai_id, conn.peer)
        return True

    async def _session(self, conn: Connection) -> None:
        """Serve frames until EOF. Replies keep the order of the frames they answer.

        Runs of plain shares that arrived together are stored concurrently: their writes queue
        in order and commit together (group commit), and their ACKs and relays go out in order.
        Anything else waits for the shares before it, so it sees their effects.
        """
        while frames := await conn.next_frames():
            shares: list[ClientMessage] = []
            for frame in frames:
                if conn.evicted:
                    return
                try:
                    message = decode_client_message(frame)
                    if conn.joined and self.router.can_pipeline(message):
                        shares.append(message)
                        continue
                    await self._dispatch_all(conn, shares)
                    shares = []
                    await self._dispatch(conn, message)
                except ProtocolError as exc:
                    await self._dispatch_all(conn, shares)
                    shares = []
                    if not self._reply_error(conn, exc):
                        return
            await self._dispatch_all(conn, shares)

    async def _dispatch(self, conn: Connection, message: ClientMessage) -> None:
        try:
            await self._carry_out(conn, message)
        except ProtocolError:
            raise
        except Exception:
            # A bug or an outage must cost this frame, not the connection or the hub.
            log.exception("[%s] Failed to handle %s", conn.ai_id, message.type)
            raise ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                f"the hub failed to handle this {message.type}; nothing was stored",
                message.msg_id,
            ) from None

    async def _carry_out(self, conn: Connection, message: ClientMessage) -> None:
        if isinstance(message, Ping):
            conn.send(Pong(ref=message.msg_id))
        elif isinstance(message, Hello):
            await self._hello(conn, message)
        elif not conn.joined:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "send HELLO before other messages", message.msg_id
            )
        else:
            await self.router.dispatch(conn, message)

    async def _dispatch_all(self, conn: Connection, messages: list[ClientMessage]) -> None:
        async def one(message: ClientMessage) -> None:
            try:
                await self._dispatch(conn, message)
            except ProtocolError as exc:
                self._reply_error(conn, exc)

        if len(messages) == 1:
            await one(messages[0])
        elif messages:
            # gather starts the coroutines in order, so their writes are queued in order.
            await asyncio.gather(*(one(message) for message in messages))

    @staticmethod
    def _reply_error(conn: Connection, exc: ProtocolError) -> bool:
        """Send the ERROR; return whether the connection stays open."""
        log.info("[%s] ERROR %s: %s", conn.ai_id, exc.code, exc.reason)
        conn.send(Error(code=exc.code, error=exc.reason, ref=exc.ref))
        return exc.code not in CLOSING_CODES

    async def _hello(self, conn: Connection, hello: Hello) -> None:
        assert conn.ai_id is not None
        if hello.protocol_version != 1:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"protocol_version {hello.protocol_version} is not supported; this hub speaks 1",
                hello.msg_id,
            )
        first = not conn.joined
        capabilities = list(hello.capabilities)
        await self.store.upsert_ai(conn.ai_id, hello.specialization, capabilities, self.clock.now())
        state = await self._state_for(conn.ai_id, hello.specialization, capabilities)
        standing = next(ai.reputation for ai in state.active_ais if ai.ai_id == conn.ai_id)
        # No await from here to the broadcast: STATE is the first frame after HELLO, before any
        # AI_JOINED, AI_LEFT or relay that other connections cause once this one counts as joined.
        conn.specialization = hello.specialization
        conn.capabilities = capabilities
        conn.send(state)
        log.info(
            "AI %s joined: specialization=%s, capabilities=%s",
            conn.ai_id,
            conn.specialization,
            conn.capabilities,
        )
        if first:
            self.broadcast(
                AiJoined(
                    ai_id=conn.ai_id,
                    specialization=hello.specialization,
                    capabilities=conn.capabilities,
                    reputation=standing,
                ),
                exclude=conn.ai_id,
            )

    async def _state_for(self, ai_id: str, specialization: str, capabilities: list[str]) -> State:
        limit = self.settings.recent_limit
        counts = await self.store.counts()
        standings = await self.reputations([ai_id, *(c.ai_id for c in self.joined() if c.ai_id)])
        patterns = [
            {
                "pattern_id": p.pattern_id,
                "contributor": p.contributor,
                "timestamp": p.timestamp,
                "usage_count": p.usage_count,
                "pattern_data": p.pattern_data,
            }
            for p in await self.store.recent_patterns(limit)
        ]
        components = [
            {
                "component_id": c.component_id,
                "contributor": c.contributor,
                "timestamp": c.timestamp,
                "quality_score": c.quality_score,
                "usage_count": c.usage_count,
                "component_data": c.component_data,
            }
            for c in await self.store.recent_components(limit)
        ]
        # Built after the last await, so it matches who is joined when STATE is sent.
        active = [
            AiInfo(
                ai_id=c.ai_id,
                specialization=c.specialization,
                capabilities=c.capabilities,
                reputation=standings.get(c.ai_id, REPUTATION_PRIOR),
            )
            for c in self.joined()
            if c.ai_id is not None and c.specialization is not None and c.ai_id != ai_id
        ]
        active.append(
            AiInfo(
                ai_id=ai_id,
                specialization=specialization,
                capabilities=capabilities,
                reputation=standings[ai_id],
            )
        )
        active.sort(key=lambda info: info.ai_id)
        state = State(
            active_ais=active,
            knowledge_base=KnowledgeBase(
                shared_patterns=counts.shared_patterns,
                shared_components=counts.shared_components,
                recent_patterns=patterns,
                recent_components=components,
            ),
        )
        # Recent items carry their data; drop the oldest until STATE fits in half a frame.
        while len(state.model_dump_json()) > self.settings.max_frame // 2 and (
            patterns or components
        ):
            (patterns if len(patterns) >= len(components) else components).pop()
            state = state.model_copy(
                update={
                    "knowledge_base": state.knowledge_base.model_copy(
                        update={"recent_patterns": patterns, "recent_components": components}
                    )
                }
            )
        return state

    async def _leave(self, conn: Connection) -> None:
        """Forget a connection: fail its collaborations, tell the others. Runs once per conn."""
        if conn.ai_id is None or self.connections.get(conn.ai_id) is not conn:
            return
        ai_id = conn.ai_id
        del self.connections[ai_id]
        self.collaborations.forget_requests_of(ai_id)
        now = self.clock.now()
        for record in self.collaborations.active_of(ai_id):
            await self.router.end_collaboration(
                record,
                CollaborationStatus.FAILED,
                sender=ai_id,
                reason=f"partner {ai_id} disconnected",
            )
        if conn.joined:
            with contextlib.suppress(Exception):
                await self.store.touch_ai(ai_id, now)
            self.broadcast(AiLeft(ai_id=ai_id))
        log.info("[-] AI Trainer disconnected: %s", ai_id)
