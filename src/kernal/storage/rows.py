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

Patterns and components go through the same converters and steps, told apart by their
:class:`ItemTable` (:data:`PATTERNS`, :data:`COMPONENTS`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kernal.protocol.messages import RequestTerms
from kernal.storage import bulk, sizes
from kernal.storage import schema as t
from kernal.storage.records import (
    AiRecord,
    CollaborationQuery,
    CollaborationRecord,
    CollaborationStatus,
    ComponentRecord,
    ConflictError,
    ItemKind,
    ItemQuery,
    ItemRecord,
    NotFoundError,
    PatternRecord,
    ShareOutcome,
)

__all__ = [
    "COMPONENTS",
    "ITEM_TABLES",
    "PATTERNS",
    "ItemTable",
    "ai_record",
    "close_collaboration",
    "collaboration_filters",
    "collaboration_record",
    "collaboration_row",
    "dumps",
    "insert_collaboration",
    "insert_collaborations",
    "is_active",
    "item_filters",
    "item_record",
    "item_row",
    "item_table",
    "lenient_count",
    "lenient_float",
    "lenient_text",
    "require_active",
    "share",
    "share_many",
    "upsert_ais",
]

R = TypeVar("R", bound=ItemRecord)


@dataclass(frozen=True)
class ItemTable(Generic[R]):
    """Where one kind of item is stored: all that differs between patterns and components.

    The fields of ``record`` are the columns of ``table``, with the same names (checked by
    ``tests/storage/test_rows.py``); ``has_quality``: the kind has a ``quality_score`` column.
    """

    kind: ItemKind
    table: sa.Table
    id_column: str
    data_column: str
    record: type[R]
    has_quality: bool

    @property
    def key(self) -> sa.Column[Any]:
        """The id column."""
        return self.table.c[self.id_column]


PATTERNS = ItemTable(
    ItemKind.PATTERN, t.shared_patterns, "pattern_id", "pattern_data", PatternRecord, False
)
COMPONENTS = ItemTable(
    ItemKind.COMPONENT,
    t.shared_components,
    "component_id",
    "component_data",
    ComponentRecord,
    True,
)
ITEM_TABLES: Mapping[ItemKind, ItemTable[Any]] = {it.kind: it for it in (PATTERNS, COMPONENTS)}


def item_table(kind: ItemKind | str) -> ItemTable[Any]:
    """The table of ``kind``. Raises :class:`ValueError` for a string that is not a kind."""
    return ITEM_TABLES[ItemKind(kind)]


def dumps(value: Any) -> str:
    """``value`` as JSON text. Raises :class:`ValueError` for NaN or infinity."""
    # Compact, readable in the sqlite3 CLI, and strict JSON (no NaN) so any tool can parse it.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ---------------------------------------------------------------------- records -> rows


def item_row(spec: ItemTable[R], record: R, data_text: str | None = None) -> dict[str, Any]:
    """The row of a pattern or component: its fields, the data as JSON text (``data_text``
    when the caller has it already, e.g. as the client sent it)."""
    # Shallow on purpose: dataclasses.asdict would deep-copy the data only to encode it.
    fields = _FIELDS.get(type(record))
    if fields is None:
        names = tuple(f.name for f in dataclasses.fields(record))
        fields = _FIELDS[type(record)] = (names, operator.attrgetter(*names))
    row = dict(zip(fields[0], fields[1](record), strict=True))
    row[spec.data_column] = dumps(row[spec.data_column]) if data_text is None else data_text
    return row


# Per record class: its field names and a getter of them all (dataclasses.fields is slow).
_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


def collaboration_row(record: CollaborationRecord) -> dict[str, Any]:
    return {
        "collaboration_id": record.collaboration_id,
        "request_id": record.request_id,
        "requester": record.requester,
        "acceptor": record.acceptor,
        # The request frame as its requester sent it (the stored shape since the first schema).
        "request": dumps({"type": "COLLABORATION_REQUEST", **record.request.model_dump()}),
        "status": CollaborationStatus(record.status).value,
        "progress": record.progress,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "outcome": None if record.outcome is None else dumps(record.outcome),
        "reason": record.reason,
    }


# ---------------------------------------------------------------------- rows -> records


def _request_terms(text: Any, request_id: str) -> RequestTerms:
    """The stored request; one that does not parse keeps only its id (a read never fails)."""
    try:
        return RequestTerms.model_validate_json(text)
    except (ValueError, TypeError):
        return RequestTerms(request_id=request_id)


def item_record(spec: ItemTable[R], row: sa.Row[Any]) -> R:
    """The record of a pattern or component row, read leniently (see the module)."""
    columns = row._mapping
    values: dict[str, Any] = {
        spec.id_column: lenient_text(columns[spec.id_column]),
        spec.data_column: _json_object(columns[spec.data_column]),
        "contributor": lenient_text(row.contributor),
        "timestamp": lenient_float(row.timestamp) or 0.0,
        "usage_count": lenient_count(row.usage_count),
    }
    if spec.has_quality:
        values["quality_score"] = lenient_float(row.quality_score)
    return spec.record(**values)


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
        request=_request_terms(row.request, row.request_id),
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


def lenient_text(value: object) -> str:
    return "" if value is None else str(value)


def lenient_count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = lenient_float(value)
    return 0 if number is None else int(number)


def lenient_float(value: object) -> float | None:
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


# ---------------------------------------------------------------------- filters of listings


def _older_than(
    time: sa.ColumnElement[Any], key: sa.ColumnElement[Any], cursor: tuple[float, str]
) -> sa.ColumnElement[bool]:
    """Rows after ``cursor`` in the newest-first order ``(time desc, key desc)``."""
    at, item_id = cursor
    return sa.or_(time < at, sa.and_(time == at, key < item_id))


def item_filters(spec: ItemTable[Any], query: ItemQuery) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of an :class:`ItemQuery` (all of them must hold)."""
    c = spec.table.c
    where: list[sa.ColumnElement[bool]] = []
    if query.item_id is not None:
        where.append(spec.key == query.item_id)
    if query.contributor is not None:
        where.append(c.contributor == query.contributor)
    if query.since is not None:
        where.append(c.timestamp >= query.since)
    if query.until is not None:
        where.append(c.timestamp < query.until)
    if query.search:
        data = c[spec.data_column]
        where.append(
            sa.or_(
                spec.key.icontains(query.search, autoescape=True),
                data.icontains(query.search, autoescape=True),
            )
        )
    if query.before is not None:
        where.append(_older_than(c.timestamp, spec.key, query.before))
    return where


def collaboration_filters(query: CollaborationQuery) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of a :class:`CollaborationQuery`."""
    c = t.collaborations.c
    where: list[sa.ColumnElement[bool]] = []
    if query.status is not None:
        where.append(c.status == CollaborationStatus(query.status).value)
    if query.member is not None:
        where.append(sa.or_(c.requester == query.member, c.acceptor == query.member))
    if query.since is not None:
        where.append(c.started_at >= query.since)
    if query.until is not None:
        where.append(c.started_at < query.until)
    if query.search:
        where.append(
            sa.or_(
                *(
                    column.icontains(query.search, autoescape=True)
                    for column in (c.collaboration_id, c.request_id, c.request)
                )
            )
        )
    if query.before is not None:
        where.append(_older_than(c.started_at, c.collaboration_id, query.before))
    return where


# ---------------------------------------------------------------------- steps of write jobs


def _insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT with ``ON CONFLICT`` clauses, in the connection's dialect (SQLite, PostgreSQL)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return sqlite_insert(table)
    if dialect == "postgresql":
        return postgresql_insert(table)
    raise NotImplementedError(f"no INSERT ... ON CONFLICT for the {dialect} dialect")


def _insert_if_new(conn: Connection, table: sa.Table) -> sa.Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``."""
    statement: sa.Insert = _insert(conn, table).on_conflict_do_nothing()
    return statement


def share(
    conn: Connection, spec: ItemTable[Any], row: dict[str, Any], recipient: str | None = None
) -> ShareOutcome:
    """Insert an :func:`item_row` unless its id is taken (and, for a component shared with one
    AI only, its ``recipient``).

    Same contributor: DUPLICATE, nothing written. Another contributor, or an adopted prototype
    row whose contributor is NULL (nobody can prove they own it): :class:`ConflictError`.
    """
    item_id = row[spec.id_column]
    # One statement when the id is new (the common case); only a taken id costs a lookup.
    # RETURNING, not rowcount: psycopg does not report a reliable rowcount here.
    inserted = conn.execute(_insert_if_new(conn, spec.table).returning(spec.key), row).first()
    if inserted is not None:
        sizes.record(conn, spec.kind, [(item_id, row[spec.data_column])])
        if recipient is not None:
            conn.execute(
                t.component_recipients.insert().values(component_id=item_id, recipient=recipient)
            )
        return ShareOutcome.CREATED
    # Select the row, not just the contributor: a NULL contributor must not read as "no row".
    query = sa.select(spec.table.c.contributor).where(spec.key == item_id)
    existing = conn.execute(query).first()
    if existing is None:  # pragma: no cover - the insert only does nothing when the id exists
        raise RuntimeError(f"{spec.kind.value} {item_id!r} neither inserted nor found")
    owner = existing.contributor
    if owner == row["contributor"]:
        return ShareOutcome.DUPLICATE
    by = "an unknown contributor" if owner is None else repr(owner)
    raise ConflictError(f"{spec.kind.value} id {item_id!r} is already taken by {by}")


def share_many(
    conn: Connection, spec: ItemTable[Any], rows: list[dict[str, Any]]
) -> list[tuple[bool, Any]]:
    """:func:`share` for many rows (without recipients) in two statements: one lookup of the
    ids already taken, one insert of the new rows. Each row's outcome is ``(True,
    ShareOutcome)`` or ``(False, ConflictError)``; a conflicting row writes nothing and leaves
    the others alone."""
    ids = list({row[spec.id_column]: None for row in rows})
    quote = conn.dialect.identifier_preparer.quote
    key, table = quote(spec.id_column), quote(spec.table.name)
    taken: dict[str, str | None] = dict(
        bulk.select_in(conn, table, (key, quote("contributor")), key, ids)
    )
    new: list[dict[str, Any]] = []
    outcomes: list[tuple[bool, Any]] = []
    for row in rows:
        item_id, contributor = row[spec.id_column], row["contributor"]
        if item_id not in taken:
            taken[item_id] = contributor  # a later row of this batch with the same id is a resend
            new.append(row)
            outcomes.append((True, ShareOutcome.CREATED))
        elif taken[item_id] == contributor:
            outcomes.append((True, ShareOutcome.DUPLICATE))
        else:
            owner = taken[item_id]
            by = "an unknown contributor" if owner is None else repr(owner)
            message = f"{spec.kind.value} id {item_id!r} is already taken by {by}"
            outcomes.append((False, ConflictError(message)))
    if new:
        insert_rows(conn, spec.table, new)
        sizes.record(conn, spec.kind, [(row[spec.id_column], row[spec.data_column]) for row in new])
    return outcomes


def insert_rows(conn: Connection, table: sa.Table, new: list[dict[str, Any]]) -> None:
    """INSERT ``new`` (rows of the same keys, every one a column of ``table``, with values the
    driver takes as they are: text, numbers, None) in as few statements as
    :func:`kernal.storage.bulk.insert_many` takes: ``conn.execute(table.insert(), new)`` has
    SQLAlchemy build each row's parameters (about 2.5 us a row, more than SQLite's insert)."""
    names = tuple(new[0])
    unknown = set(names) - set(table.c.keys())
    if unknown:
        raise KeyError(f"no such columns in {table.name}: {', '.join(sorted(unknown))}")
    quote = conn.dialect.identifier_preparer.quote
    bulk.insert_many(
        conn,
        quote(table.name),
        [quote(name) for name in names],
        [tuple(row.values()) for row in new],
    )


SharePayload = tuple["ItemTable[Any]", dict[str, Any], str | None]
"""A share as the writer gets it: its table, its :func:`item_row`, its recipient (or None)."""


def share_each(conn: Connection, payloads: list[SharePayload]) -> list[tuple[bool, Any]]:
    """:func:`share` for each payload in its own savepoint: one outcome per payload, as
    :func:`share_many` gives them."""
    outcomes: list[tuple[bool, Any]] = []
    for spec, row, recipient in payloads:
        try:
            with conn.begin_nested():
                outcomes.append((True, share(conn, spec, row, recipient)))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes


def share_mixed(conn: Connection, payloads: list[SharePayload]) -> list[tuple[bool, Any]]:
    """Shares of either kind in order, one outcome per payload: each run of shares of one table
    without a recipient in two statements (:func:`share_many`), the others one by one in a
    savepoint each (so a conflicting one writes nothing)."""
    outcomes: list[tuple[bool, Any]] = []
    start = 0
    while start < len(payloads):
        spec, _, recipient = payloads[start]
        end = start + 1
        if recipient is not None:
            outcomes += share_each(conn, payloads[start:end])
        else:
            while end < len(payloads) and payloads[end][0] is spec and payloads[end][2] is None:
                end += 1
            outcomes += share_many(conn, spec, [row for _, row, _ in payloads[start:end]])
        start = end
    return outcomes


def insert_collaboration(conn: Connection, row: dict[str, Any]) -> None:
    """Insert a :func:`collaboration_row`. Raises :class:`ConflictError` if the id is taken."""
    c = t.collaborations.c
    exists = sa.select(c.collaboration_id).where(c.collaboration_id == row["collaboration_id"])
    if conn.execute(exists).first() is not None:
        raise ConflictError(f"collaboration {row['collaboration_id']!r} already exists")
    conn.execute(t.collaborations.insert().values(row))


_UPDATE_AI = (
    t.ais.update()
    .where(t.ais.c.ai_id == sa.bindparam("target"))
    .values(
        specialization=sa.bindparam("new_specialization"),
        capabilities=sa.bindparam("new_capabilities"),
        last_seen=sa.bindparam("new_last_seen"),
    )
)


def upsert_ais(
    conn: Connection, payloads: list[tuple[str, dict[str, Any], float]]
) -> list[tuple[bool, Any]]:
    """Many ``(ai_id, profile, timestamp)`` upserts in order, in three statements: one lookup
    of the AIs known, one insert of the new ones (first seen at their first ``timestamp``), one
    update of the others. Of two for one id, the later profile wins, as one at a time."""
    c = t.ais.c
    ids = {ai_id for ai_id, _, _ in payloads}
    known = set(conn.scalars(sa.select(c.ai_id).where(c.ai_id.in_(ids))))
    new: dict[str, dict[str, Any]] = {}
    updates: dict[str, dict[str, Any]] = {}
    for ai_id, profile, timestamp in payloads:
        if ai_id in known:
            updates[ai_id] = {
                "target": ai_id,
                **{f"new_{name}": value for name, value in profile.items()},
            }
        elif ai_id in new:
            new[ai_id].update(profile)
        else:
            new[ai_id] = {"ai_id": ai_id, "first_seen": timestamp, **profile}
    if new:
        insert_rows(conn, t.ais, list(new.values()))
    if updates:
        conn.execute(_UPDATE_AI, list(updates.values()))
    return [(True, None)] * len(payloads)


def insert_collaborations(conn: Connection, rows: list[dict[str, Any]]) -> list[tuple[bool, Any]]:
    """:func:`insert_collaboration` for many rows in two statements: one lookup of the ids
    already taken, one insert of the others. A row whose id is taken (in the table, or by an
    earlier row of the same call) gets ``(False, ConflictError)`` and writes nothing."""
    c = t.collaborations.c
    ids = [row["collaboration_id"] for row in rows]
    taken = set(conn.scalars(sa.select(c.collaboration_id).where(c.collaboration_id.in_(ids))))
    new: list[dict[str, Any]] = []
    outcomes: list[tuple[bool, Any]] = []
    for row in rows:
        cid = row["collaboration_id"]
        if cid in taken:
            outcomes.append((False, ConflictError(f"collaboration {cid!r} already exists")))
            continue
        taken.add(cid)
        new.append(row)
        outcomes.append((True, None))
    if new:
        insert_rows(conn, t.collaborations, new)
    return outcomes


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
