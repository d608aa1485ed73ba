"""End to end: API → Temporal → a real worker process → real bubblewrap sandboxes.

Covers the fault cases: a sandbox killed from outside, and a worker SIGKILLed and restarted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from db.engine import SessionFactory
from db.models import Event, Sandbox
from sandboxes.base import SandboxNotFound, SandboxStatus
from sandboxes.local import LocalSandboxProvider
from workflows.ids import branch_workflow_id, sandbox_name

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`upstream worker` as a child process, so it can be SIGKILLed like a crashed host."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self._env = {
            **os.environ,
            "DATABASE_URL": settings.require_database_url(),
            "TEMPORAL_ADDRESS": settings.require_temporal_address(),
            "UPSTREAM_DATA_DIR": str(settings.data_dir),
            "UPSTREAM_TASK_QUEUE": settings.task_queue,
            "ENCRYPTION_KEY": settings.encryption_key.get_secret_value()
            if settings.encryption_key
            else "",
        }
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "worker"],
                cwd=ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """A task queue and data dir of this test's own: no other test's workflows reach its worker."""
    return settings.model_copy(
        update={"task_queue": f"tq-{uuid.uuid4()}", "data_dir": tmp_path / "data"}
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(settings, tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def provider(settings: Settings) -> AsyncIterator[LocalSandboxProvider]:
    provider = LocalSandboxProvider(settings.sandboxes_dir)
    yield provider
    if settings.sandboxes_dir.exists():
        for entry in settings.sandboxes_dir.iterdir():
            if not entry.name.startswith("."):  # the provider's own bookkeeping
                await provider.delete(entry.name)


async def _wait_for(
    api: httpx.AsyncClient, branch_id: str, status: str, timeout: float = 90, live: bool = True
) -> dict[str, Any]:
    """Until the branch has `status`; with `live`, as answered by the workflow itself."""
    deadline = asyncio.get_running_loop().time() + timeout
    body: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        body = (await api.get(f"/api/branches/{branch_id}")).json()
        if body.get("status") == status and (body.get("sandbox") or not live):
            return body
        await asyncio.sleep(0.25)
    raise AssertionError(f"branch never reached {status!r}; last seen {body}")


async def _create_branch(api: httpx.AsyncClient, git_remote: Path) -> dict[str, Any]:
    repo = await api.post("/api/repos", json={"url": str(git_remote)})
    assert repo.status_code == 201, repo.text
    branch = await api.post(
        f"/api/repos/{repo.json()['id']}/branches", json={"name": "feature/e2e"}
    )
    assert branch.status_code == 201, branch.text
    return dict(branch.json())


def _bwrap_pid(settings: Settings, branch_id: str) -> int:
    state = settings.sandboxes_dir / sandbox_name(branch_id) / ".state" / "pids.json"
    return int(json.loads(state.read_text())["payload"][0])


async def test_branch_gets_a_sandbox_with_the_repo_on_the_new_branch(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    settings: Settings,
    temporal_env: WorkflowEnvironment,
) -> None:
    branch = await _create_branch(api, git_remote)
    ready = await _wait_for(api, branch["id"], "idle")
    assert ready["sandbox"]["state"] == "started"
    assert ready["sandbox"]["auto_stop_seconds"] == 600

    name = sandbox_name(branch["id"])
    info = await provider.get(name)
    assert info.status is SandboxStatus.STARTED
    current = await provider.exec(name, ["git", "branch", "--show-current"], timeout=30)
    assert current.stdout.strip() == "feature/e2e"
    readme = await provider.exec(name, ["cat", "README.md"], timeout=30)
    assert readme.stdout == "hello\n"
    async with sessions() as session:
        row = await session.scalar(select(Sandbox))
        statuses = [e.payload["status"] for e in await session.scalars(select(Event))]
    assert row is not None and row.status == "started" and row.workdir == info.workdir
    assert statuses == ["idle"]
    # Operators find branches in the Temporal UI by owner, repo and status.
    query = (
        f"OwnerId = '{row.user_id}' AND RepoId = '{branch['repo_id']}' "
        f"AND BranchStatus = 'idle' AND WorkflowKind = 'branch'"
    )
    assert await _listed(temporal_env, query) == [branch_workflow_id(branch["id"])]

    # Killed from outside: the branch must not keep claiming a running sandbox.
    os.kill(_bwrap_pid(settings, branch["id"]), signal.SIGKILL)
    stopped = await _wait_for(api, branch["id"], "stopped", timeout=30)
    assert "unexpectedly" in stopped["status_detail"]
    assert stopped["sandbox"]["state"] == "stopped"
    async with sessions() as session:
        row = await session.scalar(select(Sandbox))
    assert row is not None and row.status == "stopped"

    assert (await api.delete(f"/api/branches/{branch['id']}")).status_code == 204
    await _gone(provider, name)


async def _listed(env: WorkflowEnvironment, query: str) -> list[str]:
    """Visibility is eventually consistent: poll briefly."""
    ids: list[str] = []
    for _ in range(40):
        ids = [wf.id async for wf in env.client.list_workflows(query)]
        if ids:
            return ids
        await asyncio.sleep(0.25)
    return ids


async def _gone(provider: LocalSandboxProvider, name: str) -> None:
    for _ in range(120):
        try:
            await provider.get(name)
        except SandboxNotFound:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"sandbox {name} was not deleted")


async def test_a_killed_worker_loses_nothing(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    settings: Settings,
) -> None:
    branch = await _create_branch(api, git_remote)
    worker.kill()  # most likely mid-creation
    worker.start()
    await _wait_for(api, branch["id"], "idle")
    name = sandbox_name(branch["id"])
    bwrap = _bwrap_pid(settings, branch["id"])

    worker.kill()
    # The sandbox outlives the worker; the workflow is unanswerable, the database still true.
    assert (await provider.get(name)).status is SandboxStatus.STARTED
    during = (await api.get(f"/api/branches/{branch['id']}")).json()
    assert during["status"] == "idle"
    assert during["sandbox"] is None  # no live answer without a worker

    worker.start()
    after = await _wait_for(api, branch["id"], "idle")
    assert after["sandbox"]["state"] == "started"
    assert _bwrap_pid(settings, branch["id"]) == bwrap  # the same sandbox, not a new one
    async with sessions() as session:
        sandboxes = (await session.scalars(select(Sandbox))).all()
    assert len(sandboxes) == 1

    assert (await api.delete(f"/api/branches/{branch['id']}")).status_code == 204
    await _gone(provider, name)
