"""Trainers started and stopped from the browser: the routes over :mod:`kernal.launcher`.

* ``POST /api/trainers`` (admin token): validate the engine and its options with the engine's
  own options model, mint a token for the AI (only its hash is stored, as ``kernal token add``
  does), run ``python -m kernal trainer`` against this hub as a child process. 201 with the
  trainer; 409 if the id is connected, launched, or has a token of its own; 422 for a bad
  id, engine or option; 429 past ``--max-launched-trainers``; 403 when launching is off
  (no admin token, a limit of 0, or a hub that requires client certificates).
* ``GET /api/trainers`` (read token): the launched trainers, and whether launching is on.
* ``GET /api/trainers/{ai_id}/logs`` (read token): the trainer's recent output lines.
* ``DELETE /api/trainers/{ai_id}`` (admin token): revoke its token, then stop it (SIGTERM,
  SIGKILL after a grace period) and forget it.

Every launched trainer is stopped, and its token revoked, when the web app stops
(``app.state.before_stop``, run by :class:`kernal.web.server.WebServer` before the hub stops).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Path, Query
from pydantic import BaseModel, Field

from kernal.engines.base import (
    EngineOptionsError,
    UnknownEngineError,
    available_engines,
    load_engine,
)
from kernal.hub.auth import GENERATED_TOKEN_ITERATIONS, generate_token, hash_token
from kernal.hub.server import Hub
from kernal.launcher import LOG_LINES, Launched, Launcher, LaunchRefused, LaunchSpec
from kernal.protocol.messages import AiId, Label

log = logging.getLogger("kernal.web")

TOKEN_SOURCE = "launcher"  # the store's ``source`` of the tokens minted here


class LaunchRequest(BaseModel):
    """What to launch. ``options`` are the engine's (``--option KEY=VALUE`` on the command
    line), JSON values; ``capabilities`` the AI announces for its specialization."""

    ai_id: AiId
    specialization: Label
    engine: Annotated[str, Field(min_length=1, max_length=128)] = "learning"
    options: dict[str, Any] = Field(default_factory=dict, max_length=64)
    capabilities: Annotated[list[Label], Field(max_length=64)] | None = None
    seed: int | None = None


class TrainerInfo(BaseModel):
    ai_id: str
    specialization: str
    engine: str
    pid: int
    state: Literal["running", "exited"]
    exit_code: int | None
    started_at: float
    exited_at: float | None
    connected: bool
    """Whether the AI is connected to the hub now (said HELLO)."""
    command: list[str]
    """The child's argv: no secret in it (its token is in its environment)."""


class TrainerList(BaseModel):
    enabled: bool
    """Whether this hub launches trainers (it has an admin token and a nonzero limit)."""
    how_to_enable: str | None
    limit: int
    engines: list[str]
    """The engines installed (entry points of ``kernal.engines``)."""
    trainers: list[TrainerInfo]


class TrainerLogs(BaseModel):
    ai_id: str
    state: Literal["running", "exited"]
    lines: list[str]
    """The newest lines (stdout and stderr, in order), oldest first."""
    total_lines: int
    """Lines the trainer printed in all; older ones than ``lines`` were dropped."""


class Stopped(BaseModel):
    ai_id: str
    exit_code: int | None
    token_revoked: bool


PathId = Annotated[str, Path(min_length=1, max_length=200)]


def hub_address_for_children(hub: Hub) -> str:
    """Where a child on this machine reaches the hub: loopback unless it is bound to one
    address only."""
    host, port = hub.address
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"tls://{where}" if hub.settings.tls else where


def install_trainers(app: FastAPI, hub: Hub) -> Launcher:
    """Add the trainer routes to ``app`` and stop every launched trainer when it stops."""
    settings = hub.settings
    launcher = Launcher(
        hub_address_for_children(hub),
        speed=settings.speed,
        limit=settings.max_launched_trainers,
        ca=settings.tls_cert,  # a self-signed hub certificate checks itself
    )
    app.state.launcher = launcher

    async def stop_all() -> None:
        for launched in await launcher.stop_all():
            await hub.store.delete_token(launched.ai_id)

    hooks = getattr(app.state, "before_stop", None)
    if hooks is None:
        hooks = app.state.before_stop = []
    hooks.append(stop_all)
    app.include_router(trainers_router(hub, launcher))
    return launcher


def _how_to_enable(hub: Hub) -> str | None:
    if not hub.settings.admin_token:
        return (
            "launching trainers needs an admin token: start the hub with "
            "`kernal hub --admin-token TOKEN` (or KERNAL_ADMIN_TOKEN)"
        )
    if hub.settings.max_launched_trainers <= 0:
        return "this hub was started with --max-launched-trainers 0; give it a positive limit"
    if hub.settings.tls_client_ca:
        return (
            "this hub requires client certificates (--client-ca), which a trainer it launches "
            "cannot present; start trainers with `kernal trainer --client-cert` instead"
        )
    return None


