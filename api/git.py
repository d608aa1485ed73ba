"""The API's side of git on a branch: one `git_operation` update on its workflow, which runs
the operation in the sandbox (starting it if stopped) and answers with an outcome.

Unsuccessful outcomes become precise HTTP errors; the operations themselves abort what they
started, so a refused request leaves the branch as it was.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.branch_workflows import update_refused, update_unreachable
from api.errors import GitOperationFailed
from workflows.branch import BranchWorkflow
from workflows.ids import branch_workflow_id
from workflows.types import GitOpOutcome, GitOpRequest

# Long enough for a sandbox to start and a push to ride out its retries.
_GIT_RPC_TIMEOUT = timedelta(minutes=11)


async def run_git_operation(
    temporal: Client, branch_id: uuid.UUID, request: GitOpRequest
) -> GitOpOutcome:
    """The successful outcome; raises `GitOperationFailed` (mapped by the app's error handler)
    or an HTTP error when the workflow refuses or cannot be reached."""
    handle = temporal.get_workflow_handle_for(BranchWorkflow.run, branch_workflow_id(branch_id))
    try:
        outcome = await handle.execute_update(
            BranchWorkflow.git_operation, request, rpc_timeout=_GIT_RPC_TIMEOUT
        )
    except WorkflowUpdateFailedError as exc:
        raise update_refused(exc, "operation refused") from exc
    except RPCError as exc:
        raise update_unreachable(exc) from exc
    if not outcome.ok:
        raise GitOperationFailed(outcome)
    return outcome
