"""Agent turns end to end: the real `claude` binary in a bubblewrap sandbox, driven by a
worker process, against the scripted fake model server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from db.engine import SessionFactory
from db.models import Event, Message, Turn
from sandboxes.local import LocalSandboxProvider
from tests.fakes.model_server import FakeModelServer, message_text, user_messages
from tests.workflows.conftest import WorkerProcess
from tests.workflows.helpers import create_branch, model_called, wait_for_status
from workflows.ids import branch_workflow_id, sandbox_name

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@pytest.fixture
def model() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


async def _ready_branch(
    api: httpx.AsyncClient, git_remote: Path, model: FakeModelServer
) -> dict[str, Any]:
    put = await api.put(
        "/api/me/credentials/anthropic",
        json={"api_key": "sk-ant-test-key-0000", "base_url": model.base_url},
    )
    assert put.status_code == 200, put.text
    branch = await create_branch(api, git_remote)
    await wait_for_status(api, branch["id"], "idle")
    return branch


async def _send(api: httpx.AsyncClient, branch_id: str, content: str, **extra: Any) -> str:
    response = await api.post(
        f"/api/branches/{branch_id}/messages", json={"content": content, **extra}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["turn_id"])


async def _turn_events(sessions: SessionFactory, turn_id: str, timeout: float = 120) -> list[Event]:
    """The turn's events once its `done` event is stored."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with sessions() as session:
            events = list(
                await session.scalars(
                    select(Event).where(Event.turn_id == uuid.UUID(turn_id)).order_by(Event.seq)
                )
            )
        if events and events[-1].kind == "done":
            return events
        await asyncio.sleep(0.2)
    raise AssertionError(f"turn {turn_id} did not finish: {[e.kind for e in events]}")


