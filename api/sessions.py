"""Browser sessions: a random token in an HttpOnly cookie, only its SHA-256 in `web_sessions`.

Also the guard that goes with cookies: a browser attaches them to requests other sites make, so
an unsafe request carrying a foreign `Origin` is refused (CSRF). SameSite=Lax already keeps the
cookie off cross-site POSTs in current browsers; the origin check does not rely on that.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response, status
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from db.models import User, WebSession
from security.tokens import hash_token

SESSION_COOKIE = "upstream_session"
STATE_COOKIE = "upstream_oauth_state"
STATE_COOKIE_PATH = "/auth"
STATE_MAX_AGE = 10 * 60
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class SessionExpired(Exception):
    pass


def external_url(request: Request, settings: Settings, path: str) -> str:
    """An absolute URL of this service as browsers reach it: `public_url` when configured (a
    proxy in front may hide the real scheme and host), else what the request says."""
    base = settings.public_url or str(request.base_url)
    return base.rstrip("/") + path


def cookie_secure(request: Request, settings: Settings) -> bool:
    scheme = urlsplit(settings.public_url).scheme if settings.public_url else request.url.scheme
    return scheme == "https"


def set_session_cookie(
    response: Response, token: str, request: Request, settings: Settings
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_days * 24 * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request, settings),
    )


def clear_session_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request, settings),
    )


async def create_web_session(session: AsyncSession, user_id: uuid.UUID, settings: Settings) -> str:
    """A new session for the user in the caller's transaction; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            user_id=user_id,
            token_hash=hash_token(token),
            expires_at=datetime.now(UTC) + timedelta(days=settings.session_days),
        )
    )
    await session.flush()
    return token


async def user_for_session(session: AsyncSession, token: str) -> User | None:
    """The session's user; None for an unknown token. An expired session is deleted (and
    committed) before `SessionExpired` is raised."""
    row = (
        await session.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.token_hash == hash_token(token))
        )
    ).one_or_none()
    if row is None:
        return None
    web_session, user = row
    if web_session.expires_at <= datetime.now(UTC):
        await session.execute(delete(WebSession).where(WebSession.id == web_session.id))
        await session.commit()
        raise SessionExpired
    return user


async def end_web_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.token_hash == hash_token(token)))


def _origin(url: str) -> str | None:
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    suffix = f":{port}" if port is not None and port != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{suffix}"


def check_origin(request: Request, settings: Settings) -> None:
    """Refuse an unsafe request a browser sent on behalf of another site.

    Requests without `Origin` (API clients, curl) pass: they carry no ambient credentials
    unless someone hands them a cookie deliberately."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin is None:
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
        return
    allowed = {_origin(str(request.base_url))}
    if settings.public_url:
        allowed.add(_origin(settings.public_url))
    if _origin(origin) is None or _origin(origin) not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"cross-origin request refused: Origin {origin[:200]!r} is not this service",
        )
