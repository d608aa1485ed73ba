from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class GitHubRepoOut(BaseModel):
    full_name: str
    name: str
    owner: str
    private: bool
    clone_url: str
    html_url: str
    default_branch: str
    description: str | None
    updated_at: datetime | None


class GitHubRepoPage(BaseModel):
    items: list[GitHubRepoOut]
    page: int
    per_page: int
    has_next: bool


class GitHubBranchOut(BaseModel):
    name: str
    sha: str
    protected: bool


class GitHubBranchPage(BaseModel):
    items: list[GitHubBranchOut]
    page: int
    per_page: int
    has_next: bool
