"""Tokens: hashing, verification, and the demo mode of a fresh loopback hub.

Tokens are stored as salted PBKDF2-SHA256 hashes (``pbkdf2_sha256$<iterations>$<salt>$<hash>``),
never in plain text. Verification runs in the authenticator's own small thread pool, so a burst
of logins neither stalls the event loop nor queues in front of the database's threads, and a
successful verification is remembered in memory (keyed by the stored hash, so a replaced or
revoked token is never served from the cache). An unknown AI id, a wrong token and an expired
token get the same answer, after the same work: the answer does not tell which AI ids exist, nor
which of them had a token once.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import hashlib
import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass

from kernal.storage import Store
from kernal.timing import Clock

log = logging.getLogger("kernal.hub.auth")

PBKDF2_ITERATIONS = 120_000
"""Stretching for tokens a person chose: it slows down guessing a weak secret."""

GENERATED_TOKEN_ITERATIONS = 1_000
"""For tokens from :func:`generate_token`: 256 random bits cannot be guessed, so stretching
them would only make every login slower."""

DEMO_TOKENS: dict[str, str] = {f"AI_Node_{n}": f"secret{n}" for n in range(1, 9)}
"""The original prototype's tokens, honoured only while the token store is empty on loopback."""


def generate_token() -> str:
    """A new random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def hash_token(token: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", token.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${_b64(salt)}${_b64(digest)}"


def verify_token(token: str, stored: str) -> bool:
    """Constant-time check of ``token`` against a stored hash. Malformed hashes never match."""
    try:
        scheme, iterations, salt_b64, digest_b64 = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        salt = base64.urlsafe_b64decode(salt_b64 + "=" * (-len(salt_b64) % 4))
        expected = base64.urlsafe_b64decode(digest_b64 + "=" * (-len(digest_b64) % 4))
        digest = hashlib.pbkdf2_hmac("sha256", token.encode("utf-8"), salt, int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


HASHING_THREADS = 2


@functools.cache
def _decoy() -> str:
    """A hash to check tokens of unknown AI ids against (made on first use: it takes a while)."""
    return hash_token(secrets.token_urlsafe(16))


def refusal(ai_id: str) -> str:
    """The one answer to a wrong token and to an AI id with no token."""
    return (
        f"invalid token for {ai_id} (or no token is registered for it: add one on the hub "
        f"with `kernal token add {ai_id}`)"
    )


@dataclass(frozen=True)
class Grant:
    """What a session was let in with, for checking later that it still holds."""

    token_hash: str | None  # the stored hash it matched; None for a demo token
    expires_at: float | None = None  # real Unix seconds; None: never
    # The last token change (store numbering) known to be reflected in this grant: changes of
    # the AI's token numbered after it make the hub check the session again.
    seq: int = 0

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class Authenticator:
    """Decides whether an ``(ai_id, token)`` pair may connect.

    The store is read on every attempt, so tokens added or revoked with ``kernal token`` while
    the hub runs take effect at the next connection, without a restart.
    """

    def __init__(self, store: Store, *, allow_demo_tokens: bool) -> None:
        self._store = store
        self._allow_demo = allow_demo_tokens
        self._verified: dict[str, tuple[str, bytes]] = {}
        # The last token change the hub has looked at (kept by hub.tokens.TokenWatch): taken
        # before each login reads the store, so a change committed during a login is checked.
        self.seen_change = 0
        self._hashing = concurrent.futures.ThreadPoolExecutor(
            HASHING_THREADS, thread_name_prefix="kernal-auth"
        )

    def close(self) -> None:
        self._hashing.shutdown(wait=False, cancel_futures=True)

    async def verify(self, token: str, stored: str) -> bool:
        """:func:`verify_token` in the authenticator's hashing threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hashing, verify_token, token, stored)

    async def hash(self, token: str) -> str:
        """:func:`hash_token` (full stretching) in the authenticator's hashing threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hashing, hash_token, token)

    async def demo_mode(self) -> bool:
        """Whether the demo tokens are in force: allowed, and no token stored yet."""
        return self._allow_demo and await self._store.count_tokens() == 0

    async def check(self, ai_id: str, token: str) -> str | None:
        """Return ``None`` if the pair is valid, else the reason to give the client."""
        verdict = await self.authenticate(ai_id, token)
        return verdict if isinstance(verdict, str) else None

    async def authenticate(self, ai_id: str, token: str) -> Grant | str:
        """The :class:`Grant` of a valid pair, else the reason to give the client (the one
        :func:`refusal` text, whatever was wrong)."""
        seq = self.seen_change
        stored = await self._store.get_token(ai_id)
        if stored is None:
            if await self.demo_mode() and ai_id in DEMO_TOKENS:
                ok = hmac.compare_digest(DEMO_TOKENS[ai_id].encode(), token.encode())
                return Grant(None, seq=seq) if ok else refusal(ai_id)
            await self.verify(token, _decoy())  # about the work of a wrong token
            return refusal(ai_id)
        grant = Grant(stored.token_hash, stored.expires_at, seq)
        fast = hashlib.sha256(stored.token_hash.encode() + b"\0" + token.encode()).digest()
        cached = self._verified.get(ai_id)
        if (
            cached is not None
            and cached[0] == stored.token_hash
            and hmac.compare_digest(cached[1], fast)
        ):
            ok = True
        else:
            ok = await self.verify(token, stored.token_hash)
            if ok:
                self._verified[ai_id] = (stored.token_hash, fast)
        # Expiry is checked after the work of a verification, so an expired token is answered
        # exactly as a wrong one: the answer never says that the token was right once.
        if not ok or grant.expired(Clock.now()):
            return refusal(ai_id)
        return grant
