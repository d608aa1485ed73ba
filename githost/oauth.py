"""GitHub's OAuth authorization-code flow (and token refresh) through authlib.

GitHub answers a failed token request with HTTP 200 and an `error` field; authlib turns that
into an exception, which surfaces here as `GitHubOAuthError` with GitHub's own words. The
token endpoint answers form-encoded unless asked for JSON, so every request says
`Accept: application/json`.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from typing import Any

import httpx

from config.settings import Settings
from githost.github import GitHubUnavailable

# authlib 1.9 announces a deprecation when it falls back to `httpx` because `httpx2` is absent;
# httpx is what this service ships, and under warnings-as-errors the notice would fail the import.
with warnings.catch_warnings():
    # Imported first: it installs its own filter, which ours below must precede.
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

SCOPE = "repo read:user user:email"
_TOKEN_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
}


class GitHubOAuthError(Exception):
    """GitHub refused a token request (bad or used code, bad refresh token, wrong client)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    scope: str | None
    # Set only for apps that issue expiring user tokens.
    expires_in: int | None
    refresh_token: str | None
    refresh_expires_in: int | None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _grant(token: dict[str, Any]) -> TokenGrant:
    access = token.get("access_token")
    if not access:
        raise GitHubOAuthError("invalid_response", "GitHub's answer carried no access token")
    return TokenGrant(
        access_token=str(access),
        scope=token.get("scope"),
        expires_in=_int_or_none(token.get("expires_in")),
        refresh_token=token.get("refresh_token") or None,
        refresh_expires_in=_int_or_none(token.get("refresh_token_expires_in")),
    )


class GitHubOAuth:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        github_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 20.0,
    ) -> None:
        base = github_url.rstrip("/")
        self.authorize_url = f"{base}/login/oauth/authorize"
        self.token_url = f"{base}/login/oauth/access_token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._transport = transport
        self._timeout = timeout

    def _client(self, **kwargs: Any) -> Any:
        extra: dict[str, Any] = {"timeout": self._timeout}
        if self._transport is not None:
            extra["transport"] = self._transport
        return AsyncOAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            # GitHub documents the client credentials as form fields, not Basic auth.
            token_endpoint_auth_method="client_secret_post",
            **extra,
            **kwargs,
        )

    async def authorization_url(self, redirect_uri: str) -> tuple[str, str]:
        """The URL to send the browser to, and the `state` it must come back with."""
        state = secrets.token_urlsafe(32)
        async with self._client(scope=SCOPE, redirect_uri=redirect_uri) as client:
            url, _ = client.create_authorization_url(self.authorize_url, state=state)
        return str(url), state

    async def exchange_code(self, code: str, redirect_uri: str) -> TokenGrant:
        async with self._client(redirect_uri=redirect_uri) as client:
            return _grant(
                await self._call(
                    client.fetch_token(
                        self.token_url,
                        grant_type="authorization_code",
                        code=code,
                        headers=_TOKEN_HEADERS,
                    )
                )
            )

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """Refresh tokens are single-use: the answer carries the next one."""
        async with self._client() as client:
            return _grant(
                await self._call(
                    client.refresh_token(
                        self.token_url, refresh_token=refresh_token, headers=_TOKEN_HEADERS
                    )
                )
            )

    @staticmethod
    async def _call(request: Any) -> dict[str, Any]:
        try:
            token = await request
        except OAuthError as exc:
            raise GitHubOAuthError(str(exc.error), exc.description or None) from exc
        except httpx.TimeoutException as exc:
            raise GitHubUnavailable(
                None, "GitHub did not answer the token request in time"
            ) from exc
        except httpx.TransportError as exc:
            raise GitHubUnavailable(
                None, f"GitHub is unreachable for the token request: {type(exc).__name__}"
            ) from exc
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status >= 500:
                raise GitHubUnavailable(
                    status, f"GitHub's token endpoint is unavailable (HTTP {status})"
                ) from exc
            raise GitHubOAuthError("http_error", f"token endpoint answered HTTP {status}") from exc
        except ValueError as exc:  # a body that is not a JSON object
            raise GitHubOAuthError("invalid_response", str(exc)[:200]) from exc
        return dict(token)


def oauth_from_settings(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> GitHubOAuth | None:
    """None when no OAuth app is configured."""
    if not settings.oauth_enabled or settings.github_client_secret is None:
        return None
    assert settings.github_client_id is not None
    return GitHubOAuth(
        client_id=settings.github_client_id,
        client_secret=settings.github_client_secret.get_secret_value(),
        github_url=settings.github_url,
        transport=transport,
    )
