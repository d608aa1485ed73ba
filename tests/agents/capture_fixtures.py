"""Re-capture tests/agents/fixtures/claude_code/*.jsonl from the real binary and the fake server.

    python -m tests.agents.capture_fixtures

Runs in fixed directories under /tmp so re-captures differ only in ids, timings and uuids.
Each file is the turn's merged stdout+stderr; the last line is `#exit <code>` (not CLI output).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from pathlib import Path

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


def _save(name: str, turn: Turn) -> None:
    text = "\n".join([*turn.lines, f"#exit {turn.exit_code}"]) + "\n"
    (FIXTURES / f"{name}.jsonl").write_text(text)
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


def main() -> None:
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


if __name__ == "__main__":
    main()
