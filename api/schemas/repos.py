from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
EnvValue = Annotated[str, StringConstraints(max_length=32 * 1024)]


class RepoCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class RepoPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: Annotated[int, Field(ge=0, le=100_000)] | None = None
    push_enabled: bool | None = Field(
        default=None, description="Push the branch after every turn that committed."
    )
    env: (
        Annotated[
            dict[EnvName, EnvValue | None],
            Field(
                max_length=200,
                description="Set variables; a null value removes one. Values are write-only.",
            ),
        ]
        | None
    ) = None


class RepoOut(BaseModel):
    id: uuid.UUID
    name: str
    url: str
    default_branch: str
    github_full_name: str | None = Field(description="owner/name when the repository is on GitHub")
    push_enabled: bool
    position: int
    env_keys: list[str]
    created_at: datetime


class RemoteBranchOut(BaseModel):
    name: str
    sha: str
    protected: bool | None = Field(description="known for GitHub repositories only")


class RemoteBranchPage(BaseModel):
    items: list[RemoteBranchOut]
    page: int
    per_page: int
    has_next: bool
    source: Literal["github", "git"] = Field(
        description="GitHub's API, or `git ls-remote` of the repository URL"
    )