async def test_a_turn_writes_a_file_commits_it_and_resumes_the_session(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch = await _ready_branch(api, git_remote, model)
    turn_id = await _send(api, branch["id"], "create the file hello.txt with hi there")
    events = await _turn_events(sessions, turn_id)

    kinds = [e.kind for e in events]
    assert kinds[0] == "turn-started"
    assert "session-id" in kinds
    tool = next(e for e in events if e.kind == "tool")
    result = next(e for e in events if e.kind == "tool-result")
    assert tool.payload["tool_call"]["tool"] == "write"
    assert result.payload["tool_call_id"] == tool.payload["tool_call"]["id"]
    assert kinds.index("tool") < kinds.index("tool-result") < kinds.index("done")
    assert "".join(e.payload["content"] for e in events if e.kind == "token").strip() == "Done."
    assert events[-1].payload == {"turn_id": turn_id, "status": "succeeded", "finished": False}
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    stream = await api.get(f"/api/branches/{branch['id']}/events", params={"follow": "false"})
    frames = [f for f in stream.text.split("\n\n") if f.startswith("id: ")]
    streamed = [tuple(line.split(": ", 1)[1] for line in f.splitlines()[:2]) for f in frames]
    turn_ids = {str(e.seq) for e in events}
    turn_frames = [(seq, kind) for seq, kind in streamed if seq in turn_ids]
    assert turn_frames == [(str(e.seq), e.kind) for e in events]  # same events, same order
    transcript = (await api.get(f"/api/branches/{branch['id']}/messages")).json()["messages"]
    assert [m["role"] for m in transcript] == ["user", "assistant"]
    blocks = transcript[1]["blocks"]
    assert blocks[0]["type"] == "tool_call" and blocks[0]["result"]["is_error"] is False
    assert blocks[-1] == {"type": "text", "text": "Done."}

    name = sandbox_name(branch["id"])
    content = await provider.exec(name, ["cat", "hello.txt"], timeout=30)
    assert content.stdout == "hi there"
    log = await provider.exec(name, ["git", "log", "-1", "--format=%H%n%B"], timeout=30)
    sha = log.stdout.splitlines()[0]
    assert f"Upstream-Turn: {turn_id}" in log.stdout
    status = await provider.exec(name, ["git", "status", "--porcelain"], timeout=30)
    assert status.stdout == ""
    async with sessions() as session:
        reply = await session.scalar(
            select(Message).where(
                Message.turn_id == uuid.UUID(turn_id), Message.role == "assistant"
            )
        )
        first = await session.get(Turn, uuid.UUID(turn_id))
    assert reply is not None and reply.commit_sha == sha and reply.content.strip() == "Done."
    assert first is not None and first.status == "succeeded" and first.agent_session_id

    second_id = await _send(api, branch["id"], "what did I ask before?")
    second = await _turn_events(sessions, second_id)
    assert second[-1].payload["status"] == "succeeded"
    text = "".join(e.payload["content"] for e in second if e.kind == "token")
    assert text.startswith("I see 2 user messages.")
    last = model.message_requests()[-1].body
    said = [message_text(m) for m in user_messages(last)]
    assert any("create the file hello.txt" in s for s in said)  # the model saw turn one
    async with sessions() as session:
        resumed = await session.get(Turn, uuid.UUID(second_id))
    assert resumed is not None and resumed.agent_session_id == first.agent_session_id


async def test_prompts_are_data_and_bad_ones_change_nothing(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch = await _ready_branch(api, git_remote, model)
    url = f"/api/branches/{branch['id']}/messages"
    for content in ("", "   \n", "x" * (256 * 1024 + 1)):
        response = await api.post(url, json={"content": content})
        assert response.status_code == 422, len(content)
    async with sessions() as session:
        assert (await session.scalars(select(Message))).all() == []

    tricky = (
        'it\'s "quoted" $(touch /tmp/pwned) `id` $HOME \\n\nsecond line ünïcødé 🚀 ; rm -rf / #'
    )
    turn_id = await _send(api, branch["id"], tricky)
    events = await _turn_events(sessions, turn_id)
    assert events[-1].payload["status"] == "succeeded"
    said = [message_text(user_messages(r.body)[-1]) for r in model.message_requests()]
    assert tricky in said
    assert not Path("/tmp/pwned").exists()


async def test_same_idempotency_key_makes_one_turn_and_messages_queue_in_order(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch = await _ready_branch(api, git_remote, model)
    model.slow_seconds = 2
    first = await _send(api, branch["id"], "first message", idempotency_key="k-1")
    again = await _send(api, branch["id"], "first message", idempotency_key="k-1")
    assert again == first
    queued = [await _send(api, branch["id"], f"message {n}") for n in (2, 3)]
    for turn_id in (first, *queued):
        done = await _turn_events(sessions, turn_id)
        assert done[-1].payload["status"] == "succeeded"
    async with sessions() as session:
        turns = list(await session.scalars(select(Turn).order_by(Turn.started_at)))
    assert [str(t.id) for t in turns] == [first, *queued]
    prompts = [
        message_text(user_messages(r.body)[-1])
        for r in model.message_requests()
        if r.body.get("tools")
    ]
    assert prompts == ["first message", "message 2", "message 3"]


async def test_stop_cancels_the_running_turn_and_leaves_no_agent(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch = await _ready_branch(api, git_remote, model)
    model.slow_seconds = 30
    turn_id = await _send(api, branch["id"], "take your time")
    await model_called(model)
    stopped = await api.post(f"/api/branches/{branch['id']}/stop")
    assert stopped.status_code == 202
    events = await _turn_events(sessions, turn_id, timeout=40)
    assert events[-1].payload["status"] == "cancelled"
    processes = await provider.exec(sandbox_name(branch["id"]), ["ps", "-eo", "comm="], timeout=30)
    assert "claude" not in processes.stdout
    await wait_for_status(api, branch["id"], "idle")


async def test_a_worker_killed_mid_turn_loses_and_repeats_nothing(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    settings: Settings,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch = await _ready_branch(api, git_remote, model)
    model.slow_seconds = 6
    prompt = "tell me a slow story"
    turn_id = await _send(api, branch["id"], prompt)
    await model_called(model)
    await asyncio.sleep(1.5)  # some tokens are stored by now
    worker.kill()
    worker.start()
    events = await _turn_events(sessions, turn_id, timeout=120)
    assert events[-1].payload["status"] == "succeeded"

    launches = [
        r
        for r in model.message_requests()
        if r.body.get("tools") and message_text(user_messages(r.body)[-1]) == prompt
    ]
    assert len(launches) == 1  # the agent ran once: the retried activity re-attached
    keys = [(e.line_no, e.part) for e in events]
    assert len(keys) == len(set(keys))
    async with sessions() as session:
        seqs = list(
            await session.scalars(
                select(Event.seq)
                .where(Event.branch_id == uuid.UUID(branch["id"]))
                .order_by(Event.seq)
            )
        )
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate
    text = "".join(e.payload["content"] for e in events if e.kind == "token")
    assert text == f"I see 1 user messages. You said: {prompt}"


async def test_secrets_stay_out_of_process_lists_files_and_history(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
) -> None:
    branch = await _ready_branch(api, git_remote, model)
    model.slow_seconds = 4
    turn_id = await _send(api, branch["id"], "hello there")
    await model_called(model)
    key = "sk-ant-test-key-0000"
    name = sandbox_name(branch["id"])
    inside = await provider.exec(name, ["ps", "-eo", "args"], timeout=30)
    host = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert key not in inside.stdout and key not in host.stdout
    assert model.message_requests()[0].headers.get("x-api-key") == key  # it did reach the agent
    env_file = await provider.exec(
        name, ["test", "-e", f"/home/agent/.upstream/turns/{turn_id}/env"], timeout=30
    )
    assert env_file.exit_code == 1  # read once by the runner, then removed
    await _turn_events(sessions, turn_id)
    handle = temporal_env.client.get_workflow_handle(branch_workflow_id(branch["id"]))
    history = (await handle.fetch_history()).to_json()
    assert key not in history and "hello there" not in history  # ids only, never content
    logs = "".join(p.read_text() for p in settings.data_dir.parent.glob("*.log"))
    assert key not in logs


async def test_an_agent_that_vanishes_ends_the_turn_with_an_error(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
) -> None:
    branch = await _ready_branch(api, git_remote, model)
    model.slow_seconds = 30
    turn_id = await _send(api, branch["id"], "this will not end well")
    await model_called(model)
    name = sandbox_name(branch["id"])
    pgid = await provider.exec(
        name, ["cat", f"/home/agent/.upstream/turns/{turn_id}/pgid"], timeout=30
    )
    # SIGKILL the whole group, runner included: no exit code is ever written.
    await provider.exec(name, ["kill", "-KILL", "--", f"-{pgid.stdout.strip()}"], timeout=30)
    events = await _turn_events(sessions, turn_id, timeout=60)
    assert events[-1].payload["status"] == "failed"
    errors = [e.payload["message"] for e in events if e.kind == "error"]
    assert any("vanished" in message for message in errors), errors


async def test_the_turn_time_limit_is_enforced(
    api: httpx.AsyncClient,
    worker: WorkerProcess,
    provider: LocalSandboxProvider,
    git_remote: Path,
    sessions: SessionFactory,
    model: FakeModelServer,
    settings: Settings,
    tmp_path: Path,
) -> None:
    worker.stop()
    limited = WorkerProcess(
        settings.model_copy(update={"turn_timeout_seconds": 3.0}), tmp_path / "limited.log"
    )
    limited.start()
    try:
        branch = await _ready_branch(api, git_remote, model)
        model.slow_seconds = 60
        turn_id = await _send(api, branch["id"], "never finishes in time")
        events = await _turn_events(sessions, turn_id, timeout=60)
        assert events[-1].payload["status"] == "failed"
        errors = [e.payload["message"] for e in events if e.kind == "error"]
        assert any("time limit" in message for message in errors), errors
        processes = await provider.exec(
            sandbox_name(branch["id"]), ["ps", "-eo", "comm="], timeout=30
        )
        assert "claude" not in processes.stdout
    finally:
        limited.stop()
