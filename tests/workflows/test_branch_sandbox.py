"""End to end: API → Temporal → a real worker process → real bubblewrap sandboxes.

Covers the fault cases: a sandbox killed from outside, and a worker SIGKILLed and restarted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from db.engine import SessionFactory
from db.models import Event, Sandbox
from sandboxes.base import SandboxStatus
from sandboxes.local import LocalSandboxProvider
from tests.workflows.conftest import WorkerProcess
from tests.workflows.helpers import create_branch, sandbox_gone, wait_for_status
from workflows.ids import branch_workflow_id, sandbox_name

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


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
    branch = await create_branch(api, git_remote)
    ready = await wait_for_status(api, branch["id"], "idle")
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
    stopped = await wait_for_status(api, branch["id"], "stopped", timeout=30)
    assert "unexpectedly" in stopped["status_detail"]
    assert stopped["sandbox"]["state"] == "stopped"
    async with sessions() as session:
        row = await session.scalar(select(Sandbox))
    assert row is not None and row.status == "stopped"

    assert (await api.delete(f"/api/branches/{branch['id']}")).status_code == 204
    await sandbox_gone(provider, name)


async def test_a_killed_worker_loses_nothing(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    settings: Settings,
) -> None:
    branch = await create_branch(api, git_remote)
    worker.kill()  # most likely mid-creation
    worker.start()
    await wait_for_status(api, branch["id"], "idle")
    name = sandbox_name(branch["id"])
    bwrap = _bwrap_pid(settings, branch["id"])

    worker.kill()
    # The sandbox outlives the worker; the workflow is unanswerable, the database still true.
    assert (await provider.get(name)).status is SandboxStatus.STARTED
    during = (await api.get(f"/api/branches/{branch['id']}")).json()
    assert during["status"] == "idle"
    assert during["sandbox"] is None  # no live answer without a worker

    worker.start()
    after = await wait_for_status(api, branch["id"], "idle")
    assert after["sandbox"]["state"] == "started"
    assert _bwrap_pid(settings, branch["id"]) == bwrap  # the same sandbox, not a new one
    async with sessions() as session:
        sandboxes = (await session.scalars(select(Sandbox))).all()
    assert len(sandboxes) == 1

    assert (await api.delete(f"/api/branches/{branch['id']}")).status_code == 204
    await sandbox_gone(provider, name)


async def _listed(env: WorkflowEnvironment, query: str) -> list[str]:
    """Visibility is eventually consistent: poll briefly."""
    ids: list[str] = []
    for _ in range(40):
        ids = [wf.id async for wf in env.client.list_workflows(query)]
        if ids:
            return ids
        await asyncio.sleep(0.25)
    return ids
