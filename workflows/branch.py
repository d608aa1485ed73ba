"""`BranchWorkflow`: the lifecycle of one branch's sandbox.

Creates the sandbox, keeps it while the branch is in use, stops it after the owner's idle
interval (a durable timer), notices when it dies underneath us, and deletes it with the branch.
It is the single writer of the branch status; every change is mirrored to the database and to
the `BranchStatus` search attribute by `_set_status`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.sandbox import SandboxActivities
    from workflows.search_attributes import BRANCH_STATUS
    from workflows.types import (
        BranchSnapshot,
        BranchStatus,
        BranchStatusUpdate,
        BranchWorkflowInput,
        SandboxState,
        SandboxWatchResult,
    )

_QUICK = timedelta(seconds=30)
_CREATE_TIMEOUT = timedelta(minutes=30)
_WATCH_TIMEOUT = timedelta(hours=2)
_HEARTBEAT = timedelta(seconds=20)
_QUICK_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
_CREATE_RETRY = RetryPolicy(
    maximum_attempts=3,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=["SandboxSetupFailed"],
)


@workflow.defn
class BranchWorkflow:
    @workflow.init
    def __init__(self, state: BranchWorkflowInput) -> None:
        self._state = state
        self._delete_requested = False
        self._auto_stop_at: datetime | None = None

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
        )

    @workflow.run
    async def run(self, state: BranchWorkflowInput) -> None:
        if self._state.sandbox is SandboxState.NONE and self._state.status is BranchStatus.CREATING:
            await self._create_sandbox()
        while not self._delete_requested:
            if self._should_continue_as_new():
                # Only between activities: continuing as new mid-activity would abandon it.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._state)
            if self._state.sandbox is SandboxState.STARTED:
                await self._idle_with_sandbox()
            else:
                await workflow.wait_condition(
                    lambda: self._delete_requested or self._should_continue_as_new()
                )
        await self._delete_sandbox()

    def _should_continue_as_new(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()

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
            await workflow.wait_condition(
                lambda: watch.done() or self._delete_requested or self._should_continue_as_new(),
                timeout=idle,
            )
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
        if timed_out and not self._delete_requested:
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
