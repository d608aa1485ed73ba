from __future__ import annotations

from pathlib import Path

import pytest

from gitops.clone import clone
from gitops.credentials import GitCredentials
from gitops.errors import GitAuthError, GitOpError, InvalidGitInput
from gitops.operations import fetch
from gitops.workspace import SandboxRepo
from sandboxes.base import SandboxInfo
from sandboxes.local import LocalSandboxProvider
from tests.fakes.git_http import GitHttpServer
from tests.gitops.conftest import (
    BASE,
    BRANCH,
    FILES,
    IDENTITY,
    NAME,
    OWNER,
    Workspace,
    host_home,
)


def _repo(
    provider: LocalSandboxProvider,
    sandbox: SandboxInfo,
    token: str | None,
    *,
    remote_url: str | None = None,
) -> SandboxRepo:
    credentials = GitCredentials("x-access-token", token) if token else None
    return SandboxRepo(
        provider,
        sandbox.sandbox_id,
        workdir=sandbox.workdir,
        home=sandbox.home,
        credentials=credentials,
        remote_url=remote_url,
    )


def _tree_contains(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_clone_checks_out_a_new_branch_without_leaving_the_token_anywhere(
    workspace: Workspace,
) -> None:
    assert await workspace.git("symbolic-ref", "--short", "HEAD") == BRANCH
    assert await workspace.git("rev-parse", "HEAD") == workspace.remote_sha(f"refs/heads/{BASE}")
    for path, content in FILES.items():
        assert (workspace.host_workdir / path).read_text() == content
    assert await workspace.git("status", "--porcelain") == ""
    assert await workspace.git("config", "user.name") == IDENTITY[0]
    assert await workspace.git("config", "user.email") == IDENTITY[1]
    # The stored remote is exactly the URL given: no credentials in it.
    assert await workspace.git("config", "remote.origin.url") == workspace.url
    assert workspace.token not in (workspace.host_workdir / ".git" / "config").read_text()
    assert _tree_contains(workspace.host_home, workspace.token) == []
    assert workspace.credential_files() == []
    # The new branch tracks nothing yet: its upstream is set by the first push.
    upstream = await workspace.sh("git", "rev-parse", "--abbrev-ref", "@{upstream}", ok=False)
    assert upstream.strip() in ("", "@{upstream}")
    # The clone authenticated (the repository is private).
    assert any(r.login == OWNER for r in workspace.server.requests)


async def test_a_second_clone_does_nothing(workspace: Workspace) -> None:
    before = len(workspace.server.requests)
    await workspace.commit({"new.txt": "x\n"})
    head = await workspace.git("rev-parse", "HEAD")
    await clone(workspace.repo, workspace.url, base=BASE, branch=BRANCH, identity=IDENTITY)
    assert await workspace.git("rev-parse", "HEAD") == head
    assert len(workspace.server.requests) == before


async def test_clone_finishes_what_an_interrupted_attempt_started(
    provider: LocalSandboxProvider, sandbox: SandboxInfo, server: GitHttpServer, token: str
) -> None:
    url = server.create_repo(OWNER, NAME, files=FILES)
    repo = _repo(provider, sandbox, token)
    # What a worker killed during the fetch leaves: a repository with no commit, and a file
    # of the checkout that was being written.
    await provider.exec(sandbox.sandbox_id, ["git", "init", "-q"], cwd=sandbox.workdir)
    await provider.exec(
        sandbox.sandbox_id, ["git", "remote", "add", "origin", url], cwd=sandbox.workdir
    )
    await provider.write_file(sandbox.sandbox_id, f"{sandbox.workdir}/README.md", b"partial")
    await clone(repo, url, base=BASE, branch=BRANCH, identity=IDENTITY)
    status = await provider.exec(
        sandbox.sandbox_id, ["git", "status", "--porcelain", "--branch"], cwd=sandbox.workdir
    )
    assert status.stdout == f"## {BRANCH}\n"
    readme = await provider.read_file(sandbox.sandbox_id, f"{sandbox.workdir}/README.md")
    assert readme == b"hello\n"


async def test_clone_of_a_missing_base_branch_is_invalid_input(
    provider: LocalSandboxProvider, sandbox: SandboxInfo, server: GitHttpServer, token: str
) -> None:
    url = server.create_repo(OWNER, NAME)
    with pytest.raises(InvalidGitInput, match="nope"):
        await clone(
            _repo(provider, sandbox, token), url, base="nope", branch=BRANCH, identity=IDENTITY
        )


async def test_clone_with_a_wrong_or_missing_token_is_an_auth_error(
    provider: LocalSandboxProvider, sandbox: SandboxInfo, server: GitHttpServer, tmp_path: Path
) -> None:
    url = server.create_repo(OWNER, NAME)
    wrong = "ghp_wrongtoken0123456789"
    with pytest.raises(GitAuthError) as caught:
        await clone(
            _repo(provider, sandbox, wrong), url, base=BASE, branch=BRANCH, identity=IDENTITY
        )
    assert "authentication failed" in caught.value.message
    assert "GitHub token" in caught.value.message
    assert wrong not in caught.value.message
    assert wrong not in str(caught.value)
    with pytest.raises(GitAuthError):
        await clone(
            _repo(provider, sandbox, None), url, base=BASE, branch=BRANCH, identity=IDENTITY
        )
    assert _tree_contains(host_home(sandbox, tmp_path), wrong) == []


async def test_public_repository_clones_without_credentials(
    provider: LocalSandboxProvider, sandbox: SandboxInfo, server: GitHttpServer
) -> None:
    url = server.create_repo(OWNER, NAME, private=False)
    await clone(_repo(provider, sandbox, None), url, base=BASE, branch=BRANCH, identity=IDENTITY)
    assert all(r.login is None for r in server.requests)


async def test_bad_arguments_are_refused_before_anything_runs(
    provider: LocalSandboxProvider, sandbox: SandboxInfo, server: GitHttpServer, token: str
) -> None:
    url = server.create_repo(OWNER, NAME)
    repo = _repo(provider, sandbox, token)
    with pytest.raises(InvalidGitInput):
        await clone(repo, url, base="-x", branch=BRANCH, identity=IDENTITY)
    with pytest.raises(InvalidGitInput):
        await clone(repo, url, base=BASE, branch="a..b", identity=IDENTITY)
    with pytest.raises(InvalidGitInput):
        await clone(repo, "--upload-pack=touch /tmp/x", base=BASE, branch=BRANCH, identity=IDENTITY)
    with pytest.raises(InvalidGitInput):
        await clone(repo, url, base=BASE, branch=BRANCH, identity=("x\ny", "e@x"))
    assert server.requests == []


async def test_credentials_only_go_to_the_trusted_remote(
    provider: LocalSandboxProvider, sandbox: SandboxInfo, server: GitHttpServer, token: str
) -> None:
    url = server.create_repo(OWNER, NAME)
    repo = _repo(provider, sandbox, token, remote_url=url)
    await clone(repo, url, base=BASE, branch=BRANCH, identity=IDENTITY)
    await fetch(repo, BASE)
    # The agent points origin somewhere else: no network command runs with the token.
    other = server.create_repo("mallory", "trap")
    await provider.exec(
        sandbox.sandbox_id, ["git", "remote", "set-url", "origin", other], cwd=sandbox.workdir
    )
    before = len(server.requests)
    with pytest.raises(GitOpError, match="not sending credentials"):
        await fetch(repo, BASE)
    assert len(server.requests) == before
    # A push URL of its own, or an insteadOf rewrite, counts as pointing elsewhere too.
    await provider.exec(
        sandbox.sandbox_id, ["git", "remote", "set-url", "origin", url], cwd=sandbox.workdir
    )
    await provider.exec(
        sandbox.sandbox_id,
        ["git", "config", f"url.{server.url}/mallory/.insteadOf", f"{server.url}/{OWNER}/"],
        cwd=sandbox.workdir,
    )
    with pytest.raises(GitOpError, match="not sending credentials"):
        await fetch(repo, BASE)
    assert len(server.requests) == before
