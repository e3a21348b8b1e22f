"""The dashboard and HTTP API, served in-process with the hub (see :mod:`kernal.web.server`).

``create_app(hub)`` returns an ASGI app that only reads the hub's state:

* ``GET /`` the dashboard page; ``/static/...`` its script and stylesheet, shipped inside the
  package (no CDN, no build step). The page polls the JSON API every 3 s.
* ``GET /status``, ``GET /healthz`` and ``GET /api/...``: see :mod:`kernal.web.api`,
  :mod:`kernal.web.items`; token administration :mod:`kernal.web.admin`.
* ``GET /metrics`` (Prometheus, :mod:`kernal.web.metrics`); ``GET /openapi.json`` and
  ``GET /docs`` (:mod:`kernal.web.docs`).
* Who may ask: :mod:`kernal.web.security` (Host check, read and admin tokens).
* Every error is JSON with a human-readable ``error`` string next to FastAPI's usual ``detail``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from kernal import __version__
from kernal.hub.server import Hub
from kernal.web.admin import admin_router
from kernal.web.api import api_router
from kernal.web.cards import cards_router
from kernal.web.docs import docs_router
from kernal.web.listing import Budget
from kernal.web.live import install_live
from kernal.web.mcp import mount_mcp
from kernal.web.metrics import metrics_router
from kernal.web.ratings import ratings_router
from kernal.web.search import search_router
from kernal.web.security import Guard, Policy
from kernal.web.trainers import install_trainers
from kernal.web.views import views_router

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page loads nothing but its own files and talks only to this origin. Client-supplied ids and
# data are rendered as text, never as markup; this policy is the second line of defence: even an
# injected <img onerror=...> or <script> could not run.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate on every load so an upgraded hub never runs a stale page.
    "Cache-Control": "no-cache",
}


class _PackageStatic(StaticFiles):
    """StaticFiles whose responses are revalidated on every load (ETag makes that cheap)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(PAGE_HEADERS)
        return response


def _summary(errors: list[dict[str, Any]]) -> str:
    """``"query.limit: Input should be less than or equal to 500"`` for each failed input."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    return JSONResponse(
        status_code=422,
        content={"error": _summary(errors), "detail": jsonable_encoder(errors)},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse(
        status_code=exc.status_code,
        content={"error": str(exc.detail), "detail": exc.detail},
        headers=exc.headers,
    )


#: Paths whose POSTs only read (an RPC endpoint): the read token suffices there.
READ_ONLY_POSTS: tuple[str, ...] = ("/mcp",)  # its write tools log in with an AI's token


def create_app(hub: Hub) -> FastAPI:
    """The web app of ``hub``, guarded as its settings say (:mod:`kernal.web.security`). It
    never starts or stops the hub: :mod:`kernal.serve` runs it next to a started hub; tests
    call it through ``httpx.ASGITransport``."""
    settings = hub.settings
    app = FastAPI(
        title="kernal hub",
        version=__version__,
        summary="Live state of a kernal hub: connected AIs, shared knowledge, collaborations.",
        docs_url=None,  # FastAPI's Swagger UI loads from a CDN: see kernal.web.docs
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    budget = Budget(
        settings.web_page_bytes,
        settings.web_list_data_bytes,
        settings.web_list_entries_per_second,
        settings.web_list_entry_burst,
    )
    app.include_router(api_router(hub, budget))
    app.include_router(admin_router(hub))
    app.include_router(metrics_router(hub))
    app.include_router(docs_router(app))
    app.include_router(search_router(hub))  # GET /api/search (kernal.web.search)
    app.include_router(ratings_router(hub))  # who rated an item (kernal.web.ratings)
    app.include_router(cards_router(hub))  # A2A agent cards (kernal.web.cards)
    mount_mcp(app, hub)  # /mcp for LLM agents (kernal.web.mcp)
    install_live(app, hub)  # GET /api/events (kernal.web.live)
    app.include_router(views_router(hub))  # what the page draws (kernal.web.views)
    install_trainers(app, hub)  # /api/trainers: launch and stop trainers (kernal.web.trainers)
    app.mount("/static", _PackageStatic(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    # Outermost: nothing of the app runs for a refused Host or a missing token.
    app.add_middleware(
        Guard, policy=Policy.from_settings(settings, read_only_posts=READ_ONLY_POSTS)
    )
    return app
