"""Git activities for `BranchWorkflow`: diff, history, push, pull requests and branch operations,
all run in the branch's sandbox (GitHub's API aside).

Each is safe to retry: the `gitops` functions are idempotent (a repeated push finds the remote
already there; a repeated rename finds the local branch renamed). Only transient failures
(network, a remote's 5xx) are raised for Temporal to retry; every other failure is an answer,
returned as an unsuccessful `GitOpOutcome`. Credentials are loaded here, never passed in.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import with_heartbeats
from activities.repo_access import RepoAccess
from db.engine import SessionFactory
from db.event_log import NewEvent, append_events
from db.models import Branch, Message, Repo
from githost.github import GitHubAuthError, GitHubClient, GitHubError, GitHubUnavailable
from githost.pull_text import pull_request_text
from githost.tokens import GitHubTokenExpired
from gitops.credentials import GitCredentials
from gitops.diff import branch_diff
from gitops.errors import (
    GitAuthError,
    GitConflict,
    GitOpError,
    InvalidGitInput,
    ProtectedBranch,
    PushRejected,
    TransientGitError,
)
from gitops.history import branch_history
from gitops.operations import (
    create_tag,
    delete_remote_branch,
    merge_base_into_branch,
    merge_branch_into_base,
    rebase_onto_base,
    rename_branch,
    reset_to,
)
from gitops.push import push_branch
from gitops.refs import InvalidRefName, validate_branch_name
from gitops.workspace import SandboxRepo
from sandboxes.base import SandboxNotFound, SandboxProvider, SandboxStatus
from workflows.ids import sandbox_name
from workflows.types import (
    BranchRef,
    GitErrorKind,
    GitEventRecord,
    GitOp,
    GitOpInput,
    GitOpOutcome,
    GitOpRequest,
    MergeDirection,
    PullRequestInfo,
    PushAfterTurn,
)

logger = logging.getLogger(__name__)

# Diffs travel back through workflow history: keep them well under Temporal's payload limit.
_DIFF_LIMIT_BYTES = 1_000_000


@dataclass(frozen=True)
class _Target:
    branch: Branch
    repo: Repo
    git: SandboxRepo
    token: str | None


class _NoCredentials(Exception):
    """The user's GitHub token has lapsed and cannot be refreshed."""


