from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from api.branch_workflows import request_branch_deletion
from api.deps import CurrentUser, KeyringDep, ScopeDep, SettingsDep, StateDep, TemporalDep
from api.github_access import CONNECT_GITHUB, caller_github_token, github_client, github_http_error
from api.repo_env import env_keys, read_env, write_env
from api.schemas.repos import RemoteBranchOut, RemoteBranchPage, RepoCreate, RepoOut, RepoPatch
from db.models import Branch, Repo
from githost.github import GitHubError, GitHubNotFound
from gitops.credentials import GitCredentials
from gitops.remote import GitRemoteError, probe_remote, remote_branches
from gitops.sources import InvalidRepoSource, SourceKind, parse_repo_source
from security.crypto import Keyring

router = APIRouter(prefix="/repos", tags=["repos"])


def repo_out(repo: Repo, keyring: Keyring) -> RepoOut:
    return RepoOut(
        id=repo.id,
        name=repo.name,
        url=repo.url,
        default_branch=repo.default_branch,
        github_full_name=repo.github_full_name,
        push_enabled=repo.push_enabled,
        position=repo.position,
        env_keys=env_keys(repo, keyring),
        created_at=repo.created_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RepoOut)
async def create_repo(
    body: RepoCreate,
    user: CurrentUser,
    scope: ScopeDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    state: StateDep,
) -> RepoOut:
    """A git URL, a local path (admins), or a GitHub repository as `owner/name` or its URL.

    A GitHub repository is looked up through the API with the caller's GitHub token when they
    have one (canonical name, clone URL, default branch; private repositories work); without
    one, it is probed anonymously, which only public repositories answer."""
    try:
        source = parse_repo_source(body.url, github_url=settings.github_url)
    except InvalidRepoSource as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if source.kind is SourceKind.LOCAL and not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only administrators may add repositories by local path"
        )
    url, name, full_name = source.url, source.name, source.github_full_name
    default_branch: str | None = None
    credentials: GitCredentials | None = None
    if full_name is not None:
        token = await caller_github_token(state, user.id)
        if token is not None:
            try:
                async with github_client(state, token) as github:
                    found = await github.get_repo(full_name)
            except GitHubNotFound as exc:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"GitHub repository {full_name} does not exist, "
                    "or your GitHub token cannot see it",
                ) from exc
            except GitHubError as exc:
                raise github_http_error(exc) from exc
            url, name, full_name = found.clone_url, found.name, found.full_name
            default_branch = found.default_branch
            credentials = GitCredentials.github_token(token)

    same = Repo.url == url
    if full_name is not None:
        same = or_(same, func.lower(Repo.github_full_name) == full_name.lower())
    existing = await scope.session.scalar(scope.select(Repo).where(same))
    if existing is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"repository already added: {existing.id}")
    try:
        remote = await probe_remote(
            url, credentials=credentials, timeout=settings.git_timeout_seconds
        )
    except GitRemoteError as exc:
        detail = str(exc)
        if full_name is not None and credentials is None:
            detail += f"; if the repository is private, {CONNECT_GITHUB}"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc
    # GitHub's answer names the default branch even when ls-remote's HEAD cannot.
    if default_branch is None or default_branch not in remote.branches:
        default_branch = remote.default_branch

    last = await scope.session.scalar(
        select(func.max(Repo.position)).where(Repo.user_id == scope.user_id)
    )
    repo = Repo(
        user_id=scope.user_id,
        name=name,
        url=url,
        default_branch=default_branch,
        github_full_name=full_name,
        position=(last + 1) if last is not None else 0,
    )
    scope.session.add(repo)
    try:
        await scope.session.commit()
    except IntegrityError as exc:  # the same URL added concurrently
        raise HTTPException(status.HTTP_409_CONFLICT, "repository already added") from exc
    return repo_out(repo, keyring)


