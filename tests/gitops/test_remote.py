from __future__ import annotations

from pathlib import Path

import pytest

from gitops.remote import GitRemoteError, existing_branches, probe_remote
from tests.conftest import free_port


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
