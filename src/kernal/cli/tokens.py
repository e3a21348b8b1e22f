"""``kernal token add|list|revoke``: who may connect, managed while the hub runs."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

import typer

from kernal.cli.common import DbOption, fail, open_store, typer_app
from kernal.config import DEFAULT_DB

token_app = typer_app("Manage the tokens trainers authenticate with.")


@token_app.command("add")
def token_add(
    ai_id: Annotated[str, typer.Argument(help="The AI the token is for.")],
    token: Annotated[
        str | None, typer.Option(help="Use this token instead of a random one.")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create or replace AI_ID's token and print it (only its hash is stored)."""
    from kernal.hub.auth import (
        GENERATED_TOKEN_ITERATIONS,
        PBKDF2_ITERATIONS,
        generate_token,
        hash_token,
    )
    from kernal.protocol.messages import Auth

    try:
        Auth(ai_id=ai_id, token=token or "x")
    except ValueError:
        raise fail(f"invalid AI id {ai_id!r}: use letters, digits and _ . : @ -") from None
    secret = token or generate_token()
    iterations = PBKDF2_ITERATIONS if token else GENERATED_TOKEN_ITERATIONS

    async def add() -> None:
        from kernal.timing import Clock

        store = await open_store(db)
        try:
            await store.set_token_hash(
                ai_id, hash_token(secret, iterations=iterations), Clock.now()
            )
        finally:
            await store.close()

    asyncio.run(add())
    typer.secho(f"token for {ai_id} stored in {db}:", err=True)
    typer.echo(secret)


@token_app.command("list")
def token_list(db: DbOption = DEFAULT_DB) -> None:
    """List the AIs that have a token (never the tokens themselves)."""

    async def fetch() -> list[Any]:
        store = await open_store(db)
        try:
            return await store.list_tokens()
        finally:
            await store.close()

    tokens = asyncio.run(fetch())
    if not tokens:
        typer.echo("no tokens stored: a loopback hub on this database runs with demo tokens")
    for info in tokens:
        created = dt.datetime.fromtimestamp(info.created_at, dt.UTC).isoformat(timespec="seconds")
        typer.echo(f"{info.ai_id}\t{created}")


@token_app.command("revoke")
def token_revoke(
    ai_id: Annotated[str, typer.Argument(help="The AI whose token to delete.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete AI_ID's token; its next connection is refused."""

    async def revoke() -> bool:
        store = await open_store(db)
        try:
            return await store.delete_token(ai_id)
        finally:
            await store.close()

    if not asyncio.run(revoke()):
        raise fail(f"no token stored for {ai_id} in {db}")
    typer.echo(f"revoked the token of {ai_id}")
