"""Git operation benchmarks: the round trip of a branch's git operations through its workflow
(update -> activity -> git in the sandbox -> answer), and what they cost in history.

    python -m bench.git_ops [--rounds 30]

Real BranchWorkflow, in-process worker, a real local (bubblewrap) sandbox and a local bare
repository as the remote. Each figure is one `git_operation` update as the API sends it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from bench.harness import TASK_QUEUE, bench_stack, percentile, seed_remote, until_idle
from db.models import Branch, Repo
from db.users import LOCAL_ADMIN_LOGIN, get_or_create_user
from sandboxes.registry import build_provider
from worker import build_worker
from workflows.branch import BranchWorkflow
from workflows.ids import branch_workflow_id, sandbox_name
from workflows.types import BranchRef, BranchWorkflowInput, GitOp, GitOpRequest

_FILES = {f"src/module_{i}.py": "".join(f"line {n}\n" for n in range(200)) for i in range(20)}


async def _timed(rounds: int, step: Callable[[int], Awaitable[None]]) -> list[float]:
    times = []
    for index in range(rounds):
        start = time.perf_counter()
        await step(index)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _report(name: str, times: list[float]) -> None:
    print(
        f"{name:<28} p50 {statistics.median(times):6.0f} ms   p99 {percentile(times, 0.99):6.0f} ms"
        f"   ({len(times)} rounds)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    async with bench_stack("upstream-git-bench-") as stack:
        remote = stack.data / "remote.git"
        await seed_remote(remote, _FILES)
        async with stack.sessions.begin() as session:
            user = await get_or_create_user(session, LOCAL_ADMIN_LOGIN, is_admin=True)
            repo = Repo(user_id=user.id, name="bench", url=str(remote), default_branch="main")
            session.add(repo)
            await session.flush()
            branch = Branch(
                user_id=user.id,
                repo_id=repo.id,
                name="bench/git",
                base_branch="main",
                agent="claude-code",
            )
            session.add(branch)
            await session.flush()
            ref = BranchRef(str(branch.id), str(user.id), str(repo.id))

        provider = build_provider(stack.settings)
        worker = build_worker(
            stack.env.client, settings=stack.settings, provider=provider, sessions=stack.sessions
        )
        async with worker:
            handle = await stack.env.client.start_workflow(
                BranchWorkflow.run,
                BranchWorkflowInput(branch=ref),
                id=branch_workflow_id(ref.branch_id),
                task_queue=TASK_QUEUE,
            )
            await until_idle(handle)
            sandbox = sandbox_name(ref.branch_id)
            workdir = (await provider.get(sandbox)).workdir

            async def commit(index: int, files: int = 1) -> None:
                for n in range(files):
                    path = f"{workdir}/src/module_{n}.py"
                    await provider.write_file(
                        sandbox, path, f"change {index}\n".encode(), mode=0o644
                    )
                for argv in (["git", "add", "-A"], ["git", "commit", "-q", "-m", f"c{index}"]):
                    await provider.exec(sandbox, argv, cwd=workdir)

            async def run(op: GitOp) -> None:
                outcome = await handle.execute_update(
                    BranchWorkflow.git_operation, GitOpRequest(op)
                )
                if not outcome.ok:
                    raise RuntimeError(f"{op.value} failed: {outcome.message}")

            await commit(0, files=10)
            events_before = len((await handle.fetch_history()).events)
            diff_times = await _timed(args.rounds, lambda _: run(GitOp.DIFF))
            events_per_diff = (
                len((await handle.fetch_history()).events) - events_before
            ) / args.rounds
            commits_times = await _timed(args.rounds, lambda _: run(GitOp.COMMITS))

            push_times = []
            for index in range(args.rounds):
                await commit(index + 1)
                start = time.perf_counter()
                await run(GitOp.PUSH)
                push_times.append((time.perf_counter() - start) * 1000)
            noop_times = await _timed(args.rounds, lambda _: run(GitOp.PUSH))

            await handle.signal(BranchWorkflow.request_delete)
            await handle.result()

    print("git operations through the branch workflow (local sandbox, local remote):")
    _report("diff (10 files, 2000 lines)", diff_times)
    _report("commits", commits_times)
    _report("push (one new commit)", push_times)
    _report("push (already up to date)", noop_times)
    print(f"history events per diff: {events_per_diff:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
