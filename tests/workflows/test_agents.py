"""The three real agent CLIs behind one event model, end to end through the API, the workflow
and a bubblewrap sandbox, against the fake model server (which speaks all three protocols)."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from db.engine import SessionFactory
from db.models import Event
from sandboxes.local import LocalSandboxProvider
from tests.fakes.model_server import FakeModelServer
from tests.workflows.conftest import WorkerProcess
from tests.workflows.helpers import create_branch, wait_for_status
from workflows.ids import sandbox_name

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

KEY = "sk-test-key-0000"


@dataclass(frozen=True)
class Agent:
    id: str
    model: str
    provider: str
    api_path: str  # what the provider's base URL ends with


AGENTS = [
    Agent("claude-code", "claude-sonnet-4-5", "anthropic", ""),
    Agent("codex", "gpt-4.1-mini", "openai", "/v1"),
    Agent("opencode", "openai/gpt-4.1-mini", "openai", "/v1"),
]


@pytest.fixture
def model() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


async def _branch(
    api: httpx.AsyncClient, git_remote: Path, model: FakeModelServer, agent: Agent
) -> dict[str, Any]:
    put = await api.put(
        f"/api/me/credentials/{agent.provider}",
        json={"api_key": KEY, "base_url": model.base_url + agent.api_path},
    )
    assert put.status_code == 200, put.text
    branch = await create_branch(api, git_remote)
    patched = await api.patch(
        f"/api/branches/{branch['id']}", json={"agent": agent.id, "model": agent.model}
    )
    assert patched.status_code == 200, patched.text
    await wait_for_status(api, branch["id"], "idle")
    return branch


async def _turn(
    api: httpx.AsyncClient, sessions: SessionFactory, branch_id: str, content: str
) -> list[Event]:
    sent = await api.post(f"/api/branches/{branch_id}/messages", json={"content": content})
    assert sent.status_code == 202, sent.text
    turn_id = uuid.UUID(sent.json()["turn_id"])
    events: list[Event] = []
    for _ in range(900):
        async with sessions() as session:
            events = list(
                await session.scalars(
                    select(Event).where(Event.turn_id == turn_id).order_by(Event.seq)
                )
            )
        if events and events[-1].kind == "done":
            return events
        await asyncio.sleep(0.2)
    raise AssertionError(f"turn did not finish: {[(e.kind, e.payload) for e in events]}")


def _text(events: list[Event]) -> str:
    return "".join(e.payload["content"] for e in events if e.kind == "token")


@pytest.mark.parametrize("agent", AGENTS, ids=[a.id for a in AGENTS])
async def test_write_a_file_then_resume_with_memory(
    agent: Agent,
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch = await _branch(api, git_remote, model, agent)
    first = await _turn(api, sessions, branch["id"], "create the file hello.txt with hi there")
    assert first[-1].payload["status"] == "succeeded", [(e.kind, e.payload) for e in first]
    kinds = [e.kind for e in first]
    assert {"turn-started", "session-id", "tool", "tool-result", "token", "done"} <= set(kinds)
    tool = next(e for e in first if e.kind == "tool")
    result = next(e for e in first if e.kind == "tool-result")
    assert result.payload["tool_call_id"] == tool.payload["tool_call"]["id"]
    name = sandbox_name(branch["id"])
    written = await provider.exec(name, ["cat", "hello.txt"], timeout=30)
    assert written.stdout.strip() == "hi there"
    clean = await provider.exec(name, ["git", "status", "--porcelain"], timeout=30)
    assert clean.stdout == ""

    second = await _turn(api, sessions, branch["id"], "what did I ask before?")
    assert second[-1].payload["status"] == "succeeded"
    assert _text(second).startswith("I see 2 user messages.")


@pytest.mark.parametrize("agent", AGENTS, ids=[a.id for a in AGENTS])
async def test_invalid_key_is_a_clear_error(
    agent: Agent,
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    model.invalid_keys.add(KEY)
    branch = await _branch(api, git_remote, model, agent)
    events = await _turn(api, sessions, branch["id"], "hello")
    assert events[-1].payload["status"] == "failed"
    errors = [e.payload["message"] for e in events if e.kind == "error"]
    assert any("invalid API key" in message for message in errors), errors


@pytest.mark.parametrize("agent", AGENTS, ids=[a.id for a in AGENTS])
async def test_cancel_mid_turn(
    agent: Agent,
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch = await _branch(api, git_remote, model, agent)
    model.slow_seconds = 60
    task = asyncio.create_task(_turn(api, sessions, branch["id"], "take all the time you need"))
    for _ in range(600):
        if any(r.body and r.body.get("tools") for r in model.requests):
            break
        await asyncio.sleep(0.1)
    assert (await api.post(f"/api/branches/{branch['id']}/stop")).status_code == 202
    events = await asyncio.wait_for(task, 60)
    assert events[-1].payload["status"] == "cancelled"
    processes = await provider.exec(sandbox_name(branch["id"]), ["ps", "-eo", "comm="], timeout=30)
    assert agent.id.split("-")[0] not in processes.stdout


async def test_switching_agent_hands_over_the_conversation(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    claude, codex = AGENTS[0], AGENTS[1]
    await api.put(
        f"/api/me/credentials/{codex.provider}",
        json={"api_key": KEY, "base_url": model.base_url + codex.api_path},
    )
    branch = await _branch(api, git_remote, model, claude)
    first = await _turn(api, sessions, branch["id"], "remember the word pineapple")
    assert first[-1].payload["status"] == "succeeded"
    patched = await api.patch(
        f"/api/branches/{branch['id']}", json={"agent": codex.id, "model": codex.model}
    )
    assert patched.status_code == 200
    second = await _turn(api, sessions, branch["id"], "which word?")
    assert second[-1].payload["status"] == "succeeded"
    # The new agent's first request carried the conversation so far.
    responses = [r for r in model.requests if r.path.split("?")[0].endswith("/responses")]
    assert responses and "pineapple" in str(responses[0].body)
