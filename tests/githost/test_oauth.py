from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from githost.github import GitHubClient, GitHubUnavailable
from githost.oauth import SCOPE, GitHubOAuth, GitHubOAuthError
from tests.conftest import free_port
from tests.fakes.github import FakeGitHub
from tests.githost.conftest import CLIENT_ID, CLIENT_SECRET, oauth_grant

REDIRECT = "http://app.example.invalid/auth/callback"


def _oauth(fake: FakeGitHub, secret: str = CLIENT_SECRET) -> GitHubOAuth:
    return GitHubOAuth(client_id=CLIENT_ID, client_secret=secret, github_url=fake.url + "/")


async def test_authorization_url_carries_client_scope_state_and_redirect(
    fake_github: FakeGitHub,
) -> None:
    url, state = await _oauth(fake_github).authorization_url(REDIRECT)
    _, other_state = await _oauth(fake_github).authorization_url(REDIRECT)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{fake_github.url}/login/oauth/authorize"
    )
    query = parse_qs(parts.query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"] == [SCOPE] == ["repo read:user user:email"]
    assert query["state"] == [state]
    assert query["redirect_uri"] == [REDIRECT]
    assert query["response_type"] == ["code"]
    assert len(state) >= 32 and state != other_state


async def test_code_exchange_gives_a_working_token(fake_github: FakeGitHub) -> None:
    fake_github.register_oauth_app(CLIENT_ID, CLIENT_SECRET)
    fake_github.add_user("alice")
    grant = await oauth_grant(fake_github, "alice", REDIRECT)
    assert grant.access_token.startswith("gho_")
    assert grant.expires_in is None and grant.refresh_token is None
    async with GitHubClient(fake_github.api_url, grant.access_token) as github:
        assert (await github.get_user()).login == "alice"


async def test_token_errors_answered_with_200_are_raised(fake_github: FakeGitHub) -> None:
    fake_github.register_oauth_app(CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(GitHubOAuthError) as bad_code:
        await _oauth(fake_github).exchange_code("not-a-code", REDIRECT)
    assert bad_code.value.error == "bad_verification_code"
    assert bad_code.value.description and "incorrect or expired" in bad_code.value.description

    with pytest.raises(GitHubOAuthError) as bad_client:
        await _oauth(fake_github, secret="wrong").exchange_code("x", REDIRECT)
    assert bad_client.value.error == "incorrect_client_credentials"

    with pytest.raises(GitHubOAuthError) as bad_refresh:
        await _oauth(fake_github).refresh("ghr_nothing")
    assert bad_refresh.value.error == "bad_refresh_token"


async def test_a_code_is_spent_once(fake_github: FakeGitHub) -> None:
    fake_github.register_oauth_app(CLIENT_ID, CLIENT_SECRET)
    oauth = _oauth(fake_github)
    url, _ = await oauth.authorization_url(REDIRECT)
    fake_github.sign_in_as("alice")
    async with httpx.AsyncClient() as browser:
        location = (await browser.get(url)).headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    await oauth.exchange_code(code, REDIRECT)
    with pytest.raises(GitHubOAuthError, match="bad_verification_code"):
        await oauth.exchange_code(code, REDIRECT)


async def test_expiring_tokens_refresh_with_single_use_refresh_tokens(
    fake_github: FakeGitHub,
) -> None:
    fake_github.register_oauth_app(
        CLIENT_ID, CLIENT_SECRET, expiring_tokens=True, access_token_ttl=3600
    )
    grant = await oauth_grant(fake_github, "alice", REDIRECT)
    assert grant.access_token.startswith("ghu_")
    assert grant.expires_in == 3600
    assert grant.refresh_token is not None and grant.refresh_expires_in == 15897600

    fresh = await _oauth(fake_github).refresh(grant.refresh_token)
    assert fresh.access_token != grant.access_token
    assert fresh.refresh_token not in (None, grant.refresh_token)
    async with GitHubClient(fake_github.api_url, fresh.access_token) as github:
        assert (await github.get_user()).login == "alice"
    with pytest.raises(GitHubOAuthError, match="bad_refresh_token"):
        await _oauth(fake_github).refresh(grant.refresh_token)


async def test_unreachable_token_endpoint_is_retryable() -> None:
    oauth = GitHubOAuth(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        github_url=f"http://127.0.0.1:{free_port()}",
    )
    with pytest.raises(GitHubUnavailable):
        await oauth.exchange_code("code", REDIRECT)
