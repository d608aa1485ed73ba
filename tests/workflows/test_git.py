"""Git on a branch end to end: API → branch workflow → git activities → the sandbox's checkout
→ a fake GitHub (REST for pull requests, git over smart HTTP with token auth)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from config.settings import Settings
from db.engine import SessionFactory
from db.models import Message
from sandboxes.local import LocalSandboxProvider
from tests.fakes.git_http import GitRequest
from tests.fakes.github import FakeGitHub
from tests.fakes.model_server import FakeModelServer
from tests.workflows.conftest import WorkerProcess
from tests.workflows.helpers import wait_for_status
from workflows.ids import sandbox_name

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

OWNER, REPO = "alice", "app"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "github") as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, github: FakeGitHub) -> Settings:
    return settings.model_copy(update={"github_url": github.url, "github_api_url": github.api_url})


@pytest.fixture
def token(github: FakeGitHub) -> str:
    pat = github.add_user(OWNER, name="Alice")
    github.create_repo(
        OWNER,
        REPO,
        files={"README.md": "hello\n", "notes.txt": "one\n"},
        branches=("develop",),
    )
    return pat


async def _github_branch(api: httpx.AsyncClient, token: str, name: str) -> dict[str, Any]:
    put = await api.put("/api/me/credentials/github", json={"api_key": token})
    assert put.status_code == 200, put.text
    repo = await api.post("/api/repos", json={"url": f"{OWNER}/{REPO}"})
    if repo.status_code == 409:  # added by an earlier call in the same test
        repo = (await api.get("/api/repos")).json()[0]
    else:
        assert repo.status_code == 201, repo.text
        repo = repo.json()
    branch = await api.post(f"/api/repos/{repo['id']}/branches", json={"name": name})
    assert branch.status_code == 201, branch.text
    await wait_for_status(api, branch.json()["id"], "idle")
    return dict(branch.json())


async def _commit_in_sandbox(
    provider: LocalSandboxProvider, branch_id: str, files: dict[str, str], message: str
) -> str:
    """Change and commit files in the branch's checkout, as an agent's turn would."""
    name = sandbox_name(branch_id)
    info = await provider.get(name)
    for path, content in files.items():
        await provider.write_file(name, f"{info.workdir}/{path}", content.encode(), mode=0o644)
    for argv in (["git", "add", "-A"], ["git", "commit", "-q", "-m", message]):
        result = await provider.exec(name, argv, cwd=info.workdir, timeout=30)
        assert result.exit_code == 0, result.stderr
    head = await provider.exec(name, ["git", "rev-parse", "HEAD"], cwd=info.workdir)
    return head.stdout.strip()


async def _git_in_sandbox(provider: LocalSandboxProvider, branch_id: str, *argv: str) -> str:
    name = sandbox_name(branch_id)
    info = await provider.get(name)
    result = await provider.exec(name, ["git", *argv], cwd=info.workdir, timeout=30)
    return result.stdout


def _remote(github: FakeGitHub, branch: str) -> str | None:
    return github.ref_sha(OWNER, REPO, f"refs/heads/{branch}")


async def _git_events(sessions: SessionFactory, branch_id: str) -> list[dict[str, Any]]:
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT payload FROM events WHERE branch_id = :b AND kind = 'git' ORDER BY seq"),
            {"b": uuid.UUID(branch_id)},
        )
        return [dict(row[0]) for row in rows]


async def _wait_for_git_event(
    sessions: SessionFactory, branch_id: str, op: str, timeout: float = 300
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        events = [e for e in await _git_events(sessions, branch_id) if e["op"] == op]
        if events:
            return events[-1]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {op} event on branch {branch_id}")


def _command_lines() -> list[str]:
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    lines.append(file.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return lines


async def test_a_turn_is_pushed_and_one_pull_request_is_opened_without_leaking_the_token(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    sessions: SessionFactory,
    github: FakeGitHub,
    token: str,
    tmp_path: Path,
) -> None:
    seen_during_git: list[str] = []

    def snapshot(request: GitRequest) -> None:
        seen_during_git.extend(_command_lines())

    github.on_git_request = snapshot
    with FakeModelServer() as model:
        put = await api.put(
            "/api/me/credentials/anthropic",
            json={"api_key": "sk-ant-test-key-0000", "base_url": model.base_url},
        )
        assert put.status_code == 200
        branch = await _github_branch(api, token, "feature/greeting")
        sent = await api.post(
            f"/api/branches/{branch['id']}/messages",
            json={"content": "create the file hello.txt with hi there"},
        )
        assert sent.status_code == 202, sent.text
        pushed = await _wait_for_git_event(sessions, branch["id"], "push")

    async with sessions() as session:
        commit_sha = await session.scalar(
            select(Message.commit_sha).where(
                Message.branch_id == uuid.UUID(branch["id"]), Message.role == "assistant"
            )
        )
    assert commit_sha and pushed["ok"] is True and pushed["sha"] == commit_sha
    assert _remote(github, "feature/greeting") == commit_sha
    assert (await api.get(f"/api/branches/{branch['id']}")).json()["pushed_sha"] == commit_sha

    diff = await api.get(f"/api/branches/{branch['id']}/diff")
    assert diff.status_code == 200, diff.text
    files = diff.json()["files"]
    assert [(f["path"], f["status"], f["additions"]) for f in files] == [("hello.txt", "added", 1)]
    assert files[0]["hunks"][0]["lines"][0]["content"] == "hi there"
    commits = (await api.get(f"/api/branches/{branch['id']}/commits")).json()
    assert [c["sha"] for c in commits] == [commit_sha]
    assert commits[0]["turn_id"] == sent.json()["turn_id"]

    first = await api.post(f"/api/branches/{branch['id']}/pull-request", json={"draft": True})
    assert first.status_code == 201, first.text
    again = await api.post(f"/api/branches/{branch['id']}/pull-request", json={})
    assert again.status_code == 200, again.text
    assert again.json()["number"] == first.json()["number"] and again.json()["created"] is False
    pulls = github.pulls(OWNER, REPO)
    assert len(pulls) == 1
    assert pulls[0]["title"] == "create the file hello.txt with hi there"
    assert pulls[0]["draft"] is True and pulls[0]["base"]["ref"] == "main"
    assert "Done." in pulls[0]["body"]
    shown = (await api.get(f"/api/branches/{branch['id']}")).json()["pull_request"]
    assert shown["url"] == first.json()["url"] == pulls[0]["html_url"]

    # The token went to git only through the credential helper, and nowhere else.
    assert seen_during_git, "no git request reached the fake GitHub"
    assert not [line for line in seen_during_git if token in line]
    config = await _git_in_sandbox(provider, branch["id"], "config", "--list", "--show-origin")
    assert token not in config and f"{github.url}/{OWNER}/{REPO}.git" in config
    home = (await provider.get(sandbox_name(branch["id"]))).home
    leftovers = await provider.exec(
        sandbox_name(branch["id"]), ["grep", "-rl", "--", token, home], timeout=60
    )
    assert leftovers.stdout == "", f"token left in the sandbox: {leftovers.stdout}"
    async with sessions() as session:
        logged = await session.scalar(
            text("SELECT count(*) FROM events WHERE payload::text LIKE :t"), {"t": f"%{token}%"}
        )
    assert logged == 0
    assert token not in (tmp_path / "worker.log").read_text(errors="replace")


async def test_push_rejections_force_with_lease_and_the_default_branch(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    sessions: SessionFactory,
    github: FakeGitHub,
    token: str,
) -> None:
    branch = await _github_branch(api, token, "feature/push")
    bid = branch["id"]
    base = (await _git_in_sandbox(provider, bid, "rev-parse", "HEAD")).strip()
    first = await _commit_in_sandbox(provider, bid, {"a.txt": "a\n"}, "add a")
    push = await api.post(f"/api/branches/{bid}/push")
    assert push.status_code == 200, push.text
    assert push.json()["status"] == "pushed" and _remote(github, "feature/push") == first
    again = await api.post(f"/api/branches/{bid}/push")
    assert again.status_code == 200 and again.json()["status"] == "up-to-date"

    # Rewritten history: a plain push is refused, force-with-lease replaces what we pushed.
    reset = await api.post(f"/api/branches/{bid}/git/reset", json={"commit": base})
    assert reset.status_code == 200, reset.text
    second = await _commit_in_sandbox(provider, bid, {"b.txt": "b\n"}, "add b instead")
    rejected = await api.post(f"/api/branches/{bid}/push")
    assert rejected.status_code == 409, rejected.text
    assert rejected.json()["error_kind"] == "rejected"
    assert "force_with_lease" in rejected.json()["detail"]
    assert _remote(github, "feature/push") == first
    forced = await api.post(f"/api/branches/{bid}/push", json={"force_with_lease": True})
    assert forced.status_code == 200, forced.text
    assert _remote(github, "feature/push") == second

    # Someone else pushed since: the lease no longer holds, their commit survives.
    theirs = github.commit_to(OWNER, REPO, "feature/push", {"c.txt": "c\n"}, "someone else")
    await _commit_in_sandbox(provider, bid, {"d.txt": "d\n"}, "add d")
    clobber = await api.post(f"/api/branches/{bid}/push", json={"force_with_lease": True})
    assert clobber.status_code == 409, clobber.text
    assert _remote(github, "feature/push") == theirs

    # Should the repository's default branch become this one, it is no longer pushed to.
    async with sessions.begin() as session:
        await session.execute(
            text("UPDATE repos SET default_branch = 'feature/push' WHERE id = :r"),
            {"r": uuid.UUID(branch["repo_id"])},
        )
    refused = await api.post(f"/api/branches/{bid}/push", json={"force_with_lease": True})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error_kind"] == "protected"
    assert _remote(github, "feature/push") == theirs


async def test_transient_push_failures_are_retried(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    github: FakeGitHub,
    token: str,
) -> None:
    branch = await _github_branch(api, token, "feature/flaky")
    sha = await _commit_in_sandbox(provider, branch["id"], {"f.txt": "f\n"}, "add f")
    github.fail_next_git(2, status=503, service="git-receive-pack")
    push = await api.post(f"/api/branches/{branch['id']}/push")
    assert push.status_code == 200, push.text
    assert _remote(github, "feature/flaky") == sha
    failed = [r for r in github.git_requests if r.status == 503]
    assert len(failed) == 2


async def test_merges_and_rebase_report_conflicts_and_leave_the_tree_clean(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    github: FakeGitHub,
    token: str,
) -> None:
    branch = await _github_branch(api, token, "feature/merge")
    bid = branch["id"]
    await _commit_in_sandbox(provider, bid, {"README.md": "ours\n"}, "edit readme here")
    github.commit_to(OWNER, REPO, "main", {"README.md": "theirs\n"}, "edit readme upstream")

    for op in ("merge", "rebase"):
        response = await api.post(f"/api/branches/{bid}/git/{op}")
        assert response.status_code == 409, response.text
        assert response.json()["error_kind"] == "conflict"
        assert response.json()["conflicts"] == ["README.md"]
        assert "README.md" in response.json()["detail"]
        assert await _git_in_sandbox(provider, bid, "status", "--porcelain") == ""
        state = await _git_in_sandbox(provider, bid, "rev-parse", "--git-path", "MERGE_HEAD")
        info = await provider.get(sandbox_name(bid))
        leftover = await provider.exec(
            sandbox_name(bid),
            ["test", "-e", state.strip(), "-o", "-e", ".git/rebase-merge"],
            cwd=info.workdir,
        )
        assert leftover.exit_code != 0, f"{op} left its state behind"

    # Without conflicts: base into branch, then the branch into base on the remote.
    before = (await _git_in_sandbox(provider, bid, "rev-parse", "HEAD^")).strip()
    reset = await api.post(f"/api/branches/{bid}/git/reset", json={"commit": before})
    assert reset.status_code == 200, reset.text
    await _commit_in_sandbox(provider, bid, {"mine.txt": "mine\n"}, "add mine")
    merged = await api.post(
        f"/api/branches/{bid}/git/merge", json={"direction": "base-into-branch"}
    )
    assert merged.status_code == 200, merged.text
    assert "theirs" in await _git_in_sandbox(provider, bid, "show", "HEAD:README.md")
    into_base = await api.post(
        f"/api/branches/{bid}/git/merge", json={"direction": "branch-into-base"}
    )
    assert into_base.status_code == 200, into_base.text
    main = _remote(github, "main")
    assert main is not None
    head = (await _git_in_sandbox(provider, bid, "rev-parse", "HEAD")).strip()
    assert github.git.is_ancestor(OWNER, REPO, head, main)
    assert (await _git_in_sandbox(provider, bid, "branch", "--show-current")).strip() == (
        "feature/merge"
    )


async def test_tag_rename_and_delete_remote(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    github: FakeGitHub,
    token: str,
) -> None:
    branch = await _github_branch(api, token, "feature/old")
    bid = branch["id"]
    sha = await _commit_in_sandbox(provider, bid, {"t.txt": "t\n"}, "add t")
    assert (await api.post(f"/api/branches/{bid}/push")).status_code == 200

    tag = await api.post(f"/api/branches/{bid}/git/tag", json={"name": "v1.0", "message": "one"})
    assert tag.status_code == 200, tag.text
    assert tag.json()["sha"] == sha
    assert github.ref_sha(OWNER, REPO, "refs/tags/v1.0") is not None

    renamed = await api.post(f"/api/branches/{bid}/git/rename", json={"name": "feature/new"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["branch_name"] == "feature/new"
    assert (await api.get(f"/api/branches/{bid}")).json()["name"] == "feature/new"
    assert _remote(github, "feature/new") == sha and _remote(github, "feature/old") is None
    assert (await _git_in_sandbox(provider, bid, "branch", "--show-current")).strip() == (
        "feature/new"
    )

    deleted = await api.post(f"/api/branches/{bid}/git/delete-remote")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "deleted" and _remote(github, "feature/new") is None
    absent = await api.post(f"/api/branches/{bid}/git/delete-remote")
    assert absent.status_code == 200 and absent.json()["status"] == "absent"


async def test_branch_rewrites_wait_for_no_running_turn(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    github: FakeGitHub,
    token: str,
) -> None:
    with FakeModelServer(slow_seconds=30) as model:
        await api.put(
            "/api/me/credentials/anthropic",
            json={"api_key": "sk-ant-test-key-0000", "base_url": model.base_url},
        )
        branch = await _github_branch(api, token, "feature/busy")
        bid = branch["id"]
        sent = await api.post(f"/api/branches/{bid}/messages", json={"content": "think slowly"})
        assert sent.status_code == 202
        await wait_for_status(api, bid, "running")
        busy = await api.post(f"/api/branches/{bid}/git/rebase")
        assert busy.status_code == 409, busy.text
        assert "agent is working" in busy.json()["detail"]
        # Reads don't wait: the diff of a branch mid-turn is available.
        diff = await api.get(f"/api/branches/{bid}/diff")
        assert diff.status_code == 200, diff.text
        assert (await api.post(f"/api/branches/{bid}/stop")).status_code in (200, 202, 204)
