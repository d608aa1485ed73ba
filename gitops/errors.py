"""Failures of git operations run in a sandbox.

Every message is meant to be shown to a user as is: credentials are scrubbed from any URL in
it here, and `SandboxRepo` replaces the token itself before a message reaches these classes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# The userinfo part of any URL (`https://user:token@host` -> `https://***@host`).
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]+@")


def scrub_urls(text: str) -> str:
    return _URL_USERINFO.sub(r"\1***@", text)


class GitOpError(Exception):
    """A git operation failed; `message` is safe to show to the user."""

    def __init__(self, message: str) -> None:
        message = scrub_urls(message)
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class InvalidGitInput(GitOpError):
    """A ref, sha or name given by the user is malformed or unknown."""


class GitConflict(GitOpError):
    """A merge or rebase conflicted; it was aborted, the working tree is as before."""

    def __init__(self, message: str, files: Sequence[str]) -> None:
        super().__init__(message)
        self.files = list(files)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.files))


class PushRejected(GitOpError):
    """The remote refused the update: not a fast-forward, or the lease did not hold."""


class ProtectedBranch(GitOpError):
    """Refused: the operation would push to, rename or delete the default branch."""


class TransientGitError(GitOpError):
    """Network trouble, a 5xx from the remote, a timeout: worth retrying."""


class GitAuthError(GitOpError):
    """The remote refused our credentials (or wanted some and we had none)."""
