"""Providers under test. Every provider must pass tests/sandboxes/test_contract.py.

To add one (e.g. a Daytona provider against a fake server), add a param to `provider`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from sandboxes.base import SandboxInfo, SandboxProvider, SandboxSpec
from sandboxes.local import LocalSandboxProvider


def bwrap_skip_reason() -> str | None:
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    if os.geteuid() != 0:
        return "bubblewrap sandboxes need root (nsenter)"
    return None


@pytest.fixture(params=["local-bwrap", "local-unsafe"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> SandboxProvider:
    if request.param == "local-bwrap":
        reason = bwrap_skip_reason()
        if reason is not None:
            pytest.skip(reason)
        return LocalSandboxProvider(tmp_path / "sandboxes")
    return LocalSandboxProvider(tmp_path / "sandboxes", unsafe=True)


SandboxFactory = Callable[..., Awaitable[SandboxInfo]]


@pytest.fixture
async def make_sandbox(provider: SandboxProvider) -> AsyncIterator[SandboxFactory]:
    """Create sandboxes that are deleted (processes and files) after the test."""
    created: list[str] = []

    async def make(
        env: dict[str, str] | None = None, readonly_mounts: tuple[str, ...] = ()
    ) -> SandboxInfo:
        sandbox_id = f"test-{uuid.uuid4().hex[:12]}"
        created.append(sandbox_id)
        spec = SandboxSpec(sandbox_id, env=env or {}, readonly_mounts=readonly_mounts)
        return await provider.create(spec)

    yield make
    for sandbox_id in created:
        await provider.delete(sandbox_id)


@pytest.fixture
async def sandbox(make_sandbox: SandboxFactory) -> SandboxInfo:
    return await make_sandbox(env={"SPEC_VAR": "from spec"})


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def pid_alive(provider: SandboxProvider, sandbox_id: str, pid: int) -> bool:
    """Whether `pid` (as seen inside the sandbox) is a live process; zombies count as dead."""
    script = 'set -- $(cat "/proc/$1/stat" 2>/dev/null) ; [ -n "$3" ] && [ "$3" != Z ]'
    result = await provider.exec(sandbox_id, ["sh", "-c", script, "sh", str(pid)])
    return result.exit_code == 0
