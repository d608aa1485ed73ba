"""BranchWorkflow's timers and transitions on the dev server, with stand-in activities.

The time-skipping test server cannot register search attributes, which the workflow upserts;
short idle intervals (the activity reports seconds) keep these tests fast instead."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from gitops.diff import DiffFile, DiffResult
from workflows.branch import BranchWorkflow
from workflows.types import (
    BranchRef,
    BranchStatus,
    BranchStatusUpdate,
    BranchWorkflowInput,
    GitEventRecord,
    GitOp,
    GitOpInput,
    GitOpOutcome,
    GitOpRequest,
    MessageRequest,
    PushAfterTurn,
    SandboxReady,
    SandboxState,
    SandboxWatchResult,
    TurnClosure,
    TurnInput,
    TurnResult,
    TurnStatus,
)


class FakeSandboxActivities:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.statuses: list[BranchStatusUpdate] = []
        self.create_error: str | None = None
        self.sandbox_dies = asyncio.Event()
        self.auto_stop = 600
        self.hold: set[str] = set()  # turns that keep running until released or cancelled
        self.killed: set[str] = set()
        self.commits: dict[str, str] = {}  # turn id -> the commit its turn reports
        self.hold_git = asyncio.Event()  # set: git operations wait until it is cleared
        self.pushes: list[PushAfterTurn] = []

    @activity.defn(name="create_sandbox")
    async def create_sandbox(self, ref: BranchRef) -> SandboxReady:
        self.calls.append("create")
        if self.create_error:
            raise ApplicationError(self.create_error, type="SandboxSetupFailed", non_retryable=True)
        return SandboxReady(workdir="/home/agent/workspace", auto_stop_seconds=self.auto_stop)

    @activity.defn(name="watch_sandbox")
    async def watch_sandbox(self, ref: BranchRef) -> SandboxWatchResult:
        self.calls.append("watch")
        while not self.sandbox_dies.is_set():
            activity.heartbeat()
            try:
                await asyncio.wait_for(self.sandbox_dies.wait(), 0.2)
            except TimeoutError:
                continue
        return SandboxWatchResult(alive=False, detail="the sandbox stopped unexpectedly")

    @activity.defn(name="stop_sandbox")
    async def stop_sandbox(self, ref: BranchRef) -> None:
        self.calls.append("stop")

    @activity.defn(name="delete_sandbox")
    async def delete_sandbox(self, ref: BranchRef) -> None:
        self.calls.append("delete")

    @activity.defn(name="record_branch_status")
    async def record_branch_status(self, update: BranchStatusUpdate) -> None:
        self.statuses.append(update)

    @activity.defn(name="start_sandbox")
    async def start_sandbox(self, ref: BranchRef) -> SandboxReady:
        self.calls.append("start")
        return SandboxReady(workdir="/home/agent/workspace", auto_stop_seconds=self.auto_stop)

    @activity.defn(name="run_turn")
    async def run_turn(self, request: TurnInput) -> TurnResult:
        self.calls.append(f"turn:{request.turn_id}")
        while request.turn_id in self.hold:
            activity.heartbeat()
            await asyncio.sleep(0.05)
        status = TurnStatus.CANCELLED if request.turn_id in self.killed else TurnStatus.SUCCEEDED
        return TurnResult(request.turn_id, status, commit_sha=self.commits.get(request.turn_id))

    @activity.defn(name="cancel_turn")
    async def cancel_turn(self, request: TurnInput) -> None:
        self.calls.append(f"cancel:{request.turn_id}")
        self.killed.add(request.turn_id)
        self.hold.discard(request.turn_id)

    @activity.defn(name="close_turns")
    async def close_turns(self, closure: TurnClosure) -> None:
        self.calls.append(f"close:{','.join(closure.turn_ids)}:{closure.status.value}")

    @activity.defn(name="run_git_op")
    async def run_git_op(self, op_input: GitOpInput) -> GitOpOutcome:
        self.calls.append(f"git:{op_input.request.op.value}")
        while self.hold_git.is_set():
            activity.heartbeat()
            await asyncio.sleep(0.05)
        diff = DiffResult(
            against="main",
            base_sha="a" * 40,
            head_sha="b" * 40,
            files=[DiffFile("x.txt", None, "added", 1, 0, False, [])],
            truncated=False,
        )
        return GitOpOutcome(op_input.request.op, ok=True, message="done", diff=diff)

    @activity.defn(name="push_after_turn")
    async def push_after_turn(self, push: PushAfterTurn) -> GitOpOutcome:
        self.pushes.append(push)
        return GitOpOutcome(GitOp.PUSH, ok=True, message="pushed", sha=push.sha)

    @activity.defn(name="record_git_event")
    async def record_git_event(self, record: GitEventRecord) -> None:
        self.calls.append("record-git")

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.run_git_op,
            self.push_after_turn,
            self.record_git_event,
            self.create_sandbox,
            self.watch_sandbox,
            self.stop_sandbox,
            self.delete_sandbox,
            self.record_branch_status,
            self.start_sandbox,
            self.run_turn,
            self.cancel_turn,
            self.close_turns,
        ]


async def _start(
    env: WorkflowEnvironment, fakes: FakeSandboxActivities
) -> tuple[Worker, WorkflowHandle[BranchWorkflow, None]]:
    queue = f"tq-{uuid.uuid4()}"
    worker = Worker(
        env.client, task_queue=queue, workflows=[BranchWorkflow], activities=fakes.all()
    )
    ref = BranchRef(branch_id=str(uuid.uuid4()), user_id="u", repo_id="r")
    handle = await env.client.start_workflow(
        BranchWorkflow.run,
        BranchWorkflowInput(branch=ref),
        id=f"branch-{ref.branch_id}",
        task_queue=queue,
    )
    return worker, handle


async def _until(handle: WorkflowHandle[BranchWorkflow, None], status: BranchStatus) -> None:
    for _ in range(300):
        if (await handle.query(BranchWorkflow.snapshot)).status is status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {status}")


async def test_idle_sandbox_is_stopped_after_the_owners_interval(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeSandboxActivities()
    fakes.auto_stop = 3
    worker, handle = await _start(temporal_env, fakes)
    async with worker:
        await _until(handle, BranchStatus.IDLE)
        snapshot = await handle.query(BranchWorkflow.snapshot)
        assert snapshot.sandbox is SandboxState.STARTED
        assert snapshot.auto_stop_seconds == 3
        assert snapshot.auto_stop_at is not None

        await asyncio.sleep(1.5)
        assert "stop" not in fakes.calls
        await _until(handle, BranchStatus.STOPPED)
        assert fakes.calls.count("stop") == 1
        snapshot = await handle.query(BranchWorkflow.snapshot)
        assert snapshot.sandbox is SandboxState.STOPPED
        assert snapshot.detail == "sandbox stopped after 3 seconds idle"
        assert [s.status for s in fakes.statuses] == [BranchStatus.IDLE, BranchStatus.STOPPED]

        await handle.signal(BranchWorkflow.request_delete)
        await handle.result()
    assert fakes.calls[-1] == "delete"


async def test_delete_while_idle_deletes_the_sandbox(temporal_env: WorkflowEnvironment) -> None:
    fakes = FakeSandboxActivities()
    worker, handle = await _start(temporal_env, fakes)
    async with worker:
        await _until(handle, BranchStatus.IDLE)
        await handle.signal(BranchWorkflow.request_delete)
        await handle.result()
    assert fakes.calls[0] == "create"
    assert fakes.calls[-1] == "delete"
    assert "stop" not in fakes.calls


async def test_a_sandbox_that_dies_is_reported_stopped(temporal_env: WorkflowEnvironment) -> None:
    fakes = FakeSandboxActivities()
    worker, handle = await _start(temporal_env, fakes)
    async with worker:
        await _until(handle, BranchStatus.IDLE)
        fakes.sandbox_dies.set()
        await _until(handle, BranchStatus.STOPPED)
        snapshot = await handle.query(BranchWorkflow.snapshot)
        assert snapshot.detail == "the sandbox stopped unexpectedly"
        assert snapshot.sandbox is SandboxState.STOPPED
        assert "stop" not in fakes.calls
        await handle.signal(BranchWorkflow.request_delete)
        await handle.result()


async def test_failed_creation_is_an_error_with_the_reason(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeSandboxActivities()
    fakes.create_error = "git clone failed: remote branch main not found"
    worker, handle = await _start(temporal_env, fakes)
    async with worker:
        await _until(handle, BranchStatus.ERROR)
        snapshot = await handle.query(BranchWorkflow.snapshot)
        assert snapshot.detail == "git clone failed: remote branch main not found"
        assert snapshot.sandbox is SandboxState.NONE
        assert fakes.calls == ["create"]
        await handle.signal(BranchWorkflow.request_delete)
        await handle.result()
    assert fakes.calls == ["create", "delete"]


async def _message(handle: WorkflowHandle[BranchWorkflow, None], turn_id: str) -> int:
    accepted = await handle.execute_update(
        BranchWorkflow.send_message, MessageRequest(turn_id, f"m-{turn_id}")
    )
    return accepted.queue_position


async def test_messages_run_in_order_and_a_repeat_is_one_turn(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeSandboxActivities()
    fakes.hold.add("t1")
    worker, handle = await _start(temporal_env, fakes)
    async with worker:
        await _until(handle, BranchStatus.IDLE)
        await _message(handle, "t1")
        await _until(handle, BranchStatus.RUNNING)
        assert await _message(handle, "t2") == 1
        assert await _message(handle, "t3") == 2
        assert await _message(handle, "t2") == 1  # the same turn again: not queued twice
        snapshot = await handle.query(BranchWorkflow.snapshot)
        assert (snapshot.running_turn, snapshot.queued_turns) == ("t1", ["t2", "t3"])
        fakes.hold.discard("t1")
        for _ in range(200):
            if (await handle.query(BranchWorkflow.snapshot)).queued_turns == [] and (
                "turn:t3" in fakes.calls
            ):
                break
            await asyncio.sleep(0.05)
        await _until(handle, BranchStatus.IDLE)
        assert [c for c in fakes.calls if c.startswith("turn:")] == [
            "turn:t1",
            "turn:t2",
            "turn:t3",
        ]
        await handle.signal(BranchWorkflow.request_delete)
        await handle.result()


async def test_stop_cancels_the_running_turn_and_drops_the_queue(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeSandboxActivities()
    fakes.hold.add("t1")
    worker, handle = await _start(temporal_env, fakes)
    async with worker:
        await _until(handle, BranchStatus.IDLE)
        await _message(handle, "t1")
        await _message(handle, "t2")
        await _until(handle, BranchStatus.RUNNING)
        await handle.signal(BranchWorkflow.stop)
        for _ in range(200):
            if "close:t2:cancelled" in fakes.calls:
                break
            await asyncio.sleep(0.05)
        await _until(handle, BranchStatus.IDLE)
        assert "cancel:t1" in fakes.calls
        assert "close:t2:cancelled" in fakes.calls
        assert "turn:t2" not in fakes.calls
        await handle.signal(BranchWorkflow.request_delete)
        await handle.result()


async def test_a_stopped_sandbox_starts_again_for_the_next_message(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeSandboxActivities()
    fakes.auto_stop = 1
    worker, handle = await _start(temporal_env, fakes)
    async with worker:
        await _until(handle, BranchStatus.STOPPED)
        await _message(handle, "t1")
        for _ in range(200):
            if "turn:t1" in fakes.calls:
                break
            await asyncio.sleep(0.05)
        assert fakes.calls.index("start") < fakes.calls.index("turn:t1")
        await handle.signal(BranchWorkflow.request_delete)
        await handle.result()


async def test_git_operations_start_a_stopped_sandbox_and_hold_off_the_idle_timer(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeSandboxActivities()
    fakes.auto_stop = 2
    worker, handle = await _start(temporal_env, fakes)
    async with worker:
        await _until(handle, BranchStatus.STOPPED)
        outcome = await handle.execute_update(
            BranchWorkflow.git_operation, GitOpRequest(GitOp.DIFF)
        )
        assert outcome.ok and outcome.diff is not None
        assert outcome.diff.files[0].path == "x.txt"
        assert (
            fakes.calls.index("stop") < fakes.calls.index("start") < fakes.calls.index("git:diff")
        )

        # A slow operation outlasts the idle interval: the sandbox is not stopped under it.
        fakes.hold_git.set()
        slow = asyncio.create_task(
            handle.execute_update(BranchWorkflow.git_operation, GitOpRequest(GitOp.PUSH))
        )
        await asyncio.sleep(3.5)
        assert fakes.calls.count("stop") == 1
        fakes.hold_git.clear()
        assert (await slow).ok
        await _until(handle, BranchStatus.STOPPED)
        assert fakes.calls.count("stop") == 2
        await handle.signal(BranchWorkflow.request_delete)
        await handle.result()


async def test_rewrites_are_refused_during_a_turn_and_turns_with_commits_are_pushed(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeSandboxActivities()
    worker, handle = await _start(temporal_env, fakes)
    async with worker:
        await _until(handle, BranchStatus.IDLE)
        turn = str(uuid.uuid4())
        fakes.hold.add(turn)
        fakes.commits[turn] = "c" * 40
        await handle.execute_update(
            BranchWorkflow.send_message, MessageRequest(turn, str(uuid.uuid4()))
        )
        await _until(handle, BranchStatus.RUNNING)
        try:
            await handle.execute_update(BranchWorkflow.git_operation, GitOpRequest(GitOp.REBASE))
        except WorkflowUpdateFailedError as exc:
            assert isinstance(exc.cause, ApplicationError)
            assert exc.cause.type == "BranchBusy"
        else:
            raise AssertionError("a rebase during a turn was accepted")
        read = await handle.execute_update(BranchWorkflow.git_operation, GitOpRequest(GitOp.DIFF))
        assert read.ok  # reads do not wait for the turn

        fakes.hold.discard(turn)
        await _until(handle, BranchStatus.IDLE)
        assert [(p.turn_id, p.sha) for p in fakes.pushes] == [(turn, "c" * 40)]
        untouched = str(uuid.uuid4())  # a turn that changed nothing is not pushed
        await handle.execute_update(
            BranchWorkflow.send_message, MessageRequest(untouched, str(uuid.uuid4()))
        )
        for _ in range(100):
            if f"turn:{untouched}" in fakes.calls:
                break
            await asyncio.sleep(0.05)
        await _until(handle, BranchStatus.IDLE)
        assert len(fakes.pushes) == 1
        rebased = await handle.execute_update(
            BranchWorkflow.git_operation, GitOpRequest(GitOp.REBASE)
        )
        assert rebased.ok
        await handle.signal(BranchWorkflow.request_delete)
        await handle.result()
