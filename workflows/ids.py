"""The one place workflow ids, sandbox names and task queues are derived from domain ids."""

from __future__ import annotations

import uuid


def branch_workflow_id(branch_id: uuid.UUID | str) -> str:
    return f"branch-{branch_id}"


def loop_workflow_id(loop_id: uuid.UUID | str) -> str:
    return f"loop-{loop_id}"


def sandbox_name(branch_id: uuid.UUID | str) -> str:
    """Stable per branch, so creating a sandbox is idempotent across activity retries."""
    return f"br-{branch_id}"
