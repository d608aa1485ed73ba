"""Event pipeline benchmarks: agent output line -> turn activity -> event log -> NOTIFY ->
API (own process) -> SSE client (own process).

    python -m bench.event_pipeline [--latency-events 10000] [--rate 500]
                                   [--small 1000] [--large 100000]
                                   [--turns 50] [--lines-per-turn 2000]

(a) latency from a line written by the agent to its arrival at an SSE client, p50/p99;
(b) CPU per event in the turn activity for a small versus a large turn (their ratio);
(c) events per second stored and delivered with many concurrent turns and SSE clients.

A synthetic agent (bench/synthetic_agent.py) writes timestamped JSON lines inside a real local
sandbox; everything else is the production code path. The Temporal workflow is left out: the
turn activity runs directly, as a worker would run it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.testing import ActivityEnvironment

from activities.turns import TurnActivities
from agents.registry import register_adapter
from bench.synthetic_agent import SyntheticAdapter
from config.settings import Settings
from db.credentials import credential_context
from db.engine import SessionFactory, build_engine, build_session_factory
from db.migrate import upgrade_to_head
from db.models import Branch, Credential, Message, Repo, Turn
from db.users import LOCAL_ADMIN_LOGIN, get_or_create_user
from sandboxes.base import SandboxSpec
from sandboxes.local import LocalSandboxProvider
from security.crypto import generate_key, keyring_from_settings
from stack.ports import load_or_allocate_ports
from stack.postgres import EmbeddedPostgres
from workflows.ids import sandbox_name
from workflows.types import BranchRef, TurnInput

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Bench:
    settings: Settings
    sessions: SessionFactory
    provider: LocalSandboxProvider
    activities: TurnActivities
    user_id: uuid.UUID
    api: str

    async def branch(self) -> BranchRef:
        async with self.sessions.begin() as session:
            repo = Repo(
                user_id=self.user_id,
                name="bench",
                url=f"/bench/{uuid.uuid4()}",
                default_branch="main",
            )
            session.add(repo)
            await session.flush()
            branch = Branch(
                user_id=self.user_id,
                repo_id=repo.id,
                name="bench",
                base_branch="main",
                agent="synthetic",
                model="synthetic",
                status="idle",
            )
            session.add(branch)
            await session.flush()
            ref = BranchRef(str(branch.id), str(self.user_id), str(repo.id))
        await self.provider.create(SandboxSpec(sandbox_name(ref.branch_id)))
        return ref

    async def turn(self, ref: BranchRef, lines: int, rate: float) -> TurnInput:
        async with self.sessions.begin() as session:
            message = Message(
                user_id=self.user_id,
                branch_id=uuid.UUID(ref.branch_id),
                role="user",
                content=f"{lines} {rate}",
            )
            session.add(message)
            await session.flush()
            turn = Turn(
                user_id=self.user_id,
                branch_id=uuid.UUID(ref.branch_id),
                message_id=message.id,
                agent="synthetic",
                model="synthetic",
            )
            session.add(turn)
            await session.flush()
            return TurnInput(ref, str(turn.id))

    async def run(self, request: TurnInput) -> None:
        result = await ActivityEnvironment().run(self.activities.run_turn, request)
        if result.status != "succeeded":
            raise RuntimeError(f"turn failed: {result}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _clients(
    bench: Bench, branches: list[BranchRef], turns: int
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "sse_clients.py"),
        bench.api,
        str(turns),
        *(b.branch_id for b in branches),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    await process.stdout.readline()  # ready
    await asyncio.sleep(0.5)  # let the streams connect before the agents start writing
    return process


async def _results(process: asyncio.subprocess.Process) -> list[dict[str, object]]:
    out, _ = await process.communicate()
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def latency(bench: Bench, events: int, rate: float) -> None:
    ref = await bench.branch()
    clients = await _clients(bench, [ref], 1)
    await bench.run(await bench.turn(ref, events, rate))
    [result] = await _results(clients)
    values = [v * 1000 for v in result["latencies"]]  # type: ignore[attr-defined]
    print(
        f"(a) line written -> SSE client, {len(values)} events at {rate:g}/s: "
        f"p50 {statistics.median(values):.1f} ms, p99 {_percentile(values, 0.99):.1f} ms, "
        f"max {max(values):.1f} ms"
    )


async def cost(bench: Bench, small: int, large: int) -> None:
    per_event = {}
    for lines in (small, large):
        ref = await bench.branch()
        request = await bench.turn(ref, lines, 0)
        cpu, wall = time.process_time(), time.perf_counter()
        await bench.run(request)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        per_event[lines] = cpu / lines
        print(
            f"(b) {lines:>7} lines: activity CPU {cpu * 1e6 / lines:.1f} µs/event, "
            f"wall {wall * 1e6 / lines:.1f} µs/event ({wall:.2f} s)"
        )
    print(
        f"(b) cost per event, {large} vs {small} lines: ratio "
        f"{per_event[large] / per_event[small]:.2f}"
    )


async def throughput(bench: Bench, turns: int, lines: int) -> None:
    branches = [await bench.branch() for _ in range(turns)]
    requests = [await bench.turn(ref, lines, 0) for ref in branches]
    clients = await _clients(bench, branches, 1)
    started = time.time()
    await asyncio.gather(*(bench.run(r) for r in requests))
    stored = time.time() - started
    results = await _results(clients)
    delivered = sum(int(r["events"]) for r in results)  # type: ignore[call-overload]
    finished = max(float(r["last"]) for r in results)  # type: ignore[arg-type]
    elapsed = finished - started
    print(
        f"(c) {turns} turns x {lines} lines, {turns} SSE clients: {turns * lines} events "
        f"stored in {stored:.1f} s ({turns * lines / stored:.0f}/s); {delivered} delivered "
        f"in {elapsed:.1f} s ({delivered / elapsed:.0f}/s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--lines-per-turn", type=int, default=2_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="upstream-bench-") as tmp:
        data = Path(tmp)
        ports = load_or_allocate_ports(data)
        pg = EmbeddedPostgres(data, port=ports.postgres, log_path=data / "postgres.log")
        pg.start()
        api = None
        try:
            upgrade_to_head(pg.url)
            settings = Settings(
                data_dir=data,
                database_url=pg.url,
                encryption_key=generate_key(),
                temporal_address="127.0.0.1:1",
            )
            env = {
                **os.environ,
                "DATABASE_URL": pg.url,
                "TEMPORAL_ADDRESS": "127.0.0.1:1",
                "ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),  # type: ignore[union-attr]
                "UPSTREAM_DATA_DIR": str(data),
                "UPSTREAM_PORT": str(ports.temporal_ui),
            }
            api = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cli",
                "api",
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{ports.temporal_ui}"
            engine = build_engine(pg.url, pool_size=20)
            sessions = build_session_factory(engine)
            keyring = keyring_from_settings(settings)
            async with sessions.begin() as session:
                user = await get_or_create_user(session, LOCAL_ADMIN_LOGIN, is_admin=True)
                sealed = keyring.encrypt_text(
                    "unused", context=credential_context(user.id, "anthropic")
                )
                session.add(
                    Credential(
                        user_id=user.id,
                        provider="anthropic",
                        key_id=sealed.key_id,
                        ciphertext=sealed.ciphertext,
                        last4="used",
                    )
                )
                user_id = user.id
            provider = LocalSandboxProvider(data / "sandboxes")
            register_adapter(SyntheticAdapter())
            activities = TurnActivities(
                provider, sessions, keyring, tools_dir=data / "tools", turn_timeout=3600
            )
            async with httpx.AsyncClient() as client:
                for _ in range(300):
                    try:
                        if (await client.get(f"{base}/api/me")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
            bench = Bench(settings, sessions, provider, activities, user_id, base)
            await latency(bench, args.latency_events, args.rate)
            await cost(bench, args.small, args.large)
            await throughput(bench, args.turns, args.lines_per_turn)
            for entry in (data / "sandboxes").iterdir():
                if not entry.name.startswith("."):
                    await provider.delete(entry.name)
            await engine.dispose()
        finally:
            if api is not None:
                api.terminate()
                await api.wait()
            pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
