"""Loop-mode benchmarks: hand-off time between iterations, Temporal history per iteration, and
a long loop that continues as new with every run's history bounded.

    python -m bench.loop_handoff [--iterations 200] [--suggest-can-at 1000]

Runs the real workflows (BranchWorkflow + LoopRunWorkflow) on a Temporal dev server with an
in-process worker, real local sandboxes and the synthetic agent (bench/synthetic_agent.py, a
few lines per turn). Hand-off = next turn's start - previous turn's end, from the turns table.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from agents.registry import register_adapter
from bench.synthetic_agent import SPEC, SyntheticAdapter
from config.settings import Settings
from db.credentials import credential_context
from db.engine import build_engine, build_session_factory
from db.migrate import upgrade_to_head
from db.models import Branch, Credential, LoopRun, Message, Repo, Turn
from db.users import LOCAL_ADMIN_LOGIN, get_or_create_user
from sandboxes.registry import build_provider
from security.crypto import generate_key, keyring_from_settings
from stack.ports import load_or_allocate_ports
from stack.postgres import EmbeddedPostgres
from stack.temporal import temporal_cli
from worker import build_worker
from workflows.branch import BranchWorkflow
from workflows.ids import branch_workflow_id, loop_workflow_id
from workflows.loop import LoopRunWorkflow
from workflows.search_attributes import ALL_KEYS
from workflows.types import (
    BranchRef,
    BranchStatus,
    BranchWorkflowInput,
    LoopBudget,
    LoopState,
    SteerRequest,
)


async def _history_lengths(client: Client, workflow_id: str) -> list[int]:
    """Events in each run of a workflow id, oldest first (continue-as-new makes several)."""
    lengths = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        lengths.append(len((await handle.fetch_history()).events))
    return list(reversed(lengths))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument(
        "--suggest-can-at",
        type=int,
        default=1000,
        help="history length at which the server suggests continue-as-new",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="upstream-loop-bench-") as tmp:
        data = Path(tmp)
        ports = load_or_allocate_ports(data)
        pg = EmbeddedPostgres(data, port=ports.postgres, log_path=data / "postgres.log")
        pg.start()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(temporal_cli()),
            search_attributes=list(ALL_KEYS),
            data_converter=pydantic_data_converter,
            ui=False,
            dev_server_extra_args=[
                "--dynamic-config-value",
                f"limit.historyCount.suggestContinueAsNew={args.suggest_can_at}",
            ],
        )
        try:
            upgrade_to_head(pg.url)
            settings = Settings(
                data_dir=data,
                database_url=pg.url,
                encryption_key=generate_key(),
                temporal_address=env.client.service_client.config.target_host,
                task_queue="bench",
            )
            engine = build_engine(pg.url, pool_size=10)
            sessions = build_session_factory(engine)
            keyring = keyring_from_settings(settings)
            register_adapter(SyntheticAdapter())
            async with sessions.begin() as session:
                user = await get_or_create_user(session, LOCAL_ADMIN_LOGIN, is_admin=True)
                sealed = keyring.encrypt_text("x", context=credential_context(user.id, "anthropic"))
                session.add(
                    Credential(
                        user_id=user.id,
                        provider="anthropic",
                        key_id=sealed.key_id,
                        ciphertext=sealed.ciphertext,
                        last4="xxxx",
                    )
                )
                repo = Repo(
                    user_id=user.id,
                    name="bench",
                    url=str(data / "remote.git"),
                    default_branch="main",
                )
                session.add(repo)
                await session.flush()
                branch = Branch(
                    user_id=user.id,
                    repo_id=repo.id,
                    name="bench",
                    base_branch="main",
                    agent=SPEC.id,
                    model="synthetic",
                )
                session.add(branch)
                await session.flush()
                # The database caps user-started loops at 25; the benchmark drives the workflow
                # directly to show a long run.
                run = LoopRun(user_id=user.id, branch_id=branch.id, prompt="5 0", max_iterations=25)
                session.add(run)
                await session.flush()
                message = Message(user_id=user.id, branch_id=branch.id, role="user", content="5 0")
                session.add(message)
                await session.flush()
                turn = Turn(
                    user_id=user.id,
                    branch_id=branch.id,
                    message_id=message.id,
                    agent=SPEC.id,
                    model="synthetic",
                    loop_id=run.id,
                )
                session.add(turn)
                await session.flush()
                ref = BranchRef(str(branch.id), str(user.id), str(repo.id))
                loop_id, first = str(run.id), SteerRequest(str(turn.id), str(message.id))
            await _seed_remote(data / "remote.git")

            worker = build_worker(
                env.client, settings=settings, provider=build_provider(settings), sessions=sessions
            )
            async with worker:
                branch_handle = await env.client.start_workflow(
                    BranchWorkflow.run,
                    BranchWorkflowInput(branch=ref),
                    id=branch_workflow_id(ref.branch_id),
                    task_queue="bench",
                )
                await _until_idle(branch_handle)
                loop_handle = await env.client.start_workflow(
                    LoopRunWorkflow.run,
                    LoopState(loop_id, ref, args.iterations, LoopBudget(), first),
                    id=loop_workflow_id(loop_id),
                    task_queue="bench",
                )
                reason = await loop_handle.result()
                async with sessions() as session:
                    turns = list(
                        await session.scalars(
                            select(Turn)
                            .where(Turn.loop_id == uuid.UUID(loop_id))
                            .order_by(Turn.started_at)
                        )
                    )
                loop_runs = await _history_lengths(env.client, loop_workflow_id(loop_id))
                branch_runs = await _history_lengths(env.client, branch_workflow_id(ref.branch_id))
                await branch_handle.signal(BranchWorkflow.request_delete)
                await branch_handle.result()
            await engine.dispose()
        finally:
            await env.shutdown()
            pg.stop()

    handoffs = [
        (later.started_at - earlier.finished_at).total_seconds() * 1000
        for earlier, later in itertools.pairwise(turns)
        if earlier.finished_at and later.started_at
    ]
    ordered = sorted(handoffs)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    print(f"loop ended: {reason.value} after {len(turns)} iterations")
    print(
        f"hand-off turn end -> next turn start: p50 {statistics.median(handoffs):.0f} ms, "
        f"p99 {p99:.0f} ms, max {max(handoffs):.0f} ms ({len(handoffs)} hand-offs)"
    )
    print(
        f"loop workflow: {len(loop_runs)} runs, history events per run {loop_runs}, "
        f"{sum(loop_runs) / len(turns):.1f} events per iteration"
    )
    print(
        f"branch workflow: {len(branch_runs)} runs, longest history {max(branch_runs)} events, "
        f"{sum(branch_runs) / len(turns):.1f} events per turn"
    )


async def _until_idle(handle: WorkflowHandle[BranchWorkflow, None]) -> None:
    for _ in range(600):
        if (await handle.query(BranchWorkflow.snapshot)).status is BranchStatus.IDLE:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the branch never became idle")


async def _seed_remote(path: Path) -> None:
    script = (
        f"set -e; git init -q --bare {path}; d=$(mktemp -d); cd $d; git init -q -b main; "
        "git -c user.name=b -c user.email=b@b commit -q --allow-empty -m seed; "
        f"git push -q {path} main"
    )
    process = await asyncio.create_subprocess_exec("sh", "-c", script)
    if await process.wait() != 0:
        raise RuntimeError("could not seed the benchmark repository")


if __name__ == "__main__":
    asyncio.run(main())
