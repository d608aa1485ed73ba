"""Small process helpers shared by the embedded servers and the supervisor.

Everything here is synchronous on purpose: `upstream up` is a plain supervisor built on
`subprocess.Popen`, and the servers' `start()`/`stop()` are called from it and from tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

# prctl(2) option number; stable Linux ABI.
_PR_SET_PDEATHSIG = 1

_LIBC: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    # Loaded here, in the parent, so the pre-exec hook below only makes one foreign call
    # between fork and exec (no dlopen, no allocation-heavy work in the forked child).
    _LIBC = ctypes.CDLL(None, use_errno=True)


class StartAborted(RuntimeError):
    """Start-up was abandoned because a stop was requested (Ctrl-C / SIGTERM)."""


class DataDirBusyError(RuntimeError):
    """Another process holds the lock of this data dir (or of one of its servers)."""


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """Pre-exec hook: the child gets `sig` when the thread that started it dies.

    Keeps a SIGKILLed `upstream up` (or a crashed test run) from leaving servers behind.
    Hazards:
    - PR_SET_PDEATHSIG fires when the *thread* that forked dies, not the process. A server
      started from a short-lived thread would be signalled when that thread ends, so the hook
      is only installed when called from the main thread (None otherwise).
    - `preexec_fn` runs between fork and exec; Python documents it as unsafe with threads.
      The hook makes a single libc call (the library is loaded beforehand) and CPython runs it
      after the uid/gid switch (a credential change would reset the death signal).
    - If the parent dies between fork and prctl the signal is missed: checked via getppid.
    """
    if _LIBC is None or threading.current_thread() is not threading.main_thread():
        return None
    libc = _LIBC
    parent = os.getpid()
    signum = int(sig)

    def _hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)

    return _hook


def log_tail(path: Path, *, lines: int = 30, max_bytes: int = 16384) -> str:
    """Last lines of a log file, for error messages ("" when missing/unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def open_log(path: Path, header: str) -> IO[bytes]:
    """Open a log for appending (kept across runs) and mark where this run starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("ab")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    fh.write(f"\n===== {stamp} {header} =====\n".encode())
    fh.flush()
    return fh


def terminate(
    proc: subprocess.Popen[bytes],
    *,
    timeout: float,
    sig: signal.Signals = signal.SIGTERM,
) -> int:
    """Send `sig`, wait up to `timeout`, then SIGKILL the child's whole process group.

    Children are started with `start_new_session=True`, so their pgid is their pid; killing
    the group on the hard path also takes down helpers they forked (postgres backends).
    Returns the exit code.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return proc.wait()


def check_abort(stop_event: threading.Event | None, what: str) -> None:
    if stop_event is not None and stop_event.is_set():
        raise StartAborted(f"start of {what} aborted: stop requested")


class FileLock:
    """Exclusive, non-blocking `flock` held for a server's or stack's lifetime.

    The kernel drops it when the process dies, so a crashed run never leaves it stuck.
    Holding it is what makes "a live server on *my* data is an orphan of a crashed run, stop
    it" safe: no other live process of ours can be using that data.
    """

    def __init__(self, path: Path, what: str) -> None:
        self._path = path
        self._what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # os.open fds are non-inheritable (PEP 446): children never keep the lock alive.
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 32, 0).decode().strip()
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise DataDirBusyError(
                f"{self._what} is already in use by another process{who}; "
                f"stop it first (lock: {self._path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)
