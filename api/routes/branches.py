from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from agents.catalogue import UnknownAgentError, resolve_agent_model
from api.branch_workflows import (
    query_branch_snapshot,
    request_branch_deletion,
    start_branch_workflow,
)
from api.conversation import request_stop
from api.deps import ScopeDep, SettingsDep, StateDep, TemporalDep
from api.errors import ServiceUnavailable
from api.github_access import git_credentials_for
from api.loops import latest_loop, loop_summary
from api.routes.settings import load_settings
from api.schemas.branches import BranchCreate, BranchOut, BranchPatch, SandboxOut
from api.schemas.conversation import StopAccepted
from api.schemas.git import PullRequestOut
from db.models import Branch, Repo
from db.users import BranchQuotaExceeded, check_branch_quota
from gitops.names import generate_branch_name
from gitops.refs import InvalidRefName, validate_branch_name
from gitops.remote import GitRemoteError, existing_branches
from workflows.types import BranchSnapshot, BranchStatus

repo_router = APIRouter(prefix="/repos/{repo_id}/branches", tags=["branches"])
router = APIRouter(prefix="/branches", tags=["branches"])


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def branch_out(branch: Branch, snapshot: BranchSnapshot | None = None) -> BranchOut:
    out = BranchOut(
        id=branch.id,
        repo_id=branch.repo_id,
        name=branch.name,
        base_branch=branch.base_branch,
        agent=branch.agent,
        model=branch.model,
        status=BranchStatus(branch.status),
        status_detail=branch.status_detail,
        loop_enabled=branch.loop_enabled,
        loop_max_iterations=branch.loop_max_iterations,
        pushed_sha=branch.pushed_sha,
        pull_request=PullRequestOut(
            number=branch.pull_request_number, url=branch.pull_request_url, created=False
        )
        if branch.pull_request_url and branch.pull_request_number
        else None,
        created_at=branch.created_at,
    )
    if snapshot is not None:
        # The workflow is the single writer of status; its answer is the freshest there is.
        out.status, out.status_detail = snapshot.status, snapshot.detail
        out.sandbox = SandboxOut(
            state=snapshot.sandbox,
            auto_stop_seconds=snapshot.auto_stop_seconds,
            auto_stop_at=snapshot.auto_stop_at,
        )
    return out


@repo_router.post("", status_code=status.HTTP_201_CREATED, response_model=BranchOut)
async def create_branch(
    repo_id: uuid.UUID,
    body: BranchCreate,
    scope: ScopeDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    state: StateDep,
) -> BranchOut:
    repo = await scope.get(Repo, repo_id)
    try:
        await check_branch_quota(scope.session, scope.user_id)
    except BranchQuotaExceeded as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    try:
        name = validate_branch_name(body.name) if body.name is not None else generate_branch_name()
        base = validate_branch_name(body.base_branch or repo.default_branch)
    except InvalidRefName as exc:
        raise _unprocessable(str(exc)) from exc
    prefs = await load_settings(scope)
    # The user's default model only applies to their default agent.
    agent_id = body.agent or prefs.default_agent
    model_id = body.model if body.agent else (body.model or prefs.default_model)
    try:
        agent, model = resolve_agent_model(agent_id, model_id)
    except UnknownAgentError as exc:
        raise _unprocessable(str(exc)) from exc
    if await scope.session.scalar(
        scope.select(Branch).where(Branch.repo_id == repo.id, Branch.name == name)
    ):
        raise HTTPException(status.HTTP_409_CONFLICT, f"branch {name!r} already exists")

    try:
        on_remote = await existing_branches(
            repo.url,
            base,
            name,
            credentials=await git_credentials_for(state, scope.user_id, repo.github_full_name),
            timeout=settings.git_timeout_seconds,
        )
    except GitRemoteError as exc:
        raise _unprocessable(str(exc)) from exc
    if base not in on_remote:
        raise _unprocessable(f"base branch {base!r} does not exist on the remote")
    if name in on_remote:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"branch {name!r} already exists on the remote"
        )

    branch = Branch(
        user_id=scope.user_id,
        repo_id=repo.id,
        name=name,
        base_branch=base,
        agent=agent.id,
        model=model.id,
        status=BranchStatus.CREATING.value,
    )
    scope.session.add(branch)
    try:
        # Committed before the workflow starts: its first activity reads this row.
        await scope.session.commit()
    except IntegrityError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"branch {name!r} already exists") from exc
    try:
        await start_branch_workflow(temporal, branch, settings.task_queue)
    except ServiceUnavailable:
        await scope.session.execute(delete(Branch).where(Branch.id == branch.id))
        await scope.session.commit()
        raise
    return branch_out(branch)


@repo_router.get("", response_model=list[BranchOut])
async def list_branches(repo_id: uuid.UUID, scope: ScopeDep) -> list[BranchOut]:
    repo = await scope.get(Repo, repo_id)
    rows = await scope.session.scalars(
        scope.select(Branch).where(Branch.repo_id == repo.id).order_by(Branch.created_at)
    )
    return [branch_out(branch) for branch in rows]


@router.get("/{branch_id}", response_model=BranchOut)
async def read_branch(branch_id: uuid.UUID, scope: ScopeDep, temporal: TemporalDep) -> BranchOut:
    branch = await scope.get(Branch, branch_id)
    out = branch_out(branch, await query_branch_snapshot(temporal, branch.id))
    run = await latest_loop(scope, branch.id)
    out.loop = loop_summary(run) if run is not None else None
    return out


@router.patch("/{branch_id}", response_model=BranchOut)
async def update_branch(branch_id: uuid.UUID, body: BranchPatch, scope: ScopeDep) -> BranchOut:
    branch = await scope.get_for_update(Branch, branch_id)
    changes = body.model_dump(exclude_unset=True)
    if "agent" in changes or "model" in changes:
        agent_id = changes.get("agent") or branch.agent
        model_id = changes.get("model")
        if model_id is None and agent_id == branch.agent:
            model_id = branch.model
        try:
            agent, model = resolve_agent_model(agent_id, model_id)
        except UnknownAgentError as exc:
            raise _unprocessable(str(exc)) from exc
        branch.agent, branch.model = agent.id, model.id
    if changes.get("loop_enabled") is not None:
        branch.loop_enabled = changes["loop_enabled"]
    if "loop_max_iterations" in changes:
        branch.loop_max_iterations = changes["loop_max_iterations"]
    await scope.session.commit()
    return branch_out(branch)


@router.post("/{branch_id}/stop", status_code=status.HTTP_202_ACCEPTED, response_model=StopAccepted)
async def stop_branch(branch_id: uuid.UUID, scope: ScopeDep, temporal: TemporalDep) -> StopAccepted:
    """Cancel the running turn and drop queued messages."""
    await request_stop(scope, temporal, branch_id)
    return StopAccepted(detail="stop requested")


@router.delete("/{branch_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_branch(branch_id: uuid.UUID, scope: ScopeDep, temporal: TemporalDep) -> None:
    branch = await scope.get(Branch, branch_id)
    await request_branch_deletion(temporal, branch.id)
    await scope.session.delete(branch)
    await scope.session.commit()
