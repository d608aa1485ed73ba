"""The real `codex` binary, run from plan()'s argv/env/stdin/files against the fake model server.

Plain subprocesses (no sandbox); HOME, CODEX_HOME and the repo live in a temp dir. Skipped when
the binary is not installed and cannot be installed (no npm, registry unreachable).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.base import ERROR, TOOL, AgentEvent, TurnOutcome
from agents.codex import PACKAGE, CodexAdapter
from agents.tools import ToolInstallError, installed_prefix
from tests.agents.claude_run import tools_dir
from tests.agents.codex_run import API_KEY, KNOWN_MODEL, Turn, Workspace, install_codex, run_turn
from tests.fakes.model_server import FakeModelServer, RecordedRequest
from tests.fakes.openai_responses import user_texts


@pytest.fixture(scope="module")
def codex_prefix() -> Path:
    found = installed_prefix(tools_dir(), PACKAGE)
    if found is not None:
        return found
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH, so @openai/codex cannot be installed")
    try:
        return asyncio.run(install_codex())
    except ToolInstallError as exc:
        pytest.skip(f"could not install @openai/codex from npm: {exc}")


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fake:
        yield fake


def url(server: FakeModelServer) -> str:
    return f"{server.base_url}/v1"  # OpenAI base URLs include the version path


def parse(turn: Turn, base_url: str) -> tuple[list[AgentEvent], TurnOutcome]:
    parser = CodexAdapter().new_parser(base_url=base_url)
    events = [event for line in turn.lines for event in parser.feed(line)]
    trailing, outcome = parser.finish(turn.exit_code)
    return events + trailing, outcome


def responses(server: FakeModelServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.method == "POST" and r.path == "/v1/responses"]


def body(request: RecordedRequest) -> dict[str, Any]:
    assert isinstance(request.body, dict)
    return request.body


def test_writes_a_file_then_resumes_with_history(
    codex_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    space = Workspace.create(tmp_path)
    first_prompt = "create the file hello.txt with hello from e2e"
    first = run_turn(space, codex_prefix, first_prompt, base_url=url(server))
    events, outcome = parse(first, url(server))
    assert outcome.succeeded, (outcome.error, first.lines[-3:])
    assert (space.workdir / "hello.txt").read_text() == "hello from e2e"
    assert [e.payload["tool_call"]["tool"] for e in events if e.kind == TOOL] == ["shell"]
    assert outcome.final_text == "Done."
    assert outcome.session_id
    # The key travels only as the provider's bearer token, named by config.toml's env_key.
    assert {r.headers["authorization"] for r in responses(server)} == {f"Bearer {API_KEY}"}
    assert API_KEY not in " ".join([*first.plan.argv, *first.plan.files.values()])

    second = run_turn(
        space, codex_prefix, "and now?", base_url=url(server), resume=outcome.session_id
    )
    _, resumed = parse(second, url(server))
    assert resumed.succeeded, (resumed.error, second.lines[-3:])
    assert resumed.session_id == outcome.session_id
    assert resumed.final_text == "I see 2 user messages. You said: and now?"
    assert user_texts(body(responses(server)[-1])) == [first_prompt, "and now?"]


def test_apply_patch_becomes_a_write(
    codex_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    space = Workspace.create(tmp_path)
    prompt = "patch the file notes.md with one\ntwo"
    turn = run_turn(space, codex_prefix, prompt, base_url=url(server), model=KNOWN_MODEL)
    events, outcome = parse(turn, url(server))
    assert outcome.succeeded, (outcome.error, turn.lines[-3:])
    assert (space.workdir / "notes.md").read_text() == "one\ntwo\n"
    [call] = [e.payload["tool_call"] for e in events if e.kind == TOOL]
    assert call["tool"] == "write"
    assert call["input"]["file_path"] == str(space.workdir / "notes.md")


@pytest.mark.parametrize(
    "prompt",
    [
        '  it\'s "quoted" $(touch /tmp/pwned) `id` $HOME \\n ${X:-y} | ; & > <\n'
        "-- --help\n\ttabs, ünïcødé, emoji 🚀, 中文, NUL-free\r\nend\n\n",
        "x" * 200_000 + "\n(past the 128 KB single-argument limit)",
    ],
    ids=["shell-metacharacters", "200KB"],
)
def test_prompt_reaches_the_model_byte_for_byte(
    codex_prefix: Path, server: FakeModelServer, tmp_path: Path, prompt: str
) -> None:
    space = Workspace.create(tmp_path)
    turn = run_turn(space, codex_prefix, prompt, base_url=url(server))
    _, outcome = parse(turn, url(server))
    assert outcome.succeeded, (outcome.error, turn.lines[-3:])
    [request] = responses(server)
    assert user_texts(body(request)) == [prompt]
    assert not Path("/tmp/pwned").exists()


def test_system_prompt_is_a_developer_message(
    codex_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    space = Workspace.create(tmp_path)
    rules = "Always answer in French.\n'$(quotes)' \"survive\" too."
    turn = run_turn(space, codex_prefix, "hi", base_url=url(server), system_prompt=rules)
    _, outcome = parse(turn, url(server))
    assert outcome.succeeded, (outcome.error, turn.lines[-3:])
    [request] = responses(server)
    developer = [
        part["text"]
        for item in body(request)["input"]
        if item.get("role") == "developer"
        for part in item["content"]
    ]
    assert rules in developer
    assert any("Codex" in text for text in developer)  # codex's own instructions stay


def test_invalid_key_is_a_clear_error(
    codex_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    space = Workspace.create(tmp_path)
    server.invalid_keys.add("sk-revoked")
    turn = run_turn(space, codex_prefix, "hi", base_url=url(server), api_key="sk-revoked")
    events, outcome = parse(turn, url(server))
    assert turn.exit_code == 1
    assert not outcome.succeeded
    assert outcome.error is not None
    assert outcome.error.startswith("invalid API key (unexpected status 401 Unauthorized")
    assert [e.payload for e in events if e.kind == ERROR] == [{"message": outcome.error}]
    assert len(responses(server)) == 1  # retries are off


def test_cancel_mid_turn_then_resume(
    codex_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    space = Workspace.create(tmp_path)
    server.slow_seconds = 2.0  # each reply streams this long: time to stop it in between
    first_prompt = "create the file slow.txt with slow"
    # SIGTERM once the command ran, while codex waits for the model's final answer.
    first = run_turn(
        space, codex_prefix, first_prompt, base_url=url(server), sigterm_after_line='"exit_code":0'
    )
    events, outcome = parse(first, url(server))
    assert first.exit_code == 143
    assert outcome.error == "the agent was stopped before it finished"
    assert not [e for e in events if e.kind == ERROR]  # the runner reports its own cancel
    assert (space.workdir / "slow.txt").read_text() == "slow"
    assert outcome.session_id

    server.slow_seconds = 0.0
    second = run_turn(
        space, codex_prefix, "still there?", base_url=url(server), resume=outcome.session_id
    )
    _, resumed = parse(second, url(server))
    assert resumed.succeeded, (resumed.error, second.lines[-3:])
    assert resumed.session_id == outcome.session_id
    assert user_texts(body(responses(server)[-1])) == [first_prompt, "still there?"]
