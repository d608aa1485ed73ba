"""Browser sign-in, mounted at the root (not under /api): GitHub redirects the browser here.

- GitHub mode (an OAuth app configured): /auth/login sends the browser to GitHub with a random
  `state`, also kept in a short-lived cookie; /auth/callback checks the two match before it
  spends the code, so a login link crafted by someone else cannot sign the browser in as them.
- Dev mode (GITHUB_PAT outside production, no OAuth app): /auth/login signs in the token's
  owner as an admin without asking anything. When both are configured, OAuth wins: a PAT left
  in an environment with real sign-in must not hand out admin sessions.
- Local mode: nothing to sign in to; /auth/login goes back to /.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from api.auth import warn_if_pat_ignored
from api.deps import KeyringDep, SessionDep, SettingsDep
from api.github_access import github_http_error
from api.schemas.users import AuthConfigOut
from api.sessions import (
    SESSION_COOKIE,
    STATE_COOKIE,
    STATE_COOKIE_PATH,
    STATE_MAX_AGE,
    check_origin,
    clear_session_cookie,
    cookie_secure,
    create_web_session,
    end_web_session,
    external_url,
    set_session_cookie,
)
from config.settings import Settings
from db.users import GitHubProfile, upsert_github_user
from githost.github import GitHubAuthError, GitHubClient, GitHubError, GitHubUser
from githost.oauth import GitHubOAuthError, oauth_from_settings
from githost.tokens import store_github_token

router = APIRouter(prefix="/auth", tags=["auth"])
logger = logging.getLogger(__name__)

LOGIN_PATH = "/auth/login"
CALLBACK_PATH = "/auth/callback"
LOGOUT_PATH = "/auth/logout"
DEV_BRANCH_QUOTA = 100

AuthMode = Literal["local", "github", "dev"]


def auth_mode(settings: Settings) -> AuthMode:
    if settings.oauth_enabled:
        return "github"
    if settings.dev_mode:
        return "dev"
    return "local"


@router.get("/config", response_model=AuthConfigOut)
async def auth_config(settings: SettingsDep) -> AuthConfigOut:
    """How the web client signs in; needs no authentication."""
    warn_if_pat_ignored(settings)
    return AuthConfigOut(mode=auth_mode(settings), login_url=LOGIN_PATH, logout_url=LOGOUT_PATH)


def _home(**query: str) -> RedirectResponse:
    return RedirectResponse("/" + (f"?{urlencode(query)}" if query else ""), status.HTTP_302_FOUND)


async def _profile(github: GitHubClient) -> GitHubProfile:
    user: GitHubUser = await github.get_user()
    email = user.email
    if email is None:
        # The profile hides a private address; the user:email scope may still reveal it.
        try:
            email = await github.get_primary_email()
        except GitHubError:
            email = None
    return GitHubProfile(
        github_id=user.id,
        login=user.login,
        name=user.name,
        email=email,
        avatar_url=user.avatar_url,
    )


def _signed_in(token: str, request: Request, settings: Settings) -> RedirectResponse:
    response = _home()
    set_session_cookie(response, token, request, settings)
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    return response


@router.get("/login", response_class=RedirectResponse, status_code=status.HTTP_302_FOUND)
async def login(
    request: Request, settings: SettingsDep, session: SessionDep, keyring: KeyringDep
) -> RedirectResponse:
    """Start signing in (GitHub mode), sign in directly (dev mode), or go home (local mode)."""
    warn_if_pat_ignored(settings)
    mode = auth_mode(settings)
    if mode == "local":
        return _home()
    if mode == "dev":
        return await _dev_login(request, settings, session, keyring)
    oauth = oauth_from_settings(settings)
    assert oauth is not None
    url, state = await oauth.authorization_url(external_url(request, settings, CALLBACK_PATH))
    response = RedirectResponse(url, status.HTTP_302_FOUND)
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=STATE_MAX_AGE,
        path=STATE_COOKIE_PATH,
        httponly=True,
        # Lax: the cookie comes back on GitHub's top-level redirect to the callback.
        samesite="lax",
        secure=cookie_secure(request, settings),
    )
    return response


async def _dev_login(
    request: Request, settings: Settings, session: SessionDep, keyring: KeyringDep
) -> RedirectResponse:
    logger.warning(
        "dev sign-in is active: GITHUB_PAT's owner is signed in as an admin without a password;"
        " never use this in production (set UPSTREAM_ENV=production and configure GitHub OAuth)"
    )
    assert settings.github_pat is not None
    pat = settings.github_pat.get_secret_value()
    try:
        async with GitHubClient(settings.github_api_url, pat) as github:
            profile = await _profile(github)
    except GitHubAuthError as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, "GitHub rejected GITHUB_PAT; dev sign-in is unavailable"
        ) from exc
    except GitHubError as exc:
        raise github_http_error(exc) from exc
    user = await upsert_github_user(session, profile, branch_quota=DEV_BRANCH_QUOTA, is_admin=True)
    user.branch_quota = DEV_BRANCH_QUOTA
    await store_github_token(session, keyring, user.id, pat)
    token = await create_web_session(session, user.id, settings)
    await session.commit()
    return _signed_in(token, request, settings)


def _refuse(detail: str, status_code: int = status.HTTP_400_BAD_REQUEST) -> JSONResponse:
    response = JSONResponse({"detail": detail}, status_code=status_code)
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    return response


@router.get(
    "/callback",
    response_class=RedirectResponse,
    status_code=status.HTTP_302_FOUND,
    responses={400: {"description": "state mismatch or GitHub refused the code"}},
)
async def callback(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    keyring: KeyringDep,
    code: Annotated[str | None, Query(max_length=512)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Where GitHub sends the browser back: on success, a session cookie and a redirect to /."""
    oauth = oauth_from_settings(settings)
    if oauth is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "GitHub sign-in is not configured")
    if error is not None:
        # access_denied: the user pressed Cancel on GitHub. Nothing to sign in; tell the page.
        response = _home(login_error=error)
        response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
        return response
    expected = request.cookies.get(STATE_COOKIE)
    if not state or not expected or not secrets.compare_digest(state, expected):
        return _refuse(
            "sign-in state is missing or does not match (an old or foreign sign-in link); "
            f"start again at {LOGIN_PATH}"
        )
    if not code:
        return _refuse("GitHub sent no authorization code; start again at " + LOGIN_PATH)

    try:
        grant = await oauth.exchange_code(code, external_url(request, settings, CALLBACK_PATH))
    except GitHubOAuthError as exc:
        return _refuse(f"GitHub refused the sign-in ({exc}); start again at {LOGIN_PATH}")
    except GitHubError as exc:
        return _refuse(exc.message, status.HTTP_502_BAD_GATEWAY)
    try:
        async with GitHubClient(settings.github_api_url, grant.access_token) as github:
            profile = await _profile(github)
    except GitHubError as exc:
        return _refuse(f"could not read your GitHub profile: {exc.message}", 502)

    user = await upsert_github_user(session, profile, branch_quota=settings.default_branch_quota)
    await store_github_token(
        session,
        keyring,
        user.id,
        grant.access_token,
        refresh_token=grant.refresh_token,
        expires_in=grant.expires_in,
        refresh_expires_in=grant.refresh_expires_in,
    )
    token = await create_web_session(session, user.id, settings)
    await session.commit()
    logger.info("signed in with GitHub: %s", user.login)
    return _signed_in(token, request, settings)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, settings: SettingsDep, session: SessionDep) -> Response:
    """End this browser's session; the cookie stops working at once."""
    check_origin(request, settings)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await end_web_session(session, token)
        await session.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookie(response, request, settings)
    return response
