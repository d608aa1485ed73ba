"""Who is calling: a bearer API token in every mode; in local mode, the local admin otherwise.

Local mode trusts the machine, not the network: an unauthenticated request is the local admin
only when it comes from a loopback address, even if the server was told to bind wider.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException, Request, status
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from db.models import ApiToken, User
from db.users import LOCAL_ADMIN_LOGIN, get_or_create_user
from security.tokens import hash_token

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


async def authenticate(request: Request, session: AsyncSession, settings: Settings) -> User:
    header = request.headers.get("authorization")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("malformed Authorization header; expected 'Bearer <token>'")
        return await _user_for_token(session, credentials.strip())
    if settings.local_mode:
        if not _is_loopback(request):
            raise _unauthorized("local mode accepts unauthenticated requests from loopback only")
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
