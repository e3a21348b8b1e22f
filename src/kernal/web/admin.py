"""Token administration over HTTP: the API's writes. Each needs the admin token
(:mod:`kernal.web.security` lets no write through without it), so they do what ``kernal token``
does on the hub's machine, from anywhere the dashboard is reachable.

* ``GET /api/tokens``: who has a token (never the tokens).
* ``POST /api/tokens/{ai_id}``: create or replace the AI's token; the answer holds it, once
  (only its hash is stored). Once any token exists, the demo tokens stop working.
* ``DELETE /api/tokens/{ai_id}``: revoke it; that AI's next login fails (a connected session
  stays until it disconnects, as with ``kernal token revoke``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ValidationError

from kernal.hub.auth import GENERATED_TOKEN_ITERATIONS, generate_token, hash_token
from kernal.hub.server import Hub
from kernal.protocol.messages import Auth


class TokenEntry(BaseModel):
    ai_id: str
    created_at: float


class NewToken(BaseModel):
    ai_id: str
    token: str
    """Shown this once: the hub keeps only its hash."""
    created_at: float


class Revoked(BaseModel):
    ai_id: str
    revoked: bool


AiId = Annotated[str, Path(min_length=1, max_length=200)]


def admin_router(hub: Hub) -> APIRouter:
    """The token routes on ``hub``'s store (admin token enforced by the Guard)."""
    router = APIRouter(tags=["admin"])
    store = hub.store

    @router.get("/api/tokens")
    async def tokens() -> list[TokenEntry]:
        """The AIs that have a token, by id (admin token: it tells who may connect)."""
        return [
            TokenEntry(ai_id=t.ai_id, created_at=t.created_at) for t in await store.list_tokens()
        ]

    @router.post("/api/tokens/{ai_id}", status_code=201)
    async def add_token(ai_id: AiId) -> NewToken:
        """Create or replace ``ai_id``'s token (random, strong) and return it once."""
        try:
            Auth(ai_id=ai_id, token="x")
        except ValidationError:
            raise HTTPException(
                422, f"invalid AI id {ai_id!r}: use letters, digits and _ . : @ -"
            ) from None
        secret = generate_token()
        now = hub.clock.now()
        await store.set_token_hash(
            ai_id, hash_token(secret, iterations=GENERATED_TOKEN_ITERATIONS), now
        )
        return NewToken(ai_id=ai_id, token=secret, created_at=now)

    @router.delete("/api/tokens/{ai_id}")
    async def revoke_token(ai_id: AiId) -> Revoked:
        """Revoke ``ai_id``'s token. 404 if it had none."""
        if not await store.delete_token(ai_id):
            raise HTTPException(404, f"{ai_id} has no token")
        return Revoked(ai_id=ai_id, revoked=True)

    return router
