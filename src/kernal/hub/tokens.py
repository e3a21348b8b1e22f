"""Tokens that change while the hub runs: the tokens file, and evicting sessions whose token is
no longer valid.

``kernal token revoke|rotate`` writes the database from another process, so the hub cannot be
told; it looks instead. Every ``interval`` real seconds (2 s by default, never scenario time: a
revoked token must stop working at the same speed whatever the scenario) :class:`TokenWatch`
reads the token changes numbered after the last one it saw (one indexed range read, empty
nearly always), and disconnects each live session whose token was revoked or replaced since it
was checked, or has expired, with ``ERROR token_revoked``. Sessions let in with a demo token go
too once a token is stored (demo mode is over).

The tokens file (``--tokens-file``, ``KERNAL_TOKENS_FILE``) is for deployments: one
``ai_id:token`` (or ``ai_id:pbkdf2_sha256$...``, a hash from ``kernal token hash``) a line,
``#`` comments and blank lines ignored. The hub writes it into the store at start and whenever
the file changes: it owns the tokens of the AIs it lists (``source`` ``file``), adds and
replaces them, and revokes those it wrote and no longer lists. Tokens added with ``kernal
token`` for other AIs are left alone. Plain tokens are hashed on load, never stored in clear.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from kernal.hub.auth import Authenticator, Grant
from kernal.protocol.messages import Auth
from kernal.runtime import cancel_and_wait
from kernal.storage import Store, TokenAction
from kernal.timing import Clock

log = logging.getLogger("kernal.hub")

HASH_PREFIX = "pbkdf2_sha256$"
FILE_SOURCE = "file"


class Guarded(Protocol):
    """A session as the watch sees it."""

    @property
    def ai_id(self) -> str | None: ...

    grant: Grant | None  # None until authenticated

    def revoke(self, reason: str) -> None:
        """Tell the client why (``ERROR token_revoked``), then disconnect it."""


class TokensFileError(ValueError):
    """The tokens file cannot be read or has a bad line; the message names file and line."""


def parse_tokens_file(path: Path) -> dict[str, str]:
    """``ai_id`` to token (or stored hash) from a tokens file. Splits each line at its last
    ``:`` (AI ids may contain ``:``, tokens may not). Raises :class:`TokensFileError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokensFileError(f"cannot read the tokens file {path}: {exc}") from exc
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        ai_id, sep, secret = line.rpartition(":")
        ai_id, secret = ai_id.strip(), secret.strip()
        where = f"{path}:{number}"
        if not sep or not ai_id or not secret:
            raise TokensFileError(f"{where}: expected AI_ID:TOKEN")
        try:
            Auth(ai_id=ai_id, token=secret)
        except ValidationError:
            raise TokensFileError(
                f"{where}: invalid AI id {ai_id!r} or token (AI ids use letters, digits and "
                "_ . : @ -; tokens are 1 to 1024 characters without ':')"
            ) from None
        if ai_id in entries:
            raise TokensFileError(f"{where}: {ai_id} is listed twice")
        entries[ai_id] = secret
    return entries


@dataclass
class TokensFile:
    """The hub's tokens file, written into the store by :meth:`sync`."""

    path: Path
    _signature: tuple[float, int, int] | None = None

    def _stat(self) -> tuple[float, int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size, stat.st_ino)

    def changed(self) -> bool:
        """Whether the file looks different from when it was last synced (a cheap stat)."""
        return self._stat() != self._signature

    async def sync(self, store: Store, auth: Authenticator) -> dict[TokenAction, int]:
        """Make the store's file tokens what the file says; count what changed. Raises
        :class:`TokensFileError` (and changes nothing) for a file it cannot read or parse."""
        signature = self._stat()
        try:
            entries = parse_tokens_file(self.path)
        except TokensFileError:
            self._signature = signature  # said once; said again when the file changes
            raise
        counts = dict.fromkeys(TokenAction, 0)
        now = Clock.now()
        for ai_id, secret in entries.items():
            current = await store.get_token(ai_id)
            if secret.startswith(HASH_PREFIX):
                new_hash = secret
                same = current is not None and current.token_hash == secret
            else:
                same = current is not None and await auth.verify(secret, current.token_hash)
                new_hash = "" if same else await auth.hash(secret)
            if same and current is not None and current.source == FILE_SOURCE:
                continue
            if current is not None and current.source != FILE_SOURCE:
                log.warning(
                    "[%s] The tokens file %s replaces the token added with `kernal token`",
                    ai_id,
                    self.path,
                )
            if same and current is not None:
                new_hash = current.token_hash  # the same token, now owned by the file
            action = await store.set_token_hash(ai_id, new_hash, now, source=FILE_SOURCE)
            counts[action] += 1
        for info in await store.list_tokens():
            listed = info.source != FILE_SOURCE or info.ai_id in entries
            if not listed and await store.delete_token(info.ai_id, now):
                counts[TokenAction.REVOKED] += 1
        self._signature = signature
        return counts


def describe_counts(counts: dict[TokenAction, int]) -> str:
    return ", ".join(f"{n} {action.value}" for action, n in counts.items())


class TokenWatch:
    """Evicts sessions whose token stopped being valid; see the module docstring.

    ``sessions`` gives the hub's current sessions; ``interval`` is in real seconds.
    """

    def __init__(
        self,
        *,
        store: Store,
        auth: Authenticator,
        sessions: Callable[[], Iterable[Guarded]],
        interval: float,
        tokens_file: TokensFile | None = None,
    ) -> None:
        self._store = store
        self._auth = auth
        self._sessions = sessions
        self._interval = interval
        self._file = tokens_file
        self._changed_at: dict[str, int] = {}  # seq of each AI's last change seen
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the current change number as seen (sessions start after it), then watch."""
        self._auth.seen_change = await self._store.last_token_change()
        if self._interval > 0:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception:
                log.exception("Checking for revoked tokens failed; trying again")

    async def check(self) -> int:
        """One round: the tokens file if it changed, then every session. Returns how many
        sessions were told to go."""
        if self._file is not None and self._file.changed():
            try:
                counts = await self._file.sync(self._store, self._auth)
            except TokensFileError as exc:
                log.error("%s; keeping the tokens as they were", exc)
            else:
                log.info("Tokens file %s reloaded: %s", self._file.path, describe_counts(counts))
        seen = self._auth.seen_change
        changes = await self._store.token_changes_after(seen)
        for change in changes:
            self._changed_at[change.ai_id] = change.seq
        if changes:
            seen = self._auth.seen_change = changes[-1].seq
        now = Clock.now()
        demo_over: bool | None = None
        evicted = 0
        for session in list(self._sessions()):
            grant, ai_id = session.grant, session.ai_id
            if grant is None or ai_id is None:
                continue
            reason = None
            if grant.token_hash is None:  # a demo token: valid while no token is stored
                if grant.seq < seen:
                    if demo_over is None:
                        demo_over = not await self._auth.demo_mode()
                    if demo_over:
                        reason = (
                            "the demo tokens stopped working: a token was stored on the hub. "
                            f"Get a token for {ai_id} from the hub's operator"
                        )
            elif self._changed_at.get(ai_id, 0) > grant.seq:
                checked = await self._still_valid(ai_id, grant)
                if isinstance(checked, str):
                    reason = checked
                else:
                    grant = checked
            elif grant.expired(now):
                reason = f"the token of {ai_id} expired at {_iso(grant.expires_at)}"
            if reason is not None:
                log.warning("[%s] Disconnecting: %s", ai_id, reason)
                session.revoke(reason)
                evicted += 1
            else:
                session.grant = replace(grant, seq=seen)
        return evicted

    async def _still_valid(self, ai_id: str, grant: Grant) -> Grant | str:
        """Why the token of ``grant`` is not ``ai_id``'s any more, or the grant as stored now
        (the same token, its expiry perhaps changed)."""
        stored = await self._store.get_token(ai_id)
        if stored is None:
            return f"the token of {ai_id} was revoked on the hub"
        if stored.token_hash != grant.token_hash:
            return f"the token of {ai_id} was replaced (rotated) on the hub; use the new one"
        grant = replace(grant, expires_at=stored.expires_at)
        if grant.expired(Clock.now()):
            return f"the token of {ai_id} expired at {_iso(grant.expires_at)}"
        return grant


def _iso(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")
