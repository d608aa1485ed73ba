"""A loop run survives a restart of the Temporal server (same database file) and of the API:
it completes with no iteration lost or repeated."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from api.app import create_app
from config.settings import Settings
from db.engine import SessionFactory
from db.models import LoopRun
from sandboxes.local import LocalSandboxProvider
from stack.temporal import TemporalDevServer
from tests.conftest import free_port
from tests.fakes.model_server import FakeModelServer
from tests.workflows.conftest import WorkerProcess
from tests.workflows.helpers import create_branch, wait_for_status
from tests.workflows.test_loops import _ended, _loop_events, _loop_turns

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@asynccontextmanager
async def _api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh API instance, as after a restart of its process."""
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as client,
    ):
        yield client


async def _iterations(sessions: SessionFactory, loop_id: str) -> int:
    async with sessions() as session:
        run = await session.scalar(select(LoopRun).where(LoopRun.id == uuid.UUID(loop_id)))
    return run.iterations if run else 0


async def test_a_loop_survives_temporal_and_api_restarts(
    settings: Settings,
    tmp_path: Path,
    git_remote: Path,
    sessions: SessionFactory,
    provider: LocalSandboxProvider,
    clean_db: None,
) -> None:
    temporal_dir = tmp_path / "temporal"
    temporal_dir.mkdir()
    server = TemporalDevServer(
        temporal_dir, port=free_port(), ui_port=None, log_path=temporal_dir / "server.log"
    )
    server.start()
    settings = settings.model_copy(update={"temporal_address": server.address})
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        with FakeModelServer() as model:
            model.slow_seconds = 1.5
            model.finish_after = 4
            async with _api(settings) as api:
                await api.put(
                    "/api/me/credentials/anthropic",
                    json={"api_key": "sk-ant-test-key-0000", "base_url": model.base_url},
                )
                branch = await create_branch(api, git_remote)
                await wait_for_status(api, branch["id"], "idle")
                started = await api.post(
                    f"/api/branches/{branch['id']}/loops", json={"prompt": "go"}
                )
                assert started.status_code == 201, started.text
                loop_id = started.json()["id"]
            # The API is gone now; the loop goes on without it.
            for _ in range(600):
                if await _iterations(sessions, loop_id) >= 1:
                    break
                await asyncio.sleep(0.1)
            server.stop()
            await asyncio.sleep(2)
            server.start()
            async with _api(settings) as api:
                ended = await _ended(api, loop_id, timeout=240)
        assert (ended["stop_reason"], ended["iterations"]) == ("finished", 4)
        turns = await _loop_turns(sessions, loop_id)
        assert len(turns) == 4 and all(t.status == "succeeded" for t, _ in turns)
        phases = [(e["phase"], e["iteration"]) for e in await _loop_events(sessions, loop_id)]
        assert phases == [("started", 0)] + [("iteration", n) for n in (1, 2, 3, 4)] + [
            ("stopped", 4)
        ]
    finally:
        worker.stop()
        server.stop()
