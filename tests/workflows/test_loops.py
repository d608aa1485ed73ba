"""Loop mode end to end: the real `claude` binary, a worker process, the fake model scripted
to answer FINISHED on a chosen iteration."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from db.engine import SessionFactory
from db.models import Event, Message, Turn
from tests.fakes.model_server import FakeModelServer
from tests.workflows.conftest import WorkerProcess
from tests.workflows.helpers import create_branch, model_called, wait_for_status

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

CONTINUATION = (
    "If you have finished all tasks, respond with just the phrase FINISHED. "
    "Otherwise, continue working on the remaining tasks."
)


@pytest.fixture
def model() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


async def _branch(api: httpx.AsyncClient, git_remote: Path, model: FakeModelServer) -> str:
    put = await api.put(
        "/api/me/credentials/anthropic",
        json={"api_key": "sk-ant-test-key-0000", "base_url": model.base_url},
    )
    assert put.status_code == 200
    branch = await create_branch(api, git_remote)
    await wait_for_status(api, branch["id"], "idle")
    return str(branch["id"])


async def _start(api: httpx.AsyncClient, branch_id: str, **body: Any) -> dict[str, Any]:
    response = await api.post(f"/api/branches/{branch_id}/loops", json={"prompt": "go", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _ended(api: httpx.AsyncClient, loop_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    body: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        body = (await api.get(f"/api/loops/{loop_id}")).json()
        if body["status"] == "completed":
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"loop did not end: {body}")


async def _loop_turns(sessions: SessionFactory, loop_id: str) -> list[tuple[Turn, Message]]:
    async with sessions() as session:
        rows = await session.execute(
            select(Turn, Message)
            .join(Message, Message.id == Turn.message_id)
            .where(Turn.loop_id == uuid.UUID(loop_id))
            .order_by(Turn.started_at)
        )
        return [(turn, message) for turn, message in rows]


async def _loop_events(sessions: SessionFactory, loop_id: str) -> list[dict[str, Any]]:
    async with sessions() as session:
        events = await session.scalars(
            select(Event).where(Event.kind == "loop").order_by(Event.seq)
        )
        return [e.payload for e in events if e.payload["loop_id"] == loop_id]


async def test_loop_runs_until_the_agent_says_finished(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
    temporal_env: WorkflowEnvironment,
) -> None:
    branch_id = await _branch(api, git_remote, model)
    model.finish_after = 3
    started = await _start(api, branch_id, max_iterations=10)
    second = await api.post(f"/api/branches/{branch_id}/loops", json={"prompt": "again"})
    assert second.status_code == 409  # one active loop per branch
    ended = await _ended(api, started["id"])
    assert (ended["stop_reason"], ended["iterations"]) == ("finished", 3)
    turns = await _loop_turns(sessions, started["id"])
    assert [m.content for _, m in turns] == ["go", CONTINUATION, CONTINUATION]
    assert all(t.status == "succeeded" for t, _ in turns)
    phases = [(e["phase"], e["iteration"]) for e in await _loop_events(sessions, started["id"])]
    assert phases == [
        ("started", 0),
        ("iteration", 1),
        ("iteration", 2),
        ("iteration", 3),
        ("stopped", 3),
    ]
    branch = (await api.get(f"/api/branches/{branch_id}")).json()
    assert branch["loop"]["stop_reason"] == "finished"
    # Loop runs are listed in the Temporal UI by branch, kind and status.
    query = f"BranchId = '{branch_id}' AND WorkflowKind = 'loop' AND LoopStatus = 'completed'"
    listed: list[str] = []
    for _ in range(40):
        listed = [wf.id async for wf in temporal_env.client.list_workflows(query)]
        if listed:
            break
        await asyncio.sleep(0.25)
    assert listed == [f"loop-{started['id']}"]


async def test_cap_and_budget_end_a_loop(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch_id = await _branch(api, git_remote, model)
    model.finish_after = 1000  # never says FINISHED
    capped = await _ended(api, (await _start(api, branch_id, max_iterations=2))["id"])
    assert (capped["stop_reason"], capped["iterations"]) == ("max_iterations", 2)
    budget = await _ended(api, (await _start(api, branch_id, budget_tokens=1))["id"])
    assert (budget["stop_reason"], budget["iterations"]) == ("budget_tokens", 1)
    assert budget["tokens_used"] >= 1


async def test_stop_mid_turn_ends_the_loop(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch_id = await _branch(api, git_remote, model)
    model.slow_seconds = 30
    started = await _start(api, branch_id)
    await model_called(model)
    assert (await api.post(f"/api/loops/{started['id']}/stop")).status_code == 202
    ended = await _ended(api, started["id"], timeout=60)
    assert ended["stop_reason"] == "stopped"
    [(turn, _)] = await _loop_turns(sessions, started["id"])
    assert turn.status == "cancelled"


async def test_a_message_during_the_loop_steers_the_next_iteration(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch_id = await _branch(api, git_remote, model)
    model.slow_seconds = 3
    model.finish_after = 3
    started = await _start(api, branch_id)
    await model_called(model)
    steer = await api.post(
        f"/api/branches/{branch_id}/messages", json={"content": "change of plan"}
    )
    assert steer.status_code == 202
    assert steer.json()["loop_id"] == started["id"]
    ended = await _ended(api, started["id"])
    assert ended["stop_reason"] == "finished"
    turns = await _loop_turns(sessions, started["id"])
    assert [m.content for _, m in turns] == ["go", "change of plan", CONTINUATION]
    transcript = (await api.get(f"/api/branches/{branch_id}/messages")).json()["messages"]
    assert "change of plan" in [m.get("content") for m in transcript if m["role"] == "user"]


async def test_loop_enabled_makes_the_next_message_a_loop(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch_id = await _branch(api, git_remote, model)
    model.finish_after = 2
    patched = await api.patch(
        f"/api/branches/{branch_id}", json={"loop_enabled": True, "loop_max_iterations": 5}
    )
    assert patched.status_code == 200
    sent = await api.post(f"/api/branches/{branch_id}/messages", json={"content": "build it"})
    assert sent.status_code == 202 and sent.json()["loop_id"]
    ended = await _ended(api, sent.json()["loop_id"])
    assert (ended["stop_reason"], ended["iterations"], ended["max_iterations"]) == (
        "finished",
        2,
        5,
    )


async def test_a_worker_killed_mid_loop_loses_and_repeats_no_iteration(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch_id = await _branch(api, git_remote, model)
    model.slow_seconds = 2
    model.finish_after = 4
    started = await _start(api, branch_id)
    await model_called(model, times=2)
    worker.kill()
    await asyncio.sleep(1)
    worker.start()
    ended = await _ended(api, started["id"], timeout=240)
    assert (ended["stop_reason"], ended["iterations"]) == ("finished", 4)
    turns = await _loop_turns(sessions, started["id"])
    assert len(turns) == 4 and all(t.status == "succeeded" for t, _ in turns)
    phases = [(e["phase"], e["iteration"]) for e in await _loop_events(sessions, started["id"])]
    assert phases == [("started", 0)] + [("iteration", n) for n in (1, 2, 3, 4)] + [("stopped", 4)]


async def test_the_branch_stop_also_ends_its_loop(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch_id = await _branch(api, git_remote, model)
    model.slow_seconds = 30
    started = await _start(api, branch_id, budget_seconds=600)
    await model_called(model)
    assert (await api.post(f"/api/branches/{branch_id}/stop")).status_code == 202
    ended = await _ended(api, started["id"], timeout=60)
    assert (ended["stop_reason"], ended["iterations"]) == ("stopped", 1)
    [(turn, _)] = await _loop_turns(sessions, started["id"])
    assert turn.status == "cancelled"
