"""Run the real `codex` binary as a plain subprocess, the way the turn activity would.

Shared by the end-to-end tests and by `capture_fixtures.py`: plan()'s argv, env, stdin file
and config files, plus `credential_env` as the env file would carry it.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

from agents.base import TurnLaunch
from agents.codex import PACKAGE, CodexAdapter
from agents.tools import ensure_installed
from tests.agents.claude_run import Turn, Workspace, tools_dir
from tests.agents.process import execute_plan

API_KEY = "sk-fake-openai-test-key"
# Known to codex 0.171.0's bundled model metadata: offers `apply_patch`, no warning item.
KNOWN_MODEL = "gpt-5.5"
TURN_TIMEOUT_S = 120.0

__all__ = ["API_KEY", "KNOWN_MODEL", "Turn", "Workspace", "install_codex", "run_turn"]


async def install_codex() -> Path:
    """The install prefix (installing on first use); raises if npm or the registry fail."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not on PATH")
    return await ensure_installed(tools_dir(), PACKAGE)


def run_turn(
    space: Workspace,
    prefix: Path,
    prompt: str,
    *,
    base_url: str | None,
    api_key: str = API_KEY,
    resume: str | None = None,
    model: str = "gpt-5-codex",
    system_prompt: str | None = None,
    sigterm_after_line: str | None = None,
    timeout_s: float = TURN_TIMEOUT_S,
) -> Turn:
    """One turn. `sigterm_after_line`: SIGTERM the agent once a line contains that text.
    `timeout_s`: then SIGTERM the group, like the turn runner's time limit (exit 143)."""
    prompt_path = space.prompts / f"prompt-{time.monotonic_ns()}.txt"
    prompt_path.write_bytes(prompt.encode())
    adapter = CodexAdapter()
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

    # The outer time limit every run needs: codex retries an unreachable API forever.
    lines, exit_code = execute_plan(
        plan,
        adapter.credential_env(api_key, base_url),
        space.workdir,
        timeout=timeout_s,
        timeout_signal=signal.SIGTERM,
        sigterm_when=sigterm_when,
    )
    # As the sandbox runner's `echo $?` records it: 128 + signal for a killed process.
    return Turn(lines, 128 - exit_code if exit_code < 0 else exit_code, plan)
