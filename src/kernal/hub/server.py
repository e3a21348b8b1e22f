"""The hub's lifecycle: bind, start, stop. What it is made of is built here and nowhere else.

``await hub.start()`` opens the store and binds (port 0 picks a free port; see
:attr:`Hub.address`), ``await hub.stop()`` disconnects everyone, records active collaborations
as failed and closes the store. ``async with Hub(...)`` does both. The dashboard is not the
hub's business: :mod:`kernal.serve` starts it next to the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from pathlib import Path
from types import TracebackType
from typing import Any

from kernal.config import HubSettings
from kernal.hub.auth import Authenticator, is_loopback
from kernal.hub.bus import BusError, open_bus
from kernal.hub.cluster import Cluster
from kernal.hub.collaborations import CollaborationBook
from kernal.hub.connection import Connection
from kernal.hub.counters import HubCounters
from kernal.hub.knowledge import Knowledge
from kernal.hub.limits import AddressBook, Pace, RateLimits
from kernal.hub.peers import Peers
from kernal.hub.presence import Presence
from kernal.hub.replay import ReplayLog
from kernal.hub.replica_wire import ClusterConfig
from kernal.hub.reputation import Standings
from kernal.hub.router import Router
from kernal.hub.session import Session, SessionServices
from kernal.hub.stats import StatsRecorder
from kernal.hub.status import ClusterStatus, HubStatus
from kernal.hub.tokens import TokensFile, TokensFileError, TokenWatch, describe_counts
from kernal.storage import ItemKind, Store
from kernal.tls import TlsConfigError, server_context

log = logging.getLogger("kernal.hub")

LISTEN_BACKLOG = 4096  # a burst of trainers connecting at once must not be refused by the kernel


class HubConfigError(Exception):
    """The hub refuses to start with these settings; the message says how to fix them."""


def describe_store_error(target: str, exc: Exception) -> str:
    """One line for a database that would not open, naming it and what to check."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return (
        f"cannot open the database {target!r}: {first_line}. Use a SQLite file path or a "
        "postgresql://host/dbname URL, and check that the server is reachable."
    )


