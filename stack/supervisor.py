"""`upstream up`: the whole service on one machine, in one foreground command.

Order: embedded PostgreSQL and Temporal (unless DATABASE_URL / TEMPORAL_ADDRESS point
elsewhere) -> migrations -> worker + API -> wait for /api/health -> print URLs. Ctrl-C or
SIGTERM stops in reverse: API and worker, then Temporal, then PostgreSQL.

Every child runs in its own session, so a terminal Ctrl-C reaches only this supervisor and the
stop order above holds (otherwise the database could go down while the worker still writes).
Each child also gets a parent-death signal, so a SIGKILLed supervisor leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

from config.settings import Settings
from stack._proc import (
    DataDirBusyError,
    FileLock,
    StartAborted,
    check_abort,
    die_with_parent,
    log_tail,
    open_log,
    terminate,
)
from stack.ports import PortInUseError, ensure_port_free, load_or_allocate_ports
from stack.postgres import EmbeddedPostgres, PostgresError
from stack.temporal import TemporalDevServer, TemporalError

HEALTH_PATH = "/api/health"

# Root of the source tree (parent of the `stack` package): put on the children's PYTHONPATH
# so `python -m cli` resolves even when `upstream up` was started from another directory.
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


class StackError(RuntimeError):
    """The stack could not be brought up (the message says which part and where its log is)."""


# Failures reported as one clear line instead of a traceback.
STARTUP_ERRORS: tuple[type[Exception], ...] = (
    StackError,
    PortInUseError,
    DataDirBusyError,
    PostgresError,
    TemporalError,
)


def logs_dir_of(data_dir: Path) -> Path:
    return data_dir / "logs"


def _make_private_dir(path: Path) -> None:
    """Create with mode 0700 (an existing dir keeps its mode; the embedded PostgreSQL may have
    added o+x on the data dir so its system user can reach pgdata)."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)
        path.chmod(0o700)  # mkdir's mode is filtered by the umask


@dataclass(frozen=True)
class DeadProcess:
    """A process of the stack that exited although nobody asked it to."""

    name: str
    exit_code: int
    log_path: Path

    def describe(self, when: str) -> str:
        """e.g. 'worker exited unexpectedly (exit code 1); log /…/logs/worker.log'."""
        return f"{self.name} exited {when} ({_describe_exit(self.exit_code)}); log {self.log_path}"


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


# -- embedded servers ---------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedServers:
    """Where the database and Temporal are, embedded or external."""

    database_url: str
    temporal_address: str
    temporal_ui_url: str | None
    postgres_embedded: bool
    temporal_embedded: bool


