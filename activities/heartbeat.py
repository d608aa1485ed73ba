"""Heartbeating around a long await, so a cancelled or timed-out activity learns of it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")


async def with_heartbeats(work: Awaitable[T], *, every: float = 5.0) -> T:
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        # A cancellation delivered to the activity lands here while `work` still runs.
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
