"""Every value that crosses a Temporal boundary (workflow input, query result, activity
argument/result) is one of these dataclasses. They carry ids, never secrets: workflow history
is stored in plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class BranchStatus(StrEnum):
    IDLE = "idle"
    CREATING = "creating"
    RUNNING = "running"
    STOPPED = "stopped"
    ERROR = "error"


class SandboxState(StrEnum):
    NONE = "none"
    STARTED = "started"
    STOPPED = "stopped"
    DELETED = "deleted"


@dataclass(frozen=True)
class BranchRef:
    branch_id: str
    user_id: str
    repo_id: str


@dataclass
class BranchWorkflowInput:
    """Also the state carried across continue-as-new."""

    branch: BranchRef
    status: BranchStatus = BranchStatus.CREATING
    detail: str | None = None
    sandbox: SandboxState = SandboxState.NONE
    auto_stop_seconds: int = 600


@dataclass(frozen=True)
class BranchSnapshot:
    branch_id: str
    status: BranchStatus
    detail: str | None
    sandbox: SandboxState
    auto_stop_seconds: int
    auto_stop_at: datetime | None


@dataclass(frozen=True)
class SandboxReady:
    workdir: str
    # Seconds, not minutes: the owner's setting is in minutes, tests need shorter timers.
    auto_stop_seconds: int


@dataclass(frozen=True)
class SandboxWatchResult:
    alive: bool
    detail: str | None = None


@dataclass(frozen=True)
class BranchStatusUpdate:
    branch: BranchRef
    status: BranchStatus
    detail: str | None = None
    sandbox: SandboxState | None = None
