"""``GET /docs``: browsable API docs that work offline and under the dashboard's strict CSP.

FastAPI's Swagger UI and ReDoc pages load their scripts and styles from a CDN, which the
policy (``script-src 'self'``, no third-party origin) forbids and an offline hub cannot reach.
Instead, ``/docs`` is a small page shipped in the package (``apidocs/``): its script reads
``/openapi.json`` and renders every operation with its parameters and response schemas, as
text nodes only (descriptions come from docstrings, never parsed as markup). GET operations
without path parameters get a link to try them. The schema itself is FastAPI's, at
``/openapi.json`` (and at ``/api/openapi.json``, where it was first served).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse

DOCS_DIR = Path(__file__).resolve().parent / "apidocs"
ASSETS = {"docs.js": "text/javascript", "docs.css": "text/css"}


def docs_router(app: FastAPI) -> APIRouter:
    """``/docs``, its two assets, and the schema's former address, for ``app``."""
    # The page's policy is the dashboard's (imported here: kernal.web.app imports this module).
    from kernal.web.app import PAGE_HEADERS

    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def docs() -> FileResponse:
        return FileResponse(DOCS_DIR / "index.html", headers=PAGE_HEADERS)

    @router.get("/docs/{asset}")
    async def asset(asset: str) -> FileResponse:
        media = ASSETS.get(asset)
        if media is None:  # only the named files: no path from the request reaches the disk
            raise HTTPException(404, f"no docs asset {asset!r}")
        return FileResponse(DOCS_DIR / asset, media_type=media, headers=PAGE_HEADERS)

    @router.get("/api/openapi.json")
    async def former_schema() -> JSONResponse:
        return JSONResponse(app.openapi())

    return router
