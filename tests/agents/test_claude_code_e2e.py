"""The real `claude` binary, run from plan()'s argv/env/stdin against the fake model server.

Plain subprocesses (no sandbox); HOME and the repo live in a temp dir. Skipped when the binary
is not installed and cannot be installed (no npm, registry unreachable).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.base import TOOL, AgentEvent, TurnOutcome
from agents.claude_code import PACKAGE, ClaudeCodeAdapter
from agents.tools import ToolInstallError, installed_prefix
from tests.agents.claude_run import Turn, Workspace, install_claude, run_turn, tools_dir
from tests.fakes.model_server import FakeModelServer, message_text, user_messages


@pytest.fixture(scope="module")
def claude_prefix() -> Path:
    found = installed_prefix(tools_dir(), PACKAGE)
    if found is not None:
        return found
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH, so @anthropic-ai/claude-code cannot be installed")
    try:
        return asyncio.run(install_claude())
    except ToolInstallError as exc:
        pytest.skip(f"could not install @anthropic-ai/claude-code from npm: {exc}")


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fake:
        yield fake


def parse(turn: Turn, base_url: str) -> tuple[list[AgentEvent], TurnOutcome]:
    parser = ClaudeCodeAdapter().new_parser(base_url=base_url)
    events = [event for line in turn.lines for event in parser.feed(line)]
    trailing, outcome = parser.finish(turn.exit_code)
    return events + trailing, outcome


def test_writes_a_file_then_resumes_with_history(
    claude_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    space = Workspace.create(tmp_path)
    first_prompt = "create the file hello.txt with hello from e2e"
    first = run_turn(space, claude_prefix, first_prompt, base_url=server.base_url)
    events, outcome = parse(first, server.base_url)
    assert outcome.succeeded, (outcome.error, first.lines[-3:])
    assert (space.workdir / "hello.txt").read_text() == "hello from e2e"
    assert [e.payload["tool_call"]["tool"] for e in events if e.kind == TOOL] == ["write"]
    assert outcome.final_text == "Done."
    assert outcome.session_id

    second = run_turn(
        space, claude_prefix, "and now?", base_url=server.base_url, resume=outcome.session_id
    )
    _, resumed = parse(second, server.base_url)
    assert resumed.succeeded, (resumed.error, second.lines[-3:])
    assert resumed.session_id == outcome.session_id
    assert resumed.final_text == "I see 2 user messages. You said: and now?"
    history = user_messages(server.message_requests()[-1].body)
    assert first_prompt in message_text(history[0])


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
    claude_prefix: Path, server: FakeModelServer, tmp_path: Path, prompt: str
) -> None:
    space = Workspace.create(tmp_path)
    turn = run_turn(space, claude_prefix, prompt, base_url=server.base_url)
    _, outcome = parse(turn, server.base_url)
    assert outcome.succeeded, (outcome.error, turn.lines[-3:])
    [request] = server.message_requests()
    assert message_text(user_messages(request.body)[-1]) == prompt
    assert not Path("/tmp/pwned").exists()


def test_system_prompt_is_appended(
    claude_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    space = Workspace.create(tmp_path)
    rules = "Always answer in French.\n'$(quotes)' survive too."
    turn = run_turn(space, claude_prefix, "hi", base_url=server.base_url, system_prompt=rules)
    _, outcome = parse(turn, server.base_url)
    assert outcome.succeeded, (outcome.error, turn.lines[-3:])
    [request] = server.message_requests()
    system = "".join(block["text"] for block in request.body["system"])
    assert rules in system
    assert "You are an interactive agent" in system  # appended, not replacing Claude's own
