"""What the workflow benchmarks share: a throwaway stack (embedded PostgreSQL, a Temporal dev
server, an in-process worker on real local sandboxes), a seeded local remote, a user."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from db.engine import SessionFactory, build_engine, build_session_factory
from db.migrate import upgrade_to_head
from security.crypto import generate_key
from stack.ports import load_or_allocate_ports
from stack.postgres import EmbeddedPostgres
from stack.temporal import temporal_cli
from workflows.branch import BranchWorkflow
from workflows.search_attributes import ALL_KEYS
from workflows.types import BranchStatus

TASK_QUEUE = "bench"


@dataclass(frozen=True)
class BenchStack:
    data: Path
    env: WorkflowEnvironment
    settings: Settings
    sessions: SessionFactory


@asynccontextmanager
async def bench_stack(
    prefix: str, *, temporal_args: Sequence[str] = ()
) -> AsyncIterator[BenchStack]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data = Path(tmp)
        ports = load_or_allocate_ports(data)
        pg = EmbeddedPostgres(data, port=ports.postgres, log_path=data / "postgres.log")
        pg.start()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(temporal_cli()),
            search_attributes=list(ALL_KEYS),
            data_converter=pydantic_data_converter,
            ui=False,
            dev_server_extra_args=list(temporal_args),
        )
        try:
            upgrade_to_head(pg.url)
            settings = Settings(
                data_dir=data,
                database_url=pg.url,
                encryption_key=generate_key(),
                temporal_address=env.client.service_client.config.target_host,
                task_queue=TASK_QUEUE,
            )
            engine = build_engine(pg.url, pool_size=10)
            try:
                yield BenchStack(data, env, settings, build_session_factory(engine))
            finally:
                await engine.dispose()
        finally:
            await env.shutdown()
            pg.stop()


async def until_idle(handle: WorkflowHandle[BranchWorkflow, None]) -> None:
    for _ in range(600):
        if (await handle.query(BranchWorkflow.snapshot)).status is BranchStatus.IDLE:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the branch never became idle")


async def seed_remote(path: Path, files: dict[str, str] | None = None) -> None:
    """A bare repository with one commit on main holding `files`."""
    work = path.with_suffix(".seed")
    work.mkdir()
    for name, content in (files or {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(content)
    script = (
        f"set -e; git init -q --bare {path}; cd {work}; git init -q -b main; git add -A; "
        "git -c user.name=b -c user.email=b@b commit -q --allow-empty -m seed; "
        f"git push -q {path} main"
    )
    process = await asyncio.create_subprocess_exec("sh", "-c", script)
    if await process.wait() != 0:
        raise RuntimeError("could not seed the benchmark repository")


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
