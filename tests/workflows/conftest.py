"""Fixtures for end-to-end tests: a worker process of the test's own, real sandboxes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from sandboxes.local import LocalSandboxProvider

TOOLS_DIR = Path(os.environ.get("UPSTREAM_TOOLS_DIR", Path.home() / ".cache" / "upstream-tools"))


ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """`upstream <command>` (worker, api) as a child process configured from `settings`, so
    it can be SIGKILLed like a crashed host."""

    def __init__(self, command: str, settings: Settings, log: Path) -> None:
        inherited = {
            k: v
            for k, v in os.environ.items()
            # Any of these would turn local mode (the caller is the local admin) off.
            if k not in ("GITHUB_PAT", "GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET")
        }
        self._command = command
        self._env = {
            **inherited,
            "DATABASE_URL": settings.require_database_url(),
            "TEMPORAL_ADDRESS": settings.require_temporal_address(),
            "UPSTREAM_DATA_DIR": str(settings.data_dir),
            "UPSTREAM_TASK_QUEUE": settings.task_queue,
            "ENCRYPTION_KEY": settings.encryption_key.get_secret_value()
            if settings.encryption_key
            else "",
            "UPSTREAM_TOOLS_DIR": str(settings.tools_dir),
            "UPSTREAM_TURN_TIMEOUT": str(settings.turn_timeout_seconds),
            "UPSTREAM_HOST": settings.host,
            "UPSTREAM_PORT": str(settings.port),
            "GITHUB_URL": settings.github_url,
            "GITHUB_API_URL": settings.github_api_url,
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", self._command],
                cwd=ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class WorkerProcess(ServiceProcess):
    def __init__(self, settings: Settings, log: Path) -> None:
        super().__init__("worker", settings, log)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """A task queue and data dir of this test's own: no other test's workflows reach its worker.
    Agent CLIs come from a shared tools dir, installed once for all tests and runs."""
    return settings.model_copy(
        update={
            "task_queue": f"tq-{uuid.uuid4()}",
            "data_dir": tmp_path / "data",
            "tools_dir_override": TOOLS_DIR,
        }
    )


@pytest.fixture
def worker(
    settings: Settings, tmp_path: Path, provider: LocalSandboxProvider
) -> Iterator[WorkerProcess]:
    """Also tears down every sandbox the test's workflows made (through `provider`)."""
    process = WorkerProcess(settings, tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def provider(settings: Settings) -> AsyncIterator[LocalSandboxProvider]:
    provider = LocalSandboxProvider(settings.sandboxes_dir)
    yield provider
    if settings.sandboxes_dir.exists():
        for entry in settings.sandboxes_dir.iterdir():
            if not entry.name.startswith("."):  # the provider's own bookkeeping
                await provider.delete(entry.name)
