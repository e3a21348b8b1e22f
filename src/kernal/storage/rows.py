"""Rows <-> records, and the small SQL steps the store's write jobs are made of.

Internal to :mod:`kernal.storage`. The record -> row converters produce exactly what the schema
stores (JSON as compact text); the row -> record converters also accept what a database adopted
from the single-file prototype may hold in ``shared_patterns``/``shared_components`` (see
``migrations/versions/0001_initial.py``): those tables keep the prototype's nullable columns, and
SQLite, being dynamically typed, even keeps text in a ``REAL`` column. A read must never fail on
such a row, so the converters substitute neutral values instead of raising:

* ``pattern_data``/``component_data``: NULL -> ``{}``; text that is not a JSON object ->
  ``{"raw": <the text, verbatim>}`` (nothing is lost, and the record keeps its ``dict`` type);
* ``contributor``, and even the id (SQLite lets a ``TEXT PRIMARY KEY`` be NULL): NULL -> ``""``;
* ``timestamp``: NULL or not a finite number -> ``0.0``; ``usage_count``: likewise -> ``0``;
  ``quality_score``: not a finite number -> ``None``.

Rows written by this code never need any of that: on them the converters are exact inverses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kernal.storage import schema as t
from kernal.storage.base import (
    AiRecord,
    CollaborationRecord,
    CollaborationStatus,
    ComponentRecord,
    ConflictError,
    FeedbackResult,
    ItemKind,
    NotFoundError,
    PatternRecord,
    ScoreTally,
    ShareOutcome,
)

__all__ = [
    "ai_record",
    "close_collaboration",
    "collaboration_record",
    "collaboration_row",
    "component_record",
    "component_row",
    "dumps",
    "insert_collaboration",
    "is_active",
    "pattern_record",
    "pattern_row",
    "received_scores",
    "record_feedback",
    "require_active",
    "share",
]


def dumps(value: Any) -> str:
    """``value`` as JSON text. Raises :class:`ValueError` for NaN or infinity."""
    # Compact, readable in the sqlite3 CLI, and strict JSON (no NaN) so any tool can parse it.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ---------------------------------------------------------------------- records -> rows


def pattern_row(record: PatternRecord) -> dict[str, Any]:
    return {
        "pattern_id": record.pattern_id,
        "pattern_data": dumps(record.pattern_data),
        "contributor": record.contributor,
        "timestamp": record.timestamp,
        "usage_count": record.usage_count,
    }


def component_row(record: ComponentRecord) -> dict[str, Any]:
    return {
        "component_id": record.component_id,
        "component_data": dumps(record.component_data),
        "contributor": record.contributor,
        "timestamp": record.timestamp,
        "quality_score": record.quality_score,
        "usage_count": record.usage_count,
    }


def collaboration_row(record: CollaborationRecord) -> dict[str, Any]:
    return {
        "collaboration_id": record.collaboration_id,
        "request_id": record.request_id,
        "requester": record.requester,
        "acceptor": record.acceptor,
        "request": dumps(record.request),
        "status": CollaborationStatus(record.status).value,
        "progress": record.progress,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "outcome": None if record.outcome is None else dumps(record.outcome),
        "reason": record.reason,
    }


# ---------------------------------------------------------------------- rows -> records


def pattern_record(row: sa.Row[Any]) -> PatternRecord:
    return PatternRecord(
        pattern_id=_text(row.pattern_id),
        pattern_data=_json_object(row.pattern_data),
        contributor=_text(row.contributor),
        timestamp=_finite(row.timestamp) or 0.0,
        usage_count=_count(row.usage_count),
    )


def component_record(row: sa.Row[Any]) -> ComponentRecord:
    return ComponentRecord(
        component_id=_text(row.component_id),
        component_data=_json_object(row.component_data),
        contributor=_text(row.contributor),
        timestamp=_finite(row.timestamp) or 0.0,
        quality_score=_finite(row.quality_score),
        usage_count=_count(row.usage_count),
    )


def ai_record(row: sa.Row[Any]) -> AiRecord:
    return AiRecord(
        ai_id=row.ai_id,
        specialization=row.specialization,
        capabilities=json.loads(row.capabilities),
        first_seen=row.first_seen,
        last_seen=row.last_seen,
    )


def collaboration_record(row: sa.Row[Any]) -> CollaborationRecord:
    return CollaborationRecord(
        collaboration_id=row.collaboration_id,
        request_id=row.request_id,
        requester=row.requester,
        acceptor=row.acceptor,
        request=json.loads(row.request),
        status=CollaborationStatus(row.status),
        progress=row.progress,
        started_at=row.started_at,
        ended_at=row.ended_at,
        outcome=None if row.outcome is None else json.loads(row.outcome),
        reason=row.reason,
    )


def _json_object(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return {"raw": text}
    return parsed if isinstance(parsed, dict) else {"raw": text}


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _finite(value)
    return 0 if number is None else int(number)


def _finite(value: object) -> float | None:
    """``value`` as a finite float; None if it is NULL or anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str | bytes):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------- steps of write jobs


def _insert_if_new(conn: Connection, table: sa.Table) -> sa.Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect (SQLite, PostgreSQL)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"no insert-if-new for the {dialect} dialect")


