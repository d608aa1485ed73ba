"""Sandbox lifecycle activities for `BranchWorkflow`. Each is idempotent: Temporal retries them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import with_heartbeats
from activities.repo_access import RepoAccess
from db.engine import SessionFactory
from db.event_log import NewEvent, append_events
from db.models import Branch, Repo, Sandbox, UserSettings
from githost.tokens import GitHubTokenExpired
from gitops.clone import clone
from gitops.errors import GitOpError, TransientGitError
from gitops.sources import SourceKind, parse_repo_source
from gitops.workspace import SandboxRepo
from sandboxes.base import (
    SandboxNotFound,
    SandboxProvider,
    SandboxSpec,
    SandboxStatus,
)
from workflows.ids import sandbox_name
from workflows.types import (
    BranchRef,
    BranchStatusUpdate,
    SandboxReady,
    SandboxWatchResult,
)

logger = logging.getLogger(__name__)

_WATCH_INTERVAL = 2.0
_DEFAULT_AUTO_STOP_MINUTES = 10
_DIED_UNEXPECTEDLY = "the sandbox stopped unexpectedly; it starts again with the next message"
_AGENT_GIT_IDENTITY = ("Upstream Agent", "agent@upstream.invalid")


class SandboxActivities:
    def __init__(
        self, provider: SandboxProvider, sessions: SessionFactory, access: RepoAccess
    ) -> None:
        self._provider = provider
        self._sessions = sessions
        self._access = access

    @activity.defn
    async def create_sandbox(self, ref: BranchRef) -> SandboxReady:
        branch_id = uuid.UUID(ref.branch_id)
        async with self._sessions() as session:
            branch = await session.get(Branch, branch_id)
            repo = await session.get(Repo, uuid.UUID(ref.repo_id))
            prefs = await session.get(UserSettings, uuid.UUID(ref.user_id))
        if branch is None or repo is None:
            raise ApplicationError("the branch was deleted", type="SandboxSetupFailed")
        auto_stop = prefs.sandbox_auto_stop_minutes if prefs else _DEFAULT_AUTO_STOP_MINUTES

        source = parse_repo_source(repo.url)
        # A repository added by local path is pushed to in place, so it is mounted writable.
        mounts = (source.url,) if source.kind is SourceKind.LOCAL else ()
        try:
            credentials = await self._access.git_credentials(ref.user_id, repo)
        except GitHubTokenExpired as exc:
            raise ApplicationError(str(exc), type="SandboxSetupFailed") from exc
        name = sandbox_name(ref.branch_id)
        await self._record_sandbox(ref, name, "creating", None)
        info = await with_heartbeats(
            self._provider.create(SandboxSpec(name, writable_mounts=mounts))
        )
        git = SandboxRepo(
            self._provider,
            info.sandbox_id,
            workdir=info.workdir,
            home=info.home,
            credentials=credentials,
            remote_url=source.url,
        )
        try:
            await with_heartbeats(
                clone(
                    git,
                    source.url,
                    base=branch.base_branch,
                    branch=branch.name,
                    identity=_AGENT_GIT_IDENTITY,
                )
            )
        except TransientGitError as exc:
            raise ApplicationError(f"git clone failed: {exc.message}") from exc
        except GitOpError as exc:
            raise ApplicationError(
                f"git clone failed: {exc.message}", type="SandboxSetupFailed"
            ) from exc
        await self._record_sandbox(ref, name, "started", info.workdir)
        return SandboxReady(workdir=info.workdir, auto_stop_seconds=auto_stop * 60)

    @activity.defn
    async def start_sandbox(self, ref: BranchRef) -> SandboxReady:
        """Start a stopped sandbox again: its files (checkout, agent sessions) are all there."""
        async with self._sessions() as session:
            prefs = await session.get(UserSettings, uuid.UUID(ref.user_id))
        auto_stop = prefs.sandbox_auto_stop_minutes if prefs else _DEFAULT_AUTO_STOP_MINUTES
        name = sandbox_name(ref.branch_id)
        try:
            info = await with_heartbeats(self._provider.start(name))
        except SandboxNotFound as exc:
            raise ApplicationError(
                "the sandbox no longer exists", type="SandboxSetupFailed"
            ) from exc
        await self._record_sandbox(ref, name, "started", info.workdir)
        return SandboxReady(workdir=info.workdir, auto_stop_seconds=auto_stop * 60)

    @activity.defn
    async def watch_sandbox(self, ref: BranchRef) -> SandboxWatchResult:
        """Returns only when the sandbox is no longer running; the workflow cancels it when it
        stops the sandbox itself. Long-lived by design: one heartbeating activity that polls."""
        name = sandbox_name(ref.branch_id)
        while True:
            try:
                info = await self._provider.get(name)
            except SandboxNotFound:
                return SandboxWatchResult(alive=False, detail="the sandbox no longer exists")
            if info.status is not SandboxStatus.STARTED:
                await self._record_sandbox(ref, name, "stopped", None)
                return SandboxWatchResult(
                    alive=False,
                    detail=_DIED_UNEXPECTEDLY,
                )
            activity.heartbeat()
            await asyncio.sleep(_WATCH_INTERVAL)

    @activity.defn
    async def stop_sandbox(self, ref: BranchRef) -> None:
        name = sandbox_name(ref.branch_id)
        with contextlib.suppress(SandboxNotFound):
            await self._provider.stop(name)
        await self._record_sandbox(ref, name, "stopped", None)

    @activity.defn
    async def delete_sandbox(self, ref: BranchRef) -> None:
        name = sandbox_name(ref.branch_id)
        await self._provider.delete(name)
        await self._record_sandbox(ref, name, "deleted", None)

    @activity.defn
    async def record_branch_status(self, update_: BranchStatusUpdate) -> None:
        branch_id = uuid.UUID(update_.branch.branch_id)
        async with self._sessions.begin() as session:
            current = await session.scalar(
                select(Branch.status).where(Branch.id == branch_id).with_for_update()
            )
            if current is None:
                return  # branch deleted meanwhile: nothing to report to
            await session.execute(
                update(Branch)
                .where(Branch.id == branch_id)
                .values(status=update_.status.value, status_detail=update_.detail)
            )
            await append_events(
                session,
                branch_id,
                [NewEvent("status", {"status": update_.status.value, "detail": update_.detail})],
            )

    async def _record_sandbox(
        self, ref: BranchRef, name: str, status: str, workdir: str | None
    ) -> None:
        branch_id = uuid.UUID(ref.branch_id)
        values = {"status": status, "provider": self._provider.name, "external_id": name}
        if workdir is not None:
            values["workdir"] = workdir
        async with self._sessions.begin() as session:
            exists = await session.scalar(select(Branch.id).where(Branch.id == branch_id))
            if exists is None:
                return
            await session.execute(
                insert(Sandbox)
                .values(branch_id=branch_id, user_id=uuid.UUID(ref.user_id), **values)
                .on_conflict_do_update(index_elements=["branch_id"], set_=values)
            )
