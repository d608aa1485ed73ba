"""Serving the web client: `index.html` at `/` (and at every client-side route), assets under
`/static/`. Everything ships in the package; nothing is fetched from elsewhere at run time."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

# Assets are small and versioned with the package; revalidation keeps a deploy visible at once.
_NO_STALE = {"Cache-Control": "no-cache"}
_SECURITY = {
    # Scripts and styles only from here: a prompt or a model reply rendered as markdown can
    # never load or run anything else.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: https:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def mount_web_client(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={**_NO_STALE, **_SECURITY})
