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
import uuid

from sqlalchemy import select
from temporalio.client import Client

from agents.registry import register_adapter
from bench.harness import bench_stack, percentile, seed_remote, until_idle
from bench.synthetic_agent import SPEC, SyntheticAdapter
from db.credentials import credential_context
from db.models import Branch, Credential, LoopRun, Message, Repo, Turn
from db.users import LOCAL_ADMIN_LOGIN, get_or_create_user
from sandboxes.registry import build_provider
from security.crypto import keyring_from_settings
from worker import build_worker
from workflows.branch import BranchWorkflow
from workflows.ids import branch_workflow_id, loop_workflow_id
from workflows.loop import LoopRunWorkflow
from workflows.types import (
    BranchRef,
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

    temporal_args = [
        "--dynamic-config-value",
        f"limit.historyCount.suggestContinueAsNew={args.suggest_can_at}",
    ]
    async with bench_stack("upstream-loop-bench-", temporal_args=temporal_args) as stack:
        data, env, settings, sessions = stack.data, stack.env, stack.settings, stack.sessions
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
        await seed_remote(data / "remote.git")

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
            await until_idle(branch_handle)
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

    handoffs = [
        (later.started_at - earlier.finished_at).total_seconds() * 1000
        for earlier, later in itertools.pairwise(turns)
        if earlier.finished_at and later.started_at
    ]
    p99 = percentile(handoffs, 0.99)
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


if __name__ == "__main__":
    asyncio.run(main())
