"""User and token operations shared by the API and the admin command line."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiToken, Branch, User, UserSettings
from security.tokens import generate_token, hash_token, token_hint

LOCAL_ADMIN_LOGIN = "local"


class UserNotFoundError(LookupError):
    pass


class BranchQuotaExceeded(Exception):
    """The user already has as many branches as their quota allows."""


@dataclass(frozen=True)
class GitHubProfile:
    """What sign-in knows about a GitHub account; `github_id` is the key that never changes."""

    github_id: int
    login: str
    name: str | None
    email: str | None
    avatar_url: str | None


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


def _moved_aside(login: str, github_id: int | None) -> str:
    # "~" never occurs in a GitHub login, so the result cannot collide with a real one.
    return f"{login}~{github_id}"[:100]


async def _claim_login(session: AsyncSession, login: str, github_id: int) -> str:
    """The login the GitHub account `github_id` may use: `login`, after moving aside a row that
    holds it for another GitHub account (that account was renamed on GitHub, which freed the
    name). A user not linked to GitHub (the local admin, or one created by login for someone
    else) keeps its login, and the GitHub account gets a moved-aside one."""
    holder = await session.scalar(select(User).where(User.login == login).with_for_update())
    if holder is None or holder.github_id == github_id:
        return login
    if holder.github_id is None:
        return _moved_aside(login, github_id)
    holder.login = _moved_aside(holder.login, holder.github_id)
    await session.flush()
    return login


async def upsert_github_user(
    session: AsyncSession,
    profile: GitHubProfile,
    *,
    branch_quota: int | None,
    is_admin: bool = False,
) -> User:
    """The user for a GitHub account, created on first sign-in and refreshed from the profile
    afterwards (in the caller's transaction).

    A user created beforehand by login (`upstream users create <login>`) and not yet linked to
    a GitHub account is linked on its first GitHub sign-in and keeps its admin flag and quota;
    the local admin never is. `branch_quota` applies to new users; `is_admin` only ever grants.
    """
    user = await session.scalar(
        select(User).where(User.github_id == profile.github_id).with_for_update()
    )
    if user is None and profile.login != LOCAL_ADMIN_LOGIN:
        user = await session.scalar(
            select(User)
            .where(User.login == profile.login, User.github_id.is_(None))
            .with_for_update()
        )
        if user is not None:
            user.github_id = profile.github_id
    if user is None:
        login = await _claim_login(session, profile.login, profile.github_id)
        await session.execute(
            insert(User)
            .values(
                login=login,
                github_id=profile.github_id,
                name=profile.name,
                email=profile.email,
                avatar_url=profile.avatar_url,
                is_admin=is_admin,
                branch_quota=branch_quota,
            )
            # Two first sign-ins at once: the second finds the first one's row.
            .on_conflict_do_nothing(index_elements=["github_id"])
        )
        user = await session.scalar(
            select(User)
            .where(User.github_id == profile.github_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert user is not None
    elif user.login != profile.login:
        user.login = await _claim_login(session, profile.login, profile.github_id)
    user.name = profile.name
    user.email = profile.email or user.email
    user.avatar_url = profile.avatar_url
    if is_admin:
        user.is_admin = True
    await session.execute(insert(UserSettings).values(user_id=user.id).on_conflict_do_nothing())
    await session.flush()
    return user


async def check_branch_quota(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Raise `BranchQuotaExceeded` when the user may not create another branch.

    Locks the user row until the caller's transaction ends, so two concurrent creations cannot
    both take the last free place."""
    quota = await session.scalar(
        select(User.branch_quota).where(User.id == user_id).with_for_update()
    )
    if quota is None:
        return
    count = await session.scalar(
        select(func.count()).select_from(Branch).where(Branch.user_id == user_id)
    )
    if (count or 0) >= quota:
        raise BranchQuotaExceeded(
            f"branch quota reached: you have {count} of {quota} branches; "
            "delete a branch to create another"
        )
