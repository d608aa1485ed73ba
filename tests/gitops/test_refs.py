from __future__ import annotations

import subprocess

import pytest

from gitops.names import generate_branch_name
from gitops.refs import InvalidRefName, validate_branch_name

INVALID = [
    "",
    "../x",
    "a..b",
    "-rf",
    "x.lock",
    "a/b.lock/c",
    "@{",
    "a@{b",
    "@",
    "a" * 300,
    "bad\x07name",
    "new\nline",
    "a b",
    "x/",
    "/x",
    "a//b",
    "a.",
    ".hidden",
    "a/.b",
    "tilde~1",
    "caret^",
    "colon:",
    "what?",
    "star*",
    "br[acket",
    "back\\slash",
    "del\x7f",
    "HEAD",
]
VALID = ["main", "feature/login", "fix-123", "upstream/brave-otter-3f9c", "a.b", "v1.2.3", "x@y"]


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRefName):
        validate_branch_name(name)


@pytest.mark.parametrize("name", VALID)
def test_valid_names_pass(name: str) -> None:
    assert validate_branch_name(name) == name


@pytest.mark.parametrize("name", [n for n in INVALID + VALID if "\x00" not in n and n])
def test_agrees_with_git_check_ref_format(name: str) -> None:
    """Never more permissive than git; stricter only where we chose to be (length, HEAD)."""
    git_accepts = (
        subprocess.run(
            ["git", "check-ref-format", "--branch", name], capture_output=True, check=False
        ).returncode
        == 0
    )
    try:
        validate_branch_name(name)
        we_accept = True
    except InvalidRefName:
        we_accept = False
    if we_accept:
        assert git_accepts, name
    elif git_accepts:
        assert len(name) > 200 or name in ("HEAD", "@"), name


def test_generated_names_are_valid_and_distinct() -> None:
    names = {generate_branch_name() for _ in range(50)}
    assert len(names) > 40
    for name in names:
        validate_branch_name(name)
