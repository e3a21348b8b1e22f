"""The SQL implementation of :class:`~kernal.storage.base.Store`, for SQLite and PostgreSQL.

Concurrency model (one store per hub process, called from one event loop):

* One synchronous SQLAlchemy engine (:mod:`kernal.storage.engine`). Reads run in worker threads
  (``asyncio.to_thread``), each on a pooled connection.
* Every write goes through one writer thread (:class:`~kernal.storage.writer.WriteQueue`): a
  write method submits a job (a function taking a :class:`~sqlalchemy.Connection`) and returns
  once the batch holding it has committed, each job in its own SAVEPOINT (group commit).
* Check-then-write logic (id ownership, "is this collaboration active") is race-free because
  this process has only one writer. Another process (the ``kernal token`` CLI) may write the same
  SQLite file: the writer starts its transactions with ``BEGIN IMMEDIATE`` and waits on the lock
  (``busy_timeout``) instead of failing.

Rows and records are converted in :mod:`kernal.storage.rows`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from kernal.storage import engine as db
from kernal.storage import rows, sizes, tokens, votes
from kernal.storage import schema as t
from kernal.storage import trainer_reports as reports
from kernal.storage.base import Store
from kernal.storage.engine import MIGRATIONS_DIR, database_url
from kernal.storage.records import (
    AiRecord,
    CollaborationQuery,
    CollaborationRecord,
    CollaborationStatus,
    ComponentRecord,
    FeedbackEdge,
    FeedbackResult,
    FeedbackScore,
    ItemEntry,
    ItemKind,
    ItemQuery,
    ItemRecord,
    ItemVote,
    KnowledgeCounts,
    NewShare,
    NotFoundError,
    PatternRecord,
    RatingRecord,
    ShareOutcome,
    StatsSnapshot,
    Vote,
)
from kernal.storage.retention import StatsRetention
from kernal.storage.writer import Batchable, WriteQueue, runs_within

__all__ = ["MIGRATIONS_DIR", "SqlStore", "database_url", "open_store"]

T = TypeVar("T")
R = TypeVar("R", bound=ItemRecord)

MAX_JOB_BYTES = 1024 * 1024  # data of one add_shares write job: a 1 MiB commit is a few ms


async def open_store(url_or_path: str) -> SqlStore:
    """Create a :class:`SqlStore` for a URL or path (see :func:`database_url`) and open it."""
    store = SqlStore(url_or_path)
    await store.open()
    return store


# Built once: the statement the hub's progress flush runs, bound by name (building one per
# collaboration cost more Python than running it).
_PROGRESS_OF_ACTIVE = (
    t.collaborations.update()
    .where(t.collaborations.c.collaboration_id == sa.bindparam("target"), rows.is_active())
    .values(progress=sa.bindparam("new_progress"))
)


class SqlStore(reports.TrainerReportsSql, tokens.TokensSql, Store):
    """A :class:`Store` on SQLite or PostgreSQL.

    ``url_or_path`` is anything :func:`database_url` accepts. ``schema`` (PostgreSQL only, also
    accepted as a ``?schema=`` URL query parameter) puts every table in that existing schema by
    setting ``search_path`` on each connection. ``max_batch`` caps the writes per transaction;
    ``max_job_bytes`` the data of one :meth:`add_shares` job (larger runs commit in turn).
    Raises :class:`ValueError` for a configuration it cannot serve (see
    :func:`kernal.storage.engine.resolve_target`).
    """

    def __init__(
        self,
        url_or_path: str,
        *,
        schema: str | None = None,
        max_batch: int = 1024,
        max_job_bytes: int = MAX_JOB_BYTES,
    ):
        self.url, self.schema = db.resolve_target(url_or_path, schema)
        self.max_job_bytes = max_job_bytes
        self._writes = WriteQueue(max_batch=max_batch)
        self._engine: Engine | None = None
        self._closed = False
        self._reading = 0  # reads whose worker thread holds a connection (see close)
        self._reading_lock = threading.Lock()

    @property
    def max_batch(self) -> int:
        return self._writes.max_batch

    @property
    def batches_committed(self) -> int:
        """Write transactions committed so far (each holds one or more writes)."""
        return self._writes.batches_committed

    def __repr__(self) -> str:
        return f"SqlStore({self.describe()!r})"

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    async def __aenter__(self) -> Self:
        if self._engine is None:
            await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ lifecycle

    def create_engine(self) -> Engine:
        """A new engine for this store's database, configured as the store uses it."""
        return db.create_engine(self.url, self.schema)

    async def open(self) -> None:
        """Connect and run the migrations up to head. A store opens once."""
        if self._engine is not None or self._closed:
            raise RuntimeError(f"{self!r} was already opened")
        engine = self.create_engine()
        try:
            await asyncio.to_thread(db.migrate, engine)
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine
        self._writes.start(functools.partial(db.connect_for_writing, engine))

    async def close(self) -> None:
        """Commit every write already submitted, stop the writer, release connections."""
        if self._closed:
            return
        self._closed = True
        await self._writes.close()
        # A read whose caller was cancelled (a periodic task stopped) still runs in its thread;
        # disposing under it would leave its connection open forever. Wait for it, briefly.
        for _ in range(200):
            if not self._reading:
                break
            await asyncio.sleep(0.01)
        if self._engine is not None:
            self._engine.dispose()

    # ------------------------------------------------------------------ plumbing

    def _require_engine(self) -> Engine:
        if self._engine is None or self._closed:
            raise RuntimeError(f"{self!r} is not open")
        return self._engine

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        engine = self._require_engine()

        def run() -> T:
            try:
                with engine.connect() as conn:
                    return fn(conn)
            finally:
                with self._reading_lock:
                    self._reading -= 1

        with self._reading_lock:  # here, not in run(): close() must see it before it starts
            self._reading += 1
        return await asyncio.to_thread(run)

    async def _write(self, fn: Callable[[Connection], T], *, batch: Batchable | None = None) -> T:
        """Run ``fn`` in the writer thread (or ``batch`` with its neighbours); return its
        result once committed."""
        self._require_engine()
        return await self._writes.submit(fn, batch=batch)

    # ------------------------------------------------------------------ knowledge base

    async def add_pattern(
        self, record: PatternRecord, *, data_text: str | None = None
    ) -> ShareOutcome:
        return await self._add_item(rows.PATTERNS, record, data_text=data_text)

    async def add_component(
        self,
        record: ComponentRecord,
        *,
        completes_collaboration: str | None = None,
        data_text: str | None = None,
        recipient: str | None = None,
    ) -> ShareOutcome:
        return await self._add_item(
            rows.COMPONENTS,
            record,
            completes_collaboration=completes_collaboration,
            data_text=data_text,
            recipient=recipient,
        )

    async def _add_item(
        self,
        spec: rows.ItemTable[R],
        record: R,
        *,
        completes_collaboration: str | None = None,
        data_text: str | None = None,
        recipient: str | None = None,
    ) -> ShareOutcome:
        row = rows.item_row(spec, record, data_text)
        cid = completes_collaboration
        if cid is None and recipient is None:
            # Plain shares queued together are stored together: two statements for the lot.
            batch = Batchable(
                spec.table.name, row, lambda conn, batched: rows.share_many(conn, spec, batched)
            )
            return await self._write(lambda conn: rows.share(conn, spec, row), batch=batch)

        def job(conn: Connection) -> ShareOutcome:
            if cid is not None:
                rows.require_active(conn, cid)
            outcome = rows.share(conn, spec, row, recipient)
            if cid is not None:
                rows.close_collaboration(
                    conn,
                    cid,
                    status=CollaborationStatus.COMPLETED,
                    ended_at=record.timestamp,
                    outcome=rows.dumps({spec.id_column: record.item_id}),
                )
            return outcome

        return await self._write(job)

    async def add_shares(self, shares: Sequence[NewShare]) -> list[ShareOutcome | Exception]:
        # One job with one future for the lot: a share costs the writer a row, not a job.
        payloads: list[rows.SharePayload] = []
        for share in shares:
            spec = rows.ITEM_TABLES[share.record.kind]
            payloads.append(
                (spec, rows.item_row(spec, share.record, share.data_text), share.recipient)
            )
        outcomes: list[tuple[bool, Any]] = []
        lengths = [len(row[spec.data_column]) for spec, row, _ in payloads]
        for run in runs_within(lengths, self.max_job_bytes):  # see runs_within: fairness
            part = payloads[run]
            batch = Batchable("shares", part, rows.share_mixed, many=True)
            try:
                self._require_engine()
                outcomes += await self._writes.submit_many(
                    functools.partial(_share_each, part), batch
                )
            except Exception as exc:  # nothing of this run is stored
                outcomes += [(False, exc)] * len(part)
        return [value if ok else _exception(value) for ok, value in outcomes]

    async def recipient_of(self, component_id: str) -> str | None:
        c = t.component_recipients.c
        query = sa.select(c.recipient).where(c.component_id == component_id)
        found: str | None = await self._read(lambda conn: conn.scalar(query))
        return found

    async def get_item(self, kind: ItemKind, item_id: str) -> ItemRecord | None:
        spec = rows.item_table(kind)
        query = sa.select(spec.table).where(spec.key == item_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return None if row is None else rows.item_record(spec, row)

    async def recent_items(self, kind: ItemKind, limit: int) -> list[ItemRecord]:
        spec = rows.item_table(kind)
        query = sa.select(spec.table)
        if kind is ItemKind.COMPONENT:  # only those shared with everyone
            private = sa.select(t.component_recipients.c.component_id)
            query = query.where(spec.key.not_in(private))
        # ix_*_timestamp
        query = query.order_by(spec.table.c.timestamp.desc(), spec.key.desc()).limit(max(limit, 0))
        # Rows parsed in the reading thread: hundreds of models decoded on the event loop would
        # stall every connection for as long.
        return await self._read(
            lambda conn: [rows.item_record(spec, row) for row in conn.execute(query).all()]
        )

    async def search_items(
        self, kind: ItemKind, words: Sequence[str], limit: int
    ) -> list[ItemRecord]:
        spec = rows.item_table(kind)
        c = spec.table.c
        # COALESCE: an adopted prototype row may have NULLs (which would null the whole text).
        text = sa.func.lower(
            sa.func.coalesce(spec.key, "")
            + " "
            + sa.func.coalesce(c.contributor, "")
            + " "
            + sa.func.coalesce(spec.table.c[spec.data_column], "")
        )
        query = sa.select(spec.table).where(
            *(text.contains(word.lower(), autoescape=True) for word in words)
        )
        if kind is ItemKind.COMPONENT:  # only those shared with everyone
            private = sa.select(t.component_recipients.c.component_id)
            query = query.where(spec.key.not_in(private))
        query = query.order_by(c.timestamp.desc(), spec.key.desc()).limit(max(limit, 0))
        found = await self._read(lambda conn: conn.execute(query).all())
        return [rows.item_record(spec, row) for row in found]

    async def list_items(
        self, kind: ItemKind, query: ItemQuery, limit: int, *, max_data: int
    ) -> list[ItemEntry]:
        spec = rows.item_table(kind)
        table = spec.table
        statement = sizes.listing(spec, self.url.get_backend_name(), max_data)
        statement = statement.where(*rows.item_filters(spec, query))
        if kind is ItemKind.COMPONENT:  # only those shared with everyone
            private = sa.select(t.component_recipients.c.component_id)
            statement = statement.where(spec.key.not_in(private))
        statement = statement.order_by(table.c.timestamp.desc(), spec.key.desc()).limit(
            max(limit, 0)
        )
        # Entries made in the reading thread: hundreds decoded on the event loop would stall
        # every connection for as long (as recent_items).
        return await self._read(
            lambda conn: [
                ItemEntry(
                    record=rows.item_record(spec, row),
                    data_size=int(row.data_size),
                    data_included=int(row.data_size) <= max_data,
                )
                for row in conn.execute(statement).all()
            ]
        )

    async def counts(self) -> KnowledgeCounts:
        """Both counts, plus ``extra``: ``ais`` (ever seen) and ``active_collaborations``."""

        def count(table: sa.Table, *where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
            return sa.select(sa.func.count()).select_from(table).where(*where).scalar_subquery()

        # One statement: the four numbers come from the same snapshot.
        query = sa.select(
            count(t.shared_patterns),
            count(t.shared_components),
            count(t.ais),
            count(t.collaborations, rows.is_active()),
        )
        patterns, components, ais, collaborations = await self._read(
            lambda conn: conn.execute(query).one()
        )
        return KnowledgeCounts(
            shared_patterns=patterns,
            shared_components=components,
            extra={"ais": ais, "active_collaborations": collaborations},
        )

    async def record_feedback(
        self,
        kind: ItemKind,
        item_id: str,
        ai_id: str,
        score: float | None,
        timestamp: float,
        *,
        usefulness: float | None = None,
    ) -> FeedbackResult:
        spec = rows.item_table(kind)
        vote = Vote(score, usefulness)
        return await self._write(
            lambda conn: votes.record_feedback(conn, spec, item_id, ai_id, vote, timestamp)
        )

    async def ratings(self) -> list[RatingRecord]:
        return await self._read(votes.ratings)

    async def item_votes(self, kind: ItemKind, item_id: str, limit: int) -> list[ItemVote]:
        return await self._read(lambda conn: votes.item_votes(conn, kind, item_id, limit))

    async def collaboration_pairs(self) -> set[tuple[str, str]]:
        return await self._read(votes.collaboration_pairs)

    async def feedback_edges(self, since: float = 0.0, limit: int = 10_000) -> list[FeedbackEdge]:
        return await self._read(lambda conn: votes.feedback_edges(conn, since, limit))

    async def feedback_scores(self, since: float = 0.0, limit: int = 10_000) -> list[FeedbackScore]:
        return await self._read(lambda conn: votes.feedback_scores(conn, since, limit))

    # ------------------------------------------------------------------ AIs

    async def upsert_ai(
        self, ai_id: str, specialization: str, capabilities: list[str], timestamp: float
    ) -> None:
        profile = {
            "specialization": specialization,
            "capabilities": rows.dumps(capabilities),
            "last_seen": timestamp,
        }

        def job(conn: Connection) -> None:
            key = t.ais.c.ai_id == ai_id
            if conn.execute(t.ais.update().where(key).values(profile)).rowcount == 0:
                conn.execute(t.ais.insert().values(ai_id=ai_id, first_seen=timestamp, **profile))

        # A burst of HELLOs (a thousand trainers starting) is stored in a few statements, not
        # a job each: every HELLO waits for its row before STATE.
        batch = Batchable("ais", (ai_id, profile, timestamp), rows.upsert_ais)
        await self._write(job, batch=batch)

    async def touch_ai(self, ai_id: str, timestamp: float) -> None:
        statement = t.ais.update().where(t.ais.c.ai_id == ai_id).values(last_seen=timestamp)
        await self._write(lambda conn: conn.execute(statement))

    async def list_ais(self) -> list[AiRecord]:
        query = sa.select(t.ais).order_by(t.ais.c.ai_id)
        found = await self._read(lambda conn: conn.execute(query).all())
        return [rows.ai_record(row) for row in found]

    # ------------------------------------------------------------------ collaborations

    async def create_collaboration(self, record: CollaborationRecord) -> None:
        """Raises :class:`ConflictError` if the id is taken."""
        row = rows.collaboration_row(record)
        # Collaborations started together are stored together (two statements for the lot):
        # at scale the hub starts hundreds a second, each awaited before its ACK.
        batch = Batchable("collaborations", row, rows.insert_collaborations)
        await self._write(lambda conn: rows.insert_collaboration(conn, row), batch=batch)

    async def set_collaboration_progress(self, collaboration_id: str, progress: float) -> None:
        c = t.collaborations.c
        statement = (
            t.collaborations.update()
            .where(c.collaboration_id == collaboration_id, rows.is_active())
            .values(progress=progress)
        )

        def job(conn: Connection) -> None:
            if conn.execute(statement).rowcount == 0:
                raise NotFoundError(f"no active collaboration {collaboration_id!r}")

        await self._write(job)

    async def set_collaborations_progress(self, progress: Mapping[str, float]) -> None:
        """One write job, one statement run for all (the hub flushes what was reported since
        its last flush: at scale, hundreds of collaborations a second)."""
        if not progress:
            return
        params = [{"target": cid, "new_progress": value} for cid, value in progress.items()]

        def job(conn: Connection) -> None:
            conn.execute(_PROGRESS_OF_ACTIVE, params)

        await self._write(job)

    async def end_collaboration(
        self,
        collaboration_id: str,
        status: CollaborationStatus,
        timestamp: float,
        *,
        outcome: Any = None,
        reason: str | None = None,
    ) -> CollaborationRecord:
        """Also sets ``progress`` to 100 when ``status`` is completed."""
        status = CollaborationStatus(status)
        if status is CollaborationStatus.ACTIVE:
            raise ValueError("a collaboration ends as completed or failed")
        encoded = None if outcome is None else rows.dumps(outcome)

        def job(conn: Connection) -> CollaborationRecord:
            rows.require_active(conn, collaboration_id)
            rows.close_collaboration(
                conn, collaboration_id, status, ended_at=timestamp, outcome=encoded, reason=reason
            )
            c = t.collaborations.c
            query = sa.select(t.collaborations).where(c.collaboration_id == collaboration_id)
            return rows.collaboration_record(conn.execute(query).one())

        return await self._write(job)

    async def get_collaboration(self, collaboration_id: str) -> CollaborationRecord | None:
        c = t.collaborations.c
        query = sa.select(t.collaborations).where(c.collaboration_id == collaboration_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return None if row is None else rows.collaboration_record(row)

    async def list_collaborations(
        self, status: CollaborationStatus | None = None, limit: int = 100
    ) -> list[CollaborationRecord]:
        c = t.collaborations.c
        query = sa.select(t.collaborations)
        if status is not None:
            query = query.where(c.status == CollaborationStatus(status).value)
        query = query.order_by(c.started_at.desc(), c.collaboration_id.desc()).limit(max(limit, 0))
        found = await self._read(lambda conn: conn.execute(query).all())
        return [rows.collaboration_record(row) for row in found]

    async def list_collaborations_page(
        self, query: CollaborationQuery, limit: int
    ) -> list[CollaborationRecord]:
        c = t.collaborations.c
        statement = (
            sa.select(t.collaborations)
            .where(*rows.collaboration_filters(query))
            .order_by(c.started_at.desc(), c.collaboration_id.desc())
            .limit(max(limit, 0))
        )
        found = await self._read(lambda conn: conn.execute(statement).all())
        return [rows.collaboration_record(row) for row in found]

    async def fail_active_collaborations(self, timestamp: float, reason: str) -> int:
        statement = (
            t.collaborations.update()
            .where(rows.is_active())
            .values(status=CollaborationStatus.FAILED.value, ended_at=timestamp, reason=reason)
        )
        return await self._write(lambda conn: conn.execute(statement).rowcount)

    # ------------------------------------------------------------------ stats

    async def add_stats_snapshot(self, snapshot: StatsSnapshot) -> None:
        # The snapshot's fields are the table's columns (bar the id).
        statement = t.stats_snapshots.insert().values(dataclasses.asdict(snapshot))
        await self._write(lambda conn: conn.execute(statement))

    async def stats_history(self, since: float = 0.0, limit: int = 1000) -> list[StatsSnapshot]:
        c = t.stats_snapshots.c
        query = (
            sa.select(
                c.timestamp,
                c.connected_ais,
                c.shared_patterns,
                c.shared_components,
                c.active_collaborations,
            )
            .where(c.timestamp >= since)
            .order_by(c.timestamp.desc(), c.id.desc())
            .limit(max(limit, 0))
        )
        found = await self._read(lambda conn: conn.execute(query).all())
        return [StatsSnapshot(**row._asdict()) for row in reversed(found)]

    async def thin_stats(self, retention: StatsRetention, now: float) -> int:
        c = t.stats_snapshots.c
        # Young snapshots are kept whatever happens: only the thinned part is read.
        query = sa.select(c.id, c.timestamp).where(
            c.timestamp < now - retention.keep_all_younger_than
        )

        def thin(conn: Connection) -> int:
            doomed = retention.to_delete(
                ((row.id, row.timestamp) for row in conn.execute(query)), now
            )
            # In chunks: SQLite caps the parameters of one statement.
            for start in range(0, len(doomed), 500):
                chunk = doomed[start : start + 500]
                conn.execute(t.stats_snapshots.delete().where(c.id.in_(chunk)))
            return len(doomed)

        return await self._write(thin)


def _share_each(payloads: list[rows.SharePayload], conn: Connection) -> list[tuple[bool, Any]]:
    return rows.share_each(conn, payloads)


def _exception(value: Any) -> Exception:
    return value if isinstance(value, Exception) else RuntimeError(repr(value))
