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
    FeedbackResult,
    ItemKind,
    ItemVote,
    NotFoundError,
    RatingRecord,
    Vote,
)
from kernal.storage.rows import ItemTable, lenient_count, lenient_float, lenient_text

__all__ = ["collaboration_pairs", "item_votes", "ratings", "record_feedback"]


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
