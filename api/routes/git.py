"""Git on a branch: diff, history, push, pull request, and merge/rebase/reset/tag/rename/
delete-remote. Each runs in the branch's sandbox through its workflow (see `api.git`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from sqlalchemy import select

from api.deps import ScopeDep, TemporalDep
from api.git import run_git_operation
from api.schemas.git import (
    CommitOut,
    DiffOut,
    GitOperationRequest,
    GitResultOut,
    PullRequestCreate,
    PullRequestOut,
    PushRequest,
)
from db.models import Branch, Repo
from gitops.errors import InvalidGitInput
from gitops.refs import InvalidRefName, validate_branch_name
from gitops.workspace import check_revision, check_tag
from workflows.types import GitOp, GitOpOutcome, GitOpRequest

router = APIRouter(prefix="/branches/{branch_id}", tags=["git"])

OperationName = Literal["merge", "rebase", "reset", "tag", "rename", "delete-remote"]


def _checked(check: Callable[[str], str], value: str) -> str:
    """A branch, tag or commit named by the user, checked here so a bad one costs nothing."""
    try:
        return check(value)
    except InvalidGitInput as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from exc


def _result(outcome: GitOpOutcome) -> GitResultOut:
    return GitResultOut(
        op=outcome.op.value,
        message=outcome.message,
        status=outcome.status,
        sha=outcome.sha,
        branch_name=outcome.branch_name,
    )


@router.get("/diff", response_model=DiffOut)
async def read_diff(
    branch_id: uuid.UUID,
    scope: ScopeDep,
    temporal: TemporalDep,
    against: Annotated[
        str | None,
        Query(max_length=255, description="A branch, tag or commit; default the base branch"),
    ] = None,
) -> DiffOut:
    """Files changed since the branch left `against` (the merge base), with hunks; includes
    work not yet committed, so it can be watched while the agent runs."""
    branch = await scope.get(Branch, branch_id)
    if against is not None:
        _checked(lambda text: check_revision(text, "against"), against)
    outcome = await run_git_operation(
        temporal, branch.id, GitOpRequest(GitOp.DIFF, against=against)
    )
    assert outcome.diff is not None
    return DiffOut.model_validate(outcome.diff, from_attributes=True)


@router.get("/commits", response_model=list[CommitOut])
async def read_commits(
    branch_id: uuid.UUID, scope: ScopeDep, temporal: TemporalDep
) -> list[CommitOut]:
    """The branch's own commits (not on its base branch), newest first."""
    branch = await scope.get(Branch, branch_id)
    outcome = await run_git_operation(temporal, branch.id, GitOpRequest(GitOp.COMMITS))
    return [CommitOut.model_validate(c, from_attributes=True) for c in outcome.commits or []]


@router.post("/push", response_model=GitResultOut)
async def push(
    branch_id: uuid.UUID,
    scope: ScopeDep,
    temporal: TemporalDep,
    body: Annotated[PushRequest | None, Body()] = None,
) -> GitResultOut:
    """Push the branch to its remote now (turns push on their own when the repository's
    `push_enabled` is on). Never pushes to the repository's default branch; a rejected
    non-fast-forward answers 409 and can be retried with `force_with_lease`."""
    branch = await scope.get(Branch, branch_id)
    request = body or PushRequest()
    outcome = await run_git_operation(
        temporal,
        branch.id,
        GitOpRequest(GitOp.PUSH, force_with_lease=request.force_with_lease),
    )
    return _result(outcome)


@router.post(
    "/pull-request",
    response_model=PullRequestOut,
    responses={201: {"model": PullRequestOut, "description": "Pull request opened"}},
)
async def open_pull_request(
    branch_id: uuid.UUID,
    scope: ScopeDep,
    temporal: TemporalDep,
    response: Response,
    body: Annotated[PullRequestCreate | None, Body()] = None,
) -> PullRequestOut:
    """Push the branch and open a pull request into its base branch (201). Title and body are
    written from the conversation when not given. Asking again returns the same pull request
    (200)."""
    branch = await scope.get(Branch, branch_id)
    request = body or PullRequestCreate()
    outcome = await run_git_operation(
        temporal,
        branch.id,
        GitOpRequest(
            GitOp.PULL_REQUEST, title=request.title, body=request.body, draft=request.draft
        ),
    )
    pull = outcome.pull_request
    assert pull is not None
    response.status_code = status.HTTP_201_CREATED if pull.created else status.HTTP_200_OK
    return PullRequestOut(number=pull.number, url=pull.url, created=pull.created)


@router.post("/git/{op}", response_model=GitResultOut)
async def git_operation(
    branch_id: uuid.UUID,
    op: OperationName,
    scope: ScopeDep,
    temporal: TemporalDep,
    body: Annotated[GitOperationRequest | None, Body()] = None,
) -> GitResultOut:
    """merge (`direction`: base-into-branch, or branch-into-base which updates the base branch
    on the remote), rebase onto the base branch, reset to `commit` (`mode` hard/soft/mixed),
    tag (`name`, optional `commit` and `message`, pushed unless `push` is false), rename to
    `name` (here and on the remote), delete-remote (the branch on the remote). Conflicts
    answer 409 with the files, after the merge or rebase was aborted; merge, rebase, reset and
    rename wait for no running turn (409 while the agent works)."""
    branch = await scope.get(Branch, branch_id)
    args = body or GitOperationRequest()
    request = await _operation(scope, branch, GitOp(op), args)
    return _result(await run_git_operation(temporal, branch.id, request))


async def _operation(
    scope: ScopeDep, branch: Branch, op: GitOp, args: GitOperationRequest
) -> GitOpRequest:
    if op is GitOp.RESET:
        if args.commit is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "reset needs `commit`")
        return GitOpRequest(op, commit=_checked(check_revision, args.commit), mode=args.mode)
    if op is GitOp.TAG:
        if args.name is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "tag needs `name`")
        commit = _checked(check_revision, args.commit) if args.commit is not None else None
        return GitOpRequest(
            op,
            name=_checked(check_tag, args.name),
            commit=commit,
            message=args.message,
            push=args.push,
        )
    if op is GitOp.RENAME:
        if args.name is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "rename needs `name`")
        try:
            name = validate_branch_name(args.name)
        except InvalidRefName as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        repo = await scope.get(Repo, branch.repo_id)
        if name == repo.default_branch:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"{name} is the repository's default branch; pick another name",
            )
        taken = await scope.session.scalar(
            select(Branch.id).where(
                Branch.repo_id == branch.repo_id, Branch.name == name, Branch.id != branch.id
            )
        )
        if taken is not None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"another branch of this repository is named {name}"
            )
        return GitOpRequest(op, name=name)
    if op is GitOp.MERGE:
        return GitOpRequest(op, direction=args.direction)
    return GitOpRequest(op)