class GitActivities:
    def __init__(
        self, provider: SandboxProvider, sessions: SessionFactory, access: RepoAccess
    ) -> None:
        self._provider = provider
        self._sessions = sessions
        self._access = access

    # -- activities -----------------------------------------------------------------------

    @activity.defn
    async def run_git_op(self, op_input: GitOpInput) -> GitOpOutcome:
        request = op_input.request
        try:
            target = await self._target(op_input.branch)
        except _NoCredentials as exc:
            return _failure(request.op, GitErrorKind.AUTH, str(exc))
        try:
            outcome = await with_heartbeats(self._dispatch(target, request))
        except TransientGitError as exc:
            raise ApplicationError(exc.message, type="GitUnavailable") from exc
        except GitHubUnavailable as exc:
            raise ApplicationError(str(exc), type="GitHubUnavailable") from exc
        except GitOpError as exc:
            outcome = _from_git_error(request.op, exc)
        except GitHubAuthError as exc:
            outcome = _failure(request.op, GitErrorKind.AUTH, str(exc))
        except GitHubError as exc:
            outcome = _failure(request.op, GitErrorKind.FAILED, str(exc))
        if request.op not in (GitOp.DIFF, GitOp.COMMITS):
            await self._record(op_input.branch, outcome)
        return outcome

    @activity.defn
    async def push_after_turn(self, push: PushAfterTurn) -> GitOpOutcome:
        async with self._sessions() as session:
            branch = await session.get(Branch, uuid.UUID(push.branch.branch_id))
            repo = await session.get(Repo, uuid.UUID(push.branch.repo_id))
        if branch is None or repo is None:
            return _failure(GitOp.PUSH, GitErrorKind.FAILED, "the branch was deleted")
        if not repo.push_enabled:
            return GitOpOutcome(
                GitOp.PUSH, ok=True, message="pushing is off for this repository", status="off"
            )
        try:
            target = await self._target(push.branch)
        except _NoCredentials as exc:
            outcome = _failure(GitOp.PUSH, GitErrorKind.AUTH, str(exc), sha=push.sha)
            await self._record(push.branch, outcome)
            return outcome
        try:
            outcome = await with_heartbeats(self._push(target, sha=push.sha, force=False))
        except TransientGitError as exc:
            raise ApplicationError(exc.message, type="GitUnavailable") from exc
        except GitOpError as exc:
            outcome = _from_git_error(GitOp.PUSH, exc)
        await self._record(push.branch, outcome)
        return outcome

    @activity.defn
    async def record_git_event(self, record: GitEventRecord) -> None:
        await self._record(record.branch, record.outcome)

    # -- dispatch -------------------------------------------------------------------------

    async def _dispatch(self, target: _Target, request: GitOpRequest) -> GitOpOutcome:
        branch, repo, git = target.branch, target.repo, target.git
        match request.op:
            case GitOp.DIFF:
                diff = await branch_diff(
                    git, request.against or branch.base_branch, max_bytes=_DIFF_LIMIT_BYTES
                )
                return GitOpOutcome(
                    request.op,
                    ok=True,
                    message=f"{len(diff.files)} files changed",
                    sha=diff.head_sha,
                    diff=diff,
                )
            case GitOp.COMMITS:
                commits = await branch_history(git, branch.base_branch)
                return GitOpOutcome(
                    request.op, ok=True, message=f"{len(commits)} commits", commits=commits
                )
            case GitOp.PUSH:
                return await self._push(target, sha=None, force=request.force_with_lease)
            case GitOp.PULL_REQUEST:
                return await self._pull_request(target, request)
            case GitOp.MERGE:
                if request.direction is MergeDirection.BRANCH_INTO_BASE:
                    merged = await merge_branch_into_base(git, branch.name, branch.base_branch)
                    text = f"merged {branch.name} into {branch.base_branch}"
                else:
                    merged = await merge_base_into_branch(git, branch.base_branch)
                    text = f"merged {branch.base_branch} into {branch.name}"
                if merged.status == "up-to-date":
                    text = "already up to date"
                return GitOpOutcome(
                    request.op, ok=True, message=text, status=merged.status, sha=merged.sha
                )
            case GitOp.REBASE:
                rebased = await rebase_onto_base(git, branch.base_branch)
                text = f"rebased {branch.name} onto {branch.base_branch}"
                if rebased.status == "up-to-date":
                    text = "already up to date"
                elif rebased.rewrote_history and branch.pushed_sha:
                    text += "; the remote branch now needs a push with force_with_lease"
                return GitOpOutcome(
                    request.op, ok=True, message=text, status=rebased.status, sha=rebased.sha
                )
            case GitOp.RESET:
                if not request.commit:
                    raise InvalidGitInput("reset needs a commit")
                sha = await reset_to(git, request.commit, mode=request.mode.value)
                return GitOpOutcome(
                    request.op, ok=True, message=f"reset to {sha[:12]}", status="reset", sha=sha
                )
            case GitOp.TAG:
                if not request.name:
                    raise InvalidGitInput("tag needs a name")
                tag = await create_tag(
                    git,
                    request.name,
                    commit=request.commit,
                    message=request.message,
                    push=request.push,
                )
                text = f"tagged {tag.sha[:12]} as {tag.name}" + (
                    " and pushed" if tag.pushed else ""
                )
                return GitOpOutcome(request.op, ok=True, message=text, status="tagged", sha=tag.sha)
            case GitOp.RENAME:
                return await self._rename(target, request.name)
            case GitOp.DELETE_REMOTE:
                existed = await delete_remote_branch(
                    git, branch.name, default_branch=repo.default_branch
                )
                await self._set_branch(branch.id, pushed_sha=None)
                text = (
                    f"deleted {branch.name} on the remote"
                    if existed
                    else f"{branch.name} was not on the remote"
                )
                return GitOpOutcome(
                    request.op, ok=True, message=text, status="deleted" if existed else "absent"
                )
        raise InvalidGitInput(f"unknown git operation: {request.op}")  # pragma: no cover

    async def _push(self, target: _Target, *, sha: str | None, force: bool) -> GitOpOutcome:
        branch, repo = target.branch, target.repo
        result = await push_branch(
            target.git,
            branch.name,
            default_branch=repo.default_branch,
            sha=sha,
            force_with_lease=force,
        )
        await self._set_branch(branch.id, pushed_sha=result.sha)
        text = (
            f"{branch.name} is up to date on the remote"
            if result.status == "up-to-date"
            else f"pushed {result.sha[:12]} to {branch.name}"
            + (" (forced)" if result.forced else "")
        )
        return GitOpOutcome(GitOp.PUSH, ok=True, message=text, status=result.status, sha=result.sha)

    async def _pull_request(self, target: _Target, request: GitOpRequest) -> GitOpOutcome:
        branch, repo = target.branch, target.repo
        full_name = repo.github_full_name
        if full_name is None:
            return _failure(
                request.op,
                GitErrorKind.UNSUPPORTED,
                "pull requests need a repository on GitHub; this one is not",
            )
        if target.token is None:
            return _failure(
                request.op,
                GitErrorKind.AUTH,
                "connect GitHub first: sign in with GitHub or store a github credential",
            )
        if branch.pull_request_url and branch.pull_request_number:
            info = PullRequestInfo(branch.pull_request_number, branch.pull_request_url, False)
            return GitOpOutcome(
                request.op, ok=True, message="the pull request already exists", pull_request=info
            )
        # The head must be on GitHub before a pull request can name it.
        pushed = await self._push(target, sha=None, force=False)
        title, body = request.title, request.body
        if title is None or body is None:
            generated_title, generated_body = await self._conversation_text(branch.id)
            title = title if title is not None else generated_title or branch.name
            body = body if body is not None else generated_body
        owner = full_name.split("/", 1)[0]
        async with GitHubClient(self._access.settings.github_api_url, target.token) as github:
            existing = await github.find_open_pull(
                full_name, owner, branch.name, branch.base_branch
            )
            if existing is not None:
                pull, created = existing, False
            else:
                pull = await github.create_pull(
                    full_name,
                    title=title,
                    body=body,
                    head=branch.name,
                    base=branch.base_branch,
                    draft=request.draft,
                )
                created = True
        await self._set_branch(
            branch.id, pull_request_url=pull.html_url, pull_request_number=pull.number
        )
        info = PullRequestInfo(pull.number, pull.html_url, created)
        text = f"opened pull request #{pull.number}" if created else "the pull request exists"
        return GitOpOutcome(
            request.op, ok=True, message=text, sha=pushed.sha, pull_request=info, status="open"
        )

    async def _rename(self, target: _Target, new_name: str | None) -> GitOpOutcome:
        branch, repo = target.branch, target.repo
        if not new_name:
            raise InvalidGitInput("rename needs a new name")
        try:
            validate_branch_name(new_name)
        except InvalidRefName as exc:
            raise InvalidGitInput(str(exc)) from exc
        if new_name != branch.name:
            async with self._sessions() as session:
                taken = await session.scalar(
                    select(Branch.id).where(
                        Branch.repo_id == repo.id, Branch.name == new_name, Branch.id != branch.id
                    )
                )
            if taken is not None:
                raise InvalidGitInput(f"another branch of this repository is named {new_name}")
        renamed = await rename_branch(
            target.git, branch.name, new_name, default_branch=repo.default_branch
        )
        try:
            await self._set_branch(branch.id, name=new_name)
        except IntegrityError as exc:
            raise InvalidGitInput(f"another branch of this repository is named {new_name}") from exc
        text = f"renamed {renamed.old_name} to {renamed.new_name}" + (
            " here and on the remote" if renamed.remote_renamed else ""
        )
        return GitOpOutcome(
            GitOp.RENAME, ok=True, message=text, status="renamed", branch_name=new_name
        )

    # -- context --------------------------------------------------------------------------

    async def _target(self, ref: BranchRef) -> _Target:
        async with self._sessions() as session:
            branch = await session.get(Branch, uuid.UUID(ref.branch_id))
            repo = await session.get(Repo, uuid.UUID(ref.repo_id))
        if branch is None or repo is None:
            raise ApplicationError("the branch was deleted", type="GitSetupFailed")
        try:
            info = await self._provider.get(sandbox_name(ref.branch_id))
        except SandboxNotFound as exc:
            raise ApplicationError("the sandbox no longer exists", type="GitSetupFailed") from exc
        if info.status is not SandboxStatus.STARTED:
            raise ApplicationError("the sandbox is not running", type="SandboxNotRunning")
        try:
            token = await self._access.github_token(ref.user_id, repo)
        except GitHubTokenExpired as exc:
            raise _NoCredentials(str(exc)) from exc
        credentials = GitCredentials.github_token(token) if token else None
        git = SandboxRepo(
            self._provider,
            info.sandbox_id,
            workdir=info.workdir,
            home=info.home,
            credentials=credentials,
            # The token goes only to the repository's own remote, whatever origin now says.
            remote_url=repo.url,
        )
        return _Target(branch, repo, git, token)

    async def _conversation_text(self, branch_id: uuid.UUID) -> tuple[str, str]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(Message.role, Message.content)
                .where(Message.branch_id == branch_id)
                .order_by(Message.created_at, Message.id)
            )
            messages = [(role, content) for role, content in rows]
        return pull_request_text(messages)

    # -- persistence ----------------------------------------------------------------------

    async def _set_branch(self, branch_id: uuid.UUID, **values: Any) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(Branch).where(Branch.id == branch_id).values(**values))

    async def _record(self, ref: BranchRef, outcome: GitOpOutcome) -> None:
        """A `git` event in the branch's log: every client sees pushes and operations."""
        payload: dict[str, Any] = {
            "op": outcome.op.value,
            "ok": outcome.ok,
            "message": outcome.message,
            "status": outcome.status,
            "sha": outcome.sha,
        }
        if outcome.error_kind is not None:
            payload["error_kind"] = outcome.error_kind.value
        if outcome.conflicts:
            payload["conflicts"] = outcome.conflicts
        if outcome.branch_name is not None:
            payload["branch_name"] = outcome.branch_name
        if outcome.pull_request is not None:
            payload["pull_request"] = {
                "number": outcome.pull_request.number,
                "url": outcome.pull_request.url,
            }
        branch_id = uuid.UUID(ref.branch_id)
        async with self._sessions.begin() as session:
            exists = await session.scalar(select(Branch.id).where(Branch.id == branch_id))
            if exists is None:
                return
            await append_events(session, branch_id, [NewEvent("git", payload)])


def _failure(
    op: GitOp, kind: GitErrorKind, message: str, *, sha: str | None = None
) -> GitOpOutcome:
    return GitOpOutcome(op, ok=False, message=message, error_kind=kind, sha=sha)


def _from_git_error(op: GitOp, exc: GitOpError) -> GitOpOutcome:
    if isinstance(exc, GitConflict):
        return GitOpOutcome(
            op,
            ok=False,
            message=exc.message,
            error_kind=GitErrorKind.CONFLICT,
            conflicts=list(exc.files),
        )
    kind = GitErrorKind.FAILED
    if isinstance(exc, InvalidGitInput):
        kind = GitErrorKind.INVALID
    elif isinstance(exc, PushRejected):
        kind = GitErrorKind.REJECTED
    elif isinstance(exc, ProtectedBranch):
        kind = GitErrorKind.PROTECTED
    elif isinstance(exc, GitAuthError):
        kind = GitErrorKind.AUTH
    return _failure(op, kind, exc.message)
