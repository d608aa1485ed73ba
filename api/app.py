"""The FastAPI application: `create_app(settings)` builds it; the lifespan owns per-process
resources (database engine, Temporal client, keyring)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from temporalio.client import Client

from api.errors import install_error_handlers
from api.events.hub import EventHub, libpq_url
from api.limits import BodySizeLimitMiddleware
from api.routes import (
    agents,
    auth,
    branches,
    credentials,
    events,
    git,
    github,
    health,
    loops,
    me,
    messages,
    repos,
)
from api.routes import settings as settings_routes
from api.state import AppState
from config.settings import Settings
from db.engine import build_engine, build_session_factory
from security.crypto import keyring_from_settings
from web.serve import mount_web_client
from workflows.client import build_temporal_client

TemporalConnect = Callable[[Settings], Awaitable[Client]]


async def _lazy_temporal(settings: Settings) -> Client:
    return await build_temporal_client(settings, lazy=True)


def create_app(
    settings: Settings,
    *,
    temporal_connect: TemporalConnect = _lazy_temporal,
    event_ping_seconds: float = 15.0,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        database_url = settings.require_database_url()
        engine = build_engine(database_url)
        sessions = build_session_factory(engine)
        hub = EventHub(libpq_url(database_url))
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            temporal=await temporal_connect(settings),
            keyring=keyring_from_settings(settings),
            events=hub,
            event_ping_seconds=event_ping_seconds,
        )
        await hub.start()
        try:
            yield {"app": state}
        finally:
            await hub.stop()
            await engine.dispose()

    app = FastAPI(
        title="Upstream Agents",
        version="0.1.0",
        summary="Coding agents in sandboxes, one per git branch.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    install_error_handlers(app)

    api = APIRouter(prefix="/api")
    for module in (health, me, credentials, settings_routes, repos, agents):
        api.include_router(module.router)
    api.include_router(branches.repo_router)
    api.include_router(branches.router)
    api.include_router(messages.router)
    api.include_router(events.router)
    api.include_router(loops.branch_router)
    api.include_router(loops.router)
    api.include_router(git.router)
    api.include_router(github.router)
    app.include_router(api)
    # Browser sign-in lives outside /api: OAuth redirects land on it.
    app.include_router(auth.router)

    mount_web_client(app)

    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory entry point (`upstream api`)."""
    return create_app(Settings())
