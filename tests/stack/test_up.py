"""End to end: the real `upstream up` (CLI, migrations, worker, API), stopped and started again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from config.settings import Settings
from tests.stack.conftest import free_port, wait_gone

REPO = Path(__file__).resolve().parents[2]


def _output(out: Path, err: Path) -> str:
    return f"--- stdout\n{out.read_text()}\n--- stderr\n{err.read_text()}"


def _run_once(
    data_dir: Path,
    port: int,
    tmp: Path,
    n: int,
    during: Callable[[], None] = lambda: None,
    external: dict[str, str] | None = None,
) -> dict[str, int]:
    """Start `upstream up`, wait for health, run `during`, SIGINT it, check nothing is left;
    return its ports. With `external` (DATABASE_URL, TEMPORAL_ADDRESS) nothing is embedded."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
    env.update(external or {})
    out, err = tmp / f"up{n}.out", tmp / f"up{n}.err"
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--data-dir", str(data_dir), "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=fo,
            stderr=fe,
        )
    kids: list[int] = []
    try:
        started = time.monotonic()
        deadline = started + 180
        while True:
            assert proc.poll() is None, f"upstream up exited early:\n{_output(out, err)}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"not healthy in 180s:\n{_output(out, err)}"
            time.sleep(0.2)
        print(f"run {n}: healthy after {time.monotonic() - started:.1f}s")
        # The supervisor's own health probe may pass a moment after ours: wait for its banner.
        while "ready in" not in out.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, _output(out, err)
            time.sleep(0.05)

        kids = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        cmdlines = " ".join(" ".join(psutil.Process(p).cmdline()) for p in kids)
        for part in ("cli worker", "cli api"):
            assert part in cmdlines, cmdlines
        during()
        if external:
            assert "postgres" not in cmdlines and "start-dev" not in cmdlines, cmdlines
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=90) == 0, _output(out, err)
            assert wait_gone(kids) == [], _output(out, err)
            return {}
        for part in ("postgres", "start-dev"):
            assert part in cmdlines, cmdlines

        ports: dict[str, int] = json.loads((data_dir / "ports.json").read_text())
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{ports['postgres']}/upstream") as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
        socket.create_connection(("127.0.0.1", ports["temporal"]), timeout=5).close()
        banner = out.read_text()
        assert f"http://127.0.0.1:{port}" in banner
        assert f"http://127.0.0.1:{ports['temporal_ui']}" in banner

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0, _output(out, err)
        assert wait_gone(kids) == [], _output(out, err)
        return ports
    finally:
        if proc.poll() is None:
            kids = kids or [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
            proc.kill()
            proc.wait()
            wait_gone(kids)


def test_up_twice_reuses_everything(tmp_path: Path, data_dir: Path, git_remote: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    created: dict[str, str] = {}

    def create_branch() -> None:
        repo = httpx.post(f"{api}/repos", json={"url": str(git_remote)}, timeout=30)
        assert repo.status_code == 201, repo.text
        branch = httpx.post(f"{api}/repos/{repo.json()['id']}/branches", json={}, timeout=30)
        assert branch.status_code == 201, branch.text
        created["branch"] = branch.json()["id"]
        _wait_live_idle(api, created["branch"])

    def branch_survived() -> None:
        assert [r["url"] for r in httpx.get(f"{api}/repos", timeout=10).json()] == [str(git_remote)]
        # The workflow picked up where it was: answers queries, sandbox still started.
        assert _wait_live_idle(api, created["branch"])["sandbox"]["state"] == "started"
        assert httpx.delete(f"{api}/branches/{created['branch']}", timeout=30).status_code == 204

    first = _run_once(data_dir, port, tmp_path, 1, during=create_branch)
    second = _run_once(data_dir, port, tmp_path, 2, during=branch_survived)
    assert second == first
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert (data_dir / "temporal" / "temporal.db").exists()


def _wait_live_idle(api: str, branch_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = httpx.get(f"{api}/branches/{branch_id}", timeout=10).json()
        if body["status"] == "idle" and body["sandbox"]:
            return body
        time.sleep(0.25)
    raise AssertionError(f"branch not idle: {body}")


def test_up_with_external_servers_embeds_nothing(
    tmp_path: Path, data_dir: Path, settings: Settings
) -> None:
    external = {
        "DATABASE_URL": settings.require_database_url(),
        "TEMPORAL_ADDRESS": settings.require_temporal_address(),
    }

    def healthy() -> None:
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).json()["status"] == "ok"

    port = free_port()
    _run_once(data_dir, port, tmp_path, 1, during=healthy, external=external)
    assert not (data_dir / "postgres").exists()
    assert not (data_dir / "temporal").exists()
