"""FEEDBACK as votes: one per rater per item, and what the hub rebuilds its standings from.

Internal to :mod:`kernal.storage`, like :mod:`kernal.storage.rows`. Every FEEDBACK frame is still
appended to ``feedback`` (the log); what counts is the rater's row in ``feedback_votes``, so a
rater sending the same vote a thousand times weighs what it weighs once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from kernal.storage import schema as t
from kernal.storage.base import (
    CollaborationStatus,
    FeedbackEdge,
    FeedbackResult,
    FeedbackScore,
    ItemKind,
    ItemVote,
    NotFoundError,
    RatingRecord,
    Vote,
)
from kernal.storage.rows import (
    ITEM_TABLES,
    ItemTable,
    lenient_count,
    lenient_float,
    lenient_text,
)

__all__ = [
    "collaboration_pairs",
    "feedback_edges",
    "feedback_scores",
    "item_votes",
    "ratings",
    "record_feedback",
]


def record_feedback(
    conn: Connection,
    spec: ItemTable[Any],
    item_id: str,
    rater: str,
    vote: Vote,
    timestamp: float,
) -> FeedbackResult:
    """Log the feedback and set ``rater``'s vote on the item (see :meth:`Store.record_feedback`).
    Raises :class:`NotFoundError`, nothing written."""
    table = spec.table
    key = spec.key == item_id
    owner = conn.execute(sa.select(table.c.contributor).where(key)).first()
    if owner is None:
        raise NotFoundError(f"no {spec.kind.value} with id {item_id!r}")
    contributor = lenient_text(owner.contributor)
    v = t.feedback_votes.c
    this_vote = (v.kind == spec.kind.value) & (v.item_id == item_id) & (v.rater == rater)
    before = conn.execute(sa.select(v.score, v.usefulness).where(this_vote)).first()
    replaced = None if before is None else Vote(before.score, before.usefulness)
    now = vote if vote.rated or replaced is None else replaced
    if replaced is None:
        conn.execute(
            t.feedback_votes.insert().values(
                kind=spec.kind.value,
                item_id=item_id,
                rater=rater,
                contributor=contributor,
                score=vote.score,
                usefulness=vote.usefulness,
                timestamp=timestamp,
            )
        )
        # A new rater is one more use. COALESCE: an adopted prototype row may hold NULL there.
        count = sa.func.coalesce(table.c.usage_count, 0) + 1
        conn.execute(table.update().where(key).values(usage_count=count))
    else:
        fields = {"timestamp": timestamp, "score": now.score, "usefulness": now.usefulness}
        conn.execute(t.feedback_votes.update().where(this_vote).values(fields))
    conn.execute(
        t.feedback.insert().values(
            kind=spec.kind.value,
            item_id=item_id,
            ai_id=rater,
            score=vote.score,
            timestamp=timestamp,
        )
    )
    if spec.has_quality and now.score is not None:
        mean = (
            sa.select(sa.func.avg(v.score))
            .where(v.kind == spec.kind.value, v.item_id == item_id, v.score.is_not(None))
            .scalar_subquery()
        )
        conn.execute(table.update().where(key).values(quality_score=mean))
    state = [table.c.usage_count]
    if spec.has_quality:
        state.append(table.c.quality_score)
    row = conn.execute(sa.select(*state).where(key)).one()
    return FeedbackResult(
        usage_count=lenient_count(row.usage_count),
        quality_score=lenient_float(row.quality_score) if spec.has_quality else None,
        contributor=contributor,
        vote=now,
        replaced=replaced,
    )


def ratings(conn: Connection) -> list[RatingRecord]:
    """Every vote with a score or a usefulness."""
    v = t.feedback_votes.c
    query = sa.select(v.rater, v.contributor, v.kind, v.item_id, v.score, v.usefulness).where(
        v.score.is_not(None) | v.usefulness.is_not(None)
    )
    return [
        RatingRecord(
            row.rater,
            row.contributor,
            ItemKind(row.kind),
            row.item_id,
            Vote(row.score, row.usefulness),
        )
        for row in conn.execute(query)
    ]


def item_votes(conn: Connection, kind: ItemKind, item_id: str, limit: int) -> list[ItemVote]:
    """The rating votes on one item, newest first (see :meth:`Store.item_votes`)."""
    v = t.feedback_votes.c
    query = (
        sa.select(v.rater, v.score, v.usefulness, v.timestamp)
        .where(v.kind == kind.value, v.item_id == item_id)
        .where(v.score.is_not(None) | v.usefulness.is_not(None))
        .order_by(v.timestamp.desc(), v.rater)
        .limit(max(limit, 0))
    )
    return [
        ItemVote(row.rater, Vote(row.score, row.usefulness), lenient_float(row.timestamp) or 0.0)
        for row in conn.execute(query)
    ]


def collaboration_pairs(conn: Connection) -> set[tuple[str, str]]:
    """``(requester, acceptor)`` of the completed collaborations."""
    c = t.collaborations.c
    query = (
        sa.select(c.requester, c.acceptor)
        .where(c.status == CollaborationStatus.COMPLETED.value)
        .distinct()
    )
    return {(str(row.requester), str(row.acceptor)) for row in conn.execute(query)}


# ---------------------------------------------------------------------- who rated whom


def _rated(since: float) -> sa.Subquery:
    """Feedback since ``since`` with the rated item's contributor: (rater, contributor, score,
    timestamp). One join per item table, glued with UNION ALL: feedback names its item by
    (kind, id)."""
    f = t.feedback.c
    return sa.union_all(
        *(
            sa.select(
                f.ai_id.label("rater"),
                spec.table.c.contributor.label("contributor"),
                f.score,
                f.timestamp,
            )
            .select_from(t.feedback.join(spec.table, spec.key == f.item_id))
            .where(f.kind == spec.kind.value, f.timestamp >= since)
            for spec in ITEM_TABLES.values()
        )
    ).subquery()


def feedback_edges(conn: Connection, since: float, limit: int) -> list[FeedbackEdge]:
    """Feedback since ``since`` summed per (rater, contributor), newest activity first."""
    j = _rated(since).c
    query = (
        sa.select(
            j.rater,
            j.contributor,
            sa.func.count().label("uses"),
            sa.func.count(j.score).label("scored"),
            sa.func.coalesce(sa.func.sum(j.score), 0.0).label("score_total"),
            sa.func.min(j.timestamp).label("first_at"),
            sa.func.max(j.timestamp).label("last_at"),
        )
        .where(j.contributor.is_not(None), j.contributor != "", j.rater != j.contributor)
        .group_by(j.rater, j.contributor)
        .order_by(sa.func.max(j.timestamp).desc(), j.rater, j.contributor)
        .limit(max(limit, 0))
    )
    return [
        FeedbackEdge(
            rater=str(row.rater),
            contributor=str(row.contributor),
            count=int(row.uses),
            scored=int(row.scored),
            score_total=float(row.score_total),
            first_at=float(row.first_at),
            last_at=float(row.last_at),
        )
        for row in conn.execute(query)
    ]


def feedback_scores(conn: Connection, since: float, limit: int) -> list[FeedbackScore]:
    """Scored feedback since ``since`` on others' items: the newest ``limit``, oldest first."""
    j = _rated(since).c
    query = (
        sa.select(j.rater, j.contributor, j.score, j.timestamp)
        .where(
            j.score.is_not(None),
            j.contributor.is_not(None),
            j.contributor != "",
            j.rater != j.contributor,
        )
        .order_by(j.timestamp.desc(), j.rater.desc())
        .limit(max(limit, 0))
    )
    found = [
        FeedbackScore(
            rater=str(row.rater),
            contributor=str(row.contributor),
            score=float(row.score),
            timestamp=float(row.timestamp),
        )
        for row in conn.execute(query)
    ]
    return found[::-1]
