"""Browser sign-in end to end: the app over ASGI, GitHub as a real HTTP server (the fake)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, text
from temporalio.testing import WorkflowEnvironment

import api.auth
from config.settings import Settings
from db.engine import SessionFactory
from db.models import User, WebSession
from githost.github import GitHubClient
from githost.tokens import github_token_for
from security.crypto import keyring_from_settings
from security.tokens import hash_token
from tests.conftest import Caller
from tests.fakes.github import FakeGitHub
from tests.githost import conftest as github_fixtures
from tests.githost.conftest import (
    APP_ORIGIN,
    CLIENT_ID,
    CLIENT_SECRET,
    app_client,
    browser_login,
    follow_to_github,
    github_settings,
)

# Fixtures of tests/githost, which a conftest there does not reach from here.
fake_github = github_fixtures.fake_github
github_api = github_fixtures.github_api


def _cookie_header(**cookies: str) -> dict[str, str]:
    """An explicit Cookie header (it replaces the client's jar for one request)."""
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def _set_cookie(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


async def _users(sessions: SessionFactory) -> list[User]:
    async with sessions() as session:
        return list(await session.scalars(select(User).order_by(User.created_at)))


async def test_auth_config_names_the_mode(
    api: httpx.AsyncClient, github_api: httpx.AsyncClient
) -> None:
    local = await api.get("/auth/config")
    assert local.json() == {
        "mode": "local",
        "login_url": "/auth/login",
        "logout_url": "/auth/logout",
    }
    assert (await github_api.get("/auth/config")).json()["mode"] == "github"
    # Local mode has nothing to sign in to.
    home = await api.get("/auth/login")
    assert home.status_code == 302 and home.headers["location"] == "/"
    assert "set-cookie" not in home.headers


async def test_login_round_trip(
    github_api: httpx.AsyncClient,
    fake_github: FakeGitHub,
    sessions: SessionFactory,
    settings: Settings,
) -> None:
    fake_github.add_user("octocat", name="The Octocat", email="octo@example.invalid")
    # Nothing works before signing in: GitHub mode has no local admin.
    assert (await github_api.get("/api/me")).status_code == 401

    start = await github_api.get("/auth/login")
    assert start.status_code == 302
    authorize = parse_qs(urlsplit(start.headers["location"]).query)
    assert authorize["redirect_uri"] == [f"{APP_ORIGIN}/auth/callback"]
    assert authorize["scope"] == ["repo read:user user:email"]
    state_cookie = _set_cookie(start, "upstream_oauth_state").lower()
    assert "httponly" in state_cookie and "samesite=lax" in state_cookie
    assert "path=/auth" in state_cookie and "max-age=600" in state_cookie
    assert authorize["state"] == [github_api.cookies["upstream_oauth_state"]]

    done = await browser_login(github_api, fake_github, "octocat")
    assert done.status_code == 302, done.text
    assert done.headers["location"] == "/"
    cookie = _set_cookie(done, "upstream_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http here; see the public_url test
    assert f"max-age={settings.session_days * 86400}" in cookie

    me = await github_api.get("/api/me")
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["login"], body["name"], body["email"]) == (
        "octocat",
        "The Octocat",
        "octo@example.invalid",
    )
    assert body["avatar_url"].startswith(fake_github.url)
    assert body["is_admin"] is False
    assert body["branch_quota"] == settings.default_branch_quota
    assert body["auth_method"] == "session"

    # The GitHub token is stored encrypted and works; the session token only as a digest.
    users = await _users(sessions)
    assert [u.login for u in users] == ["octocat"] and users[0].github_id is not None
    keyring = keyring_from_settings(settings)
    token = await github_token_for(sessions, keyring, settings, users[0].id)
    assert token is not None and token.startswith("gho_")
    async with GitHubClient(fake_github.api_url, token) as github:
        assert (await github.get_user()).login == "octocat"
    session_token = github_api.cookies["upstream_session"]
    async with sessions() as session:
        dump = repr((await session.execute(text("SELECT * FROM credentials"))).all())
        dump += repr((await session.execute(text("SELECT * FROM web_sessions"))).all())
        stored = await session.scalar(select(WebSession.token_hash))
    assert token not in dump and session_token not in dump
    assert stored == hash_token(session_token)
    credentials = await github_api.get("/api/me/credentials")
    assert [c["provider"] for c in credentials.json()] == ["github"]


async def test_second_login_updates_the_profile_and_keeps_the_user(
    github_api: httpx.AsyncClient, fake_github: FakeGitHub, sessions: SessionFactory
) -> None:
    fake_github.add_user("octocat", name="Old Name", email="old@example.invalid")
    await browser_login(github_api, fake_github, "octocat")
    first = (await github_api.get("/api/me")).json()

    fake_github.add_user("octocat", name="New Name", email="new@example.invalid")
    github_api.cookies.clear()
    done = await browser_login(github_api, fake_github, "octocat")
    assert done.status_code == 302
    second = (await github_api.get("/api/me")).json()
    assert second["id"] == first["id"]
    assert (second["name"], second["email"]) == ("New Name", "new@example.invalid")
    assert len(await _users(sessions)) == 1
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WebSession)) == 2