class EmbeddedServers:
    """PostgreSQL and Temporal for one data dir: started unless an external URL is given.

    `EmbeddedServers(data_dir).start()` is all a test needs for a real database and Temporal.
    Holds `<data_dir>/upstream.lock` while running, so two stacks never share a data dir.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        temporal_address: str | None = None,
        temporal_namespace: str = "default",
        temporal_ui: bool = True,
    ) -> None:
        self._data_dir = data_dir
        self._database_url = database_url
        self._temporal_address = temporal_address
        self._namespace = temporal_namespace
        self._temporal_ui = temporal_ui
        self._lock = FileLock(data_dir / "upstream.lock", f"data dir {data_dir}")
        self.postgres: EmbeddedPostgres | None = None
        self.temporal: TemporalDevServer | None = None

    @property
    def logs_dir(self) -> Path:
        return logs_dir_of(self._data_dir)

    @property
    def embeds_anything(self) -> bool:
        return self._database_url is None or self._temporal_address is None

    def start(self, *, stop_event: threading.Event | None = None) -> ResolvedServers:
        _make_private_dir(self._data_dir)
        _make_private_dir(self.logs_dir)
        self._lock.acquire()
        try:
            ports = load_or_allocate_ports(self._data_dir) if self.embeds_anything else None
            database_url = self._database_url
            if database_url is None:
                assert ports is not None
                self.postgres = EmbeddedPostgres(
                    self._data_dir, port=ports.postgres, log_path=self.logs_dir / "postgres.log"
                )
                self.postgres.start(stop_event=stop_event)
                database_url = self.postgres.url
            temporal_address = self._temporal_address
            ui_url: str | None = None
            if temporal_address is None:
                assert ports is not None
                self.temporal = TemporalDevServer(
                    self._data_dir,
                    port=ports.temporal,
                    ui_port=ports.temporal_ui if self._temporal_ui else None,
                    log_path=self.logs_dir / "temporal.log",
                    namespace=self._namespace,
                )
                self.temporal.start(stop_event=stop_event)
                temporal_address = self.temporal.address
                ui_url = self.temporal.ui_url
        except BaseException:
            self.stop()
            raise
        return ResolvedServers(
            database_url=database_url,
            temporal_address=temporal_address,
            temporal_ui_url=ui_url,
            postgres_embedded=self.postgres is not None,
            temporal_embedded=self.temporal is not None,
        )

    def dead(self) -> DeadProcess | None:
        """The embedded server we started that has exited, if any."""
        for name, server in (("postgres", self.postgres), ("temporal", self.temporal)):
            code = None if server is None else server.poll()
            if server is not None and code is not None:
                return DeadProcess(name, code, server.log_path)
        return None

    def stop(self) -> None:
        """Temporal first (its clients are gone by now), PostgreSQL last. Idempotent."""
        try:
            if self.temporal is not None:
                self.temporal.stop()
        finally:
            try:
                if self.postgres is not None:
                    self.postgres.stop()
            finally:
                self._lock.release()

    def __enter__(self) -> ResolvedServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- child processes ----------------------------------------------------------------------


class _Child:
    """A `python -m cli <command>` child; output goes to its log file and, prefixed, to echo."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_path: Path, echo: TextIO | None
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._echo = echo
        self._log_fh: IO[bytes] = open_log(log_path, f"{name}: {' '.join(argv)}")
        try:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        except BaseException:
            self._log_fh.close()
            raise
        # A thread per child drains the pipe; if nobody read it the child would block on a
        # full pipe buffer and look hung.
        self._reader = threading.Thread(target=self._pump, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        prefix = f"{self.name:<7}| "
        for line in iter(self.proc.stdout.readline, b""):
            with contextlib.suppress(OSError, ValueError):
                self._log_fh.write(line)
                self._log_fh.flush()
            if self._echo is not None:
                # A closed terminal/pipe must not stop the draining (or the log).
                with contextlib.suppress(OSError, ValueError):
                    text = line.decode("utf-8", errors="replace").rstrip("\n")
                    self._echo.write(prefix + text + "\n")
                    self._echo.flush()

    def poll(self) -> int | None:
        return self.proc.poll()

    def signal_stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    def finish(self, timeout: float) -> int:
        """Wait for exit (SIGKILL of the process group after `timeout`), flush the output."""
        code = terminate(self.proc, timeout=max(timeout, 0.0))
        # Whatever the child left in its session (e.g. an agent process the worker started) is
        # an orphan now, and would keep our pipe open so the reader never sees EOF.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reader.join(timeout=5)
        if not self._reader.is_alive() and self.proc.stdout is not None:
            # Only once the reader is done: closing a buffered file another thread is
            # blocked reading would wait for that read.
            self.proc.stdout.close()
        self._log_fh.close()
        return code

    def failure(self, what: str) -> str:
        return f"{what}; log {self.log_path}:\n{log_tail(self.log_path)}"


# -- the stack ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StackInfo:
    api_url: str
    temporal_ui_url: str | None
    data_dir: Path
    logs_dir: Path
    servers: ResolvedServers
    startup_seconds: float


def _client_host(host: str) -> str:
    """Address a client uses for a server bound to `host` (wildcards -> loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _http_status(host: str, port: int) -> int | str:
    """Status of GET /api/health, or the connection error's name.

    Plain http.client rather than httpx: the CLI logs at INFO and httpx would log every probe.
    """
    conn = http.client.HTTPConnection(host.strip("[]"), port, timeout=2.0)
    try:
        conn.request("GET", HEALTH_PATH)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


class Stack:
    """Servers + migrations + worker + API for one Settings; what `upstream up` runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        echo: TextIO | None = None,
        health_timeout: float = 90.0,
        migrate_timeout: float = 600.0,
        child_stop_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self._echo = echo
        self._health_timeout = health_timeout
        self._migrate_timeout = migrate_timeout
        self._child_stop_timeout = child_stop_timeout
        self.servers = EmbeddedServers(
            settings.data_dir,
            database_url=settings.database_url,
            temporal_address=settings.temporal_address,
            temporal_namespace=settings.temporal_namespace,
            temporal_ui=True,
        )
        self._children: list[_Child] = []

    @property
    def api_url(self) -> str:
        return f"http://{_client_host(self.settings.host)}:{self.settings.port}"

    @property
    def logs_dir(self) -> Path:
        return logs_dir_of(self.settings.data_dir)

    def start(self, *, stop_event: threading.Event | None = None) -> StackInfo:
        began = time.monotonic()
        try:
            self._check_api_port()
            servers = self.servers.start(stop_event=stop_event)
            env = self._child_env(servers)
            self._migrate(env, stop_event)
            self._children.append(self._spawn("worker", env))
            self._children.append(self._spawn("api", env))
            self._wait_healthy(stop_event)
        except BaseException:
            self.stop()
            raise
        return StackInfo(
            api_url=self.api_url,
            temporal_ui_url=servers.temporal_ui_url,
            data_dir=self.settings.data_dir,
            logs_dir=self.logs_dir,
            servers=servers,
            startup_seconds=time.monotonic() - began,
        )

    def _check_api_port(self) -> None:
        port, host = self.settings.port, self.settings.host
        ensure_port_free(port, name="api", host=host, hint="stop it or choose another --port")
        if self.servers.embeds_anything:
            _make_private_dir(self.settings.data_dir)
            for name, taken in load_or_allocate_ports(self.settings.data_dir).as_dict().items():
                if taken == port:
                    raise PortInUseError(
                        f"port {port} (api) is the remembered {name} port of this data dir "
                        f"({self.settings.data_dir / 'ports.json'}); choose another --port"
                    )

    def _child_env(self, servers: ResolvedServers) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            DATABASE_URL=servers.database_url,
            TEMPORAL_ADDRESS=servers.temporal_address,
            TEMPORAL_NAMESPACE=s.temporal_namespace,
            UPSTREAM_TASK_QUEUE=s.task_queue,
            UPSTREAM_DATA_DIR=str(s.data_dir),
            UPSTREAM_PORT=str(s.port),
            UPSTREAM_HOST=s.host,
            # Output goes through a pipe: without this, Python block-buffers it and errors
            # would show up late (or never, on a hard kill).
            PYTHONUNBUFFERED="1",
        )
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(_SOURCE_ROOT) not in paths:
            paths.append(str(_SOURCE_ROOT))
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def _spawn(self, command: str, env: dict[str, str]) -> _Child:
        argv = [sys.executable, "-m", "cli", command]
        return _Child(command, argv, env, self.logs_dir / f"{command}.log", self._echo)

    def _migrate(self, env: dict[str, str], stop_event: threading.Event | None) -> None:
        child = self._spawn("migrate", env)
        deadline = time.monotonic() + self._migrate_timeout
        try:
            while child.poll() is None:
                check_abort(stop_event, "migrations")
                if time.monotonic() > deadline:
                    raise StackError(
                        child.failure(
                            f"migrations did not finish within {self._migrate_timeout:.0f}s"
                        )
                    )
                time.sleep(0.05)
        finally:
            code = child.finish(timeout=self._child_stop_timeout)
        if code != 0:
            raise StackError(child.failure(f"migrations failed ({_describe_exit(code)})"))

    def _wait_healthy(self, stop_event: threading.Event | None) -> None:
        url = self.api_url + HEALTH_PATH
        deadline = time.monotonic() + self._health_timeout
        last = "no answer"
        while True:
            check_abort(stop_event, "the API")
            dead = self.dead_process()
            if dead is not None:
                raise StackError(dead.describe("during start-up"))
            status = _http_status(_client_host(self.settings.host), self.settings.port)
            if status == 200:
                return
            last = f"HTTP {status}" if isinstance(status, int) else status
            if time.monotonic() > deadline:
                api = next(c for c in self._children if c.name == "api")
                raise StackError(
                    api.failure(
                        f"GET {url} did not answer 200 within "
                        f"{self._health_timeout:.0f}s (last: {last})"
                    )
                )
            time.sleep(0.1)

    def dead_process(self) -> DeadProcess | None:
        """The first process of the stack found exited (API, worker, servers), or None."""
        for child in self._children:
            code = child.poll()
            if code is not None:
                return DeadProcess(child.name, code, child.log_path)
        return self.servers.dead()

    def stop(self) -> None:
        """API and worker together (SIGTERM, SIGKILL after the deadline), then the servers."""
        children, self._children = self._children, []
        try:
            for child in children:
                child.signal_stop()
            deadline = time.monotonic() + self._child_stop_timeout
            for child in children:
                child.finish(timeout=deadline - time.monotonic())
        finally:
            self.servers.stop()


