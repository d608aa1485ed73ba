from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.git import PullRequestOut
from api.schemas.loops import LoopSummary
from workflows.types import BranchStatus, SandboxState

# Length is checked by the ref validator so the error names the rule; this only bounds input.
RefText = Annotated[str, StringConstraints(max_length=1000)]


class BranchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RefText | None = None
    base_branch: RefText | None = None
    agent: Annotated[str, StringConstraints(max_length=64)] | None = None
    model: Annotated[str, StringConstraints(max_length=200)] | None = None


class BranchPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: Annotated[str, StringConstraints(max_length=64)] | None = None
    model: Annotated[str, StringConstraints(max_length=200)] | None = None
    loop_enabled: bool | None = None
    loop_max_iterations: Annotated[int, Field(ge=1, le=25)] | None = None


class SandboxOut(BaseModel):
    state: SandboxState
    auto_stop_seconds: int | None = None
    auto_stop_at: datetime | None = None


class BranchOut(BaseModel):
    id: uuid.UUID
    repo_id: uuid.UUID
    name: str
    base_branch: str
    agent: str
    model: str | None
    status: BranchStatus
    status_detail: str | None
    loop_enabled: bool
    loop_max_iterations: int | None
    sandbox: SandboxOut | None = None
    loop: LoopSummary | None = Field(default=None, description="The latest loop run, if any")
    pushed_sha: str | None = Field(
        default=None, description="What the remote held for this branch after our last push"
    )
    pull_request: PullRequestOut | None = None
    created_at: datetime
