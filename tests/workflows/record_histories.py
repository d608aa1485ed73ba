"""Record BranchWorkflow histories for the replay test (tests/workflows/test_replay.py).

    python -m tests.workflows.record_histories

Re-record only for a deliberate, patched change of workflow code; keep old files so running
workflows started by older code keep being checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import temporal_cli
from tests.workflows.test_branch_workflow import FakeSandboxActivities, _message, _until
from workflows.branch import BranchWorkflow
from workflows.search_attributes import ALL_KEYS
from workflows.types import BranchRef, BranchStatus, BranchWorkflowInput

HISTORIES = Path(__file__).parent / "histories"
Scenario = Callable[[WorkflowHandle[BranchWorkflow, None], FakeSandboxActivities], Awaitable[None]]


async def _idle_stop_delete(
    handle: WorkflowHandle[BranchWorkflow, None], fakes: FakeSandboxActivities
) -> None:
    await _until(handle, BranchStatus.STOPPED)


async def _turns_and_stop(
    handle: WorkflowHandle[BranchWorkflow, None], fakes: FakeSandboxActivities
) -> None:
    await _until(handle, BranchStatus.IDLE)
    await _message(handle, "t1")
    await _until(handle, BranchStatus.IDLE)
    fakes.hold.add("t2")
    await _message(handle, "t2")
    await _message(handle, "t3")
    await _until(handle, BranchStatus.RUNNING)
    await handle.signal(BranchWorkflow.stop)
    while "close:t3:cancelled" not in fakes.calls:
        await asyncio.sleep(0.05)
    await _until(handle, BranchStatus.IDLE)


SCENARIOS: dict[str, tuple[int, Scenario]] = {
    "branch_create_idle_stop_delete": (1, _idle_stop_delete),
    "branch_turns_queue_stop_delete": (600, _turns_and_stop),
}


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=list(ALL_KEYS),
        data_converter=pydantic_data_converter,
        ui=False,
    )
    try:
        for name, (auto_stop, scenario) in SCENARIOS.items():
            fakes = FakeSandboxActivities()
            fakes.auto_stop = auto_stop
            ref = BranchRef(
                branch_id=f"00000000-0000-4000-8000-{name[-12:]:0>12}", user_id="u", repo_id="r"
            )
            async with Worker(
                env.client, task_queue=name, workflows=[BranchWorkflow], activities=fakes.all()
            ):
                handle = await env.client.start_workflow(
                    BranchWorkflow.run,
                    BranchWorkflowInput(branch=ref),
                    id=f"branch-{ref.branch_id}",
                    task_queue=name,
                )
                await scenario(handle, fakes)
                await handle.signal(BranchWorkflow.request_delete)
                await handle.result()
                history = await handle.fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
