"""Running an adapter's launch plan as a plain subprocess (no sandbox), as the turn runner
would: files written, plan env then the secret env, the prompt on stdin, one process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from agents.base import LaunchPlan


def execute_plan(
    plan: LaunchPlan,
    secret_env: dict[str, str],
    workdir: Path,
    *,
    timeout: float,
    timeout_signal: signal.Signals,
    sigterm_when: Callable[[str], bool] = lambda line: False,
    unset_env: tuple[str, ...] = (),
) -> tuple[list[str], int]:
    """Output lines (stdout and stderr merged) and the exit code as Popen reports it.
    `sigterm_when(line)` true sends SIGTERM once; after `timeout` the group gets
    `timeout_signal` (a hung agent would otherwise block the read loop forever)."""
    for path, content in plan.files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    # The secret env file is sourced after the plan's env, so it wins (as in the runner).
    env |= plan.env | secret_env
    for name in unset_env:
        env.pop(name, None)
    assert plan.stdin_path is not None
    with open(plan.stdin_path, "rb") as stdin:
        proc = subprocess.Popen(
            plan.argv,
            cwd=workdir,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    watchdog = threading.Timer(timeout, kill_group, (proc.pid, timeout_signal))
    watchdog.start()
    signalled = False
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if not signalled and sigterm_when(line):
                kill_group(proc.pid, signal.SIGTERM)
                signalled = True
        exit_code = proc.wait(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
    return lines, exit_code


def kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pgid, sig)
