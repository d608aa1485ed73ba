"""Who is calling, in this order: a bearer API token (every mode), a browser session cookie
(after GitHub or dev sign-in), and in local mode the local admin.

Local mode trusts the machine, not the network: an unauthenticated request is the local admin
only when it comes from a loopback address, even if the server was told to bind wider. A
browser on that machine sends requests for any site it visits, so ambient credentials (the
cookie, loopback) also need an unsafe request's `Origin` to be this service.

`request.state.auth_method` records which one matched: "token", "session" or "local".
"""

from __future__ import annotations

import ipaddress
import logging
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException, Request, status
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.sessions import SESSION_COOKIE, SessionExpired, check_origin, user_for_session
from config.settings import Settings
from db.models import ApiToken, User
from db.users import LOCAL_ADMIN_LOGIN, get_or_create_user
from security.tokens import hash_token

logger = logging.getLogger(__name__)
_pat_warning_logged = False

# Writing last_used_at on every request would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else None
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_pat_ignored(settings: Settings) -> None:
    """Once per process: a GITHUB_PAT under UPSTREAM_ENV=production does nothing, and the
    operator should know rather than wonder why dev sign-in is gone."""
    global _pat_warning_logged
    if _pat_warning_logged or settings.github_pat is None or settings.environment != "production":
        return
    _pat_warning_logged = True
    logger.warning(
        "GITHUB_PAT is set but ignored: dev sign-in is disabled with UPSTREAM_ENV=production"
    )


async def authenticate(request: Request, session: AsyncSession, settings: Settings) -> User:
    warn_if_pat_ignored(settings)
    header = request.headers.get("authorization")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("malformed Authorization header; expected 'Bearer <token>'")
        token_user = await _user_for_token(session, credentials.strip())
        request.state.auth_method = "token"
        return token_user
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            found = await user_for_session(session, cookie)
        except SessionExpired:
            found = None
            # In local mode there is nothing to sign in to: fall through to the local admin.
            if not settings.local_mode:
                raise _unauthorized("session expired; sign in again") from None
        if found is not None:
            check_origin(request, settings)
            request.state.auth_method = "session"
            return found
        if not settings.local_mode:
            raise _unauthorized("session is not valid; sign in again")
    if settings.local_mode:
        if not _is_loopback(request):
            raise _unauthorized("local mode accepts unauthenticated requests from loopback only")
        check_origin(request, settings)
        request.state.auth_method = "local"
        user = await session.scalar(select(User).where(User.login == LOCAL_ADMIN_LOGIN))
        if user is None:
            # Created on first use, not at start-up: the API must come up (and report the
            # database as down in /api/health) even while PostgreSQL is unreachable.
            user = await get_or_create_user(
                session, LOCAL_ADMIN_LOGIN, is_admin=True, name="Local admin"
            )
            await session.commit()
        return user
    raise _unauthorized("authentication required")


async def _user_for_token(session: AsyncSession, token: str) -> User:
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(token))
        )
    ).one_or_none()
    if row is None:
        raise _unauthorized("invalid API token")
    api_token, user = row
    now = datetime.now(UTC)
    if api_token.last_used_at is None or now - api_token.last_used_at > _LAST_USED_RESOLUTION:
        await session.execute(
            update(ApiToken).where(ApiToken.id == api_token.id).values(last_used_at=now)
        )
        await session.commit()
    return user