def trainers_router(hub: Hub, launcher: Launcher) -> APIRouter:
    """The ``/api/trainers`` routes (the admin token is enforced by the Guard)."""
    router = APIRouter(tags=["trainers"])
    store = hub.store

    def info(launched: Launched) -> TrainerInfo:
        spec = launched.spec
        return TrainerInfo(
            ai_id=spec.ai_id,
            specialization=spec.specialization,
            engine=spec.engine,
            pid=launched.pid,
            state=launched.state,
            exit_code=launched.exit_code,
            started_at=launched.started_at,
            exited_at=launched.exited_at,
            connected=spec.ai_id in hub.peers,
            command=launched.command,
        )

    def known(ai_id: str) -> Launched:
        launched = launcher.get(ai_id)
        if launched is None:
            raise HTTPException(404, f"{ai_id} was not launched from this hub")
        return launched

    @router.get("/api/trainers")
    async def trainers() -> TrainerList:
        """The trainers launched from this hub (running, or exited and not yet removed)."""
        how = _how_to_enable(hub)
        return TrainerList(
            enabled=how is None,
            how_to_enable=how,
            limit=launcher.limit,
            engines=available_engines(),
            trainers=[info(t) for t in launcher.all()],
        )

    @router.post("/api/trainers", status_code=201)
    async def launch(request: LaunchRequest) -> TrainerInfo:
        """Launch a trainer for a new AI with a freshly minted token (see the module doc)."""
        ai_id = request.ai_id
        off = _how_to_enable(hub)
        if off is not None:
            raise HTTPException(403, off)
        try:
            engine = load_engine(request.engine)
            options = {key.replace("-", "_"): value for key, value in request.options.items()}
            engine.parse_options(options)
        except (UnknownEngineError, EngineOptionsError) as exc:
            raise HTTPException(422, str(exc)) from None
        if ai_id in hub.peers:
            raise HTTPException(409, f"{ai_id} is connected to the hub already; pick another AI id")
        try:
            launcher.reserve(ai_id)
        except LaunchRefused as exc:
            raise HTTPException(409 if exc.conflict else 429, str(exc)) from None
        try:
            existing = await store.get_token(ai_id)
            # A token minted by a launcher with no such trainer now is a leftover of a hub
            # that did not stop cleanly: replacing it locks out any orphan still retrying.
            if existing is not None and existing.source != TOKEN_SOURCE:
                raise HTTPException(
                    409,
                    f"{ai_id} has a token of its own (kernal token add): launching would "
                    f"replace it. Pick another id, or revoke it first (`kernal token revoke "
                    f"{ai_id}`)",
                )
            secret = generate_token()
            await store.set_token_hash(
                ai_id,
                hash_token(secret, iterations=GENERATED_TOKEN_ITERATIONS),
                hub.clock.now(),
                source=TOKEN_SOURCE,
            )
            spec = LaunchSpec(
                ai_id=ai_id,
                specialization=request.specialization,
                engine=request.engine,
                options=options,
                capabilities=request.capabilities,
                seed=request.seed,
            )
            try:
                launched = await launcher.launch(spec, secret)
            except OSError as exc:
                await store.delete_token(ai_id)
                raise HTTPException(
                    500, f"could not start the trainer process: {exc}; see the hub's log"
                ) from None
        finally:
            launcher.release(ai_id)
        return info(launched)

    @router.get("/api/trainers/{ai_id}/logs")
    async def logs(
        ai_id: PathId,
        lines: Annotated[int, Query(ge=1, le=LOG_LINES)] = 200,
    ) -> TrainerLogs:
        """The newest ``lines`` lines the trainer printed (404 if it was not launched here)."""
        launched = known(ai_id)
        ring = list(launched.logs)
        return TrainerLogs(
            ai_id=ai_id,
            state=launched.state,
            lines=ring[-lines:],
            total_lines=launched.lines_seen,
        )

    @router.delete("/api/trainers/{ai_id}")
    async def stop(ai_id: PathId) -> Stopped:
        """Revoke the trainer's token (so it cannot log in again), stop it and forget it."""
        known(ai_id)
        revoked = await store.delete_token(ai_id)
        launched = await launcher.stop(ai_id)
        return Stopped(
            ai_id=ai_id,
            exit_code=None if launched is None else launched.exit_code,
            token_revoked=revoked,
        )

    return router