async def test_private_email_is_read_from_the_emails_endpoint(
    github_api: httpx.AsyncClient, fake_github: FakeGitHub
) -> None:
    fake_github.add_user("quiet", email="quiet@example.invalid", email_private=True)
    await browser_login(github_api, fake_github, "quiet")
    assert (await github_api.get("/api/me")).json()["email"] == "quiet@example.invalid"


async def test_state_mismatch_is_refused_and_creates_nothing(
    github_api: httpx.AsyncClient, fake_github: FakeGitHub, sessions: SessionFactory
) -> None:
    fake_github.sign_in_as("octocat")
    callback = await follow_to_github(github_api, fake_github)
    code = parse_qs(urlsplit(callback).query)["code"][0]

    forged = await github_api.get("/auth/callback", params={"code": code, "state": "forged"})
    assert forged.status_code == 400
    assert "state" in forged.json()["detail"]
    github_api.cookies.clear()
    missing = await github_api.get(callback)  # the right state, but no state cookie
    assert missing.status_code == 400
    assert "upstream_session" not in github_api.cookies
    assert await _users(sessions) == []
    # The code was never spent: the refusal happened before talking to GitHub.
    assert ("POST", "/login/oauth/access_token") not in fake_github.requests


async def test_denied_authorization_goes_home_with_the_error(
    github_api: httpx.AsyncClient, fake_github: FakeGitHub, sessions: SessionFactory
) -> None:
    fake_github.sign_in_as("octocat")
    fake_github.deny_next_authorization()
    callback = await follow_to_github(github_api, fake_github)
    response = await github_api.get(callback)
    assert response.status_code == 302
    assert response.headers["location"] == "/?login_error=access_denied"
    assert "upstream_session" not in github_api.cookies
    assert await _users(sessions) == []


async def test_a_spent_code_is_a_clear_400(
    github_api: httpx.AsyncClient, fake_github: FakeGitHub
) -> None:
    fake_github.sign_in_as("octocat")
    callback = await follow_to_github(github_api, fake_github)
    state_cookie = github_api.cookies["upstream_oauth_state"]
    assert (await github_api.get(callback)).status_code == 302
    again = await github_api.get(
        callback, headers=_cookie_header(upstream_oauth_state=state_cookie)
    )
    assert again.status_code == 400
    assert "bad_verification_code" in again.json()["detail"]


async def test_logout_ends_the_session(
    github_api: httpx.AsyncClient, fake_github: FakeGitHub, sessions: SessionFactory
) -> None:
    await browser_login(github_api, fake_github, "octocat")
    cookie = github_api.cookies["upstream_session"]
    assert (await github_api.get("/api/me")).status_code == 200
    out = await github_api.post("/auth/logout", headers={"Origin": APP_ORIGIN})
    assert out.status_code == 204
    cleared = _set_cookie(out, "upstream_session").lower()
    assert "max-age=0" in cleared and "httponly" in cleared
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WebSession)) == 0
    # The old cookie, replayed, is refused.
    replay = await github_api.get("/api/me", headers=_cookie_header(upstream_session=cookie))
    assert replay.status_code == 401


async def test_expired_session_is_refused_and_deleted(
    github_api: httpx.AsyncClient, fake_github: FakeGitHub, sessions: SessionFactory
) -> None:
    await browser_login(github_api, fake_github, "octocat")
    async with sessions.begin() as session:
        await session.execute(text("UPDATE web_sessions SET expires_at = now() - interval '1 s'"))
    response = await github_api.get("/api/me")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WebSession)) == 0
    garbage = await github_api.get("/api/me", headers=_cookie_header(upstream_session="x"))
    assert garbage.status_code == 401


