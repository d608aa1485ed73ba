"""User and token operations shared by the API and the admin command line."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiToken, User, UserSettings
from security.tokens import generate_token, hash_token, token_hint

LOCAL_ADMIN_LOGIN = "local"


class UserNotFoundError(LookupError):
    pass


@dataclass(frozen=True)
class IssuedToken:
    row: ApiToken
    token: str


async def get_or_create_user(
    session: AsyncSession, login: str, *, is_admin: bool = False, name: str | None = None
) -> User:
    """Idempotent under concurrency (two processes starting at once): insert or ignore, read."""
    await session.execute(
        insert(User)
        .values(login=login, is_admin=is_admin, name=name)
        .on_conflict_do_nothing(index_elements=["login"])
    )
    user = await session.scalar(select(User).where(User.login == login))
    assert user is not None
    if is_admin and not user.is_admin:
        user.is_admin = True
    await session.execute(insert(UserSettings).values(user_id=user.id).on_conflict_do_nothing())
    return user


async def issue_token(session: AsyncSession, login: str, name: str) -> IssuedToken:
    user = await session.scalar(select(User).where(User.login == login))
    if user is None:
        raise UserNotFoundError(f"no user with login {login!r}")
    return await issue_token_for(session, user, name)


async def issue_token_for(session: AsyncSession, user: User, name: str) -> IssuedToken:
    token = generate_token()
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), hint=token_hint(token))
    session.add(row)
    await session.flush()
    return IssuedToken(row=row, token=token)
