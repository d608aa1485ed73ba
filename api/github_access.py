"""The caller's GitHub token as the API uses it, and GitHub failures as HTTP answers."""

from __future__ import annotations

import math
import uuid

from fastapi import HTTPException, status

from api.state import AppState
from githost.github import (
    GitHubAuthError,
    GitHubClient,
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubUnavailable,
)
from githost.tokens import GitHubTokenExpired, github_token_for
from gitops.credentials import GitCredentials

CONNECT_GITHUB = "connect GitHub first: sign in with GitHub or store a github credential"


def github_http_error(exc: GitHubError) -> HTTPException:
    if isinstance(exc, GitHubAuthError):
        return HTTPException(
            status.HTTP_502_BAD_GATEWAY,
            "GitHub rejected your stored token; sign in with GitHub again "
            "or store a new github credential",
        )
    if isinstance(exc, GitHubNotFound):
        return HTTPException(
            status.HTTP_404_NOT_FOUND, "not found on GitHub, or your GitHub token cannot see it"
        )
    if isinstance(exc, GitHubRateLimited):
        headers = (
            {"Retry-After": str(math.ceil(exc.retry_after))}
            if exc.retry_after is not None
            else None
        )
        return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, exc.message, headers=headers)
    if isinstance(exc, GitHubUnavailable):
        return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message)
    return HTTPException(status.HTTP_502_BAD_GATEWAY, exc.message)


async def caller_github_token(state: AppState, user_id: uuid.UUID) -> str | None:
    """The caller's GitHub token (refreshed if it was about to lapse), or None."""
    try:
        return await github_token_for(state.sessions, state.keyring, state.settings, user_id)
    except GitHubTokenExpired as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except GitHubError as exc:
        raise github_http_error(exc) from exc


async def require_github_token(state: AppState, user_id: uuid.UUID) -> str:
    token = await caller_github_token(state, user_id)
    if token is None:
        raise HTTPException(status.HTTP_409_CONFLICT, CONNECT_GITHUB)
    return token


async def git_credentials_for(
    state: AppState, user_id: uuid.UUID, github_full_name: str | None
) -> GitCredentials | None:
    """Credentials for `git ls-remote` of a repository: the caller's GitHub token for one on
    GitHub (private repositories need it), nothing for any other remote."""
    if github_full_name is None:
        return None
    token = await caller_github_token(state, user_id)
    return GitCredentials.github_token(token) if token is not None else None


def github_client(state: AppState, token: str) -> GitHubClient:
    return GitHubClient(state.settings.github_api_url, token)
