"""Token rows: the hashes the hub checks logins against, and the numbered changes to them.

Internal to :mod:`kernal.storage`, like :mod:`kernal.storage.trainer_reports`: :class:`TokensSql`
is the part of :class:`~kernal.storage.sql.SqlStore` that implements the token methods of
:class:`~kernal.storage.base.Store`. Every change to a token (added, replaced, revoked) is
numbered in the transaction that made it, so a hub that polls ``token_changes_after`` sees each
change exactly once, whichever process wrote it (the hub or ``kernal token``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection

from kernal.storage import schema as t
from kernal.storage.records import StoredToken, TokenAction, TokenChange, TokenInfo
from kernal.storage.writer import Batchable

__all__ = ["TokensSql", "record_token_change"]

T = TypeVar("T")

_TOKEN_CHANGES_LOCK = 0x6B65726E616C  # "kernal": the advisory lock numbering token changes


class TokensSql:
    """The token methods of the SQL store (see :class:`~kernal.storage.base.Store`), on the
    store's reader and single writer."""

    if TYPE_CHECKING:  # provided by SqlStore

        async def _read(self, fn: Callable[[Connection], T]) -> T: ...

        async def _write(
            self, fn: Callable[[Connection], T], *, batch: Batchable | None = None
        ) -> T: ...

    async def set_token_hash(
        self,
        ai_id: str,
        token_hash: str,
        timestamp: float,
        *,
        expires_at: float | None = None,
        source: str = "cli",
    ) -> TokenAction:
        values = {
            "token_hash": token_hash,
            "created_at": timestamp,
            "expires_at": expires_at,
            "source": source,
        }

        def job(conn: Connection) -> TokenAction:
            key = t.tokens.c.ai_id == ai_id
            action = TokenAction.REPLACED
            if conn.execute(t.tokens.update().where(key).values(values)).rowcount == 0:
                conn.execute(t.tokens.insert().values(ai_id=ai_id, **values))
                action = TokenAction.ADDED
            record_token_change(conn, ai_id, action, timestamp)
            return action

        return await self._write(job)

    async def get_token_hash(self, ai_id: str) -> str | None:
        query = sa.select(t.tokens.c.token_hash).where(t.tokens.c.ai_id == ai_id)
        return await self._read(lambda conn: conn.scalar(query))

    async def get_token(self, ai_id: str) -> StoredToken | None:
        c = t.tokens.c
        query = sa.select(c.token_hash, c.expires_at, c.source).where(c.ai_id == ai_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        return StoredToken(row.token_hash, row.expires_at, row.source)

    async def delete_token(self, ai_id: str, timestamp: float | None = None) -> bool:
        statement = t.tokens.delete().where(t.tokens.c.ai_id == ai_id)
        when = time.time() if timestamp is None else timestamp

        def job(conn: Connection) -> bool:
            if conn.execute(statement).rowcount == 0:
                return False
            record_token_change(conn, ai_id, TokenAction.REVOKED, when)
            return True

        return await self._write(job)

    async def token_changes_after(self, seq: int) -> list[TokenChange]:
        c = t.token_changes.c
        query = sa.select(c.ai_id, c.seq, c.action, c.changed_at).where(c.seq > seq)
        found = await self._read(lambda conn: conn.execute(query.order_by(c.seq)).all())
        return [
            TokenChange(row.ai_id, row.seq, TokenAction(row.action), row.changed_at)
            for row in found
        ]

    async def last_token_change(self) -> int:
        query = sa.select(sa.func.max(t.token_changes.c.seq))
        return await self._read(lambda conn: conn.scalar(query) or 0)

    async def list_tokens(self) -> list[TokenInfo]:
        c = t.tokens.c
        query = sa.select(c.ai_id, c.created_at, c.expires_at, c.source).order_by(c.ai_id)
        found = await self._read(lambda conn: conn.execute(query).all())
        return [TokenInfo(row.ai_id, row.created_at, row.expires_at, row.source) for row in found]

    async def count_tokens(self) -> int:
        query = sa.select(sa.func.count()).select_from(t.tokens)
        return await self._read(lambda conn: conn.scalar(query) or 0)


def record_token_change(
    conn: Connection, ai_id: str, action: TokenAction, timestamp: float
) -> None:
    """Number the change after every change so far, in the transaction that made it.

    Changes must commit in the order of their numbers, or a hub that read number 6 would never
    see a 5 committed after it: SQLite's writers are serialised by ``BEGIN IMMEDIATE``, and on
    PostgreSQL a transaction-level advisory lock does the same for token changes (the hub's
    writer and a ``kernal token`` process may write at once).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _TOKEN_CHANGES_LOCK})
    c = t.token_changes.c
    seq = (conn.scalar(sa.select(sa.func.max(c.seq))) or 0) + 1
    values = {"seq": seq, "action": action.value, "changed_at": timestamp}
    if conn.execute(t.token_changes.update().where(c.ai_id == ai_id).values(values)).rowcount == 0:
        conn.execute(t.token_changes.insert().values(ai_id=ai_id, **values))
