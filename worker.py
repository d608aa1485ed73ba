"""The Temporal worker process: runs `workflows/` and `activities/` on one task queue.

Scale out by running more of these against the same Temporal server and task queue.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.worker import Worker

from activities.git import GitActivities
from activities.loops import LoopActivities
from activities.repo_access import RepoAccess
from activities.sandbox import SandboxActivities
from activities.turns import TurnActivities
from config.settings import Settings
from db.engine import SessionFactory, build_engine, build_session_factory
from sandboxes.base import SandboxProvider
from sandboxes.registry import build_provider
from security.crypto import keyring_from_settings
from workflows.branch import BranchWorkflow
from workflows.client import build_temporal_client
from workflows.loop import LoopRunWorkflow
from workflows.search_attributes import ALL_KEYS

logger = logging.getLogger("upstream.worker")

WORKFLOWS: Sequence[type] = (BranchWorkflow, LoopRunWorkflow)


def build_worker(
    client: Client,
    *,
    settings: Settings,
    provider: SandboxProvider,
    sessions: SessionFactory,
) -> Worker:
    keyring = keyring_from_settings(settings)
    access = RepoAccess(sessions, keyring, settings)
    sandbox = SandboxActivities(provider, sessions, access)
    git = GitActivities(provider, sessions, access)
    loops = LoopActivities(client, sessions)
    turns = TurnActivities(
        provider,
        sessions,
        keyring,
        tools_dir=settings.tools_dir,
        turn_timeout=settings.turn_timeout_seconds,
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            sandbox.create_sandbox,
            sandbox.start_sandbox,
            sandbox.watch_sandbox,
            sandbox.stop_sandbox,
            sandbox.delete_sandbox,
            sandbox.record_branch_status,
            turns.run_turn,
            turns.cancel_turn,
            turns.close_turns,
            loops.submit_turn,
            loops.record_progress,
            git.run_git_op,
            git.push_after_turn,
            git.record_git_event,
        ],
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """An external Temporal server does not know our search attributes until told."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in ALL_KEYS
        if key.name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


async def run_worker(settings: Settings) -> None:
    client = await build_temporal_client(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)
    engine = build_engine(settings.require_database_url(), pool_size=5)
    provider = build_provider(settings)
    worker = build_worker(
        client,
        settings=settings,
        provider=provider,
        sessions=build_session_factory(engine),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logger.info("worker polling task queue %r", settings.task_queue)
    try:
        async with worker:
            await stop.wait()
    finally:
        await engine.dispose()
    logger.info("worker stopped")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    asyncio.run(run_worker(Settings()))


if __name__ == "__main__":
    main()
