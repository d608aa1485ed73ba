from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from api.branch_workflows import request_branch_deletion
from api.deps import CurrentUser, KeyringDep, ScopeDep, SettingsDep, TemporalDep
from api.repo_env import env_keys, read_env, write_env
from api.schemas.repos import RepoCreate, RepoOut, RepoPatch
from db.models import Branch, Repo
from gitops.remote import GitRemoteError, probe_remote
from gitops.sources import InvalidRepoSource, SourceKind, parse_repo_source
from security.crypto import Keyring

router = APIRouter(prefix="/repos", tags=["repos"])


def repo_out(repo: Repo, keyring: Keyring) -> RepoOut:
    return RepoOut(
        id=repo.id,
        name=repo.name,
        url=repo.url,
        default_branch=repo.default_branch,
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
) -> RepoOut:
    try:
        source = parse_repo_source(body.url)
    except InvalidRepoSource as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if source.kind is SourceKind.LOCAL and not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only administrators may add repositories by local path"
        )
    existing = await scope.session.scalar(scope.select(Repo).where(Repo.url == source.url))
    if existing is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"repository already added: {existing.id}")
    try:
        remote = await probe_remote(source.url, timeout=settings.git_timeout_seconds)
    except GitRemoteError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc

    last = await scope.session.scalar(
        select(func.max(Repo.position)).where(Repo.user_id == scope.user_id)
    )
    repo = Repo(
        user_id=scope.user_id,
        name=source.name,
        url=source.url,
        default_branch=remote.default_branch,
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