@router.get("", response_model=list[RepoOut])
async def list_repos(scope: ScopeDep, keyring: KeyringDep) -> list[RepoOut]:
    rows = await scope.session.scalars(
        scope.select(Repo).order_by(Repo.position, Repo.created_at, Repo.id)
    )
    return [repo_out(repo, keyring) for repo in rows]


@router.get("/{repo_id}", response_model=RepoOut)
async def read_repo(repo_id: uuid.UUID, scope: ScopeDep, keyring: KeyringDep) -> RepoOut:
    return repo_out(await scope.get(Repo, repo_id), keyring)


@router.patch("/{repo_id}", response_model=RepoOut)
async def update_repo(
    repo_id: uuid.UUID, body: RepoPatch, scope: ScopeDep, keyring: KeyringDep
) -> RepoOut:
    repo = await scope.get_for_update(Repo, repo_id)
    if body.position is not None:
        await _move(scope, repo, body.position)
    if body.push_enabled is not None:
        repo.push_enabled = body.push_enabled
    if body.env is not None:
        env = read_env(repo, keyring)
        for name, value in body.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        write_env(repo, env, keyring)
    await scope.session.commit()
    return repo_out(repo, keyring)


@router.get("/{repo_id}/remote-branches", response_model=RemoteBranchPage)
async def list_remote_branches(
    repo_id: uuid.UUID,
    user: CurrentUser,
    scope: ScopeDep,
    state: StateDep,
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 100,
) -> RemoteBranchPage:
    """Branches on the repository's remote: through GitHub's API for a GitHub repository when
    the caller has a GitHub token, else `git ls-remote`."""
    repo = await scope.get(Repo, repo_id)
    token = await caller_github_token(state, user.id) if repo.github_full_name else None
    if repo.github_full_name is not None and token is not None:
        try:
            async with github_client(state, token) as github:
                found = await github.list_branches(repo.github_full_name, page, per_page)
        except GitHubError as exc:
            raise github_http_error(exc) from exc
        return RemoteBranchPage(
            items=[
                RemoteBranchOut(name=b.name, sha=b.sha, protected=b.protected) for b in found.items
            ],
            page=page,
            per_page=per_page,
            has_next=found.has_next,
            source="github",
        )
    try:
        branches = await remote_branches(repo.url, timeout=state.settings.git_timeout_seconds)
    except GitRemoteError as exc:
        detail = str(exc)
        if repo.github_full_name is not None:
            detail += f"; if the repository is private, {CONNECT_GITHUB}"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc
    start = (page - 1) * per_page
    return RemoteBranchPage(
        items=[
            RemoteBranchOut(name=b.name, sha=b.sha, protected=None)
            for b in branches[start : start + per_page]
        ],
        page=page,
        per_page=per_page,
        has_next=len(branches) > start + per_page,
        source="git",
    )


async def _move(scope: ScopeDep, repo: Repo, position: int) -> None:
    """Renumber the caller's repos 0..n-1 with `repo` at `position` (clamped to the end)."""
    ordered = list(
        await scope.session.scalars(
            scope.select(Repo).order_by(Repo.position, Repo.created_at, Repo.id).with_for_update()
        )
    )
    ordered = [r for r in ordered if r.id != repo.id]
    ordered.insert(min(position, len(ordered)), repo)
    for index, item in enumerate(ordered):
        item.position = index


@router.delete("/{repo_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_repo(repo_id: uuid.UUID, scope: ScopeDep, temporal: TemporalDep) -> None:
    repo = await scope.get(Repo, repo_id)
    branch_ids = list(
        await scope.session.scalars(
            scope.select(Branch).with_only_columns(Branch.id).where(Branch.repo_id == repo.id)
        )
    )
    # Sandboxes first: if Temporal is down we answer 503 and delete nothing.
    for branch_id in branch_ids:
        await request_branch_deletion(temporal, branch_id)
    await scope.session.delete(repo)
    await scope.session.commit()
