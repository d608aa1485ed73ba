"""Credentials git presents to an HTTP remote (through a credential helper, never a URL)."""

from __future__ import annotations

from dataclasses import dataclass, field

GITHUB_TOKEN_USERNAME = "x-access-token"


@dataclass(frozen=True)
class GitCredentials:
    """HTTP Basic credentials for one remote; GitHub takes a token as the password."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def github_token(cls, token: str) -> GitCredentials:
        return cls(GITHUB_TOKEN_USERNAME, token)
