"""What a user may hand us as a repository: a git URL, a local path, or `owner/name` on GitHub.

"GitHub" is whatever `github_url` names (github.com by default, or a GitHub Enterprise host):
`owner/name` maps to it, and a URL on its host is recognised as that repository, so pull
requests and private clones can go through GitHub's API and a token.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

_GITHUB_SHORTHAND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_GITHUB_PATH = re.compile(
    r"^/?(?P<owner>[A-Za-z0-9][A-Za-z0-9-]{0,38})/(?P<name>[A-Za-z0-9._-]{1,100}?)(?:\.git)?/?$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}
DEFAULT_GITHUB_URL = "https://github.com"
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
    # `owner/name` when the repository is on GitHub.
    github_full_name: str | None = None


def _github_full_name(path: str) -> str | None:
    match = _GITHUB_PATH.match(path)
    if match is None or match.group("name") in (".", ".."):
        return None
    return f"{match.group('owner')}/{match.group('name')}"


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(parts.scheme)


def parse_repo_source(text: str, *, github_url: str = DEFAULT_GITHUB_URL) -> RepoSource:
    """Classify and normalise; anything that could reach a git transport helper other than the
    plain ones (`ext::`, `fd::`, an option smuggled as `-u...`) is refused here.

    HTTP(S) URLs of a GitHub repository are normalised to `{github_url}/owner/name.git`, so the
    same repository given two ways is one URL; SSH forms keep their URL."""
    github_base = github_url.rstrip("/")
    github_host, github_port = _host_port(github_base)
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
        host_port = (parts.hostname.lower(), parts.port or _DEFAULT_PORTS.get(parts.scheme))
        full_name = _github_full_name(parts.path) if not parts.query else None
        if full_name is not None and parts.scheme in ("http", "https"):
            if host_port == (github_host, github_port) and not parts.username:
                name = full_name.split("/")[1]
                return RepoSource(
                    SourceKind.REMOTE, f"{github_base}/{full_name}.git", name, full_name
                )
        elif full_name is not None and host_port[0] == github_host:
            return RepoSource(SourceKind.REMOTE, value, _name_from_path(parts.path), full_name)
        return RepoSource(SourceKind.REMOTE, value, _name_from_path(parts.path))

    if _SCP_LIKE.match(value):
        host_and_user, path = value.split(":", 1)
        host = host_and_user.rpartition("@")[2].lower()
        full_name = _github_full_name(path) if host == github_host else None
        return RepoSource(SourceKind.REMOTE, value, _name_from_path(path), full_name)

    if _GITHUB_SHORTHAND.match(value):
        full_name = _github_full_name(value)
        if full_name is not None:
            name = full_name.split("/")[1]
            return RepoSource(SourceKind.REMOTE, f"{github_base}/{full_name}.git", name, full_name)

    raise InvalidRepoSource(
        "not a git URL, an absolute local path, or owner/name on GitHub: " + value[:100]
    )


def _name_from_path(path: str) -> str:
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    return tail.removesuffix(".git") or "repo"
