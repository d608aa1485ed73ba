"""What a user may hand us as a repository: a git URL, a local path, or `owner/name` on GitHub."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

_GITHUB_SHORTHAND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._/~-]+$")
_URL_SCHEMES = ("https", "http", "ssh", "git")
MAX_SOURCE_LENGTH = 2000


class SourceKind(StrEnum):
    REMOTE = "remote"
    LOCAL = "local"


class InvalidRepoSource(ValueError):
    pass


@dataclass(frozen=True)
class RepoSource:
    kind: SourceKind
    url: str
    name: str


def parse_repo_source(text: str) -> RepoSource:
    """Classify and normalise; anything that could reach a git transport helper other than the
    plain ones (`ext::`, `fd::`, an option smuggled as `-u...`) is refused here."""
    value = text.strip()
    if not value:
        raise InvalidRepoSource("repository URL is empty")
    if len(value) > MAX_SOURCE_LENGTH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidRepoSource("repository URL is too long or contains control characters")
    if value.startswith("-"):
        raise InvalidRepoSource("repository URL must not start with '-'")

    if value.startswith("/") or value.startswith("file://"):
        path = value[len("file://") :] if value.startswith("file://") else value
        path = os.path.normpath(path)
        return RepoSource(SourceKind.LOCAL, path, _name_from_path(path))

    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in _URL_SCHEMES or not parts.hostname:
            raise InvalidRepoSource(
                "unsupported repository URL; use https://, ssh://, git://, user@host:path, "
                "an absolute local path, or owner/name on GitHub"
            )
        if parts.password:
            raise InvalidRepoSource(
                "do not put credentials in the repository URL; store a token as a credential"
            )
        return RepoSource(SourceKind.REMOTE, value, _name_from_path(parts.path))

    if _SCP_LIKE.match(value):
        return RepoSource(SourceKind.REMOTE, value, _name_from_path(value.split(":", 1)[1]))

    if _GITHUB_SHORTHAND.match(value):
        owner, name = value.split("/")
        name = name.removesuffix(".git")
        return RepoSource(SourceKind.REMOTE, f"https://github.com/{owner}/{name}.git", name)

    raise InvalidRepoSource(
        "not a git URL, an absolute local path, or owner/name on GitHub: " + value[:100]
    )


def _name_from_path(path: str) -> str:
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    return tail.removesuffix(".git") or "repo"
