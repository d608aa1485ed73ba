"""`run_up` against a stand-in `cli` package, so the supervisor is tested on its own.

The children are started as `python -m cli <command>` in the supervisor's working directory;
running it from a directory holding a fake `cli` package makes that fake win over the real one
(`-m` puts the working directory first on sys.path).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from tests.stack.conftest import free_port, wait_gone

REPO = Path(__file__).resolve().parents[2]

_FAKE_CLI = r"""
import http.server, json, os, signal, sys, time
from pathlib import Path

command = sys.argv[1]
mode = os.environ.get("FAKE_MODE", "")
flags = Path(os.environ["FAKE_FLAGS"])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

if command == "migrate":
    if mode == "migrate-fails":
        print("boom: relation does not exist", file=sys.stderr)
        sys.exit(3)
    if mode == "migrate-slow":
        print("migrating slowly", flush=True)
        time.sleep(120)
    print("migrated")
elif command == "worker":
    print("worker polling", flush=True)
    while not (flags / "kill-worker").exists():
        time.sleep(0.05)
    print("worker crashing", file=sys.stderr)
    sys.exit(7)
elif command == "api":
    env = {k: os.environ.get(k) for k in (
        "DATABASE_URL", "TEMPORAL_ADDRESS", "UPSTREAM_DATA_DIR", "UPSTREAM_PORT", "UPSTREAM_HOST")}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(env).encode()
            self.send_response(200 if self.path == "/api/health" else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.HTTPServer((env["UPSTREAM_HOST"], int(env["UPSTREAM_PORT"])), Handler)
    print("api listening", flush=True)
    server.serve_forever()
"""

_RUN_UP = """
import sys
from pathlib import Path
from config.settings import Settings
from stack.supervisor import run_up
sys.exit(run_up(Settings(data_dir=Path(sys.argv[1]), port=int(sys.argv[2]))))
"""

EXTERNAL = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    "TEMPORAL_ADDRESS": "127.0.0.1:9",
}


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    out: Path
    err: Path
    flags: Path

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/health"

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def wait_healthy(self, timeout: float = 120) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"up exited early:\n{self.output()}"
            try:
                resp = httpx.get(self.health_url, timeout=2)
                if resp.status_code == 200:
                    body: dict[str, str] = resp.json()
                    return body
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not healthy in {timeout}s:\n{self.output()}")

    def wait_ready_banner(self, timeout: float = 60) -> None:
        """The supervisor's own health check passed (the test may see 200 a bit earlier)."""
        deadline = time.monotonic() + timeout
        while "ready in" not in self.out.read_text():
            assert time.monotonic() < deadline and self.proc.poll() is None, self.output()
            time.sleep(0.05)

    def descendants(self) -> list[int]:
        return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]

    def wait(self, timeout: float = 90) -> int:
        return self.proc.wait(timeout=timeout)


Launch = Callable[..., Up]


@pytest.fixture
def fake_cli(tmp_path: Path) -> Path:
    root = tmp_path / "fake"
    (root / "cli").mkdir(parents=True)
    (root / "cli" / "__init__.py").write_text("")
    (root / "cli" / "__main__.py").write_text(_FAKE_CLI)
    return root


@pytest.fixture
def launch(fake_cli: Path, data_dir: Path, tmp_path: Path) -> Iterator[Launch]:
    started: list[Up] = []

    def _launch(*, mode: str = "", external: bool = False, port: int | None = None) -> Up:
        n = len(started)
        flags = tmp_path / "flags"
        flags.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in EXTERNAL}
        env.update(PYTHONPATH=str(REPO), FAKE_MODE=mode, FAKE_FLAGS=str(flags))
        if external:
            env.update(EXTERNAL)
        up_port = port if port is not None else free_port()
        out, err = tmp_path / f"up{n}.out", tmp_path / f"up{n}.err"
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen(
                [sys.executable, "-c", _RUN_UP, str(data_dir), str(up_port)],
                cwd=fake_cli,
                env=env,
                stdout=fo,
                stderr=fe,
            )
        up = Up(proc, up_port, data_dir, out, err, flags)
        started.append(up)
        return up

    yield _launch
    for up in started:
        if up.proc.poll() is None:
            kids = up.descendants()
            up.proc.kill()
            up.proc.wait()
            wait_gone(kids)


