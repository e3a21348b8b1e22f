"""TRAINER_REPORT rows: a bounded time series of what each trainer measured of itself.

Internal to :mod:`kernal.storage`, like :mod:`kernal.storage.votes`; :class:`TrainerReportsSql`
is the part of :class:`~kernal.storage.sql.SqlStore` that implements the trainer-report methods
of :class:`~kernal.storage.base.Store`. Reports arrive every few seconds from every trainer, so
they are written in batches (one INSERT for all the reports queued together) and each trainer's
series is cut to its newest ``keep`` rows in the same transaction: the table never grows past
``keep`` rows per trainer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection

from kernal.storage import schema as t
from kernal.storage.base import TrainerReportRecord
from kernal.storage.rows import dumps, lenient_count, lenient_float, lenient_text
from kernal.storage.writer import Batchable

__all__ = ["TrainerReportsSql", "latest", "read", "report_row", "store_many"]

T = TypeVar("T")

_c = t.trainer_reports.c


def _refusals_json(table: dict[str, tuple[int, str]]) -> str:
    """peer -> (count, reason) as the JSON object stored: peer -> {count, reason}."""
    return dumps({peer: {"count": count, "reason": why} for peer, (count, why) in table.items()})


def _refusals(text: object) -> dict[str, tuple[int, str]]:
    """The stored JSON object back as peer -> (count, reason); anything else is left out."""
    return {
        str(peer): (lenient_count(entry.get("count")), lenient_text(entry.get("reason")))
        for peer, entry in _json_object(text).items()
        if isinstance(entry, dict)
    }


def report_row(report: TrainerReportRecord) -> dict[str, Any]:
    """The row of ``report``. Raises ValueError for a NaN or infinite figure."""
    return {
        "ai_id": report.ai_id,
        "timestamp": report.timestamp,
        "accuracy": report.accuracy,
        "local_only_accuracy": report.local_only_accuracy,
        "centralized_baseline": report.centralized_baseline,
        "merges_kept": report.merges_kept,
        "merges_rejected": report.merges_rejected,
        "trust": dumps(report.trust),
        "rejected": _refusals_json(report.rejected),
        "final": report.final,
        "refused_merges": _refusals_json(report.refused_merges),
    }


def store_many(conn: Connection, rows: Sequence[dict[str, Any]], keep: int) -> None:
    """Insert ``rows`` in one statement, then delete the reports of their trainers beyond the
    newest ``keep`` of each."""
    conn.execute(t.trainer_reports.insert(), list(rows))
    for ai_id in sorted({row["ai_id"] for row in rows}):
        # The id of the oldest report to keep; everything of this trainer below it goes.
        cutoff = conn.scalar(
            sa.select(_c.id)
            .where(_c.ai_id == ai_id)
            .order_by(_c.id.desc())
            .offset(keep - 1)
            .limit(1)
        )
        if cutoff is not None:
            conn.execute(t.trainer_reports.delete().where(_c.ai_id == ai_id, _c.id < cutoff))


def _columns(maps: bool = True) -> list[sa.ColumnElement[Any]]:
    if not maps:  # the same shape, the maps' text replaced by an empty object
        empty = sa.literal("{}", sa.Text)
        return [
            *_columns()[:7],
            empty.label("trust"),
            empty.label("rejected"),
            _c.final,
            empty.label("refused_merges"),
        ]
    return [
        _c.ai_id,
        _c.timestamp,
        _c.accuracy,
        _c.local_only_accuracy,
        _c.centralized_baseline,
        _c.merges_kept,
        _c.merges_rejected,
        _c.trust,
        _c.rejected,
        _c.final,
        _c.refused_merges,
    ]


def _json_object(text: object) -> dict[str, Any]:
    try:
        value = json.loads(lenient_text(text))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _record(row: sa.Row[Any]) -> TrainerReportRecord:
    trust = {
        str(peer): float(score)
        for peer, score in _json_object(row.trust).items()
        if isinstance(score, int | float)
    }

    return TrainerReportRecord(
        ai_id=row.ai_id,
        timestamp=float(row.timestamp),
        accuracy=float(row.accuracy),
        local_only_accuracy=lenient_float(row.local_only_accuracy),
        centralized_baseline=lenient_float(row.centralized_baseline),
        merges_kept=lenient_count(row.merges_kept),
        merges_rejected=lenient_count(row.merges_rejected),
        trust=trust,
        rejected=_refusals(row.rejected),
        final=bool(row.final),
        refused_merges=_refusals(row.refused_merges),
    )


def read(
    conn: Connection, ai_id: str | None, since: float, limit: int, *, maps: bool = True
) -> list[TrainerReportRecord]:
    """See :meth:`Store.trainer_reports`."""
    query = sa.select(*_columns(maps)).where(_c.timestamp >= since)
    if ai_id is not None:
        query = query.where(_c.ai_id == ai_id)
    query = query.order_by(_c.id.desc()).limit(max(limit, 0))
    return [_record(row) for row in reversed(conn.execute(query).all())]


def latest(conn: Connection) -> list[TrainerReportRecord]:
    """See :meth:`Store.latest_trainer_reports`."""
    newest = sa.select(_c.ai_id, sa.func.max(_c.id).label("id")).group_by(_c.ai_id).subquery()
    query = sa.select(*_columns()).join(newest, newest.c.id == _c.id).order_by(_c.ai_id)
    return [_record(row) for row in conn.execute(query).all()]


class TrainerReportsSql:
    """The trainer-report methods of the SQL store (see :class:`~kernal.storage.base.Store`),
    on the store's reader and single writer."""

    TRAINER_REPORTS_KEPT: ClassVar[int]

    if TYPE_CHECKING:  # provided by SqlStore

        async def _read(self, fn: Callable[[Connection], T]) -> T: ...

        async def _write(
            self, fn: Callable[[Connection], T], *, batch: Batchable | None = None
        ) -> T: ...

    async def add_trainer_report(self, report: TrainerReportRecord) -> None:
        row = report_row(report)
        keep = self.TRAINER_REPORTS_KEPT

        def many(conn: Connection, batched: list[dict[str, Any]]) -> list[tuple[bool, Any]]:
            store_many(conn, batched, keep)
            return [(True, None)] * len(batched)

        # Every trainer reports every few seconds: those queued together are one INSERT.
        await self._write(
            lambda conn: store_many(conn, [row], keep),
            batch=Batchable("trainer_reports", row, many),
        )

    async def trainer_reports(
        self,
        ai_id: str | None = None,
        since: float = 0.0,
        limit: int = 10_000,
        *,
        maps: bool = True,
    ) -> list[TrainerReportRecord]:
        return await self._read(lambda conn: read(conn, ai_id, since, limit, maps=maps))

    async def latest_trainer_reports(self) -> list[TrainerReportRecord]:
        return await self._read(latest)
