"""Branch-name validation: git's check-ref-format rules, plus limits of our own.

Validated in Python (not by shelling out) so the API can reject bad input before any process
starts; the test suite checks this agrees with `git check-ref-format --branch`.
"""

from __future__ import annotations

import re

MAX_BRANCH_NAME_LENGTH = 200

_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


class InvalidRefName(ValueError):
    pass


def validate_branch_name(name: str) -> str:
    """Return `name` if git would accept it as a branch, else raise `InvalidRefName` saying why."""
    if not name:
        raise InvalidRefName("branch name is empty")
    if len(name) > MAX_BRANCH_NAME_LENGTH:
        raise InvalidRefName(f"branch name is longer than {MAX_BRANCH_NAME_LENGTH} characters")
    if _FORBIDDEN_CHARS.search(name):
        raise InvalidRefName(
            "branch name contains a space, a control character or one of ~ ^ : ? * [ \\"
        )
    if name.startswith("-"):
        raise InvalidRefName("branch name must not start with '-'")
    if name == "@":
        raise InvalidRefName("branch name must not be '@'")
    if "@{" in name:
        raise InvalidRefName("branch name must not contain '@{'")
    if ".." in name:
        raise InvalidRefName("branch name must not contain '..'")
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise InvalidRefName("branch name must not start or end with '/' or contain '//'")
    if name.endswith("."):
        raise InvalidRefName("branch name must not end with '.'")
    for component in name.split("/"):
        if component.startswith("."):
            raise InvalidRefName("no part of a branch name may start with '.'")
        if component.endswith(".lock"):
            raise InvalidRefName("no part of a branch name may end with '.lock'")
    if name == "HEAD":
        raise InvalidRefName("branch name must not be 'HEAD'")
    return name