class Hub:
    """A running hub. Owns its sessions; the store is opened and closed with the hub."""

    def __init__(self, settings: HubSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.clock = settings.clock
        self.counters = HubCounters()
        """What the hub did since it was built (read by the web app's /metrics)."""
        self.peers = Peers(counters=self.counters)
        self.collaborations = CollaborationBook(max_per_ai=settings.max_collaborations_per_ai)
        self.standings = Standings(store)
        self.knowledge = Knowledge(store, settings.recent_limit)
        self.replay = ReplayLog(
            max_items=settings.replay_items,
            max_bytes=settings.replay_bytes,
            stamp_origin=bool(settings.bus),  # replicas: what lets another one resume a trainer
        )
        self.auth = Authenticator(store, allow_demo_tokens=is_loopback(settings.host))
        self.router = Router(
            store=store,
            peers=self.peers,
            book=self.collaborations,
            standings=self.standings,
            knowledge=self.knowledge,
            replay=self.replay,
            clock=self.clock,
            request_fanout=settings.request_fanout,
            max_data_bytes=settings.max_data_bytes,
            feedback_pace=Pace(settings.rate_feedback, settings.rate_feedback_burst),
            counters=self.counters,
        )
        presence = Presence(
            peers=self.peers,
            standings=self.standings,
            knowledge=self.knowledge,
            replay=self.replay,
            limit=settings.presence_limit,
            max_state_bytes=settings.max_frame // 2,
            idle_timeout=settings.idle_timeout,
        )
        self.cluster: Cluster | None = None
        if settings.bus:
            try:
                bus = open_bus(settings.bus)
            except BusError as exc:
                raise HubConfigError(str(exc)) from None
            self.cluster = Cluster(
                bus,
                ClusterConfig(
                    namespace=settings.bus_namespace,
                    replica_id=settings.replica_id,
                    heartbeat=settings.bus_heartbeat,
                    ttl=settings.bus_ttl,
                ),
                peers=self.peers,
                router=self.router,
                presence=presence,
                figures=self._figures,
            )
            self.peers.cluster = self.cluster
        self._services = SessionServices(
            store=store,
            peers=self.peers,
            router=self.router,
            cluster=self.cluster,
            presence=presence,
            auth=self.auth,
            clock=self.clock,
            auth_timeout=settings.auth_timeout,
            addresses=AddressBook(
                max_connections=settings.max_connections,
                max_per_address=settings.max_connections_per_address,
                backoff_initial=settings.login_backoff_initial,
                backoff_max=settings.login_backoff_max,
                failures_per_second=settings.login_failures_per_second,
                failure_burst=settings.login_failure_burst,
                checks_per_address=settings.login_checks_per_address,
                suspect_checks=settings.login_suspect_checks,
            ),
            rate_limits=RateLimits(
                frames_per_second=settings.rate_frames,
                frame_burst=settings.rate_frame_burst,
                bytes_per_second=settings.rate_bytes,
                byte_burst=settings.rate_byte_burst,
                abuse_seconds=settings.abuse_seconds,
                turn_seconds=settings.turn_seconds,
            ),
            idle_timeout=settings.idle_timeout,
            counters=self.counters,
        )
        self._stats = StatsRecorder(
            status=self.status,
            store=store,
            book=self.collaborations,
            clock=self.clock,
            interval=settings.stats_interval,
            retention=settings.stats_retention,
            sweep=self._sweep,
        )
        self._tokens_file = (
            TokensFile(Path(settings.tokens_file)) if settings.tokens_file is not None else None
        )
        self._sessions: set[Session] = set()
        self.tokens = TokenWatch(
            store=store,
            auth=self.auth,
            sessions=lambda: self._sessions,
            interval=settings.token_check_interval,
            tokens_file=self._tokens_file,
        )
        self.started_at = 0.0
        self._server: asyncio.Server | None = None
        self._ssl: ssl.SSLContext | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.address: tuple[str, int] = (settings.host, settings.port)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        settings = self.settings
        if settings.tls_cert is not None:
            try:
                self._ssl = server_context(
                    settings.tls_cert, settings.tls_key, settings.tls_client_ca
                )
            except TlsConfigError as exc:
                raise HubConfigError(
                    f"{exc}. Give --tls-cert a PEM certificate chain and --tls-key its private key."
                ) from None
        elif settings.tls_client_ca is not None or settings.tls_key is not None:
            raise HubConfigError(
                "--client-ca and --tls-key need --tls-cert: give the hub its "
                "certificate to turn TLS on"
            )
        try:
            await self.store.open()
        except Exception as exc:
            raise HubConfigError(describe_store_error(self.store.describe(), exc)) from exc
        self.started_at = self.clock.now()
        try:
            await self._load_tokens_file()
            await self._check_security()
            await self.tokens.start()
            if self.cluster is not None:
                await self._join_cluster(self.cluster)
            closed = 0
            # Collaborations left active are the last run's, unless other replicas are alive:
            # then they are theirs.
            if self.cluster is None or not self.cluster.others_alive():
                closed = await self.store.fail_active_collaborations(
                    self.clock.now(), "hub restarted while the collaboration was active"
                )
            if closed:
                log.info("Marked %d collaborations left active by the last run as failed", closed)
            await self.knowledge.load()
            await self.standings.restore()
            self._server = await asyncio.get_running_loop().create_server(
                self._new_connection,
                self.settings.host,
                self.settings.port,
                backlog=LISTEN_BACKLOG,
                ssl=self._ssl,
                # A client that connects and never finishes the handshake is dropped as one
                # that never sends AUTH is.
                ssl_handshake_timeout=settings.auth_timeout if self._ssl is not None else None,
            )
        except BaseException:
            if self._server is not None:
                self._server.close()
            await self.tokens.stop()
            if self.cluster is not None:
                await self.cluster.stop()
            await self.store.close()
            raise
        sockname = self._server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
        if self.cluster is not None:
            self.cluster.config = dataclasses.replace(
                self.cluster.config, address=f"{self.address[0]}:{self.address[1]}"
            )
        self._stats.start()
        mode = "TLS"
        if self._ssl is None:
            mode = "plain TCP"
        elif settings.tls_client_ca is not None:
            mode = "TLS, client certificates required"
        log.info("Hub listening for trainers on %s:%d (%s)", *self.address, mode)

    async def _load_tokens_file(self) -> None:
        if self._tokens_file is None:
            return
        try:
            counts = await self._tokens_file.sync(self.store, self.auth)
        except TokensFileError as exc:
            raise HubConfigError(
                f"{exc}. Fix the file (one AI_ID:TOKEN a line) or leave "
                "out --tokens-file / KERNAL_TOKENS_FILE."
            ) from None
        log.info("Tokens file %s loaded: %s", self._tokens_file.path, describe_counts(counts))

    async def _join_cluster(self, cluster: Cluster) -> None:
        try:
            await cluster.start()
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise HubConfigError(
                f"cannot join the cluster on the bus {self.settings.bus!r}: {first_line}. "
                "Check that the broker (Redis, or NATS with JetStream) is running there, or run "
                "without --bus for a single hub."
            ) from exc

    def _figures(self) -> dict[str, Any]:
        """This replica's figures, as its heartbeat publishes them (``/status`` of the
        cluster)."""
        return {
            "connected_ais": len(self.peers),
            "active_collaborations": len(self.collaborations),
            "uptime": round(self.clock.now() - self.started_at, 3),
        }

    async def _check_security(self) -> None:
        tokens = await self.store.count_tokens()
        if tokens == 0 and not is_loopback(self.settings.host):
            raise HubConfigError(
                f"refusing to listen on {self.settings.host} with no tokens configured: anyone "
                "could connect. Add a token first with `kernal token add AI_ID` (same --db), "
                "or listen on 127.0.0.1."
            )
        if not is_loopback(self.settings.host) and self._ssl is None:
            log.warning(
                "Listening on %s without TLS: tokens and everything trainers share cross the "
                "network in plain text. Give the hub a certificate with --tls-cert and "
                "--tls-key (see docs/security.md)",
                self.settings.host,
            )
        if await self.auth.demo_mode():
            log.warning(
                "Demo tokens are active (AI_Node_1..AI_Node_8 / secret1..secret8) because no "
                "token is stored; they stop working once you `kernal token add` any AI"
            )

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._server is not None:
            self._server.close()
        await self._stats.stop()
        await self.tokens.stop()
        for session in list(self._sessions):
            session.conn.abort()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        if self.cluster is not None:
            await self.cluster.stop()
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
        await self.store.close()
        self.auth.close()
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

    async def _sweep(self) -> None:
        timeout = self.settings.collaboration_timeout
        if timeout > 0:
            expired = await self.router.expire_silent(timeout)
            if expired:
                log.info("Failed %d collaborations nobody spoke on for %g s", expired, timeout)

    # ------------------------------------------------------------------ figures

    @property
    def open_connections(self) -> int:
        """Trainer connections open now (authenticated or not)."""
        return len(self._sessions)

    async def status(self) -> HubStatus:
        """The headline figures (``GET /status``, stats history, harness samples)."""
        return HubStatus(
            connected_ais=len(self.peers),
            shared_patterns=self.knowledge.count(ItemKind.PATTERN),
            shared_components=self.knowledge.count(ItemKind.COMPONENT),
            active_collaborations=len(self.collaborations),
            uptime=round(self.clock.now() - self.started_at, 3),
            demo_tokens=await self.auth.demo_mode(),
            replica=None if self.cluster is None else self.cluster.replica_id,
            cluster=None if self.cluster is None else ClusterStatus.of(self.cluster.replicas()),
        )

    # ------------------------------------------------------------------ connections

    def _new_connection(self) -> Connection:
        settings = self.settings
        return Connection(
            max_frame=settings.max_frame,
            send_queue_limit=settings.send_queue_limit,
            send_buffer_bytes=settings.send_buffer_bytes,
            read_buffer_bytes=settings.read_buffer_bytes,
            on_connected=self._serve,
            counters=self.counters,
        )

    def _serve(self, conn: Connection) -> None:
        if self._stopping:
            conn.abort()
            return
        session = Session(conn, self._services)
        self._sessions.add(session)
        task = asyncio.create_task(session.run())
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        task.add_done_callback(lambda _: self._sessions.discard(session))
