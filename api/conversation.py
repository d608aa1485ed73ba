"""Sending messages to a branch's workflow and stopping its turns.

The message and its turn are stored first (the workflow receives ids only: prompts are data,
not history), then handed to the workflow as an update, acknowledged at once. If the workflow
refuses or Temporal is down, the rows are removed again: the request changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.branch_workflows import update_refused, update_unreachable
from api.errors import ServiceUnavailable
from api.loops import active_loop, start_loop, steer_loop, stop_loop
from api.schemas.conversation import MessageAccepted, MessageCreate
from api.schemas.loops import LoopCreate
from db.access import OwnerScope
from db.models import Branch, Message, Turn
from workflows.branch import BranchWorkflow
from workflows.ids import branch_workflow_id
from workflows.types import MessageRequest, TurnAccepted

_RPC_TIMEOUT = timedelta(seconds=10)


async def submit_message(
    scope: OwnerScope,
    temporal: Client,
    task_queue: str,
    branch_id: uuid.UUID,
    body: MessageCreate,
) -> MessageAccepted:
    branch = await scope.get(Branch, branch_id)
    existing = await _existing(scope, branch.id, body.idempotency_key)
    if existing is None:
        running = await active_loop(scope, branch.id)
        if running is not None:
            message, turn = await steer_loop(scope, temporal, branch, running, body.content)
            return MessageAccepted(
                message_id=message.id, turn_id=turn.id, queue_position=1, loop_id=running.id
            )
        if branch.loop_enabled:
            run = await start_loop(
                scope, temporal, task_queue, branch, LoopCreate(prompt=body.content)
            )
            assert run.first_message_id is not None and run.first_turn_id is not None
            return MessageAccepted(
                message_id=run.first_message_id,
                turn_id=run.first_turn_id,
                queue_position=0,
                loop_id=run.id,
            )
    created = existing is None
    if existing is None:
        try:
            existing = await _store(scope, branch, body)
        except IntegrityError:
            await scope.session.rollback()
            existing = await _existing(scope, branch.id, body.idempotency_key)
            if existing is None:
                raise
            created = False
    message, turn = existing
    try:
        accepted = await _send(temporal, branch.id, MessageRequest(str(turn.id), str(message.id)))
    except BaseException:
        if created:
            await scope.session.execute(delete(Message).where(Message.id == message.id))
            await scope.session.commit()
        raise
    return MessageAccepted(
        message_id=message.id, turn_id=turn.id, queue_position=accepted.queue_position
    )


async def _existing(
    scope: OwnerScope, branch_id: uuid.UUID, key: str | None
) -> tuple[Message, Turn] | None:
    if key is None:
        return None
    row = (
        await scope.session.execute(
            select(Message, Turn)
            .join(Turn, Turn.message_id == Message.id)
            .where(
                Message.user_id == scope.user_id,
                Message.branch_id == branch_id,
                Message.idempotency_key == key,
            )
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def _store(scope: OwnerScope, branch: Branch, body: MessageCreate) -> tuple[Message, Turn]:
    message = Message(
        user_id=scope.user_id,
        branch_id=branch.id,
        role="user",
        content=body.content,
        idempotency_key=body.idempotency_key,
    )
    scope.session.add(message)
    await scope.session.flush()
    turn = Turn(
        user_id=scope.user_id,
        branch_id=branch.id,
        message_id=message.id,
        agent=branch.agent,
        model=branch.model,
        status="queued",
    )
    scope.session.add(turn)
    await scope.session.flush()
    message.turn_id = turn.id
    await scope.session.commit()
    return message, turn


async def _send(temporal: Client, branch_id: uuid.UUID, request: MessageRequest) -> TurnAccepted:
    handle = temporal.get_workflow_handle_for(BranchWorkflow.run, branch_workflow_id(branch_id))
    try:
        return await handle.execute_update(
            BranchWorkflow.send_message,
            request,
            id=f"message-{request.turn_id}",
            rpc_timeout=_RPC_TIMEOUT,
        )
    except WorkflowUpdateFailedError as exc:
        raise update_refused(exc, "message refused") from exc
    except RPCError as exc:
        raise update_unreachable(exc) from exc


async def request_stop(scope: OwnerScope, temporal: Client, branch_id: uuid.UUID) -> None:
    branch = await scope.get(Branch, branch_id)
    running = await active_loop(scope, branch.id)
    if running is not None:
        await stop_loop(temporal, running.id)
    handle = temporal.get_workflow_handle_for(BranchWorkflow.run, branch_workflow_id(branch.id))
    try:
        await handle.signal(BranchWorkflow.stop, rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return  # nothing runs on a branch without a workflow
        raise ServiceUnavailable(f"temporal is unavailable: {exc.message}") from exc
