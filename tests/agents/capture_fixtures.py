"""Re-capture tests/agents/fixtures/<agent>/*.jsonl from the real binaries and the fake server.

    python -m tests.agents.capture_fixtures [claude-code] [codex]   # default: all

Runs in fixed directories under /tmp so re-captures differ only in ids, timings and uuids.
Each file is the turn's merged stdout+stderr; the last line is `#exit <code>` (not CLI output).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
from pathlib import Path

from tests.agents import codex_run
from tests.agents.claude_run import Turn, Workspace, install_claude, run_turn
from tests.fakes.model_server import FakeModelServer

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
CAPTURE_ROOT = Path("/tmp/upstream-claude-fixtures")
BAD_KEY = "sk-ant-revoked-key"
# What Anthropic answers (HTTP 400) when the account has run out of credit.
NO_CREDIT = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)
# Long enough for the fake server's echo to stream as many deltas while we interrupt it.
LONG_PROMPT = "Tell me a long story about a lighthouse keeper. " * 4


def _save(name: str, turn: Turn, fixtures: Path = FIXTURES) -> None:
    text = "\n".join([*turn.lines, f"#exit {turn.exit_code}"]) + "\n"
    (fixtures / f"{name}.jsonl").write_text(text)
    print(f"{name}: {len(turn.lines)} lines, exit {turn.exit_code}")


def _session_id(turn: Turn) -> str:
    for line in turn.lines:
        if line.startswith("{") and (data := json.loads(line)).get("subtype") == "init":
            return str(data["session_id"])
    raise AssertionError("no system/init line")


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def capture_claude_code() -> None:
    prefix = asyncio.run(install_claude())
    shutil.rmtree(CAPTURE_ROOT, ignore_errors=True)
    space = Workspace.create(CAPTURE_ROOT)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with FakeModelServer() as server:
        url = server.base_url
        first = run_turn(space, prefix, "create the file hello.txt with hello world", base_url=url)
        _save("tool_use", first)
        again = "What did I ask you to do before?"
        _save("resume", run_turn(space, prefix, again, base_url=url, resume=_session_id(first)))
        server.invalid_keys.add(BAD_KEY)
        _save("invalid_key", run_turn(space, prefix, "hi", base_url=url, api_key=BAD_KEY))
        server.rate_limited = True
        _save("rate_limited", run_turn(space, prefix, "hi", base_url=url))
        server.rate_limited = False
        server.forced_error = (400, "invalid_request_error", NO_CREDIT)
        _save("low_credit", run_turn(space, prefix, "hi", base_url=url))
        server.forced_error = None
        unknown = "00000000-0000-4000-8000-000000000000"
        _save("resume_unknown", run_turn(space, prefix, "hi", base_url=url, resume=unknown))
        server.slow_seconds = 8.0
        turn = run_turn(space, prefix, LONG_PROMPT, base_url=url, sigterm_after_line="text_delta")
        _save("cancelled", turn)
    _save("unreachable", run_turn(space, prefix, "hi", base_url=_closed_port_url()))
    if os.geteuid() == 0:  # as root, claude refuses to skip permissions without IS_SANDBOX=1
        turn = run_turn(space, prefix, "hi", base_url=url, unset_env=("IS_SANDBOX",))
        _save("root_refused", turn)


# --- Codex ---------------------------------------------------------------------------------------

CODEX_FIXTURES = Path(__file__).parent / "fixtures" / "codex"
CODEX_CAPTURE_ROOT = Path("/tmp/upstream-codex-fixtures")
BAD_OPENAI_KEY = "sk-proj-revoked-key"
# What OpenAI answers (HTTP 429, code insufficient_quota) when the account has no credit left.
NO_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
# Codex retries an unreachable API forever: capture what the turn runner's limit would cut.
UNREACHABLE_TIMEOUT_S = 12.0


def _thread_id(turn: Turn) -> str:
    for line in turn.lines:
        if line.startswith("{") and (data := json.loads(line)).get("type") == "thread.started":
            return str(data["thread_id"])
    raise AssertionError("no thread.started line")


def capture_codex() -> None:
    prefix = asyncio.run(codex_run.install_codex())
    shutil.rmtree(CODEX_CAPTURE_ROOT, ignore_errors=True)
    space = Workspace.create(CODEX_CAPTURE_ROOT)
    CODEX_FIXTURES.mkdir(parents=True, exist_ok=True)

    def save(name: str, turn: Turn) -> None:
        _save(name, turn, CODEX_FIXTURES)

    with FakeModelServer() as server:
        url = f"{server.base_url}/v1"  # an OpenAI base URL includes the version path
        run = codex_run.run_turn
        first = run(space, prefix, "create the file hello.txt with hello world", base_url=url)
        save("tool_use", first)
        again = "What did I ask you to do before?"
        save("resume", run(space, prefix, again, base_url=url, resume=_thread_id(first)))
        patch = "patch the file notes.md with first line\nsecond line"
        save("file_change", run(space, prefix, patch, base_url=url, model=codex_run.KNOWN_MODEL))
        server.invalid_keys.add(BAD_OPENAI_KEY)
        save("invalid_key", run(space, prefix, "hi", base_url=url, api_key=BAD_OPENAI_KEY))
        server.rate_limited = True
        save("rate_limited", run(space, prefix, "hi", base_url=url))
        server.rate_limited = False
        server.forced_error = (429, "insufficient_quota", NO_QUOTA)
        save("no_quota", run(space, prefix, "hi", base_url=url))
        server.forced_error = (500, "server_error", "The server had an error.")
        save("server_error", run(space, prefix, "hi", base_url=url))
        server.forced_error = None
        unknown = "00000000-0000-4000-8000-000000000000"
        save("resume_unknown", run(space, prefix, "hi", base_url=url, resume=unknown))
        server.slow_seconds = 4.0
        prompt = "create the file slow.txt with slow"
        # Stopped between the tool call and the final answer.
        turn = run(space, prefix, prompt, base_url=url, sigterm_after_line='"exit_code":0')
        save("cancelled", turn)
    turn = run(space, prefix, "hi", base_url=_closed_port_url(), timeout_s=UNREACHABLE_TIMEOUT_S)
    save("unreachable", turn)


CAPTURES = {"claude-code": capture_claude_code, "codex": capture_codex}


def main(agents: list[str]) -> None:
    for agent in agents or list(CAPTURES):
        CAPTURES[agent]()


if __name__ == "__main__":
    main(sys.argv[1:])
