"""A user's GitHub token at rest: the `credentials` row with provider "github".

It is the same row `PUT /api/me/credentials/github` writes, so a pasted personal access token
and a token from signing in with GitHub are used alike. Tokens of GitHub Apps that issue
expiring user tokens carry `expires_at` and a sealed single-use refresh token; `github_token_for`
refreshes such a token shortly before it lapses.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from db.credentials import credential_context, open_credential
from db.engine import SessionFactory
from db.models import Credential
from githost.github import GitHubUnavailable
from githost.oauth import GitHubOAuthError, oauth_from_settings
from security.crypto import DecryptionError, Keyring, SealedSecret

GITHUB_PROVIDER = "github"
# Refresh this long before expiry, so a token handed to a clone or a push does not lapse
# halfway through it.
REFRESH_MARGIN = timedelta(minutes=5)


class GitHubTokenExpired(Exception):
    """The stored GitHub token lapsed and cannot be refreshed; the message tells the user what
    to do."""


def refresh_context(user_id: uuid.UUID | str) -> str:
    return credential_context(user_id, GITHUB_PROVIDER) + ":refresh"


def _after(now: datetime, seconds: int | None) -> datetime | None:
    return now + timedelta(seconds=seconds) if seconds is not None else None


async def store_github_token(
    session: AsyncSession,
    keyring: Keyring,
    user_id: uuid.UUID,
    access_token: str,
    *,
    refresh_token: str | None = None,
    expires_in: int | None = None,
    refresh_expires_in: int | None = None,
) -> None:
    """Insert or replace the user's GitHub token in the caller's transaction (not committed).

    A token without `expires_in` clears any expiry and refresh token a previous one had."""
    now = datetime.now(UTC)
    sealed = keyring.encrypt_text(
        access_token, context=credential_context(user_id, GITHUB_PROVIDER)
    )
    refresh_sealed = (
        keyring.encrypt_text(refresh_token, context=refresh_context(user_id))
        if refresh_token
        else None
    )
    # Both sealed by the active key at once, so the row's one key id opens both.
    values = {
        "key_id": sealed.key_id,
        "ciphertext": sealed.ciphertext,
        "last4": access_token[-4:],
        "expires_at": _after(now, expires_in),
        "refresh_ciphertext": refresh_sealed.ciphertext if refresh_sealed else None,
        "refresh_expires_at": _after(now, refresh_expires_in) if refresh_sealed else None,
    }
    await session.execute(
        insert(Credential)
        .values(user_id=user_id, provider=GITHUB_PROVIDER, **values)
        .on_conflict_do_update(
            index_elements=["user_id", "provider"], set_={**values, "updated_at": func.now()}
        )
    )


def _needs_refresh(row: Credential, now: datetime) -> bool:
    return row.expires_at is not None and row.expires_at - REFRESH_MARGIN <= now


def _open(keyring: Keyring, row: Credential) -> str:
    try:
        return open_credential(keyring, row)
    except DecryptionError as exc:
        raise GitHubTokenExpired(
            "the stored GitHub token cannot be decrypted (was the encryption key replaced?); "
            "sign in with GitHub again or store a new github credential"
        ) from exc


async def github_token_for(
    sessions: SessionFactory, keyring: Keyring, settings: Settings, user_id: uuid.UUID | str
) -> str | None:
    """The user's usable GitHub access token, or None when they have not connected GitHub.

    Raises `GitHubTokenExpired` when the token lapsed and cannot be refreshed, and
    `GitHubUnavailable` (retryable) when GitHub could not be asked for a new one."""
    user_id = uuid.UUID(str(user_id))
    query = select(Credential).where(
        Credential.user_id == user_id, Credential.provider == GITHUB_PROVIDER
    )
    async with sessions() as session:
        row = await session.scalar(query)
        if row is None:
            return None
        if not _needs_refresh(row, datetime.now(UTC)):
            return _open(keyring, row)

    # The refresh token is single-use: the row lock makes a second worker wait, then find the
    # pair the first one stored instead of spending the old refresh token again.
    async with sessions() as session, session.begin():
        row = await session.scalar(query.with_for_update())
        if row is None:
            return None
        now = datetime.now(UTC)
        if not _needs_refresh(row, now):
            return _open(keyring, row)
        still_valid = row.expires_at is not None and row.expires_at > now
        oauth = oauth_from_settings(settings)
        refresh_lapsed = row.refresh_expires_at is not None and row.refresh_expires_at <= now
        if row.refresh_ciphertext is None or refresh_lapsed or oauth is None:
            if still_valid:
                return _open(keyring, row)
            raise GitHubTokenExpired(
                "the GitHub token expired and cannot be refreshed; sign in with GitHub again"
            )
        try:
            refresh_token = keyring.decrypt_text(
                SealedSecret(key_id=row.key_id, ciphertext=row.refresh_ciphertext),
                context=refresh_context(user_id),
            )
        except DecryptionError as exc:
            raise GitHubTokenExpired(
                "the stored GitHub refresh token cannot be decrypted; sign in with GitHub again"
            ) from exc
        try:
            grant = await oauth.refresh(refresh_token)
        except GitHubOAuthError as exc:
            raise GitHubTokenExpired(
                f"GitHub refused to refresh the token ({exc.error}); sign in with GitHub again"
            ) from exc
        except GitHubUnavailable:
            if still_valid:
                return _open(keyring, row)
            raise
        await store_github_token(
            session,
            keyring,
            user_id,
            grant.access_token,
            refresh_token=grant.refresh_token,
            expires_in=grant.expires_in,
            refresh_expires_in=grant.refresh_expires_in,
        )
        return grant.access_token