async def test_cookie_requests_from_another_origin_are_refused(
    github_api: httpx.AsyncClient, fake_github: FakeGitHub, alice: Caller
) -> None:
    await browser_login(github_api, fake_github, "octocat")
    evil = await github_api.post(
        "/api/tokens", json={"name": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403
    assert "cross-origin" in evil.json()["detail"]
    cross_site = await github_api.post(
        "/api/tokens", json={"name": "x"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross_site.status_code == 403
    # Reading is not a state change; the same origin and non-browser clients may write.
    read = await github_api.get("/api/me", headers={"Origin": "https://evil.example"})
    assert read.status_code == 200
    same = await github_api.post("/api/tokens", json={"name": "a"}, headers={"Origin": APP_ORIGIN})
    assert same.status_code == 201
    assert (await github_api.post("/api/tokens", json={"name": "b"})).status_code == 201
    # Bearer tokens are not ambient credentials: no origin check.
    bearer = await github_api.post(
        "/api/tokens",
        json={"name": "c"},
        headers={**alice.headers, "Origin": "https://evil.example"},
    )
    assert bearer.status_code == 201
    refused_logout = await github_api.post(
        "/auth/logout", headers={"Origin": "https://evil.example"}
    )
    assert refused_logout.status_code == 403
    assert (await github_api.get("/api/me")).status_code == 200


async def test_local_mode_checks_the_origin_too(api: httpx.AsyncClient) -> None:
    """A page on another site can make the browser POST to a loopback service."""
    evil = await api.post("/api/tokens", json={"name": "x"}, headers={"Origin": "http://evil.test"})
    assert evil.status_code == 403
    ok = await api.post("/api/tokens", json={"name": "x"}, headers={"Origin": APP_ORIGIN})
    assert ok.status_code == 201


async def test_public_url_makes_cookies_secure_and_sets_the_callback(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    clean_db: None,
    fake_github: FakeGitHub,
) -> None:
    fake_github.register_oauth_app(CLIENT_ID, CLIENT_SECRET)
    public = "https://agents.example"
    configured = github_settings(settings, fake_github, public_url=public + "/")
    async with app_client(configured, temporal_env) as client:
        start = await client.get("/auth/login")
        authorize = parse_qs(urlsplit(start.headers["location"]).query)
        assert authorize["redirect_uri"] == [f"{public}/auth/callback"]
        assert "; secure" in _set_cookie(start, "upstream_oauth_state").lower()

        fake_github.sign_in_as("octocat")
        async with httpx.AsyncClient() as browser:
            back = urlsplit((await browser.get(start.headers["location"])).headers["location"])
        assert f"{back.scheme}://{back.netloc}" == public
        # Secure cookies travel over https only; this client speaks http to the app, so the
        # cookies are handed over explicitly, as the browser behind the proxy would send them.
        done = await client.get(
            f"{back.path}?{back.query}",
            headers=_cookie_header(upstream_oauth_state=authorize["state"][0]),
        )
        assert done.status_code == 302, done.text
        session_cookie = _set_cookie(done, "upstream_session")
        assert "; secure" in session_cookie.lower()
        value = session_cookie.split(";", 1)[0].split("=", 1)[1]
        # The public origin is this service's own origin for the CSRF check.
        created = await client.post(
            "/api/tokens",
            json={"name": "x"},
            headers={"Origin": public, **_cookie_header(upstream_session=value)},
        )
        assert created.status_code == 201, created.text


async def test_dev_mode_signs_in_the_pat_owner_as_admin(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    clean_db: None,
    fake_github: FakeGitHub,
    sessions: SessionFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pat = fake_github.add_user("devuser", name="Dev User")
    configured = github_settings(settings, fake_github, oauth=False, github_pat=SecretStr(pat))
    assert configured.dev_mode
    async with app_client(configured, temporal_env) as client:
        assert (await client.get("/auth/config")).json()["mode"] == "dev"
        assert (await client.get("/api/me")).status_code == 401
        with caplog.at_level(logging.WARNING):
            login = await client.get("/auth/login")
        assert login.status_code == 302 and login.headers["location"] == "/"
        assert any(
            r.levelno == logging.WARNING
            and "dev sign-in is active" in r.getMessage()
            and "production" in r.getMessage()
            for r in caplog.records
        )
        me = (await client.get("/api/me")).json()
        assert (me["login"], me["is_admin"], me["branch_quota"]) == ("devuser", True, 100)
        users = await _users(sessions)
        keyring = keyring_from_settings(settings)
        assert await github_token_for(sessions, keyring, configured, users[0].id) == pat


async def test_dev_mode_is_ignored_in_production(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    clean_db: None,
    fake_github: FakeGitHub,
    sessions: SessionFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api.auth, "_pat_warning_logged", False)
    pat = fake_github.add_user("devuser")
    configured = github_settings(
        settings, fake_github, oauth=False, github_pat=SecretStr(pat), environment="production"
    )
    assert not configured.dev_mode
    async with app_client(configured, temporal_env) as client:
        with caplog.at_level(logging.WARNING):
            config = await client.get("/auth/config")
            login = await client.get("/auth/login")
        assert config.json()["mode"] == "local"
        assert login.headers["location"] == "/" and "set-cookie" not in login.headers
    assert any("GITHUB_PAT is set but ignored" in r.getMessage() for r in caplog.records)
    assert [u.login for u in await _users(sessions)] == []
    assert not [r for r in fake_github.requests if r[1].startswith("/api/v3")]
