"""Local sandboxes: a bubblewrap namespace set per sandbox, on this host.

`root/<sandbox_id>/home` is the sandbox user's home (`/home/agent` inside, work dir
`workspace`); `root/<sandbox_id>/.state` is host-only bookkeeping (spec, pids with start
times, keeper log).

A running sandbox is a detached *keeper* (`sh` in its own session, re-parented to init)
whose child is `bwrap ... sleep infinity` with `--die-with-parent`. The keeper is what lets
a sandbox outlive the worker that created it; `--die-with-parent` is what makes the death of
either of them stop everything inside. Commands enter with `nsenter` on the sandbox's pid 1.

Unsafe mode (no bubblewrap) keeps the keeper and the lifecycle but runs commands as plain
host processes, marked by an UPSTREAM_SANDBOX variable that `stop` looks for in /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandboxes import bwrap
from sandboxes.base import (
    ExecResult,
    ProcessHandle,
    ProcessState,
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxNotRunning,
    SandboxSpec,
    SandboxStatus,
    SandboxUnavailable,
)

logger = logging.getLogger(__name__)

BWRAP_MISSING = (
    "bubblewrap (bwrap) is not installed: apt-get install bubblewrap, or set "
    "UPSTREAM_UNSAFE_LOCAL_SANDBOX=1 to run sandboxes as plain processes (no isolation)"
)
DEFAULT_TOOLS_DIR = Path("/opt/upstream-tools")

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_OUTPUT = 16 * 1024 * 1024
# After a command exited, how long to keep reading output that a leftover background
# process may hold open (the idea of Go's exec.Cmd.WaitDelay).
_PIPE_GRACE = 2.0
_START_TIMEOUT = 15.0
_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MARKER = "UPSTREAM_SANDBOX"


@dataclass(frozen=True)
class _Proc:
    pid: int
    start: int  # /proc starttime: tells a recycled pid from ours


@dataclass(frozen=True)
class _Pids:
    keeper: _Proc
    payload: _Proc  # bwrap (unsafe: the sleep)
    child: _Proc  # the sandbox's pid 1, nsenter's target (unsafe: the sleep)


@dataclass(frozen=True)
class _Loaded:
    spec: SandboxSpec
    pids: _Pids | None
    running: bool


class LocalSandboxProvider:
    name = "local"

    def __init__(self, root: Path, *, unsafe: bool = False, tools_dir: Path | None = None) -> None:
        self.check(unsafe=unsafe)
        root.mkdir(parents=True, exist_ok=True)
        self._root = root.resolve()
        (self._root / ".locks").mkdir(exist_ok=True)  # ids start alphanumeric: no clash
        self._unsafe = unsafe
        self._tools_dir = tools_dir if tools_dir is not None else DEFAULT_TOOLS_DIR
        self._setsid = _which("setsid")
        self._setpriv = _which("setpriv")
        self._bwrap = "" if unsafe else _which("bwrap")
        self._nsenter = "" if unsafe else _which("nsenter")
        self._locks: dict[str, asyncio.Lock] = {}
        if unsafe:
            logger.warning(
                "UNSAFE local sandboxes: commands run as plain host processes of this service's "
                "user, with full access to the host and no isolation. Install bubblewrap and "
                "unset UPSTREAM_UNSAFE_LOCAL_SANDBOX for real sandboxes."
            )

    @classmethod
    def check(cls, *, unsafe: bool = False) -> None:
        """Raise SandboxUnavailable if this host cannot run local sandboxes."""
        if not unsafe:
            if shutil.which("bwrap") is None:
                raise SandboxUnavailable(BWRAP_MISSING)
            if os.geteuid() != 0:
                # nsenter into namespaces of the initial user namespace needs root.
                raise SandboxUnavailable(
                    "bubblewrap sandboxes need the service to run as root (nsenter), or set "
                    "UPSTREAM_UNSAFE_LOCAL_SANDBOX=1 to run sandboxes as plain processes "
                    "(no isolation)"
                )
        needed = ("setsid", "setpriv") if unsafe else ("setsid", "setpriv", "nsenter")
        missing = [tool for tool in needed if shutil.which(tool) is None]
        if missing:
            raise SandboxUnavailable(f"{', '.join(missing)} not found: install util-linux")

    # -- lifecycle -------------------------------------------------------------------------

    async def create(self, spec: SandboxSpec) -> SandboxInfo:
        """Create and start; for an existing id, start it and keep its original spec."""
        _check_id(spec.sandbox_id)
        _check_env(spec.env)
        for path in spec.readonly_mounts:
            bwrap.check_mount(path)
        for path in spec.writable_mounts:
            bwrap.check_mount(path, kind="writable")
        async with self._locked(spec.sandbox_id):
            await asyncio.to_thread(self._prepare, spec)
            return await self._start_locked(spec.sandbox_id)

    async def get(self, sandbox_id: str) -> SandboxInfo:
        _check_id(sandbox_id)
        loaded = await asyncio.to_thread(self._load, sandbox_id)
        return self._info(sandbox_id, running=loaded.running)

    async def start(self, sandbox_id: str) -> SandboxInfo:
        _check_id(sandbox_id)
        async with self._locked(sandbox_id):
            return await self._start_locked(sandbox_id)

    async def stop(self, sandbox_id: str) -> SandboxInfo:
        _check_id(sandbox_id)
        async with self._locked(sandbox_id):
            await asyncio.to_thread(self._load, sandbox_id)
            await asyncio.to_thread(self._kill_all, sandbox_id)
            return self._info(sandbox_id, running=False)

    async def delete(self, sandbox_id: str) -> None:
        _check_id(sandbox_id)
        async with self._locked(sandbox_id):
            await asyncio.to_thread(self._delete, sandbox_id)

    # -- commands --------------------------------------------------------------------------

    async def exec(
        self,
        sandbox_id: str,
        argv: list[str],
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        _check_id(sandbox_id)
        loaded = await self._running(sandbox_id)
        return await self._exec(sandbox_id, loaded, argv, cwd=cwd, env=env, timeout=timeout)

    async def start_process(
        self,
        sandbox_id: str,
        argv: list[str],
        *,
        log_path: str,
        exit_path: str,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ProcessHandle:
        """Start argv detached; log and exit file must be below the home (read from the host)."""
        _check_id(sandbox_id)
        _check_argv(argv)
        loaded = await self._running(sandbox_id)
        self._home_parts(sandbox_id, log_path)
        self._home_parts(sandbox_id, exit_path)
        result = await self._exec(
            sandbox_id,
            loaded,
            bwrap.launcher(log_path, exit_path, argv),
            cwd=cwd,
            env=env,
            timeout=30.0,
        )
        pid_text = result.stdout.strip()
        if result.exit_code != 0 or not pid_text.isdigit():
            raise SandboxError(
                f"could not start {argv[0]!r} (exit {result.exit_code}): {result.stderr.strip()}"
            )
        return ProcessHandle(pid=int(pid_text), log_path=log_path, exit_path=exit_path)

    async def process_state(self, sandbox_id: str, handle: ProcessHandle) -> ProcessState:
        _check_id(sandbox_id)
        loaded = await asyncio.to_thread(self._load, sandbox_id)
        code = await asyncio.to_thread(self._read_exit, sandbox_id, handle.exit_path)
        if code is not None or not loaded.running:
            # Nothing survives a stop; without an exit file the runner died with it.
            return ProcessState(running=False, exit_code=code)
        if await asyncio.to_thread(_group_alive, self._proc_root(loaded), handle.pid):
            return ProcessState(running=True, exit_code=None)
        # The runner may have published its code between the two looks.
        code = await asyncio.to_thread(self._read_exit, sandbox_id, handle.exit_path)
        return ProcessState(running=False, exit_code=code)

    async def kill_process(
        self, sandbox_id: str, handle: ProcessHandle, *, grace_seconds: float = 2.0
    ) -> None:
        _check_id(sandbox_id)
        loaded = await asyncio.to_thread(self._load, sandbox_id)
        proc_root = self._proc_root(loaded)
        if loaded.running and await asyncio.to_thread(_group_alive, proc_root, handle.pid):
            await self._signal_group(sandbox_id, loaded, handle.pid, signal.SIGTERM)
            if not await _wait_group_gone(proc_root, handle.pid, grace_seconds):
                await self._signal_group(sandbox_id, loaded, handle.pid, signal.SIGKILL)
                await _wait_group_gone(proc_root, handle.pid, 5.0)
        # SIGKILL also took the runner, so nobody recorded a code: report the TERM.
        if await asyncio.to_thread(self._read_exit, sandbox_id, handle.exit_path) is None:
            parts = self._home_parts(sandbox_id, handle.exit_path)
            await asyncio.to_thread(_write_in_home, self._home(sandbox_id), parts, b"143\n", 0o644)

    # -- files -----------------------------------------------------------------------------

    async def read_file(
        self, sandbox_id: str, path: str, *, offset: int = 0, limit: int | None = None
    ) -> bytes:
        """Read from the host directory behind the home: O(bytes read), no process spawned.

        Only paths below the home; symlinks are followed as the sandbox sees them and refused
        (SandboxError) where they lead out of it. A missing file raises FileNotFoundError.
        """
        _check_id(sandbox_id)
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("offset and limit must not be negative")
        await self._running(sandbox_id)
        parts = self._home_parts(sandbox_id, path)
        return await asyncio.to_thread(_read_in_home, self._home(sandbox_id), parts, offset, limit)

    async def write_file(
        self, sandbox_id: str, path: str, data: bytes, *, mode: int = 0o600
    ) -> None:
        """Atomically replace `path` (below the home) with `data`, creating parent dirs."""
        _check_id(sandbox_id)
        if not 0 <= mode <= 0o777:
            raise ValueError(f"mode must be permission bits (0..0o777), got {mode:#o}")
        await self._running(sandbox_id)
        parts = self._home_parts(sandbox_id, path)
        await asyncio.to_thread(_write_in_home, self._home(sandbox_id), parts, data, mode)

    # -- internals -------------------------------------------------------------------------

    def _state(self, sandbox_id: str) -> Path:
        return self._root / sandbox_id / ".state"

    def _home(self, sandbox_id: str) -> Path:
        return self._root / sandbox_id / "home"

    def _inner_home(self, sandbox_id: str) -> str:
        return str(self._home(sandbox_id)) if self._unsafe else bwrap.SANDBOX_HOME

    def _info(self, sandbox_id: str, *, running: bool) -> SandboxInfo:
        home = self._inner_home(sandbox_id)
        return SandboxInfo(
            sandbox_id=sandbox_id,
            provider=self.name,
            status=SandboxStatus.STARTED if running else SandboxStatus.STOPPED,
            home=home,
            workdir=f"{home}/workspace",
        )

    def _home_parts(self, sandbox_id: str, path: str) -> list[str]:
        """Components of `path` below the sandbox home; SandboxError if it is not below."""
        parts = path.split("/")
        home = self._inner_home(sandbox_id).split("/")
        if not path.startswith("/") or parts[: len(home)] != home:
            raise SandboxError(f"{path!r} is not a path below the sandbox home")
        return [p for p in parts[len(home) :] if p]

    def _marker(self, sandbox_id: str) -> bytes:
        return f"\0{_MARKER}={self._root / sandbox_id}\0".encode()

    def _proc_root(self, loaded: _Loaded) -> str:
        # The sandbox's own /proc, reached through its root: pids there are sandbox pids.
        if self._unsafe or loaded.pids is None:
            return "/proc"
        return f"/proc/{loaded.pids.child.pid}/root/proc"

    def _prepare(self, spec: SandboxSpec) -> None:
        state = self._state(spec.sandbox_id)
        if (state / "spec.json").exists():
            return
        (self._home(spec.sandbox_id) / "workspace").mkdir(parents=True, exist_ok=True)
        state.mkdir(mode=0o700, exist_ok=True)
        # spec.env may hold credentials: owner-only.
        spec_json = {
            "env": spec.env,
            "readonly_mounts": list(spec.readonly_mounts),
            "writable_mounts": list(spec.writable_mounts),
        }
        _write_atomic(state / "spec.json", json.dumps(spec_json).encode())

    def _load(self, sandbox_id: str) -> _Loaded:
        state = self._state(sandbox_id)
        try:
            raw = json.loads((state / "spec.json").read_bytes())
        except FileNotFoundError:
            raise SandboxNotFound(sandbox_id) from None
        spec = SandboxSpec(
            sandbox_id,
            raw["env"],
            tuple(raw["readonly_mounts"]),
            tuple(raw.get("writable_mounts", ())),
        )
        pids = _read_pids(state)
        running = pids is not None and all(
            _start_time(p.pid) == p.start for p in (pids.keeper, pids.payload, pids.child)
        )
        return _Loaded(spec=spec, pids=pids, running=running)

    async def _running(self, sandbox_id: str) -> _Loaded:
        loaded = await asyncio.to_thread(self._load, sandbox_id)
        if not loaded.running:
            raise SandboxNotRunning(f"sandbox {sandbox_id} is stopped; start it first")
        return loaded

    @contextlib.asynccontextmanager
    async def _locked(self, sandbox_id: str) -> AsyncIterator[None]:
        """Serialise lifecycle changes of one sandbox across tasks and processes."""
        async with self._locks.setdefault(sandbox_id, asyncio.Lock()):
            fd = os.open(self._root / ".locks" / sandbox_id, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                # Polled rather than a blocking flock in a thread: a cancelled waiter must not
                # leave a thread behind that takes the lock later and never releases it.
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(0.02)
                yield
            finally:
                os.close(fd)

    async def _start_locked(self, sandbox_id: str) -> SandboxInfo:
        loaded = await asyncio.to_thread(self._load, sandbox_id)
        if not loaded.running:
            # A half-dead sandbox (bwrap killed, keeper not gone yet) is cleared first.
            await asyncio.to_thread(self._kill_all, sandbox_id)
            await self._launch(sandbox_id, loaded.spec)
        return self._info(sandbox_id, running=True)

    async def _launch(self, sandbox_id: str, spec: SandboxSpec) -> None:
        state, home = self._state(sandbox_id), self._home(sandbox_id)
        await asyncio.to_thread((home / "workspace").mkdir, parents=True, exist_ok=True)
        if self._unsafe:
            # No --die-with-parent without bwrap; the parent-death signal does the same.
            command = [self._setpriv, "--pdeathsig", "KILL", "--", *bwrap.PAYLOAD]
        else:
            mounts = [*spec.readonly_mounts]
            if self._tools_dir.is_dir():
                mounts.append(str(self._tools_dir))
            command = bwrap.build_argv(
                self._bwrap,
                home=home,
                readonly_mounts=mounts,
                writable_mounts=spec.writable_mounts,
                info_fd=3,
                command=bwrap.PAYLOAD,
            )
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        log_fd = os.open(state / "keeper.log", flags, 0o600)
        try:
            # `setsid -f` forks and exits at once: the keeper is re-parented to init, nobody's
            # child here, so it survives this process.
            proc = await asyncio.create_subprocess_exec(
                *(self._setsid, "-f", bwrap.SH, "-c", bwrap.KEEPER, "upstream-keeper"),
                *(str(state), *command),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                cwd="/",
                env={"PATH": bwrap.SANDBOX_PATH},
            )
        finally:
            os.close(log_fd)
        if await proc.wait() != 0:
            raise SandboxError(f"could not launch sandbox {sandbox_id}: {_log_tail(state)}")
        deadline = time.monotonic() + _START_TIMEOUT
        try:
            while (pids := await asyncio.to_thread(_probe, state, not self._unsafe)) is None:
                if time.monotonic() > deadline:
                    raise SandboxError(f"sandbox {sandbox_id} did not start: {_log_tail(state)}")
                await asyncio.sleep(0.005)
            await asyncio.to_thread(_write_pids, state, pids)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self._kill_all, sandbox_id))
            raise

    def _kill_all(self, sandbox_id: str) -> None:
        """Stop every process of the sandbox and wait until they are gone (blocking)."""
        state = self._state(sandbox_id)
        if self._unsafe:
            _kill_marked(self._marker(sandbox_id))
        pids = _read_pids(state)
        if pids is None:
            # A launch interrupted before pids.json: its keeper names the state dir in argv.
            pid = _read_int(state / "keeper.pid")
            start = _start_time(pid) if pid else None
            if pid and start is not None and f"\0{state}\0".encode() in _cmdline(pid):
                pids = _Pids(*(_Proc(pid, start),) * 3)
        if pids is not None:
            # The sandbox's pid 1 first: the kernel kills the whole pid namespace, bwrap exits
            # and the keeper's `wait` returns, leaving only the keeper for init to reap.
            _kill(pids.child)
            procs = [pids.keeper, pids.payload, pids.child]
            if not _wait_dead(procs, 2.0):
                _kill(pids.payload)
                _kill(pids.keeper)
                if not _wait_dead(procs, 5.0):
                    raise SandboxError(f"processes of sandbox {sandbox_id} did not exit")
        for name in ("pids.json", "keeper.pid", "payload.pid", "info.json", "ready"):
            with contextlib.suppress(FileNotFoundError):
                (state / name).unlink()

    def _delete(self, sandbox_id: str) -> None:
        directory = self._root / sandbox_id
        if not directory.exists():
            return
        if self._state(sandbox_id).is_dir():
            self._kill_all(sandbox_id)
        # rmtree works on fds and does not follow the symlinks a sandbox may have planted.
        shutil.rmtree(directory)

    async def _exec(
        self,
        sandbox_id: str,
        loaded: _Loaded,
        argv: list[str],
        *,
        cwd: str | None,
        env: dict[str, str] | None,
        timeout: float,
    ) -> ExecResult:
        _check_argv(argv)
        _check_env(env or {})
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        home = self._inner_home(sandbox_id)
        workdir = cwd if cwd is not None else f"{home}/workspace"
        if not workdir.startswith("/"):
            raise ValueError(f"cwd must be an absolute path: {workdir!r}")
        command = bwrap.wrap(workdir, argv)
        if not self._unsafe:
            assert loaded.pids is not None
            command = bwrap.nsenter(self._nsenter, self._setpriv, loaded.pids.child.pid, command)
        full_env = {**bwrap.base_env(home), **loaded.spec.env, **(env or {})}
        process_env = bwrap.env_carrier(full_env)
        if self._unsafe:
            # Outside a namespace, this inherited variable is how stop finds what to kill.
            process_env[_MARKER] = str(self._root / sandbox_id)
        result = await _run(command, env=process_env, timeout=timeout)
        # A command cut off by a concurrent stop reads as SIGKILL or an nsenter error.
        if (
            result.exit_code != 0
            and not result.timed_out
            and not (await asyncio.to_thread(self._load, sandbox_id)).running
        ):
            raise SandboxNotRunning(f"sandbox {sandbox_id} stopped during the command")
        return result

    async def _signal_group(
        self, sandbox_id: str, loaded: _Loaded, pgid: int, sig: signal.Signals
    ) -> None:
        if self._unsafe:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            return
        # The pgid is a sandbox pid: only a process in the sandbox's pid namespace can name it.
        argv = bwrap.signal_group(sig.name.removeprefix("SIG"), pgid)
        home = self._inner_home(sandbox_id)
        await self._exec(sandbox_id, loaded, argv, cwd=home, env=None, timeout=10.0)

    def _read_exit(self, sandbox_id: str, exit_path: str) -> int | None:
        parts = self._home_parts(sandbox_id, exit_path)
        try:
            data = _read_in_home(self._home(sandbox_id), parts, 0, 64)
        except FileNotFoundError:
            return None
        return int(data) if data.strip().isdigit() else None


# -- validation -----------------------------------------------------------------------------


def _which(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise SandboxUnavailable(f"{tool} not found on PATH")
    return found


def _check_id(sandbox_id: str) -> None:
    # The id becomes a directory name under root: this pattern is what keeps it there.
    if not _ID_RE.fullmatch(sandbox_id):
        raise ValueError(f"invalid sandbox id: {sandbox_id!r}")


def _check_env(env: dict[str, str]) -> None:
    # Names end up in `export NAME=...` lines: this pattern is what makes that safe.
    for name in env:
        if not _ENV_NAME_RE.fullmatch(name) or name in (bwrap.ENV_CARRIER, _MARKER):
            raise ValueError(f"invalid environment variable name: {name!r}")


def _check_argv(argv: Sequence[str]) -> None:
    if not argv or not all(isinstance(arg, str) for arg in argv):
        raise ValueError("argv must be a non-empty list of strings")


# -- processes ------------------------------------------------------------------------------


def _stat_fields(path: str) -> list[bytes]:
    """Fields of a /proc/<pid>/stat after the command name: [0] state, [2] pgrp, [19] start."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return []
    # The command name may contain spaces and parentheses; it ends at the last ')'.
    fields = data.rpartition(b")")[2].split()
    return fields if len(fields) > 19 and fields[0] not in (b"Z", b"X") else []


