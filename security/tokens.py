"""API tokens: shown once, stored as a SHA-256 digest.

Tokens are 256-bit random values, so a fast unsalted digest is enough: there is nothing to
brute-force, and a digest lookup keeps authentication to one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "upa_"


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_hint(token: str) -> str:
    """What the UI may show of a token after creation."""
    return token[: len(TOKEN_PREFIX) + 4]
