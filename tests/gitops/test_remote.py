from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops.credentials import GitCredentials
from gitops.remote import (
    GitRemoteError,
    existing_branches,
    probe_remote,
    remote_branches,
)
from tests.conftest import free_port
from tests.fakes.github import FakeGitHub


async def test_probe_detects_default_branch(git_remote: Path) -> None:
    info = await probe_remote(str(git_remote))
    assert info.default_branch == "main"
    assert set(info.branches) == {"main", "develop"}


async def test_branch_existence(git_remote: Path) -> None:
    found = await existing_branches(str(git_remote), "develop", "nope", "main")
    assert found == {"develop", "main"}
    assert await existing_branches(str(git_remote), "nope") == set()


async def test_unreachable_remotes_raise_readable_errors(tmp_path: Path) -> None:
    with pytest.raises(GitRemoteError, match="not reachable"):
        await probe_remote(f"http://127.0.0.1:{free_port()}/x.git", timeout=10)
    with pytest.raises(GitRemoteError, match="not reachable"):
        await probe_remote(str(tmp_path / "missing"))


async def test_empty_repository_is_refused(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "empty.git")], check=True)
    with pytest.raises(GitRemoteError, match="no branches"):
        await probe_remote(str(tmp_path / "empty.git"))


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "github") as fake:
        yield fake


def _credential_dirs() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("git-cred-")}


async def test_private_http_remote_with_credentials(fake_github: FakeGitHub) -> None:
    token = fake_github.add_user("alice")
    other = fake_github.add_user("mallory")
    url = fake_github.clone_url("alice", "secret")
    fake_github.create_repo("alice", "secret", default_branch="trunk", branches=["feature"])
    before = _credential_dirs()

    info = await probe_remote(url, credentials=GitCredentials.github_token(token), timeout=30)
    assert info.default_branch == "trunk"
    assert set(info.branches) == {"trunk", "feature"}
    found = await existing_branches(
        url, "feature", "nope", credentials=GitCredentials.github_token(token)
    )
    assert found == {"feature"}
    branches = await remote_branches(url, credentials=GitCredentials.github_token(token))
    assert [b.name for b in branches] == ["feature", "trunk"]
    assert all(len(b.sha) == 40 for b in branches)
    # The helper's file and directory are gone afterwards.
    assert _credential_dirs() == before

    with pytest.raises(GitRemoteError, match="not reachable"):
        await probe_remote(url, timeout=30)
    for wrong in (other, "ghp_wrongtoken0000000000000000000000"):
        with pytest.raises(GitRemoteError) as refused:
            await probe_remote(url, credentials=GitCredentials.github_token(wrong), timeout=30)
        assert wrong not in str(refused.value)
        assert "not reachable" in str(refused.value)
    assert _credential_dirs() == before
    # Credentials went through the helper only, never into the URL git asked for.
    assert all(token not in path for _, path in fake_github.requests)
    assert {r.login for r in fake_github.git_requests if r.status == 200} == {"alice"}


def test_credentials_do_not_show_in_repr() -> None:
    assert "s3cret" not in repr(GitCredentials.github_token("s3cret"))