def _start_time(pid: int) -> int | None:
    """Start time of a live process; None if gone or a zombie (init may never reap it)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return int(fields[19]) if fields else None


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return b"\0" + file.read()
    except OSError:
        return b""


def _group_alive(proc_root: str, pgid: int) -> bool:
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return False
    for entry in entries:
        if entry.isdigit():
            fields = _stat_fields(f"{proc_root}/{entry}/stat")
            if fields and int(fields[2]) == pgid:
                return True
    return False


async def _wait_group_gone(proc_root: str, pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while await asyncio.to_thread(_group_alive, proc_root, pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _kill(proc: _Proc) -> None:
    if _start_time(proc.pid) == proc.start:  # else gone, or the pid is someone else's now
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)


def _wait_dead(procs: Sequence[_Proc], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_start_time(p.pid) == p.start for p in procs):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _probe(state: Path, namespaced: bool) -> _Pids | None:
    """The pids of a sandbox once ready; None while starting; SandboxError if it died."""
    keeper = _read_int(state / "keeper.pid")
    payload = _read_int(state / "payload.pid")
    child = payload
    if namespaced:
        try:
            child = int(json.loads((state / "info.json").read_bytes())["child-pid"])
        except (FileNotFoundError, ValueError, KeyError):
            child = None  # not written yet, or written halfway
    try:
        ready = (state / "ready").read_bytes() == b"ready\n"
    except FileNotFoundError:
        ready = False
    if keeper is None or payload is None or child is None or not ready:
        if keeper is not None and _start_time(keeper) is None:
            raise SandboxError(f"sandbox exited while starting: {_log_tail(state)}")
        return None
    procs = []
    for pid in (keeper, payload, child):
        start = _start_time(pid)
        if start is None:
            raise SandboxError(f"sandbox exited while starting: {_log_tail(state)}")
        procs.append(_Proc(pid, start))
    return _Pids(*procs)


def _write_pids(state: Path, pids: _Pids) -> None:
    raw = {"keeper": pids.keeper, "payload": pids.payload, "child": pids.child}
    data = json.dumps({key: [p.pid, p.start] for key, p in raw.items()}).encode()
    _write_atomic(state / "pids.json", data)


def _read_pids(state: Path) -> _Pids | None:
    try:
        raw = json.loads((state / "pids.json").read_bytes())
        return _Pids(*(_Proc(*raw[key]) for key in ("keeper", "payload", "child")))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def _log_tail(state: Path) -> str:
    try:
        data = (state / "keeper.log").read_bytes()[-2000:]
    except FileNotFoundError:
        return "(no keeper log)"
    return data.decode("utf-8", errors="replace").strip() or "(keeper log empty)"


def _kill_marked(marker: bytes) -> None:
    """Unsafe mode: SIGKILL every process whose environment carries `marker`.

    Catches what left its process group or session too; only a process that exec'd with a
    scrubbed environment escapes. Repeated because processes may fork during a scan.
    """
    for _ in range(20):
        found = False
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/environ", "rb") as file:
                    environ = b"\0" + file.read()
            except OSError:
                continue
            if marker in environ and entry.isdigit() and _start_time(int(entry)) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry), signal.SIGKILL)
                found = True
        if not found:
            return
        time.sleep(0.01)
    raise SandboxError("sandbox processes keep appearing while being killed")


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _Collector(asyncio.SubprocessProtocol):
    """Output and exit of one command.

    Not asyncio.subprocess.Process: its wait() only returns once the pipes are closed too,
    so a background process that keeps stdout open would hang the exec past its timeout.
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.output = {1: bytearray(), 2: bytearray()}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buf = self.output[fd]
        buf += data[: max(0, _MAX_OUTPUT - len(buf))]

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _run(argv: list[str], *, env: dict[str, str], timeout: float) -> ExecResult:
    # Own session: the process group is ours to kill on timeout or cancellation.
    transport, proto = await asyncio.get_running_loop().subprocess_exec(
        _Collector,
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd="/",
        start_new_session=True,
    )
    pid = transport.get_pid()
    timed_out = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(proto.exited), timeout)
        except TimeoutError:
            timed_out = True
            _killpg(pid)
            await proto.exited
        # Something that left the group, or was started in the background, may hold the
        # pipes open indefinitely: take what comes within the grace period, then let go.
        await asyncio.wait([proto.closed], timeout=_PIPE_GRACE)
    finally:
        if transport.get_returncode() is None:
            _killpg(pid)  # cancelled: leave nothing running behind us
        transport.close()
    code = transport.get_returncode()
    code = -signal.SIGKILL if code is None else code
    return ExecResult(
        exit_code=124 if timed_out else (128 - code if code < 0 else code),
        stdout=proto.output[1].decode("utf-8", errors="replace"),
        stderr=proto.output[2].decode("utf-8", errors="replace"),
        timed_out=timed_out,
    )


