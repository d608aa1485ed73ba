"""Polling helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from sandboxes.base import SandboxNotFound
from sandboxes.local import LocalSandboxProvider
from tests.fakes.model_server import FakeModelServer


async def wait_for_status(
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


async def create_branch(api: httpx.AsyncClient, git_remote: Path) -> dict[str, Any]:
    repo = await api.post("/api/repos", json={"url": str(git_remote)})
    assert repo.status_code == 201, repo.text
    branch = await api.post(
        f"/api/repos/{repo.json()['id']}/branches", json={"name": "feature/e2e"}
    )
    assert branch.status_code == 201, branch.text
    return dict(branch.json())


async def sandbox_gone(provider: LocalSandboxProvider, name: str) -> None:
    for _ in range(120):
        try:
            await provider.get(name)
        except SandboxNotFound:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"sandbox {name} was not deleted")


async def model_called(model: FakeModelServer, times: int = 1, timeout: float = 60) -> None:
    """Until the agent has sent `times` messages requests to the fake model."""
    for _ in range(int(timeout * 10)):
        if len(model.message_requests()) >= times:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the agent called the model fewer than {times} times")
