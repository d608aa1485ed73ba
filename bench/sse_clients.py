"""SSE clients for the benchmarks, run in a process of their own so their CPU does not count
against the pipeline being measured. Prints one JSON object per finished stream to stdout."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx


async def follow(
    client: httpx.AsyncClient, base: str, branch_id: str, turns: int
) -> dict[str, Any]:
    """Read until `turns` done events; latency of each token = arrival - its write stamp."""
    latencies: list[float] = []
    events = 0
    done = 0
    first = last = 0.0
    async with client.stream(
        "GET", f"{base}/api/branches/{branch_id}/events", timeout=None
    ) as response:
        response.raise_for_status()
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                now = time.time()
                events += 1
                first = first or now
                last = now
                if kind == "token":
                    stamp = json.loads(json.loads(line[6:])["content"])["t"]
                    latencies.append(now - stamp)
                elif kind == "done":
                    done += 1
                    if done >= turns:
                        break
    return {
        "branch": branch_id,
        "events": events,
        "latencies": latencies,
        "first": first,
        "last": last,
    }


async def main() -> None:
    base, turns = sys.argv[1], int(sys.argv[2])
    branches = sys.argv[3:]
    limits = httpx.Limits(max_connections=len(branches) + 5)
    async with httpx.AsyncClient(limits=limits) as client:
        print(json.dumps({"ready": True}), flush=True)
        results = await asyncio.gather(*(follow(client, base, b, turns) for b in branches))
    for result in results:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