def share(conn: Connection, table: sa.Table, row: dict[str, Any]) -> ShareOutcome:
    """Insert a pattern or component unless its id is taken.

    Same contributor: DUPLICATE, nothing written. Another contributor, or an adopted prototype
    row whose contributor is NULL (nobody can prove they own it): :class:`ConflictError`.
    """
    kind = "pattern" if table is t.shared_patterns else "component"
    item_id = row[f"{kind}_id"]
    # One statement when the id is new (the common case); only a taken id costs a lookup.
    id_column = table.c[f"{kind}_id"]
    # RETURNING, not rowcount: psycopg does not report a reliable rowcount here.
    if conn.execute(_insert_if_new(conn, table).returning(id_column), row).first() is not None:
        return ShareOutcome.CREATED
    # Select the row, not just the contributor: a NULL contributor must not read as "no row".
    query = sa.select(table.c.contributor).where(id_column == item_id)
    existing = conn.execute(query).first()
    if existing is None:  # pragma: no cover - the insert only does nothing when the id exists
        raise RuntimeError(f"{kind} {item_id!r} neither inserted nor found")
    owner = existing.contributor
    if owner == row["contributor"]:
        return ShareOutcome.DUPLICATE
    by = "an unknown contributor" if owner is None else repr(owner)
    raise ConflictError(f"{kind} id {item_id!r} is already taken by {by}")


def record_feedback(
    conn: Connection,
    kind: ItemKind,
    item_id: str,
    ai_id: str,
    score: float | None,
    timestamp: float,
) -> FeedbackResult:
    """Count one use of the item and store the feedback; for a component with a score, set its
    ``quality_score`` to the mean of all its scores. Raises :class:`NotFoundError`."""
    table = t.shared_patterns if kind is ItemKind.PATTERN else t.shared_components
    key = table.c[f"{kind.value}_id"] == item_id
    # COALESCE: an adopted prototype row may have a NULL usage_count, which counts as 0.
    bump = (
        table.update().where(key).values(usage_count=sa.func.coalesce(table.c.usage_count, 0) + 1)
    )
    if conn.execute(bump).rowcount == 0:
        raise NotFoundError(f"no {kind.value} with id {item_id!r}")
    conn.execute(
        t.feedback.insert().values(
            kind=kind.value, item_id=item_id, ai_id=ai_id, score=score, timestamp=timestamp
        )
    )
    if kind is ItemKind.PATTERN:
        usage = conn.scalar(sa.select(table.c.usage_count).where(key))
        return FeedbackResult(usage_count=_count(usage))
    if score is not None:
        f = t.feedback.c
        mean = (
            sa.select(sa.func.avg(f.score))
            .where(f.kind == kind.value, f.item_id == item_id, f.score.is_not(None))
            .scalar_subquery()
        )
        conn.execute(table.update().where(key).values(quality_score=mean))
    row = conn.execute(sa.select(table.c.usage_count, table.c.quality_score).where(key)).one()
    # Read leniently, as component_record does: an adopted row may hold anything there.
    return FeedbackResult(
        usage_count=_count(row.usage_count), quality_score=_finite(row.quality_score)
    )


def insert_collaboration(conn: Connection, row: dict[str, Any]) -> None:
    """Insert a :func:`collaboration_row`. Raises :class:`ConflictError` if the id is taken."""
    c = t.collaborations.c
    exists = sa.select(c.collaboration_id).where(c.collaboration_id == row["collaboration_id"])
    if conn.execute(exists).first() is not None:
        raise ConflictError(f"collaboration {row['collaboration_id']!r} already exists")
    conn.execute(t.collaborations.insert().values(row))


def is_active() -> sa.ColumnElement[bool]:
    return t.collaborations.c.status == CollaborationStatus.ACTIVE.value


def require_active(conn: Connection, collaboration_id: str) -> None:
    """Raises :class:`NotFoundError` unless the collaboration exists and is active."""
    c = t.collaborations.c
    query = sa.select(c.status).where(c.collaboration_id == collaboration_id)
    status = conn.scalar(query)
    if status is None:
        raise NotFoundError(f"no collaboration {collaboration_id!r}")
    if status != CollaborationStatus.ACTIVE.value:
        raise NotFoundError(f"collaboration {collaboration_id!r} is not active (it is {status})")


def close_collaboration(
    conn: Connection,
    collaboration_id: str,
    status: CollaborationStatus,
    *,
    ended_at: float,
    outcome: str | None,
    reason: str | None = None,
) -> None:
    """Set the end fields (``outcome`` is JSON text already); completed also means progress 100.
    Does not check the current status: callers do, with :func:`require_active`."""
    values: dict[str, Any] = {
        "status": status.value,
        "ended_at": ended_at,
        "outcome": outcome,
        "reason": reason,
    }
    if status is CollaborationStatus.COMPLETED:
        values["progress"] = 100.0
    c = t.collaborations.c
    conn.execute(
        t.collaborations.update().where(c.collaboration_id == collaboration_id).values(values)
    )


def received_scores(conn: Connection, contributors: Collection[str]) -> dict[str, ScoreTally]:
    """Sum and count of the scored feedback others gave each contributor's items."""
    f = t.feedback.c
    tallies: dict[str, tuple[float, int]] = {}
    for table, kind in (
        (t.shared_patterns, ItemKind.PATTERN),
        (t.shared_components, ItemKind.COMPONENT),
    ):
        owner = table.c.contributor
        query = (
            sa.select(owner, sa.func.sum(f.score), sa.func.count(f.score))
            .select_from(t.feedback.join(table, f.item_id == table.c[f"{kind.value}_id"]))
            .where(
                f.kind == kind.value,
                f.score.is_not(None),
                f.ai_id != owner,
                owner.in_(list(contributors)),
            )
            .group_by(owner)
        )
        for row in conn.execute(query):
            contributor, total, count = str(row[0]), float(row[1] or 0.0), int(row[2])
            before = tallies.get(contributor, (0.0, 0))
            tallies[contributor] = (before[0] + total, before[1] + count)
    return {ai: ScoreTally(total, count) for ai, (total, count) in tallies.items() if count}