# -- `upstream up` ------------------------------------------------------------------------


def _say(message: str, stream: TextIO | None = None) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(message, file=stream or sys.stdout, flush=True)


def _banner(info: StackInfo) -> str:
    servers = info.servers
    lines = [
        f"Upstream Agents is up (ready in {info.startup_seconds:.1f}s)",
        f"  Web / API:    {info.api_url}",
    ]
    if servers.temporal_ui_url is not None:
        lines.append(f"  Temporal UI:  {servers.temporal_ui_url}")
    pg = "embedded" if servers.postgres_embedded else "external"
    tp = "embedded" if servers.temporal_embedded else "external"
    # The database URL carries no password when embedded; an external one may: not printed.
    if servers.postgres_embedded:
        lines.append(f"  PostgreSQL:   {servers.database_url} ({pg})")
    else:
        lines.append(f"  PostgreSQL:   {pg} (DATABASE_URL)")
    lines += [
        f"  Temporal:     {servers.temporal_address} ({tp})",
        f"  Data dir:     {info.data_dir}",
        f"  Logs:         {info.logs_dir}/",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


def _install_handlers(
    handler: Callable[[int, FrameType | None], None],
) -> dict[signal.Signals, _Handler]:
    previous: dict[signal.Signals, _Handler] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous  # signal.signal only works on the main thread
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_handlers(previous: dict[signal.Signals, _Handler]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)


def run_up(settings: Settings) -> int:
    """Body of `upstream up`: start everything, print where it is, run until Ctrl-C/SIGTERM.

    Returns the process exit code: 0 after a requested stop, 1 if start-up failed or a process
    died on its own.
    """
    stop_event = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        # Only set the flag. No print (re-entrant writes to a buffered stream raise) and the
        # main thread never blocks in stop_event.wait(): Event.set() from a handler that
        # interrupted the same thread inside wait() could deadlock on the Event's lock.
        stop_event.set()

    previous = _install_handlers(_on_signal)
    stack = Stack(settings, echo=sys.stdout)
    _say(f"Starting Upstream Agents (data dir {settings.data_dir}) ...")
    try:
        try:
            info = stack.start(stop_event=stop_event)
        except StartAborted:
            _say("Start-up interrupted; stopping ...")
            return 0
        except STARTUP_ERRORS as exc:
            _say(f"upstream up: {exc}", sys.stderr)
            return 1
        _say(_banner(info))
        while not stop_event.is_set():
            dead = stack.dead_process()
            if dead is not None:
                _say(f"upstream up: {dead.describe('unexpectedly')}; stopping the rest", sys.stderr)
                return 1
            time.sleep(0.2)
        _say("Stopping ...")
        return 0
    finally:
        stack.stop()
        _restore_handlers(previous)
        _say("Stopped.")
