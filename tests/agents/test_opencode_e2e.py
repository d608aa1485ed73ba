"""The real `opencode` binary, run from plan()'s argv/env/stdin/files against the fake server.

Plain subprocesses (no sandbox); the home (XDG dirs) and the repo live in a temp dir. OpenCode
takes ~4-9 s per run, so the set is small. Skipped when the binary is not installed and cannot
be installed (no npm, registry unreachable).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.base import TOOL, USAGE, AgentEvent, TurnOutcome
from agents.opencode import PACKAGE, OpenCodeAdapter
from agents.tools import ToolInstallError, installed_prefix
from tests.agents.claude_run import Workspace, tools_dir
from tests.agents.opencode_run import API_KEY, Turn, install_opencode, run_turn
from tests.fakes import model_server
from tests.fakes.model_server import FakeModelServer
from tests.fakes.openai_chat import chat_requests, message_text, user_texts


@pytest.fixture(scope="module")
def opencode_prefix() -> Path:
    found = installed_prefix(tools_dir(), PACKAGE)
    if found is not None:
        return found
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH, so opencode-ai cannot be installed")
    try:
        return asyncio.run(install_opencode())
    except ToolInstallError as exc:
        pytest.skip(f"could not install opencode-ai from npm: {exc}")


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fake:
        yield fake


def chat_url(server: FakeModelServer) -> str:
    return f"{server.base_url}/v1"  # OpenAI-compatible base URLs end in /v1


def parse(turn: Turn, base_url: str) -> tuple[list[AgentEvent], TurnOutcome]:
    parser = OpenCodeAdapter().new_parser(base_url=base_url)
    events = [event for line in turn.lines for event in parser.feed(line)]
    trailing, outcome = parser.finish(turn.exit_code)
    return events + trailing, outcome


def test_writes_a_file_then_resumes_with_history(
    opencode_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    space = Workspace.create(tmp_path)
    url = chat_url(server)
    first_prompt = "create the file hello.txt with hello from e2e"
    first = run_turn(space, opencode_prefix, first_prompt, base_url=url)
    events, outcome = parse(first, url)
    assert outcome.succeeded, (outcome.error, first.lines[-3:])
    assert (space.workdir / "hello.txt").read_text() == "hello from e2e"
    assert [e.payload["tool_call"]["tool"] for e in events if e.kind == TOOL] == ["write"]
    assert outcome.final_text == "Done."
    assert outcome.session_id
    requests = chat_requests(server)
    assert len(requests) == 2  # tool call, final text: no title side request
    assert requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in " ".join(first.plan.argv) + "".join(first.plan.files.values())

    second = run_turn(space, opencode_prefix, "and now?", base_url=url, resume=outcome.session_id)
    _, resumed = parse(second, url)
    assert resumed.succeeded, (resumed.error, second.lines[-3:])
    assert resumed.session_id == outcome.session_id
    assert resumed.final_text == "I see 2 user messages. You said: and now?"
    assert user_texts(chat_requests(server)[-1].body)[0] == first_prompt


def test_prompt_and_system_prompt_reach_the_model_byte_for_byte(
    opencode_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    space = Workspace.create(tmp_path)
    prompt = (
        '  it\'s "quoted" $(touch /tmp/pwned) `id` $HOME \\n ${X:-y} | ; & > <\n'
        "-- --help\n\ttabs, ünïcødé, emoji 🚀, 中文\r\n" + "x" * 200_000 + "\nend\n\n"
    )
    rules = "Always answer in French.\n'$(quotes)' survive too."
    url = chat_url(server)
    turn = run_turn(space, opencode_prefix, prompt, base_url=url, system_prompt=rules)
    _, outcome = parse(turn, url)
    assert outcome.succeeded, (outcome.error, turn.lines[-3:])
    [request] = chat_requests(server)
    assert user_texts(request.body) == [prompt]
    system = "\n".join(message_text(m) for m in request.body["messages"] if m["role"] == "system")
    assert rules in system
    assert "You are opencode" in system  # added to OpenCode's own prompt, not replacing it
    assert not Path("/tmp/pwned").exists()


def test_default_anthropic_model_with_an_invalid_key_says_so(
    opencode_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    # The catalogue's default model, through OpenCode's Anthropic provider: the credential's
    # base URL is the host (as for Claude Code) and OpenCode posts to <base>/v1/messages.
    space = Workspace.create(tmp_path)
    server.invalid_keys.add("sk-ant-revoked")
    turn = run_turn(
        space,
        opencode_prefix,
        "hi",
        base_url=server.base_url,
        api_key="sk-ant-revoked",
        model="anthropic/claude-sonnet-4-5",
    )
    _, outcome = parse(turn, server.base_url)
    assert not outcome.succeeded
    assert outcome.error is not None
    assert outcome.error.startswith("invalid API key (invalid x-api-key")
    [request] = server.message_requests()
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-revoked"
    assert request.body["model"] == "claude-sonnet-4-5"
    assert model_server.message_text(model_server.user_messages(request.body)[-1]) == "hi"


def test_openai_model_uses_the_responses_api_and_opencodes_prices(
    opencode_prefix: Path, server: FakeModelServer, tmp_path: Path
) -> None:
    # As Codex with the same credential: the base URL ends in /v1, the protocol is Responses.
    space = Workspace.create(tmp_path)
    url = chat_url(server)
    turn = run_turn(space, opencode_prefix, "hi there", base_url=url, model="openai/gpt-5")
    events, outcome = parse(turn, url)
    assert outcome.succeeded, (outcome.error, turn.lines[-3:])
    assert outcome.final_text == "I see 1 user messages. You said: hi there"
    [request] = server.requests
    assert (request.path, request.body["model"]) == ("/v1/responses", "gpt-5")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    [usage] = [e.payload for e in events if e.kind == USAGE]
    assert usage["input_tokens"] == 100
    assert usage["cost_usd"] > 0  # from OpenCode's bundled price list for gpt-5
