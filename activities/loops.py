"""Activities of `LoopRunWorkflow`: hand turns to the branch workflow, record progress.

Both are idempotent: a continuation message is keyed by (loop, iteration), an update to the
branch by its turn id, and loop events by (loop, iteration, phase) in the event log.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from db.engine import SessionFactory
from db.event_log import NewEvent, append_events
from db.models import Branch, LoopRun, Message, Turn
from workflows.branch import BranchWorkflow
from workflows.ids import branch_workflow_id
from workflows.types import LoopProgress, LoopSubmission, MessageRequest

CONTINUATION = (
    "If you have finished all tasks, respond with just the phrase FINISHED. "
    "Otherwise, continue working on the remaining tasks."
)
_STARTED_LINE = -1
_STOPPED_PART = 1


class LoopActivities:
    def __init__(self, client: Client, sessions: SessionFactory) -> None:
        self._client = client
        self._sessions = sessions

    @activity.defn
    async def submit_turn(self, submission: LoopSubmission) -> str:
        """Make sure the iteration's turn exists, then queue it on the branch. Returns its id."""
        loop_id = uuid.UUID(submission.loop_id)
        if submission.turn is not None:
            turn_id, message_id = submission.turn.turn_id, submission.turn.message_id
            if not submission.standalone:
                async with self._sessions.begin() as session:
                    await session.execute(
                        update(Turn).where(Turn.id == uuid.UUID(turn_id)).values(loop_id=loop_id)
                    )
        else:
            turn_id, message_id = await self._continuation(submission)
        request = MessageRequest(
            turn_id, message_id, None if submission.standalone else submission.loop_id
        )
        handle = self._client.get_workflow_handle_for(
            BranchWorkflow.run, branch_workflow_id(submission.branch.branch_id)
        )
        try:
            await handle.execute_update(
                BranchWorkflow.send_message,
                request,
                id=f"message-{turn_id}",
                rpc_timeout=timedelta(seconds=10),
            )
        except WorkflowUpdateFailedError as exc:
            raise ApplicationError(
                f"the branch refused the loop's message: {exc.cause}",
                type="BranchUnavailable",
                non_retryable=True,
            ) from exc
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise ApplicationError(
                    "the branch is gone", type="BranchUnavailable", non_retryable=True
                ) from exc
            raise
        return turn_id

    async def _continuation(self, submission: LoopSubmission) -> tuple[str, str]:
        branch_id = uuid.UUID(submission.branch.branch_id)
        key = f"loop:{submission.loop_id}:{submission.iteration}"
        async with self._sessions.begin() as session:
            branch = await session.get(Branch, branch_id)
            if branch is None:
                raise ApplicationError(
                    "the branch is gone", type="BranchUnavailable", non_retryable=True
                )
            await session.execute(
                insert(Message)
                .values(
                    user_id=branch.user_id,
                    branch_id=branch.id,
                    role="user",
                    content=CONTINUATION,
                    idempotency_key=key,
                )
                .on_conflict_do_nothing(index_elements=["branch_id", "idempotency_key"])
            )
            message = await session.scalar(
                select(Message).where(
                    Message.branch_id == branch.id, Message.idempotency_key == key
                )
            )
            assert message is not None
            turn = await session.scalar(select(Turn).where(Turn.message_id == message.id))
            if turn is None:
                turn = Turn(
                    user_id=branch.user_id,
                    branch_id=branch.id,
                    message_id=message.id,
                    agent=branch.agent,
                    model=branch.model,
                    loop_id=uuid.UUID(submission.loop_id),
                )
                session.add(turn)
                await session.flush()
                message.turn_id = turn.id
            return str(turn.id), str(message.id)

    @activity.defn
    async def record_progress(self, progress: LoopProgress) -> None:
        loop_id = uuid.UUID(progress.loop_id)
        async with self._sessions.begin() as session:
            run = await session.get(LoopRun, loop_id, with_for_update=True)
            if run is None:
                return
            values: dict[str, object] = {
                "iterations": max(run.iterations, progress.iteration),
                "tokens_used": progress.tokens,
                "cost_used_usd": Decimal(str(round(progress.cost_usd, 4))),
            }
            if progress.stop_reason is not None:
                values.update(
                    status="completed",
                    stop_reason=progress.stop_reason.value,
                    detail=progress.detail,
                    finished_at=datetime.now(UTC),
                )
            await session.execute(update(LoopRun).where(LoopRun.id == loop_id).values(**values))
            await append_events(session, run.branch_id, self._events(run, progress))

    def _events(self, run: LoopRun, progress: LoopProgress) -> list[NewEvent]:
        base = {"loop_id": str(run.id), "max_iterations": run.max_iterations}
        events = []
        if progress.iteration == 0:
            payload = {**base, "phase": "started", "iteration": 0}
            events.append(NewEvent("loop", payload, run.id, _STARTED_LINE))
        else:
            payload = {**base, "phase": "iteration", "iteration": progress.iteration}
            events.append(NewEvent("loop", payload, run.id, progress.iteration))
        if progress.stop_reason is not None:
            payload = {
                **base,
                "phase": "stopped",
                "iteration": progress.iteration,
                "reason": progress.stop_reason.value,
            }
            events.append(NewEvent("loop", payload, run.id, progress.iteration, _STOPPED_PART))
        return events
