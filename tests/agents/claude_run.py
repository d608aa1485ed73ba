"""Run the real `claude` binary as a plain subprocess, the way the turn activity would.

Shared by the end-to-end tests and by `capture_fixtures.py`. The tools directory comes from
`UPSTREAM_TOOLS_DIR` (default: a per-user cache) so reruns never reinstall.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agents.base import LaunchPlan, TurnLaunch
from agents.claude_code import PACKAGE, ClaudeCodeAdapter
from agents.tools import ensure_installed

DEFAULT_TOOLS_DIR = Path.home() / ".cache" / "upstream-tools"
API_KEY = "sk-ant-fake-test-key"
TURN_TIMEOUT_S = 120.0


def tools_dir() -> Path:
    return Path(os.environ.get("UPSTREAM_TOOLS_DIR") or DEFAULT_TOOLS_DIR)


async def install_claude() -> Path:
    """The install prefix (installing on first use); raises if npm or the registry fail."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not on PATH")
    return await ensure_installed(tools_dir(), PACKAGE)


@dataclass
class Turn:
    lines: list[str]  # stdout and stderr, merged as in the sandbox's output.log
    exit_code: int
    plan: LaunchPlan


@dataclass
class Workspace:
    workdir: Path
    home: Path
    prompts: Path

    @classmethod
    def create(cls, root: Path) -> Workspace:
        space = cls(root / "work", root / "home", root / "prompts")
        for path in (space.workdir, space.home, space.prompts):
            path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", str(space.workdir)], check=True)
        return space


def run_turn(
    space: Workspace,
    prefix: Path,
    prompt: str,
    *,
    base_url: str,
    api_key: str = API_KEY,
    resume: str | None = None,
    model: str = "claude-sonnet-4-5",
    sigterm_after_line: str | None = None,
    system_prompt: str | None = None,
    unset_env: tuple[str, ...] = (),
) -> Turn:
    """One turn; with `sigterm_after_line`, SIGTERM the agent once a line contains that text."""
    prompt_path = space.prompts / f"prompt-{time.monotonic_ns()}.txt"
    prompt_path.write_bytes(prompt.encode())
    adapter = ClaudeCodeAdapter()
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
    for path, content in plan.files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    env |= plan.env | adapter.credential_env(api_key, base_url)
    for name in unset_env:
        env.pop(name, None)
    assert plan.stdin_path is not None
    with open(plan.stdin_path, "rb") as stdin:
        proc = subprocess.Popen(
            plan.argv,
            cwd=space.workdir,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    # The outer timeout every run needs (a hung agent would block the read loop forever).
    watchdog = threading.Timer(TURN_TIMEOUT_S, _kill_group, (proc.pid, signal.SIGKILL))
    watchdog.start()
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if sigterm_after_line is not None and sigterm_after_line in line:
                _kill_group(proc.pid, signal.SIGTERM)
                sigterm_after_line = None
        exit_code = proc.wait(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
    return Turn(lines, exit_code, plan)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pgid, sig)
