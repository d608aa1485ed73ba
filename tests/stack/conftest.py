"""Shared helpers for the stack tests: data dirs and leftover-process checks."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest


def alive(pid: int) -> bool:
    """True if `pid` runs. Zombies count as gone: PID 1 in some containers never reaps."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """Wait until none of `pids` runs; returns the ones still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left


def processes_using(path: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions `path` (pgdata, temporal db)."""
    needle = str(path)
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.pid != os.getpid() and any(needle in arg for arg in cmdline) and alive(proc.pid):
            found.append(proc)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data dir; after the test, no server may still run on it."""
    path = tmp_path / "data"
    yield path
    leftovers = processes_using(path)
    for proc in leftovers:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    assert not leftovers, f"processes left running on {path}: {leftovers}"
