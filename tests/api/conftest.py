from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from asgi_lifespan import LifespanManager
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.settings import Settings
from db.engine import SessionFactory
from db.users import get_or_create_user, issue_token_for


@dataclass(frozen=True)
class Caller:
    login: str
    headers: dict[str, str]


@pytest.fixture
async def api(
    settings: Settings, temporal_env: WorkflowEnvironment, clean_db: None
) -> AsyncIterator[httpx.AsyncClient]:
    async def connect(_: Settings) -> Client:
        return temporal_env.client

    app = create_app(settings, temporal_connect=connect)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as client,
    ):
        yield client


async def _caller(sessions: SessionFactory, login: str) -> Caller:
    async with sessions.begin() as session:
        user = await get_or_create_user(session, login)
        issued = await issue_token_for(session, user, "tests")
    return Caller(login, {"Authorization": f"Bearer {issued.token}"})


@pytest.fixture
async def alice(api: httpx.AsyncClient, sessions: SessionFactory) -> Caller:
    return await _caller(sessions, "alice")


@pytest.fixture
async def bob(api: httpx.AsyncClient, sessions: SessionFactory) -> Caller:
    return await _caller(sessions, "bob")