def test_up_serves_then_stops_everything_on_sigint(launch: Launch, data_dir: Path) -> None:
    up = launch()
    health = up.wait_healthy()
    up.wait_ready_banner()
    ports = json.loads((data_dir / "ports.json").read_text())
    assert health["DATABASE_URL"] == (
        f"postgresql+psycopg://postgres@127.0.0.1:{ports['postgres']}/upstream"
    )
    assert health["TEMPORAL_ADDRESS"] == f"127.0.0.1:{ports['temporal']}"
    assert health["UPSTREAM_DATA_DIR"] == str(data_dir)
    assert health["UPSTREAM_PORT"] == str(up.port)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{ports['postgres']}/upstream") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert httpx.get(f"http://127.0.0.1:{ports['temporal_ui']}/", timeout=5).status_code == 200

    kids = up.descendants()
    names = " ".join(" ".join(psutil.Process(p).cmdline()) for p in kids)
    for part in ("postgres", "start-dev", "cli worker", "cli api"):
        assert part in names
    up.proc.send_signal(signal.SIGINT)
    assert up.wait() == 0, up.output()
    assert wait_gone(kids) == []

    out = up.output()
    assert f"Web / API:    http://127.0.0.1:{up.port}" in out
    assert f"Temporal UI:  http://127.0.0.1:{ports['temporal_ui']}" in out
    assert f"Data dir:     {data_dir}" in out
    assert "ready in" in out
    assert "api    | api listening" in out
    assert "worker | worker polling" in out
    assert "Stopped." in out
    for name in ("api", "worker", "migrate", "postgres", "temporal"):
        assert (data_dir / "logs" / f"{name}.log").stat().st_size > 0, name
    assert (data_dir / "logs").stat().st_mode & 0o777 == 0o700


def test_killed_up_leaves_nothing_and_restarts(launch: Launch, data_dir: Path) -> None:
    up = launch()
    up.wait_healthy()
    kids = up.descendants()
    assert len(kids) >= 4
    up.proc.kill()
    up.wait()
    # Parent-death signals: servers and children go away without a supervisor to stop them.
    assert wait_gone(kids, timeout=40) == []

    again = launch(port=up.port)
    again.wait_healthy()
    again.proc.send_signal(signal.SIGTERM)
    assert again.wait() == 0, again.output()


def test_failed_migration_is_reported(launch: Launch, data_dir: Path) -> None:
    up = launch(mode="migrate-fails", external=True)
    assert up.wait() == 1
    err = up.err.read_text()
    assert "migrations failed (exit code 3)" in err
    assert "boom: relation does not exist" in err
    assert not (data_dir / "logs" / "worker.log").exists()
    assert not (data_dir / "ports.json").exists()  # external servers: nothing embedded


def test_dead_worker_stops_the_rest(launch: Launch, data_dir: Path) -> None:
    up = launch(external=True)
    up.wait_healthy()
    up.wait_ready_banner()
    kids = up.descendants()
    (up.flags / "kill-worker").touch()
    assert up.wait(timeout=60) == 1
    err = up.err.read_text()
    assert (
        f"worker exited unexpectedly (exit code 7); log {data_dir / 'logs' / 'worker.log'}" in err
    )
    assert wait_gone(kids) == []


def test_taken_api_port_is_refused(launch: Launch, data_dir: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        up = launch(port=port)
        assert up.wait() == 1
    assert (
        f"port {port} (api) is already in use by another process; stop it or choose another --port"
        in up.err.read_text()
    )
    assert not (data_dir / "postgres").exists()


def test_stop_request_during_startup(launch: Launch, data_dir: Path) -> None:
    up = launch(mode="migrate-slow", external=True)
    log = data_dir / "logs" / "migrate.log"
    deadline = time.monotonic() + 60
    while "migrating slowly" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and up.proc.poll() is None, up.output()
        time.sleep(0.05)
    kids = up.descendants()
    assert kids
    up.proc.send_signal(signal.SIGTERM)
    assert up.wait(timeout=60) == 0, up.output()
    assert wait_gone(kids) == []
    assert "Start-up interrupted" in up.output()
