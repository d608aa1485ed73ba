"""Every value that crosses a Temporal boundary (workflow input, query result, activity
argument/result) is one of these dataclasses. They carry ids, never secrets: workflow history
is stored in plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gitops.diff import DiffResult
from gitops.history import CommitInfo


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


class TurnStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class MessageRequest:
    """Update payload: the API stored the message and turn rows first; ids only."""

    turn_id: str
    message_id: str
    loop_id: str | None = None  # the loop run to tell when this turn ends


@dataclass(frozen=True)
class TurnAccepted:
    turn_id: str
    message_id: str
    queue_position: int


@dataclass(frozen=True)
class TurnInput:
    branch: BranchRef
    turn_id: str


@dataclass(frozen=True)
class TurnResult:
    turn_id: str
    status: TurnStatus
    finished: bool = False
    error: str | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    # The commit holding the turn's changes (None: nothing changed, or an older history).
    commit_sha: str | None = None


@dataclass(frozen=True)
class TurnClosure:
    """Turns to end without (further) running: dropped from the queue, or lost."""

    branch: BranchRef
    turn_ids: list[str]
    status: TurnStatus
    reason: str


@dataclass
class BranchWorkflowInput:
    """Also the state carried across continue-as-new."""

    branch: BranchRef
    status: BranchStatus = BranchStatus.CREATING
    detail: str | None = None
    sandbox: SandboxState = SandboxState.NONE
    auto_stop_seconds: int = 600
    # Turns accepted but not started, in order (ids only: content lives in the database).
    pending: list[MessageRequest] = field(default_factory=list)
    # Recently accepted turn ids, so a repeated update (a retried request) is not queued twice.
    recent_turns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BranchSnapshot:
    branch_id: str
    status: BranchStatus
    detail: str | None
    sandbox: SandboxState
    auto_stop_seconds: int
    auto_stop_at: datetime | None
    running_turn: str | None = None
    queued_turns: list[str] = field(default_factory=list)


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


class LoopStopReason(StrEnum):
    FINISHED = "finished"
    MAX_ITERATIONS = "max_iterations"
    BUDGET_TOKENS = "budget_tokens"
    BUDGET_COST = "budget_cost"
    BUDGET_TIME = "budget_time"
    STOPPED = "stopped"
    TURN_FAILED = "turn_failed"


@dataclass(frozen=True)
class LoopBudget:
    tokens: int | None = None
    cost_usd: float | None = None
    seconds: int | None = None


@dataclass(frozen=True)
class LoopTurnDone:
    """Signal from the branch workflow: a turn of this loop ended."""

    turn_id: str
    status: TurnStatus
    finished: bool
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class SteerRequest:
    """A user message sent during the loop: the next iteration's prompt."""

    turn_id: str
    message_id: str


@dataclass
class LoopState:
    """LoopRunWorkflow input, also carried across continue-as-new."""

    loop_id: str
    branch: BranchRef
    max_iterations: int
    budget: LoopBudget
    first: SteerRequest
    iteration: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    started_at: datetime | None = None
    steering: list[SteerRequest] = field(default_factory=list)
    stop_requested: bool = False


@dataclass(frozen=True)
class LoopSnapshot:
    loop_id: str
    iteration: int
    max_iterations: int
    running_turn: str | None
    tokens: int
    cost_usd: float
    stop_requested: bool


@dataclass(frozen=True)
class LoopSubmission:
    loop_id: str
    branch: BranchRef
    iteration: int
    # The turn to run: a steering message or the loop's first; None makes a continuation.
    turn: SteerRequest | None
    # True: hand the turn over as an ordinary one (a steering message left when the loop ended).
    standalone: bool = False


@dataclass(frozen=True)
class LoopProgress:
    loop_id: str
    branch: BranchRef
    iteration: int
    tokens: int
    cost_usd: float
    stop_reason: LoopStopReason | None = None
    detail: str | None = None


class GitOp(StrEnum):
    DIFF = "diff"
    COMMITS = "commits"
    PUSH = "push"
    PULL_REQUEST = "pull-request"
    MERGE = "merge"
    REBASE = "rebase"
    RESET = "reset"
    TAG = "tag"
    RENAME = "rename"
    DELETE_REMOTE = "delete-remote"

    @property
    def changes_worktree(self) -> bool:
        """Operations that move HEAD or rewrite the checkout must not overlap an agent turn."""
        return self in (GitOp.MERGE, GitOp.REBASE, GitOp.RESET, GitOp.RENAME)


class MergeDirection(StrEnum):
    BASE_INTO_BRANCH = "base-into-branch"
    BRANCH_INTO_BASE = "branch-into-base"


class ResetMode(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    MIXED = "mixed"


class GitErrorKind(StrEnum):
    INVALID = "invalid"  # bad input: a ref, a sha, a name
    CONFLICT = "conflict"  # merge/rebase conflicts, already aborted
    REJECTED = "rejected"  # the remote refused a non-fast-forward
    PROTECTED = "protected"  # would write to the repository's default branch
    AUTH = "auth"  # the remote or GitHub refused our credentials
    UNSUPPORTED = "unsupported"  # e.g. a pull request for a repository not on GitHub
    UNAVAILABLE = "unavailable"  # the sandbox or the remote cannot be reached now
    FAILED = "failed"


@dataclass(frozen=True)
class GitOpRequest:
    """One git operation on a branch; each operation reads only its own fields."""

    op: GitOp
    against: str | None = None  # diff
    direction: MergeDirection = MergeDirection.BASE_INTO_BRANCH  # merge
    commit: str | None = None  # reset, tag
    mode: ResetMode = ResetMode.HARD  # reset
    name: str | None = None  # tag name, rename target
    message: str | None = None  # annotated tag
    push: bool = True  # tag
    force_with_lease: bool = False  # push
    title: str | None = None  # pull request
    body: str | None = None  # pull request
    draft: bool = False  # pull request


@dataclass(frozen=True)
class GitOpInput:
    branch: BranchRef
    request: GitOpRequest


@dataclass(frozen=True)
class PullRequestInfo:
    number: int
    url: str
    created: bool  # False: an existing pull request was returned


@dataclass(frozen=True)
class GitOpOutcome:
    op: GitOp
    ok: bool
    message: str
    error_kind: GitErrorKind | None = None
    conflicts: list[str] = field(default_factory=list)
    status: str | None = None  # e.g. pushed / up-to-date, merged / fast-forward
    sha: str | None = None
    branch_name: str | None = None  # after a rename
    diff: DiffResult | None = None
    commits: list[CommitInfo] | None = None
    pull_request: PullRequestInfo | None = None


@dataclass(frozen=True)
class PushAfterTurn:
    branch: BranchRef
    turn_id: str
    sha: str


@dataclass(frozen=True)
class GitEventRecord:
    """A git outcome the workflow records itself (the activity could not: retries ran out)."""

    branch: BranchRef
    outcome: GitOpOutcome
