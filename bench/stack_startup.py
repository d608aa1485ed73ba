"""Time from `upstream up` to a healthy API (cold and warm data dir), and the idle memory of
the worker and API processes.

    python bench/stack_startup.py [--runs 3] [--idle 10]

Prints medians over the runs; each run uses a fresh data dir for the cold start, then restarts
on the same data dir for the warm start.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/api/health")
        return connection.getresponse().status == 200
    except OSError:
        return False


def _rss_mib(up: psutil.Process, role: str) -> float:
    for child in up.children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if cmdline[-2:] == ["cli", role]:
            return float(child.memory_info().rss) / 2**20
    raise RuntimeError(f"no {role} process found")


def _one_start(data_dir: Path, port: int, idle: float) -> tuple[float, float, float]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    up = subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--data-dir", str(data_dir), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = started + 120
        while not _healthy(port):
            if up.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"upstream up did not become healthy (exit {up.poll()})")
            time.sleep(0.05)
        to_healthy = time.perf_counter() - started
        time.sleep(idle)
        process = psutil.Process(up.pid)
        return to_healthy, _rss_mib(process, "worker"), _rss_mib(process, "api")
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before measuring")
    args = parser.parse_args()

    cold, warm, worker_rss, api_rss = [], [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="upstream-bench-") as tmp:
            data_dir, port = Path(tmp) / "data", _free_port()
            seconds, worker_mib, api_mib = _one_start(data_dir, port, args.idle)
            cold.append(seconds)
            seconds, worker_mib, api_mib = _one_start(data_dir, port, args.idle)
            warm.append(seconds)
            worker_rss.append(worker_mib)
            api_rss.append(api_mib)

    print(f"runs: {args.runs}, idle before memory reading: {args.idle:.0f} s")
    print(
        f"up -> healthy, cold data dir: median {statistics.median(cold):.2f} s  (all {_fmt(cold)})"
    )
    print(
        f"up -> healthy, warm data dir: median {statistics.median(warm):.2f} s  (all {_fmt(warm)})"
    )
    print(f"worker idle RSS: median {statistics.median(worker_rss):.0f} MiB")
    print(f"api idle RSS:    median {statistics.median(api_rss):.0f} MiB")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
