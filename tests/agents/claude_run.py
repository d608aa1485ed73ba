"""Run the real `claude` binary as a plain subprocess, the way the turn activity would.

Shared by the end-to-end tests and by `capture_fixtures.py`. The tools directory comes from
`UPSTREAM_TOOLS_DIR` (default: a per-user cache) so reruns never reinstall.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agents.base import LaunchPlan, TurnLaunch
from agents.claude_code import PACKAGE, ClaudeCodeAdapter
from agents.tools import ensure_installed
from tests.agents.process import execute_plan

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

    def sigterm_when(line: str) -> bool:
        return sigterm_after_line is not None and sigterm_after_line in line

    lines, exit_code = execute_plan(
        plan,
        adapter.credential_env(api_key, base_url),
        space.workdir,
        timeout=TURN_TIMEOUT_S,
        timeout_signal=signal.SIGKILL,
        sigterm_when=sigterm_when,
        unset_env=unset_env,
    )
    return Turn(lines, exit_code, plan)
