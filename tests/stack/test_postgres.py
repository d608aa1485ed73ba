from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from stack._proc import DataDirBusyError
from stack.ports import PortInUseError, load_or_allocate_ports
from stack.postgres import EmbeddedPostgres
from stack.supervisor import EmbeddedServers
from tests.stack.conftest import alive, processes_using, wait_gone

REPO = Path(__file__).resolve().parents[2]


def _conninfo(pg: EmbeddedPostgres) -> str:
    return pg.url.replace("postgresql+psycopg://", "postgresql://")


def _server(data_dir: Path) -> EmbeddedPostgres:
    port = load_or_allocate_ports(data_dir).postgres
    return EmbeddedPostgres(data_dir, port=port, log_path=data_dir / "logs" / "postgres.log")


def test_restart_keeps_data_and_port(data_dir: Path) -> None:
    pg = _server(data_dir)
    remembered = load_or_allocate_ports(data_dir).postgres
    assert pg.url == f"postgresql+psycopg://postgres@127.0.0.1:{remembered}/upstream"
    try:
        pg.start()
        with psycopg.connect(_conninfo(pg), autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (body text)")
            conn.execute("INSERT INTO notes VALUES ('kept')")
        first_pid = pg.pid
        assert first_pid is not None
    finally:
        pg.stop()
    assert not alive(first_pid)
    assert not processes_using(pg.pgdata)

    again = _server(data_dir)
    assert again.port == remembered
    try:
        again.start()
        with psycopg.connect(_conninfo(again)) as conn:
            rows = conn.execute("SELECT body FROM notes").fetchall()
        assert rows == [("kept",)]
        # TCP on loopback only; no unix socket anywhere in pgdata.
        assert not list(again.pgdata.glob(".s.PGSQL.*"))
    finally:
        again.stop()
    assert "database system is shut down" in (data_dir / "logs" / "postgres.log").read_text()


def test_port_taken_by_another_listener(data_dir: Path) -> None:
    pg = _server(data_dir)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", pg.port))
        listener.listen()
        with pytest.raises(PortInUseError) as info:
            pg.start()
    assert str(info.value) == (
        f"port {pg.port} (postgres) is already in use by another process; "
        f"stop it or remove {data_dir / 'ports.json'} to pick new ports"
    )
    assert pg.poll() is None and pg.pid is None
    assert not processes_using(pg.pgdata)


def test_second_instance_on_same_data_is_refused(data_dir: Path) -> None:
    first, second = _server(data_dir), _server(data_dir)
    try:
        first.start()
        with pytest.raises(DataDirBusyError, match="already in use by another process"):
            second.start()
        assert first.poll() is None
    finally:
        first.stop()


def test_stale_pid_file_of_unrelated_process_is_ignored(data_dir: Path) -> None:
    pg = _server(data_dir)
    try:
        pg.start()
    finally:
        pg.stop()
    # A crash leaves postmaster.pid behind; in containers its pid is soon reused by anything,
    # here by the test process itself.
    pid_file = pg.pgdata / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{pg.pgdata}\n0\n{pg.port}\n\n127.0.0.1\n0 0\nready\n")
    try:
        pg.start()
        with psycopg.connect(_conninfo(pg)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.stop()


_HOLDER = """
import os, sys, threading
from pathlib import Path
from stack.postgres import EmbeddedPostgres
data_dir, port, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pg = EmbeddedPostgres(data_dir, port=port, log_path=data_dir / "logs" / "postgres.log")
if mode == "thread":
    # Started off the main thread: no parent-death signal, the server outlives us.
    t = threading.Thread(target=pg.start)
    t.start()
    t.join()
else:
    pg.start()
print(pg.pid, flush=True)
os.kill(os.getpid(), 9)
"""


def _start_and_crash(data_dir: Path, port: int, mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _HOLDER, str(data_dir), str(port), mode],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert out.returncode == -9, out.stderr
    return int(out.stdout.strip())


def test_server_dies_with_a_killed_owner(data_dir: Path) -> None:
    port = load_or_allocate_ports(data_dir).postgres
    pid = _start_and_crash(data_dir, port, "main")
    assert wait_gone([pid], timeout=30) == []


def test_orphan_from_crashed_run_is_stopped_and_replaced(data_dir: Path) -> None:
    port = load_or_allocate_ports(data_dir).postgres
    orphan = _start_and_crash(data_dir, port, "thread")
    assert alive(orphan)
    pg = _server(data_dir)
    try:
        started = time.monotonic()
        pg.start()
        assert time.monotonic() - started < 30
        assert not alive(orphan)
        assert pg.pid != orphan
        with psycopg.connect(_conninfo(pg)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("upstream",)
    finally:
        pg.stop()


def test_embedded_servers_postgres_only(data_dir: Path) -> None:
    """External Temporal given: only PostgreSQL starts, on the remembered port."""
    servers = EmbeddedServers(data_dir, temporal_address="temporal.example:7233")
    try:
        resolved = servers.start()
        port = load_or_allocate_ports(data_dir).postgres
        assert resolved.database_url == f"postgresql+psycopg://postgres@127.0.0.1:{port}/upstream"
        assert resolved.temporal_address == "temporal.example:7233"
        assert resolved.postgres_embedded and not resolved.temporal_embedded
        assert servers.temporal is None
        assert servers.dead() is None
        with pytest.raises(DataDirBusyError, match=f"data dir {data_dir}"):
            EmbeddedServers(data_dir, temporal_address="x:1").start()
    finally:
        servers.stop()
    assert data_dir.stat().st_mode & 0o077 in (0, 0o001)  # 0700, +o+x as root for pgdata


def test_crashed_server_is_reported_and_restartable(data_dir: Path) -> None:
    servers = EmbeddedServers(data_dir, temporal_address="temporal.example:7233")
    try:
        resolved = servers.start()
        conninfo = resolved.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (n int)")
            conn.execute("INSERT INTO t VALUES (1)")
        assert servers.postgres is not None and servers.postgres.pid is not None
        os.kill(servers.postgres.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while servers.dead() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        dead = servers.dead()
        assert dead is not None and dead.name == "postgres" and dead.exit_code == -9
        # Backends notice the postmaster's death and exit; the stale pid file stays behind.
        assert wait_gone([p.pid for p in processes_using(servers.postgres.pgdata)]) == []
        servers.stop()
        resolved = servers.start()
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]
    finally:
        servers.stop()
