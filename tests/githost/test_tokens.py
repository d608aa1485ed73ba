from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select, text

from config.settings import Settings
from db.engine import SessionFactory
from db.models import Credential
from db.users import get_or_create_user
from githost.github import GitHubClient
from githost.tokens import GitHubTokenExpired, github_token_for, store_github_token
from security.crypto import Keyring, keyring_from_settings
from tests.fakes.github import FakeGitHub
from tests.githost.conftest import CLIENT_ID, CLIENT_SECRET, github_settings, oauth_grant

REDIRECT = "http://app.example.invalid/auth/callback"


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return keyring_from_settings(settings)


async def _user(sessions: SessionFactory, login: str = "alice") -> uuid.UUID:
    async with sessions.begin() as session:
        return (await get_or_create_user(session, login)).id


async def _raw_credentials(sessions: SessionFactory) -> str:
    async with sessions() as session:
        rows = (await session.execute(text("SELECT * FROM credentials"))).all()
    return repr(rows)


async def _login_for(fake: FakeGitHub, token: str) -> str:
    async with GitHubClient(fake.api_url, token) as github:
        return (await github.get_user()).login


async def test_no_row_is_none_and_a_stored_token_comes_back(
    sessions: SessionFactory, keyring: Keyring, settings: Settings, clean_db: None
) -> None:
    user_id = await _user(sessions)
    assert await github_token_for(sessions, keyring, settings, user_id) is None
    async with sessions.begin() as session:
        await store_github_token(session, keyring, user_id, "ghp_plainpersonaltoken1234")
    assert await github_token_for(sessions, keyring, settings, user_id) == (
        "ghp_plainpersonaltoken1234"
    )
    assert await github_token_for(sessions, keyring, settings, str(user_id)) == (
        "ghp_plainpersonaltoken1234"
    )
    assert "plainpersonaltoken" not in await _raw_credentials(sessions)
    async with sessions() as session:
        row = await session.scalar(select(Credential).where(Credential.user_id == user_id))
    assert row is not None and row.provider == "github" and row.last4 == "1234"
    assert row.expires_at is None and row.refresh_ciphertext is None


async def test_expiring_token_is_refreshed_and_the_refresh_token_rotates(
    sessions: SessionFactory,
    keyring: Keyring,
    settings: Settings,
    clean_db: None,
    fake_github: FakeGitHub,
) -> None:
    # A one-second token is inside the five-minute margin at once: every call refreshes.
    fake_github.register_oauth_app(
        CLIENT_ID, CLIENT_SECRET, expiring_tokens=True, access_token_ttl=1
    )
    configured = github_settings(settings, fake_github)
    grant = await oauth_grant(fake_github, "alice", REDIRECT)
    assert grant.refresh_token is not None
    user_id = await _user(sessions)
    async with sessions.begin() as session:
        await store_github_token(
            session,
            keyring,
            user_id,
            grant.access_token,
            refresh_token=grant.refresh_token,
            expires_in=grant.expires_in,
            refresh_expires_in=grant.refresh_expires_in,
        )
    stored = await _raw_credentials(sessions)
    assert grant.access_token not in stored and grant.refresh_token not in stored

    first = await github_token_for(sessions, keyring, configured, user_id)
    assert first is not None and first != grant.access_token
    assert await _login_for(fake_github, first) == "alice"
    # The second refresh must use the refresh token the first one stored: GitHub (and the
    # fake) refuse a refresh token that was spent already.
    second = await github_token_for(sessions, keyring, configured, user_id)
    assert second is not None and second not in (first, grant.access_token)
    assert await _login_for(fake_github, second) == "alice"
    refreshes = [r for r in fake_github.requests if r == ("POST", "/login/oauth/access_token")]
    assert len(refreshes) == 1 + 2  # the code exchange, then two refreshes
    stored = await _raw_credentials(sessions)
    assert second not in stored and grant.refresh_token not in stored


async def test_concurrent_callers_do_not_spend_one_refresh_token_twice(
    sessions: SessionFactory,
    keyring: Keyring,
    settings: Settings,
    clean_db: None,
    fake_github: FakeGitHub,
) -> None:
    fake_github.register_oauth_app(
        CLIENT_ID, CLIENT_SECRET, expiring_tokens=True, access_token_ttl=1
    )
    configured = github_settings(settings, fake_github)
    grant = await oauth_grant(fake_github, "alice", REDIRECT)
    user_id = await _user(sessions)
    async with sessions.begin() as session:
        await store_github_token(
            session,
            keyring,
            user_id,
            grant.access_token,
            refresh_token=grant.refresh_token,
            expires_in=grant.expires_in,
        )
    tokens = await asyncio.gather(
        *(github_token_for(sessions, keyring, configured, user_id) for _ in range(4))
    )
    assert all(token is not None and token.startswith("ghu_") for token in tokens)


async def test_a_lapsed_token_without_a_usable_refresh_is_expired(
    sessions: SessionFactory,
    keyring: Keyring,
    settings: Settings,
    clean_db: None,
    fake_github: FakeGitHub,
) -> None:
    configured = github_settings(settings, fake_github)
    fake_github.register_oauth_app(CLIENT_ID, CLIENT_SECRET, expiring_tokens=True)
    user_id = await _user(sessions)

    async def store(expires_in: int, refresh: str | None, refresh_expires_in: int | None) -> None:
        async with sessions.begin() as session:
            await store_github_token(
                session,
                keyring,
                user_id,
                "ghu_current",
                refresh_token=refresh,
                expires_in=expires_in,
                refresh_expires_in=refresh_expires_in,
            )

    # Still valid for two minutes and nothing to refresh with: used until it lapses.
    await store(120, None, None)
    assert await github_token_for(sessions, keyring, configured, user_id) == "ghu_current"
    await store(-1, None, None)
    with pytest.raises(GitHubTokenExpired, match="sign in with GitHub again"):
        await github_token_for(sessions, keyring, configured, user_id)
    # The refresh token itself lapsed.
    await store(-1, "ghr_old", -1)
    with pytest.raises(GitHubTokenExpired):
        await github_token_for(sessions, keyring, configured, user_id)
    # GitHub refuses the refresh token.
    await store(-1, "ghr_unknown", 3600)
    with pytest.raises(GitHubTokenExpired, match="bad_refresh_token"):
        await github_token_for(sessions, keyring, configured, user_id)
    # No OAuth app configured: nothing can refresh it.
    await store(-1, "ghr_unknown", 3600)
    with pytest.raises(GitHubTokenExpired):
        await github_token_for(sessions, keyring, settings, user_id)
