"""``kernal token add|list|rotate|revoke|hash``: who may connect, managed while the hub runs.

A running hub notices a revoked or rotated token within a couple of seconds and disconnects the
session that used it (see :mod:`kernal.hub.tokens`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Annotated, Any

import typer

from kernal.cli.common import DbOption, fail, open_store, typer_app
from kernal.config import DEFAULT_DB

token_app = typer_app("Manage the tokens trainers authenticate with.")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}

ExpiresOption = Annotated[
    str | None,
    typer.Option(
        "--expires",
        help="When the token stops working: a duration from now (90m, 12h, 30d, 2w) or an "
        "ISO date or time (2027-01-31, 2027-01-31T12:00+01:00; UTC unless it says otherwise).",
    ),
]


def parse_expiry(text: str, now: float) -> float:
    """Unix seconds for ``--expires``: a duration from ``now`` or an ISO date/time (a date
    means its midnight, UTC; a time without offset is UTC). Raises ValueError with what to
    write instead, also for a moment already past."""
    match = _DURATION.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2).lower()
        if amount <= 0:
            raise ValueError(f"--expires {text!r}: the duration must be positive")
        return now + amount * _UNIT_SECONDS[unit]
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--expires {text!r}: expected a duration (90m, 12h, 30d, 2w) or an ISO date or "
            "time (2027-01-31, 2027-01-31T12:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    when = moment.timestamp()
    if when <= now:
        raise ValueError(f"--expires {text!r} is in the past")
    return when


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def _check_ai_id(ai_id: str) -> None:
    from kernal.protocol.messages import Auth

    try:
        Auth(ai_id=ai_id, token="x")
    except ValueError:
        raise fail(f"invalid AI id {ai_id!r}: use letters, digits and _ . : @ -") from None


def _store_token(
    ai_id: str, secret: str, *, chosen: bool, expires: str | None, db: str, must_exist: bool
) -> float | None:
    """Hash and store ``secret`` as ``ai_id``'s token; return its expiry."""
    from kernal.hub.auth import GENERATED_TOKEN_ITERATIONS, PBKDF2_ITERATIONS, hash_token
    from kernal.timing import Clock

    now = Clock.now()
    try:
        expires_at = None if expires is None else parse_expiry(expires, now)
    except ValueError as exc:
        raise fail(str(exc)) from None
    iterations = PBKDF2_ITERATIONS if chosen else GENERATED_TOKEN_ITERATIONS

    async def store_it() -> bool:
        store = await open_store(db)
        try:
            if must_exist and await store.get_token(ai_id) is None:
                return False
            token_hash = hash_token(secret, iterations=iterations)
            await store.set_token_hash(ai_id, token_hash, now, expires_at=expires_at)
            return True
        finally:
            await store.close()

    if not asyncio.run(store_it()):
        raise fail(f"no token stored for {ai_id} in {db}: add one with `kernal token add {ai_id}`")
    return expires_at


def _say_stored(ai_id: str, secret: str, db: str, expires_at: float | None, verb: str) -> None:
    until = "" if expires_at is None else f", valid until {_iso(expires_at)}"
    typer.secho(f"token for {ai_id} {verb} in {db}{until}:", err=True)
    typer.echo(secret)


@token_app.command("add")
def token_add(
    ai_id: Annotated[str, typer.Argument(help="The AI the token is for.")],
    token: Annotated[
        str | None, typer.Option(help="Use this token instead of a random one.")
    ] = None,
    expires: ExpiresOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create or replace AI_ID's token and print it (only its hash is stored). Replacing it
    disconnects a trainer connected with the old one."""
    from kernal.hub.auth import generate_token

    _check_ai_id(ai_id)
    secret = token or generate_token()
    expires_at = _store_token(
        ai_id, secret, chosen=token is not None, expires=expires, db=db, must_exist=False
    )
    _say_stored(ai_id, secret, db, expires_at, "stored")


@token_app.command("rotate")
def token_rotate(
    ai_id: Annotated[str, typer.Argument(help="The AI whose token to replace.")],
    expires: ExpiresOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Replace AI_ID's token with a new random one and print it. The old one stops working at
    once; a trainer connected with it is disconnected within a few seconds."""
    from kernal.hub.auth import generate_token

    secret = generate_token()
    expires_at = _store_token(ai_id, secret, chosen=False, expires=expires, db=db, must_exist=True)
    _say_stored(ai_id, secret, db, expires_at, "rotated")


@token_app.command("list")
def token_list(db: DbOption = DEFAULT_DB) -> None:
    """List the AIs that have a token (never the tokens themselves): AI, created, expires,
    source (cli or the hub's tokens file)."""
    from kernal.timing import Clock

    async def fetch() -> list[Any]:
        store = await open_store(db)
        try:
            return await store.list_tokens()
        finally:
            await store.close()

    tokens = asyncio.run(fetch())
    if not tokens:
        typer.echo("no tokens stored: a loopback hub on this database runs with demo tokens")
    now = Clock.now()
    for info in tokens:
        if info.expires_at is None:
            expiry = "never"
        else:
            expiry = _iso(info.expires_at) + (" (expired)" if info.expires_at <= now else "")
        typer.echo(f"{info.ai_id}\t{_iso(info.created_at)}\t{expiry}\t{info.source}")


@token_app.command("revoke")
def token_revoke(
    ai_id: Annotated[str, typer.Argument(help="The AI whose token to delete.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete AI_ID's token; its next connection is refused, and a trainer connected with it
    is disconnected within a few seconds."""

    async def revoke() -> bool:
        store = await open_store(db)
        try:
            return await store.delete_token(ai_id)
        finally:
            await store.close()

    if not asyncio.run(revoke()):
        raise fail(f"no token stored for {ai_id} in {db}")
    typer.echo(f"revoked the token of {ai_id}")


@token_app.command("hash")
def token_hash_line(
    ai_id: Annotated[str, typer.Argument(help="The AI the token is for.")],
    token: Annotated[
        str | None, typer.Option(help="Hash this token instead of a new random one.")
    ] = None,
) -> None:
    """Print a line for the hub's tokens file (AI_ID:HASH) on stdout and the token on stderr,
    storing nothing: the file then holds no token in clear. Give the token to the trainer."""
    from kernal.hub.auth import (
        GENERATED_TOKEN_ITERATIONS,
        PBKDF2_ITERATIONS,
        generate_token,
        hash_token,
    )

    _check_ai_id(ai_id)
    if token is not None and ":" in token:
        raise fail("a token in the tokens file cannot contain ':'")
    secret = token or generate_token()
    iterations = PBKDF2_ITERATIONS if token else GENERATED_TOKEN_ITERATIONS
    typer.secho(f"token for {ai_id}: {secret}", err=True)
    typer.echo(f"{ai_id}:{hash_token(secret, iterations=iterations)}")
