"""Starting, steering and stopping loop runs from the API."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import HTTPException, status
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ServiceUnavailable
from api.routes.settings import load_settings
from api.schemas.loops import LoopCreate, LoopOut, LoopSummary
from db.access import OwnerScope
from db.models import Branch, LoopRun, Message, Turn
from workflows.ids import loop_workflow_id
from workflows.loop import LoopRunWorkflow
from workflows.search_attributes import BRANCH_ID, LOOP_STATUS, OWNER_ID, REPO_ID, WORKFLOW_KIND
from workflows.types import BranchRef, LoopBudget, LoopSnapshot, LoopState, SteerRequest

_RPC_TIMEOUT = timedelta(seconds=10)


async def active_loop(scope: OwnerScope, branch_id: uuid.UUID) -> LoopRun | None:
    return await scope.session.scalar(
        scope.select(LoopRun).where(LoopRun.branch_id == branch_id, LoopRun.status == "running")
    )


async def start_loop(
    scope: OwnerScope, temporal: Client, task_queue: str, branch: Branch, body: LoopCreate
) -> LoopOut:
    prefs = await load_settings(scope)
    cap = body.max_iterations or branch.loop_max_iterations or prefs.default_loop_max_iterations
    run = LoopRun(
        user_id=scope.user_id,
        branch_id=branch.id,
        prompt=body.prompt,
        max_iterations=cap,
        budget_tokens=body.budget_tokens,
        budget_cost_usd=body.budget_cost_usd,
        budget_seconds=body.budget_seconds,
    )
    scope.session.add(run)
    try:
        await scope.session.flush()
    except IntegrityError as exc:
        await scope.session.rollback()
        raise HTTPException(
            status.HTTP_409_CONFLICT, "a loop is already running on this branch"
        ) from exc
    message, turn = await _message_and_turn(scope, branch, body.prompt, run.id)
    await scope.session.commit()
    state = LoopState(
        loop_id=str(run.id),
        branch=BranchRef(str(branch.id), str(branch.user_id), str(branch.repo_id)),
        max_iterations=cap,
        budget=LoopBudget(
            tokens=body.budget_tokens,
            cost_usd=float(body.budget_cost_usd) if body.budget_cost_usd is not None else None,
            seconds=body.budget_seconds,
        ),
        first=SteerRequest(str(turn.id), str(message.id)),
    )
    try:
        await temporal.start_workflow(
            LoopRunWorkflow.run,
            state,
            id=loop_workflow_id(run.id),
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(OWNER_ID, str(branch.user_id)),
                    SearchAttributePair(REPO_ID, str(branch.repo_id)),
                    SearchAttributePair(BRANCH_ID, str(branch.id)),
                    SearchAttributePair(WORKFLOW_KIND, "loop"),
                    SearchAttributePair(LOOP_STATUS, "running"),
                ]
            ),
            rpc_timeout=_RPC_TIMEOUT,
        )
    except RPCError as exc:
        await scope.session.execute(delete(Message).where(Message.id == message.id))
        await scope.session.execute(delete(LoopRun).where(LoopRun.id == run.id))
        await scope.session.commit()
        raise ServiceUnavailable(f"temporal is unavailable: {exc.message}") from exc
    out = loop_out(run)
    out.first_turn_id, out.first_message_id = turn.id, message.id
    return out


async def steer_loop(
    scope: OwnerScope, temporal: Client, branch: Branch, run: LoopRun, content: str
) -> tuple[Message, Turn]:
    """A message sent during a loop becomes its next turn's prompt (instead of the
    continuation), shown in the transcript like any other."""
    message, turn = await _message_and_turn(scope, branch, content, run.id)
    await scope.session.commit()
    handle = temporal.get_workflow_handle_for(LoopRunWorkflow.run, loop_workflow_id(run.id))
    try:
        await handle.signal(
            LoopRunWorkflow.steer,
            SteerRequest(str(turn.id), str(message.id)),
            rpc_timeout=_RPC_TIMEOUT,
        )
    except RPCError as exc:
        await scope.session.execute(delete(Message).where(Message.id == message.id))
        await scope.session.commit()
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise HTTPException(status.HTTP_409_CONFLICT, "the loop has just ended") from exc
        raise ServiceUnavailable(f"temporal is unavailable: {exc.message}") from exc
    return message, turn


async def stop_loop(temporal: Client, loop_id: uuid.UUID) -> None:
    handle = temporal.get_workflow_handle_for(LoopRunWorkflow.run, loop_workflow_id(loop_id))
    try:
        await handle.signal(LoopRunWorkflow.stop, rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise ServiceUnavailable(f"temporal is unavailable: {exc.message}") from exc


async def loop_snapshot(temporal: Client, loop_id: uuid.UUID) -> LoopSnapshot | None:
    handle = temporal.get_workflow_handle_for(LoopRunWorkflow.run, loop_workflow_id(loop_id))
    try:
        return await handle.query(LoopRunWorkflow.snapshot, rpc_timeout=timedelta(seconds=3))
    except Exception:  # no worker to answer, or finished and gone: the row is the answer
        return None


async def _message_and_turn(
    scope: OwnerScope, branch: Branch, content: str, loop_id: uuid.UUID
) -> tuple[Message, Turn]:
    message = Message(user_id=scope.user_id, branch_id=branch.id, role="user", content=content)
    scope.session.add(message)
    await scope.session.flush()
    turn = Turn(
        user_id=scope.user_id,
        branch_id=branch.id,
        message_id=message.id,
        agent=branch.agent,
        model=branch.model,
        loop_id=loop_id,
    )
    scope.session.add(turn)
    await scope.session.flush()
    message.turn_id = turn.id
    return message, turn


def loop_out(run: LoopRun) -> LoopOut:
    return LoopOut(
        id=run.id,
        branch_id=run.branch_id,
        status=run.status,
        stop_reason=run.stop_reason,
        detail=run.detail,
        iterations=run.iterations,
        max_iterations=run.max_iterations,
        budget_tokens=run.budget_tokens,
        budget_cost_usd=run.budget_cost_usd,
        budget_seconds=run.budget_seconds,
        tokens_used=run.tokens_used,
        cost_used_usd=run.cost_used_usd,
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


def loop_summary(run: LoopRun) -> LoopSummary:
    return LoopSummary(
        id=run.id,
        status=run.status,
        iterations=run.iterations,
        max_iterations=run.max_iterations,
        stop_reason=run.stop_reason,
    )


async def latest_loop(scope: OwnerScope, branch_id: uuid.UUID) -> LoopRun | None:
    return await scope.session.scalar(
        scope.select(LoopRun)
        .where(LoopRun.branch_id == branch_id)
        .order_by(LoopRun.created_at.desc())
        .limit(1)
    )
