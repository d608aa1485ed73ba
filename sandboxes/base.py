"""The sandbox provider contract: one interface, several implementations.

Paths handed to and returned from a provider are paths *inside* the sandbox (`SandboxInfo.home`,
`SandboxInfo.workdir`). Commands are argv lists, never shell strings built from user data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class SandboxStatus(StrEnum):
    STARTED = "started"
    STOPPED = "stopped"
    MISSING = "missing"


@dataclass(frozen=True)
class SandboxSpec:
    sandbox_id: str
    env: dict[str, str] = field(default_factory=dict)
    # Host paths made visible read-only at the same path (local providers only: a repo added
    # by local path is cloned from inside the sandbox).
    readonly_mounts: tuple[str, ...] = ()
    # Host paths made visible writable at the same path (local providers only: a repository
    # added by local path, pushed to from inside).
    writable_mounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxInfo:
    sandbox_id: str
    provider: str
    status: SandboxStatus
    home: str
    workdir: str


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


@dataclass(frozen=True)
class ProcessHandle:
    pid: int
    log_path: str
    exit_path: str


@dataclass(frozen=True)
class ProcessState:
    running: bool
    exit_code: int | None


class SandboxError(Exception):
    """Base class for provider failures."""


class SandboxNotFound(SandboxError):
    """No sandbox with that id (never created, or deleted)."""


class SandboxNotRunning(SandboxError):
    """The sandbox exists but is stopped; start it before running commands."""


class SandboxUnavailable(SandboxError):
    """The provider cannot work on this host (e.g. bubblewrap missing)."""


class SandboxProvider(Protocol):
    name: str

    async def create(self, spec: SandboxSpec) -> SandboxInfo: ...

    async def get(self, sandbox_id: str) -> SandboxInfo: ...

    async def start(self, sandbox_id: str) -> SandboxInfo: ...

    async def stop(self, sandbox_id: str) -> SandboxInfo: ...

    async def delete(self, sandbox_id: str) -> None: ...

    async def exec(
        self,
        sandbox_id: str,
        argv: list[str],
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult: ...

    async def start_process(
        self,
        sandbox_id: str,
        argv: list[str],
        *,
        log_path: str,
        exit_path: str,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ProcessHandle: ...

    async def process_state(self, sandbox_id: str, handle: ProcessHandle) -> ProcessState: ...

    async def kill_process(
        self, sandbox_id: str, handle: ProcessHandle, *, grace_seconds: float = 2.0
    ) -> None: ...

    async def read_file(
        self, sandbox_id: str, path: str, *, offset: int = 0, limit: int | None = None
    ) -> bytes: ...

    async def write_file(
        self, sandbox_id: str, path: str, data: bytes, *, mode: int = 0o600
    ) -> None: ...
