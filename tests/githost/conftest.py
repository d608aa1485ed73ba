"""A fake GitHub on 127.0.0.1 and an API app pointed at it.

Fixtures here are also imported by tests/api modules (a conftest only reaches its own
directory), so the helpers are plain functions and context managers as well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.settings import Settings
from githost.oauth import GitHubOAuth, TokenGrant
from tests.fakes.github import FakeGitHub

CLIENT_ID = "Iv1.upstreamtests"
CLIENT_SECRET = "client-s3cret"
# The origin the ASGI test client presents as; also what the callback URL is built from.
APP_ORIGIN = "http://test"


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "github") as fake:
        yield fake


def github_settings(
    settings: Settings, fake: FakeGitHub, *, oauth: bool = True, **extra: Any
) -> Settings:
    """The session's settings pointed at the fake; with `oauth`, in GitHub sign-in mode."""
    update: dict[str, Any] = {"github_url": fake.url, "github_api_url": fake.api_url}
    if oauth:
        update |= {
            "github_client_id": CLIENT_ID,
            "github_client_secret": SecretStr(CLIENT_SECRET),
        }
    return settings.model_copy(update=update | extra)


@asynccontextmanager
async def app_client(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    async def connect(_: Settings) -> Client:
        return temporal_env.client

    app = create_app(settings, temporal_connect=connect)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url=APP_ORIGIN
        ) as client,
    ):
        yield client


@pytest.fixture
async def github_api(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    clean_db: None,
    fake_github: FakeGitHub,
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in GitHub sign-in mode against the fake (OAuth app registered)."""
    fake_github.register_oauth_app(CLIENT_ID, CLIENT_SECRET)
    async with app_client(github_settings(settings, fake_github), temporal_env) as client:
        yield client


async def follow_to_github(app: httpx.AsyncClient, fake: FakeGitHub) -> str:
    """GET /auth/login on the app, then GitHub's authorize page over real HTTP; returns the
    callback path and query GitHub sends the browser back to."""
    start = await app.get("/auth/login")
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"{fake.url}/login/oauth/authorize?")
    async with httpx.AsyncClient(timeout=30) as browser:
        at_github = await browser.get(authorize)
    assert at_github.status_code == 302, at_github.text
    back = urlsplit(at_github.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == APP_ORIGIN
    return f"{back.path}?{back.query}"


async def browser_login(app: httpx.AsyncClient, fake: FakeGitHub, login: str) -> httpx.Response:
    """The whole browser round trip as `login`; the app client keeps the cookies."""
    fake.sign_in_as(login)
    return await app.get(await follow_to_github(app, fake))


async def oauth_grant(fake: FakeGitHub, login: str, redirect_uri: str) -> TokenGrant:
    """A token for `login` through the real authorization-code flow, outside the app."""
    oauth = GitHubOAuth(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, github_url=fake.url)
    url, state = await oauth.authorization_url(redirect_uri)
    fake.sign_in_as(login)
    async with httpx.AsyncClient(timeout=30) as browser:
        response = await browser.get(url)
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == [state]
    return await oauth.exchange_code(query["code"][0], redirect_uri)
