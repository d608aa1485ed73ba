"""The caller's GitHub, through their stored GitHub token: repositories to add, their branches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import CurrentUser, StateDep
from api.github_access import github_client, github_http_error, require_github_token
from api.schemas.github import GitHubBranchOut, GitHubBranchPage, GitHubRepoOut, GitHubRepoPage
from githost.github import (
    GitHubError,
    GitHubRepo,
)

router = APIRouter(prefix="/github", tags=["github"])

Owner = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")]
RepoName = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,100}$")]
PageNumber = Annotated[int, Query(ge=1, le=1000)]


def repo_out(repo: GitHubRepo) -> GitHubRepoOut:
    return GitHubRepoOut(
        full_name=repo.full_name,
        name=repo.name,
        owner=repo.owner,
        private=repo.private,
        clone_url=repo.clone_url,
        html_url=repo.html_url,
        default_branch=repo.default_branch,
        description=repo.description,
        updated_at=repo.updated_at,
    )


@router.get("/repos", response_model=GitHubRepoPage)
async def list_github_repos(
    user: CurrentUser,
    state: StateDep,
    q: Annotated[
        str | None,
        Query(max_length=200, description="case-insensitive match on name and description"),
    ] = None,
    page: PageNumber = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 30,
) -> GitHubRepoPage:
    """Repositories the caller's GitHub token can see, most recently updated first."""
    token = await require_github_token(state, user.id)
    try:
        async with github_client(state, token) as github:
            if q and q.strip():
                found = await github.search_user_repos(q, page, per_page)
            else:
                found = await github.list_user_repos(page, per_page)
    except GitHubError as exc:
        raise github_http_error(exc) from exc
    return GitHubRepoPage(
        items=[repo_out(repo) for repo in found.items],
        page=found.page,
        per_page=found.per_page,
        has_next=found.has_next,
    )


@router.get("/repos/{owner}/{name}/branches", response_model=GitHubBranchPage)
async def list_github_branches(
    owner: Owner,
    name: RepoName,
    user: CurrentUser,
    state: StateDep,
    page: PageNumber = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 100,
) -> GitHubBranchPage:
    token = await require_github_token(state, user.id)
    try:
        async with github_client(state, token) as github:
            found = await github.list_branches(f"{owner}/{name}", page, per_page)
    except GitHubError as exc:
        raise github_http_error(exc) from exc
    return GitHubBranchPage(
        items=[GitHubBranchOut(name=b.name, sha=b.sha, protected=b.protected) for b in found.items],
        page=found.page,
        per_page=found.per_page,
        has_next=found.has_next,
    )
