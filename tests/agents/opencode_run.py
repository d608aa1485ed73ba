"""Run the real `opencode` binary as a plain subprocess, the way the turn activity would.

Used by the end-to-end tests, and to re-capture tests/agents/fixtures/opencode/*.jsonl:

    python -m tests.agents.opencode_run

The tools directory comes from `UPSTREAM_TOOLS_DIR` (default: a per-user cache) so reruns
never reinstall. Captures run in fixed directories under /tmp so re-captures differ only in
ids and timings; each file is the turn's merged stdout+stderr, and its last line is
`#exit <code>` (not CLI output).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from agents.base import ERROR, LaunchPlan, TurnLaunch
from agents.opencode import PACKAGE, OpenCodeAdapter
from agents.tools import ensure_installed
from tests.agents.claude_run import Workspace, tools_dir
from tests.agents.process import execute_plan
from tests.fakes.model_server import FakeModelServer

# Quotes and a backslash: the key must arrive intact (it is never put into JSON text).
API_KEY = 'sk-fake-"opencode"\\test-key'
# A provider OpenCode does not know: an OpenAI-compatible Chat Completions endpoint at the
# credential's base URL, i.e. the fake server's `tests/fakes/openai_chat.py`.
FAKE_MODEL = "fake/fake-chat-1"
TURN_TIMEOUT_S = 120.0


async def install_opencode() -> Path:
    """The install prefix (installing on first use); raises if npm or the registry fail."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not on PATH")
    return await ensure_installed(tools_dir(), PACKAGE)


@dataclass
class Turn:
    lines: list[str]  # stdout and stderr, merged as in the sandbox's output.log
    exit_code: int
    plan: LaunchPlan


def run_turn(
    space: Workspace,
    prefix: Path,
    prompt: str,
    *,
    base_url: str | None,
    api_key: str = API_KEY,
    resume: str | None = None,
    model: str = FAKE_MODEL,
    system_prompt: str | None = None,
    sigterm_after_line: str | None = None,
    kill_on_fatal: bool = True,
    timeout: float = TURN_TIMEOUT_S,
    unset_env: tuple[str, ...] = (),
) -> Turn:
    """One turn. With `sigterm_after_line`, SIGTERM the agent once a line contains that text;
    with `kill_on_fatal`, end it as the turn runner does when the parser reports a fatal error.
    After `timeout` seconds the agent gets SIGTERM (OpenCode may retry forever)."""
    prompt_path = space.prompts / f"prompt-{time.monotonic_ns()}.txt"
    prompt_path.write_bytes(prompt.encode())
    adapter = OpenCodeAdapter()
    launch = TurnLaunch(
        model=model,
        workdir=str(space.workdir),
        home=str(space.home),
        tools_prefix=str(prefix),
        prompt_path=str(prompt_path),
        resume_session_id=resume,
        system_prompt=system_prompt,
    )
    plan = adapter.plan(launch)
    parser = adapter.new_parser(base_url=base_url)

    def sigterm_when(line: str) -> bool:
        fatal = any(e.kind == ERROR and e.payload.get("fatal") for e in parser.feed(line))
        asked = sigterm_after_line is not None and sigterm_after_line in line
        return (fatal and kill_on_fatal) or asked

    lines, exit_code = execute_plan(
        plan,
        adapter.credential_env(api_key, base_url),
        space.workdir,
        timeout=timeout,
        timeout_signal=signal.SIGTERM,
        sigterm_when=sigterm_when,
        unset_env=unset_env,
    )
    return Turn(lines, exit_code, plan)


# --- fixture capture ----------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "opencode"
CAPTURE_ROOT = Path("/tmp/upstream-opencode-fixtures")
BAD_KEY = "sk-revoked-opencode-key"
NO_QUOTA = "You exceeded your current quota, please check your plan and billing details."
# OpenCode retries these forever: capture this long, then SIGTERM (as the runner's timeout).
RETRY_CAPTURE_S = 20.0


def _save(name: str, turn: Turn) -> None:
    text = "\n".join([*turn.lines, f"#exit {turn.exit_code}"]) + "\n"
    (FIXTURES / f"{name}.jsonl").write_text(text)
    print(f"{name}: {len(turn.lines)} lines, exit {turn.exit_code}")


def _session_id(turn: Turn) -> str:
    for line in turn.lines:
        if line.startswith("{"):
            return str(json.loads(line)["sessionID"])
    raise AssertionError("no JSON line")


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def main() -> None:
    prefix = asyncio.run(install_opencode())
    shutil.rmtree(CAPTURE_ROOT, ignore_errors=True)
    space = Workspace.create(CAPTURE_ROOT)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with FakeModelServer() as server:
        url = f"{server.base_url}/v1"  # OpenAI-compatible base URLs end in /v1
        first = run_turn(space, prefix, "create the file hello.txt with hello world", base_url=url)
        _save("tool_use", first)
        again = "What did I ask you to do before?"
        _save("resume", run_turn(space, prefix, again, base_url=url, resume=_session_id(first)))
        server.invalid_keys.add(BAD_KEY)
        # The CLI's own output, not cut short by our kill on the fatal log line.
        turn = run_turn(space, prefix, "hi", base_url=url, api_key=BAD_KEY, kill_on_fatal=False)
        _save("invalid_key", turn)
        server.rate_limited = True
        turn = run_turn(
            space, prefix, "hi", base_url=url, kill_on_fatal=False, timeout=RETRY_CAPTURE_S
        )
        _save("rate_limited", turn)
        server.rate_limited = False
        # OpenAI's answer (a 429!) once the account has run out of credit: retried forever too.
        server.forced_error = (429, "insufficient_quota", NO_QUOTA)
        turn = run_turn(
            space, prefix, "hi", base_url=url, kill_on_fatal=False, timeout=RETRY_CAPTURE_S
        )
        _save("low_credit", turn)
        server.forced_error = None
        unknown = "ses_00000000000000000000000000"
        _save("resume_unknown", run_turn(space, prefix, "hi", base_url=url, resume=unknown))
        server.slow_seconds = 6.0
        prompt = "create the file slow.txt with interrupted"
        turn = run_turn(space, prefix, prompt, base_url=url, sigterm_after_line='"tool_use"')
        _save("cancelled", turn)
        server.slow_seconds = 0.0
        # Without our permissions, writing outside the repo is an "ask", rejected headless.
        prompt = f"create the file {CAPTURE_ROOT}/outside.txt with rejected"
        turn = run_turn(space, prefix, prompt, base_url=url, unset_env=("OPENCODE_PERMISSION",))
        _save("permission_rejected", turn)
    turn = run_turn(
        space,
        prefix,
        "hi",
        base_url=_closed_port_url(),
        kill_on_fatal=False,
        timeout=RETRY_CAPTURE_S,
    )
    _save("unreachable", turn)


if __name__ == "__main__":
    main()