# -- files below the home -------------------------------------------------------------------


def _open_parent(home: Path, parts: list[str], *, create: bool) -> tuple[int, str]:
    """Directory fd and final name of `parts` below `home`, resolved as inside the sandbox.

    The sandbox owns everything below `home` and runs concurrently with us (host root), so
    the walk is fd-relative with O_NOFOLLOW at every step: a component swapped for a symlink
    mid-walk makes an open fail instead of leading elsewhere. Symlinks are followed by hand,
    relative ones as usual, absolute ones only when they point into the sandbox home.
    """
    homes = [[p for p in prefix.split("/") if p] for prefix in (bwrap.SANDBOX_HOME, str(home))]
    todo = list(reversed(parts))
    stack = [os.open(home, _DIR_FLAGS | os.O_NOFOLLOW)]  # unsafe mode can replace it
    steps = 0
    try:
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) == 1:
                    raise SandboxError("path escapes the sandbox home")
                os.close(stack.pop())
                continue
            try:
                target: str | None = os.readlink(name, dir_fd=stack[-1])
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a symlink
                    raise
                target = None
            if target is not None:
                steps += 1
                if steps > _MAX_SYMLINKS:
                    raise SandboxError("too many levels of symbolic links")
                if target.startswith("/"):
                    absolute = [p for p in target.split("/") if p]
                    inside = [absolute[len(h) :] for h in homes if absolute[: len(h)] == h]
                    if not inside:
                        raise SandboxError(f"symlink leads out of the sandbox home: {target}")
                    for fd in stack[1:]:
                        os.close(fd)
                    del stack[1:]
                    todo.extend(reversed(inside[0]))
                else:
                    todo.extend(reversed(target.split("/")))
                continue
            if not todo:
                return os.dup(stack[-1]), name
            try:
                stack.append(os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=stack[-1]))
            except FileNotFoundError:
                steps += 1
                if not create or steps > _MAX_SYMLINKS:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=stack[-1])
                todo.append(name)
        raise SandboxError("the path names a directory, not a file")
    finally:
        for fd in stack:
            os.close(fd)


