"""The API's side of `BranchWorkflow`: start it, ask it for state, tell it to delete.

Typed handles only; Temporal failures become `ServiceUnavailable` (503) so a route either
finishes its change or makes none.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import HTTPException, status
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ServiceUnavailable
from db.models import Branch
from workflows.branch import BranchWorkflow
from workflows.ids import branch_workflow_id
from workflows.search_attributes import (
    BRANCH_ID,
    BRANCH_STATUS,
    OWNER_ID,
    REPO_ID,
    WORKFLOW_KIND,
)
from workflows.types import BranchRef, BranchSnapshot, BranchStatus, BranchWorkflowInput

_QUERY_TIMEOUT = timedelta(seconds=3)
_RPC_TIMEOUT = timedelta(seconds=10)


def branch_ref(branch: Branch) -> BranchRef:
    return BranchRef(
        branch_id=str(branch.id), user_id=str(branch.user_id), repo_id=str(branch.repo_id)
    )


async def start_branch_workflow(client: Client, branch: Branch, task_queue: str) -> None:
    try:
        await client.start_workflow(
            BranchWorkflow.run,
            BranchWorkflowInput(branch=branch_ref(branch)),
            id=branch_workflow_id(branch.id),
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(OWNER_ID, str(branch.user_id)),
                    SearchAttributePair(REPO_ID, str(branch.repo_id)),
                    SearchAttributePair(BRANCH_ID, str(branch.id)),
                    SearchAttributePair(BRANCH_STATUS, BranchStatus.CREATING.value),
                    SearchAttributePair(WORKFLOW_KIND, "branch"),
                ]
            ),
            rpc_timeout=_RPC_TIMEOUT,
        )
    except RPCError as exc:
        raise ServiceUnavailable(f"temporal is unavailable: {exc.message}") from exc


async def query_branch_snapshot(client: Client, branch_id: uuid.UUID) -> BranchSnapshot | None:
    """Live state from the workflow, or None when it cannot answer now (no worker, finished)."""
    handle = client.get_workflow_handle_for(BranchWorkflow.run, branch_workflow_id(branch_id))
    try:
        return await handle.query(BranchWorkflow.snapshot, rpc_timeout=_QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError):
        return None


async def request_branch_deletion(client: Client, branch_id: uuid.UUID) -> None:
    handle = client.get_workflow_handle_for(BranchWorkflow.run, branch_workflow_id(branch_id))
    try:
        await handle.signal(BranchWorkflow.request_delete, rpc_timeout=_RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return  # never started or already finished: nothing to clean up
        raise ServiceUnavailable(f"temporal is unavailable: {exc.message}") from exc


def update_refused(exc: WorkflowUpdateFailedError, fallback: str) -> HTTPException:
    """The workflow's validator said no (busy, deleting, queue full): its reason, as a 409."""
    cause = exc.cause
    detail = cause.message if isinstance(cause, ApplicationError) else fallback
    return HTTPException(status.HTTP_409_CONFLICT, detail)


def update_unreachable(exc: RPCError) -> Exception:
    if exc.status is RPCStatusCode.NOT_FOUND:
        return HTTPException(
            status.HTTP_409_CONFLICT, "the branch is not running; it may have been deleted"
        )
    return ServiceUnavailable(f"temporal is unavailable: {exc.message}")
