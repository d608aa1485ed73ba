"""`BranchWorkflow`: one branch's conversation and sandbox.

The single writer of turns on its branch: messages arrive as updates (acknowledged at once with
their turn id and queued in order), run one at a time as turn activities, and can be stopped by
signal. It owns the sandbox lifecycle: created on start, stopped after the owner's idle interval
(a durable timer), started again by the next message, noticed when it dies underneath us, and
deleted with the branch. Every status change is mirrored to the database and to the
`BranchStatus` search attribute by `_set_status`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    # Pydantic resolves these dataclasses' annotations through sys.modules, so their modules
    # must be registered inside the sandbox too, not only imported (by workflows.types) on
    # the host; otherwise decoding a git outcome fails the workflow task.
    import gitops.diff
    import gitops.history  # noqa: F401
    from activities.git import GitActivities
    from activities.sandbox import SandboxActivities
    from activities.turns import TurnActivities
    from workflows.ids import loop_workflow_id
    from workflows.search_attributes import BRANCH_STATUS
    from workflows.signals import LOOP_TURN_FINISHED
    from workflows.types import (
        BranchSnapshot,
        BranchStatus,
        BranchStatusUpdate,
        BranchWorkflowInput,
        GitErrorKind,
        GitEventRecord,
        GitOp,
        GitOpInput,
        GitOpOutcome,
        GitOpRequest,
        LoopTurnDone,
        MessageRequest,
        PushAfterTurn,
        SandboxState,
        SandboxWatchResult,
        TurnAccepted,
        TurnClosure,
        TurnInput,
        TurnResult,
        TurnStatus,
    )

_QUICK = timedelta(seconds=30)
_CREATE_TIMEOUT = timedelta(minutes=30)
_WATCH_TIMEOUT = timedelta(hours=2)
_HEARTBEAT = timedelta(seconds=20)
# A turn heartbeats every second or so; a dead worker is noticed after this long and the turn
# is retried on another one, which re-attaches to the running agent.
_TURN_HEARTBEAT = timedelta(seconds=10)
_TURN_START_TO_CLOSE = timedelta(hours=6)
_STOP_GRACE = timedelta(seconds=30)
_QUICK_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
_CREATE_RETRY = RetryPolicy(
    maximum_attempts=3,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=["SandboxSetupFailed"],
)
_TURN_RETRY = RetryPolicy(
    maximum_attempts=20,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=["TurnSetupFailed"],
)
_GIT_TIMEOUT = timedelta(minutes=10)
_GIT_RETRY = RetryPolicy(
    maximum_attempts=3,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=["GitSetupFailed"],
)
# Pushing after a turn rides out a flaky remote: about two minutes of backoff in all.
_PUSH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=["GitSetupFailed"],
)
_PUSH_AFTER_TURN_PATCH = "push-after-turn"
_MAX_QUEUE = 100
_RECENT_TURNS = 200


@workflow.defn
class BranchWorkflow:
    @workflow.init
    def __init__(self, state: BranchWorkflowInput) -> None:
        self._state = state
        self._delete_requested = False
        self._stop_requested = False
        self._running_turn: str | None = None
        self._auto_stop_at: datetime | None = None
        # Held by turns and by git operations that rewrite the checkout: never both at once.
        self._worktree_lock = asyncio.Lock()
        # Creating/starting the sandbox happens from the main loop and from git operations.
        self._sandbox_lock = asyncio.Lock()
        self._git_ops_in_flight = 0

    # -- messages -------------------------------------------------------------------------

    @workflow.update
    def send_message(self, request: MessageRequest) -> TurnAccepted:
        if request.turn_id not in self._state.recent_turns:
            self._state.pending.append(request)
            self._state.recent_turns = [*self._state.recent_turns, request.turn_id][-_RECENT_TURNS:]
        position = next(
            (i + 1 for i, r in enumerate(self._state.pending) if r.turn_id == request.turn_id), 0
        )
        return TurnAccepted(request.turn_id, request.message_id, position)

    @send_message.validator
    def _validate_message(self, request: MessageRequest) -> None:
        if self._delete_requested:
            raise ApplicationError("the branch is being deleted", type="BranchDeleting")
        if (
            request.turn_id not in self._state.recent_turns
            and len(self._state.pending) >= _MAX_QUEUE
        ):
            raise ApplicationError(
                f"too many queued messages (limit {_MAX_QUEUE})", type="QueueFull"
            )

    @workflow.update
    async def git_operation(self, request: GitOpRequest) -> GitOpOutcome:
        """Run one git operation in the branch's sandbox, starting the sandbox if needed.

        Failures come back as an outcome, not an update failure: a conflict is an answer."""
        self._git_ops_in_flight += 1
        try:
            if request.op.changes_worktree:
                async with self._worktree_lock:
                    return await self._run_git_op(request)
            return await self._run_git_op(request)
        finally:
            self._git_ops_in_flight -= 1

    @git_operation.validator
    def _validate_git_operation(self, request: GitOpRequest) -> None:
        if self._delete_requested:
            raise ApplicationError("the branch is being deleted", type="BranchDeleting")
        if request.op.changes_worktree and (self._running_turn or self._state.pending):
            raise ApplicationError(
                f"cannot {request.op.value} while the agent is working; wait for the turn to "
                "end or stop it",
                type="BranchBusy",
            )

    async def _run_git_op(self, request: GitOpRequest) -> GitOpOutcome:
        if not await self._ensure_sandbox():
            return GitOpOutcome(
                request.op,
                ok=False,
                message=self._state.detail or "the sandbox is not available",
                error_kind=GitErrorKind.UNAVAILABLE,
            )
        try:
            return await workflow.execute_activity_method(
                GitActivities.run_git_op,
                GitOpInput(self._state.branch, request),
                start_to_close_timeout=_GIT_TIMEOUT,
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=_GIT_RETRY,
            )
        except ActivityError as err:
            return GitOpOutcome(
                request.op,
                ok=False,
                message=_failure_message(err, f"git {request.op.value} failed"),
                error_kind=GitErrorKind.UNAVAILABLE,
            )

    @workflow.signal
    def stop(self) -> None:
        """Cancel the running turn and drop the queued ones."""
        self._stop_requested = True

    @workflow.signal
    def request_delete(self) -> None:
        self._delete_requested = True

    @workflow.query
    def snapshot(self) -> BranchSnapshot:
        return BranchSnapshot(
            branch_id=self._state.branch.branch_id,
            status=self._state.status,
            detail=self._state.detail,
            sandbox=self._state.sandbox,
            auto_stop_seconds=self._state.auto_stop_seconds,
            auto_stop_at=self._auto_stop_at,
            running_turn=self._running_turn,
            queued_turns=[r.turn_id for r in self._state.pending],
        )

    # -- main loop ------------------------------------------------------------------------

    @workflow.run
    async def run(self, state: BranchWorkflowInput) -> None:
        if self._state.sandbox is SandboxState.NONE and self._state.status is BranchStatus.CREATING:
            async with self._sandbox_lock:
                await self._create_sandbox()
        while not self._delete_requested:
            if self._stop_requested:
                await self._drop_queue()
            elif self._state.pending:
                await self._run_next_turn()
            elif self._should_continue_as_new():
                # Only between activities: continuing as new mid-activity would abandon it.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._state)
            elif self._git_ops_in_flight:
                # The idle timer must not stop the sandbox under a running git operation.
                await workflow.wait_condition(
                    lambda: not self._git_ops_in_flight or self._has_turn_work()
                )
            elif self._state.sandbox is SandboxState.STARTED:
                await self._idle_with_sandbox()
            else:
                await workflow.wait_condition(self._has_work)
        await self._drop_queue()
        await self._delete_sandbox()

    def _has_work(self) -> bool:
        return self._has_turn_work() or self._git_ops_in_flight > 0

    def _has_turn_work(self) -> bool:
        return (
            self._delete_requested
            or self._stop_requested
            or bool(self._state.pending)
            or self._should_continue_as_new()
        )

    def _should_continue_as_new(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()

    # -- turns ----------------------------------------------------------------------------

    async def _run_next_turn(self) -> None:
        async with self._worktree_lock:
            await self._run_next_turn_locked()

    async def _run_next_turn_locked(self) -> None:
        request = self._state.pending[0]
        if not await self._ensure_sandbox():
            await self._close_turns(
                [self._state.pending.pop(0).turn_id],
                TurnStatus.FAILED,
                self._state.detail or "the sandbox is not available",
            )
            return
        self._state.pending.pop(0)
        self._running_turn = request.turn_id
        await self._set_status(BranchStatus.RUNNING, None)
        turn = asyncio.create_task(
            workflow.execute_activity_method(
                TurnActivities.run_turn,
                TurnInput(self._state.branch, request.turn_id),
                # The activity enforces the configured turn limit itself; this only bounds a
                # worker that stopped reporting altogether.
                start_to_close_timeout=_TURN_START_TO_CLOSE,
                heartbeat_timeout=_TURN_HEARTBEAT,
                retry_policy=_TURN_RETRY,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        )
        await workflow.wait_condition(
            lambda: turn.done() or self._stop_requested or self._delete_requested
        )
        if not turn.done():
            # Killing the agent from here is immediate; cancelling the activity would wait
            # for its next heartbeat to be delivered.
            await workflow.execute_activity_method(
                TurnActivities.cancel_turn,
                TurnInput(self._state.branch, request.turn_id),
                start_to_close_timeout=_QUICK,
                retry_policy=_QUICK_RETRY,
            )
            try:
                await workflow.wait_condition(turn.done, timeout=_STOP_GRACE)
            except TimeoutError:
                turn.cancel()
        try:
            result = await turn
        except (asyncio.CancelledError, ActivityError) as err:
            # The activity records its own outcome; this covers one that never could (retries
            # exhausted, cancelled before it wrote anything).
            reason = (
                _failure_message(err, "the turn failed")
                if isinstance(err, ActivityError)
                else "cancelled"
            )
            status = TurnStatus.CANCELLED if self._is_cancel(err) else TurnStatus.FAILED
            await self._close_turns([request.turn_id], status, reason)
            result = TurnResult(request.turn_id, status, error=reason)
        self._running_turn = None
        if result.commit_sha and workflow.patched(_PUSH_AFTER_TURN_PATCH):
            await self._push_after_turn(
                PushAfterTurn(self._state.branch, result.turn_id, result.commit_sha)
            )
        await self._set_status(BranchStatus.IDLE, None)
        await _tell_loop(request, result)

    async def _push_after_turn(self, push: PushAfterTurn) -> None:
        """The activity records its own outcome; only exhausted retries are recorded here."""
        try:
            await workflow.execute_activity_method(
                GitActivities.push_after_turn,
                push,
                start_to_close_timeout=_GIT_TIMEOUT,
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=_PUSH_RETRY,
            )
        except ActivityError as err:
            failure = GitOpOutcome(
                GitOp.PUSH,
                ok=False,
                message=_failure_message(err, "the push failed"),
                error_kind=GitErrorKind.UNAVAILABLE,
                sha=push.sha,
            )
            await workflow.execute_activity_method(
                GitActivities.record_git_event,
                GitEventRecord(self._state.branch, failure),
                start_to_close_timeout=_QUICK,
                retry_policy=_QUICK_RETRY,
            )

    def _is_cancel(self, err: BaseException) -> bool:
        if isinstance(err, asyncio.CancelledError):
            return True
        return isinstance(err, ActivityError) and isinstance(err.cause, CancelledError)

    async def _drop_queue(self) -> None:
        self._stop_requested = False
        if self._state.pending:
            dropped, self._state.pending = self._state.pending, []
            await self._close_turns(
                [r.turn_id for r in dropped], TurnStatus.CANCELLED, "stopped before it started"
            )
            for request in dropped:
                await _tell_loop(request, TurnResult(request.turn_id, TurnStatus.CANCELLED))

    async def _close_turns(self, turn_ids: list[str], status: TurnStatus, reason: str) -> None:
        await workflow.execute_activity_method(
            TurnActivities.close_turns,
            TurnClosure(self._state.branch, turn_ids, status, reason),
            start_to_close_timeout=_QUICK,
            retry_policy=_QUICK_RETRY,
        )

    # -- sandbox --------------------------------------------------------------------------

    async def _ensure_sandbox(self) -> bool:
        async with self._sandbox_lock:
            return await self._ensure_sandbox_locked()

    async def _ensure_sandbox_locked(self) -> bool:
        if self._state.sandbox is SandboxState.STARTED:
            return True
        if self._state.sandbox is SandboxState.STOPPED:
            await self._set_status(BranchStatus.CREATING, "starting the sandbox")
            try:
                ready = await workflow.execute_activity_method(
                    SandboxActivities.start_sandbox,
                    self._state.branch,
                    start_to_close_timeout=_CREATE_TIMEOUT,
                    heartbeat_timeout=_HEARTBEAT,
                    retry_policy=_CREATE_RETRY,
                )
            except ActivityError as err:
                await self._set_status(
                    BranchStatus.ERROR, _failure_message(err, "could not start the sandbox")
                )
                return False
            self._state.auto_stop_seconds = ready.auto_stop_seconds
            self._state.sandbox = SandboxState.STARTED
            return True
        await self._set_status(BranchStatus.CREATING, None)
        await self._create_sandbox()
        return self._sandbox_started()

    def _sandbox_started(self) -> bool:
        return self._state.sandbox is SandboxState.STARTED

    async def _create_sandbox(self) -> None:
        create = asyncio.create_task(
            workflow.execute_activity_method(
                SandboxActivities.create_sandbox,
                self._state.branch,
                start_to_close_timeout=_CREATE_TIMEOUT,
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=_CREATE_RETRY,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        )
        await workflow.wait_condition(lambda: create.done() or self._delete_requested)
        if not create.done():
            create.cancel()
        try:
            ready = await create
        except asyncio.CancelledError:
            return
        except ActivityError as err:
            if self._delete_requested:
                return
            await self._set_status(
                BranchStatus.ERROR, _failure_message(err, "could not create the sandbox")
            )
            return
        self._state.auto_stop_seconds = ready.auto_stop_seconds
        await self._set_status(BranchStatus.IDLE, None, SandboxState.STARTED)

    async def _idle_with_sandbox(self) -> None:
        idle = timedelta(seconds=self._state.auto_stop_seconds)
        self._auto_stop_at = workflow.now() + idle
        watch = asyncio.create_task(
            workflow.execute_activity_method(
                SandboxActivities.watch_sandbox,
                self._state.branch,
                start_to_close_timeout=_WATCH_TIMEOUT,
                heartbeat_timeout=_HEARTBEAT,
                retry_policy=_QUICK_RETRY,
                # The watcher only reads: no cleanup to wait for, and waiting would cost up to a
                # heartbeat interval before a stop or delete can proceed.
                cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
            )
        )
        timed_out = False
        try:
            await workflow.wait_condition(lambda: watch.done() or self._has_work(), timeout=idle)
        except TimeoutError:
            timed_out = True
        self._auto_stop_at = None

        if watch.done():
            result = await _watch_result(watch)
            if not result.alive:
                await self._set_status(
                    BranchStatus.STOPPED,
                    result.detail or "the sandbox stopped unexpectedly",
                    SandboxState.STOPPED,
                )
            return
        watch.cancel()
        await _watch_result(watch)
        if timed_out and not self._has_work():
            await workflow.execute_activity_method(
                SandboxActivities.stop_sandbox,
                self._state.branch,
                start_to_close_timeout=_QUICK,
                retry_policy=_QUICK_RETRY,
            )
            await self._set_status(
                BranchStatus.STOPPED,
                f"sandbox stopped after {_duration(self._state.auto_stop_seconds)} idle",
                SandboxState.STOPPED,
            )

    async def _delete_sandbox(self) -> None:
        await workflow.execute_activity_method(
            SandboxActivities.delete_sandbox,
            self._state.branch,
            start_to_close_timeout=_QUICK,
            retry_policy=_QUICK_RETRY,
        )
        self._state.sandbox = SandboxState.DELETED

    async def _set_status(
        self, status: BranchStatus, detail: str | None, sandbox: SandboxState | None = None
    ) -> None:
        self._state.status = status
        self._state.detail = detail
        if sandbox is not None:
            self._state.sandbox = sandbox
        workflow.upsert_search_attributes([BRANCH_STATUS.value_set(status.value)])
        await workflow.execute_activity_method(
            SandboxActivities.record_branch_status,
            BranchStatusUpdate(self._state.branch, status, detail, sandbox),
            start_to_close_timeout=_QUICK,
            retry_policy=_QUICK_RETRY,
        )


async def _tell_loop(request: MessageRequest, result: TurnResult) -> None:
    """A loop run waits for its turns' results; the branch stays the only writer of turns."""
    if request.loop_id is None:
        return
    loop = workflow.get_external_workflow_handle(loop_workflow_id(request.loop_id))
    done = LoopTurnDone(
        result.turn_id, result.status, result.finished, result.tokens, result.cost_usd
    )
    try:
        await loop.signal(LOOP_TURN_FINISHED, done)
    except Exception:  # the loop run is gone (finished, terminated): nobody is waiting
        workflow.logger.info("loop %s has ended; its turn result is dropped", request.loop_id)


async def _watch_result(watch: asyncio.Task[SandboxWatchResult]) -> SandboxWatchResult:
    try:
        return await watch
    except (asyncio.CancelledError, ActivityError):
        return SandboxWatchResult(alive=True)


def _failure_message(err: ActivityError, fallback: str) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.message:
        return cause.message
    return fallback


def _duration(seconds: int) -> str:
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute" + ("" if minutes == 1 else "s")
    return f"{seconds} seconds"
