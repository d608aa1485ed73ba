"""Request and response bodies of a branch's git routes (diff, history, push, pull request,
operations)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from workflows.types import MergeDirection, ResetMode

RefText = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class DiffLineOut(BaseModel):
    kind: Literal["context", "add", "delete"]
    content: str
    old_line: int | None
    new_line: int | None


class DiffHunkOut(BaseModel):
    header: str
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    lines: list[DiffLineOut]


class DiffFileOut(BaseModel):
    path: str
    old_path: str | None
    status: str
    additions: int
    deletions: int
    binary: bool
    hunks: list[DiffHunkOut]


class DiffOut(BaseModel):
    against: str
    base_sha: str
    head_sha: str
    files: list[DiffFileOut]
    truncated: bool = Field(description="Files were left out to keep the answer bounded")


class CommitOut(BaseModel):
    sha: str
    parents: list[str]
    author_name: str
    author_email: str
    authored_at: str
    subject: str
    body: str
    turn_id: str | None = Field(description="The agent turn that made this commit, if any")


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force_with_lease: bool = Field(
        default=False,
        description="Overwrite the remote branch, but only if it is still what we last saw "
        "(after a rebase or reset)",
    )


class PullRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    body: Annotated[str, StringConstraints(max_length=65536)] | None = None
    draft: bool = False


class PullRequestOut(BaseModel):
    number: int
    url: str
    created: bool = Field(description="False when the branch already had this pull request")


class GitOperationRequest(BaseModel):
    """Fields by operation — merge: `direction`; reset: `commit`, `mode`; tag: `name`, `commit`
    (default HEAD), `message` (annotated when set), `push`; rename: `name`; rebase and
    delete-remote: none."""

    model_config = ConfigDict(extra="forbid")

    direction: MergeDirection = MergeDirection.BASE_INTO_BRANCH
    commit: RefText | None = None
    mode: ResetMode = ResetMode.HARD
    name: RefText | None = None
    message: Annotated[str, StringConstraints(max_length=10000)] | None = None
    push: bool = True


class GitResultOut(BaseModel):
    op: str
    message: str
    status: str | None = None
    sha: str | None = None
    branch_name: str | None = Field(default=None, description="The branch's name after a rename")