def _read_in_home(home: Path, parts: list[str], offset: int, limit: int | None) -> bytes:
    try:
        dir_fd, name = _open_parent(home, parts, create=False)
        try:
            # O_NONBLOCK: a FIFO planted by the sandbox must not hang this thread.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: the final component is (now) a symlink
        raise SandboxError(f"cannot open {'/'.join(parts)}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SandboxError(f"not a regular file: {'/'.join(parts)}")
        chunks: list[bytes] = []
        while limit is None or limit > 0:
            chunk = os.pread(fd, 1 << 20 if limit is None else min(1 << 20, limit), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            limit = None if limit is None else limit - len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_in_home(home: Path, parts: list[str], data: bytes, mode: int) -> None:
    try:
        dir_fd, name = _open_parent(home, parts, create=True)
    except OSError as exc:
        raise SandboxError(f"cannot write {'/'.join(parts)}: {exc.strerror}") from exc
    tmp = f".upstream-{secrets.token_hex(8)}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)  # the umask must not trim the requested mode
        finally:
            os.close(fd)
        try:
            # rename replaces a symlink at `name` itself, never what it points to.
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise SandboxError(f"cannot write {'/'.join(parts)}: {exc.strerror}") from exc
    finally:
        os.close(dir_fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Owner-only file written whole (state files; spec.env may hold credentials)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
