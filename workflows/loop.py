"""`LoopRunWorkflow`: one unattended run on a branch, until FINISHED or another stop reason.

It never runs a turn itself: each iteration hands a message to the branch's workflow (the only
writer of turns) through an activity, and waits for the branch to signal the turn's result. The
next iteration starts as soon as that result is checked: no timer, no polling, no browser.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.loops import LoopActivities
    from workflows.branch import BranchWorkflow
    from workflows.ids import branch_workflow_id
    from workflows.search_attributes import LOOP_STATUS
    from workflows.signals import LOOP_TURN_FINISHED
    from workflows.types import (
        LoopProgress,
        LoopSnapshot,
        LoopState,
        LoopStopReason,
        LoopSubmission,
        LoopTurnDone,
        SteerRequest,
        TurnStatus,
    )

_QUICK = timedelta(seconds=30)
_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=5))
# After a stop, how long to wait for the cancelled turn to report before ending anyway.
_STOP_GRACE = timedelta(seconds=60)


@workflow.defn
class LoopRunWorkflow:
    @workflow.init
    def __init__(self, state: LoopState) -> None:
        self._state = state
        self._results: dict[str, LoopTurnDone] = {}
        self._running_turn: str | None = None
        self._ended = False

    @workflow.signal(name=LOOP_TURN_FINISHED)
    def turn_finished(self, done: LoopTurnDone) -> None:
        self._results[done.turn_id] = done

    @workflow.signal
    def stop(self) -> None:
        self._state.stop_requested = True

    @workflow.signal
    def steer(self, request: SteerRequest) -> None:
        self._state.steering.append(request)

    @workflow.query
    def snapshot(self) -> LoopSnapshot:
        return LoopSnapshot(
            loop_id=self._state.loop_id,
            iteration=self._state.iteration,
            max_iterations=self._state.max_iterations,
            running_turn=self._running_turn,
            tokens=self._state.tokens,
            cost_usd=self._state.cost_usd,
            stop_requested=self._state.stop_requested,
        )

    @workflow.run
    async def run(self, state: LoopState) -> LoopStopReason:
        if self._state.started_at is None:
            self._state.started_at = workflow.now()
            await self._progress(None)
        reason = None
        while reason is None:
            if self._state.stop_requested:
                reason = LoopStopReason.STOPPED
                break
            if workflow.info().is_continue_as_new_suggested():
                # Between iterations only; signals that arrived are in the carried state.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._state)
            reason = await self._iterate()
        await self._finish(reason)
        return reason

    async def _iterate(self) -> LoopStopReason | None:
        state = self._state
        turn = state.first if state.iteration == 0 else None
        if turn is None and state.steering:
            turn = state.steering.pop(0)  # the user's words replace the continuation
        try:
            turn_id = await workflow.execute_activity_method(
                LoopActivities.submit_turn,
                LoopSubmission(state.loop_id, state.branch, state.iteration + 1, turn),
                start_to_close_timeout=_QUICK,
                retry_policy=_RETRY,
            )
        except ActivityError:
            return LoopStopReason.TURN_FAILED  # the branch is gone or refused the message
        self._running_turn = turn_id
        await workflow.wait_condition(
            lambda: turn_id in self._results or self._state.stop_requested
        )
        if turn_id not in self._results:
            await self._stop_branch_turn()
            try:
                await workflow.wait_condition(lambda: turn_id in self._results, timeout=_STOP_GRACE)
            except TimeoutError:
                workflow.logger.warning("stopped turn %s never reported", turn_id)
        self._running_turn = None
        done = self._results.pop(turn_id, None)
        state.iteration += 1
        if done is not None:
            state.tokens += done.tokens
            state.cost_usd += done.cost_usd
        reason = self._stop_reason(done)
        await self._progress(reason)
        return reason

    def _stop_reason(self, done: LoopTurnDone | None) -> LoopStopReason | None:
        state, budget = self._state, self._state.budget
        if done is None or done.status is TurnStatus.CANCELLED or state.stop_requested:
            return LoopStopReason.STOPPED
        if done.status is TurnStatus.FAILED:
            return LoopStopReason.TURN_FAILED
        if done.finished:
            return LoopStopReason.FINISHED
        if state.iteration >= state.max_iterations:
            return LoopStopReason.MAX_ITERATIONS
        if budget.tokens is not None and state.tokens >= budget.tokens:
            return LoopStopReason.BUDGET_TOKENS
        if budget.cost_usd is not None and state.cost_usd >= budget.cost_usd:
            return LoopStopReason.BUDGET_COST
        started = state.started_at or workflow.now()
        if budget.seconds is not None and workflow.now() - started >= timedelta(
            seconds=budget.seconds
        ):
            return LoopStopReason.BUDGET_TIME
        return None

    async def _stop_branch_turn(self) -> None:
        branch = workflow.get_external_workflow_handle_for(
            BranchWorkflow.run, branch_workflow_id(self._state.branch.branch_id)
        )
        await branch.signal(BranchWorkflow.stop)

    async def _progress(self, reason: LoopStopReason | None) -> None:
        self._ended = reason is not None
        status = "running" if reason is None else "completed"
        workflow.upsert_search_attributes([LOOP_STATUS.value_set(status)])
        await workflow.execute_activity_method(
            LoopActivities.record_progress,
            LoopProgress(
                self._state.loop_id,
                self._state.branch,
                self._state.iteration,
                self._state.tokens,
                self._state.cost_usd,
                reason,
            ),
            start_to_close_timeout=_QUICK,
            retry_policy=_RETRY,
        )

    async def _finish(self, reason: LoopStopReason) -> None:
        if not self._ended:  # stopped between iterations
            await self._progress(reason)
        # Steering messages the loop did not get to run as ordinary turns.
        for leftover in self._state.steering:
            await workflow.execute_activity_method(
                LoopActivities.submit_turn,
                LoopSubmission(
                    self._state.loop_id, self._state.branch, 0, leftover, standalone=True
                ),
                start_to_close_timeout=_QUICK,
                retry_policy=_RETRY,
            )
        self._state.steering = []
