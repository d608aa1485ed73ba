"""`GET /api/branches/{branch_id}/events`: the branch's event log as Server-Sent Events.

Each event is `id: <seq>`, `event: <kind>`, `data: <payload JSON>`. A batch of rows is written
as one chunk (one socket write, not one per event), and payloads go out as PostgreSQL renders
the JSONB, without a parse and re-encode here. The stream first replays what is stored after the
resume point, then, with `follow` (the default), waits on the process's `EventHub` and
re-selects whenever a commit may have added rows. A `: ping` comment goes out after
`event_ping_seconds` of silence so proxies keep the connection open.

No database connection is held while the stream waits: the request's session is closed once
the branch is authorised, and each batch opens (and returns) its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import Text, cast

from api.deps import ScopeDep, StateDep
from api.events.hub import Subscription
from api.state import AppState
from db.access import OwnerScope
from db.models import Branch, Event

router = APIRouter(prefix="/branches", tags=["events"])

BATCH_SIZE = 500
_MAX_SEQ = 2**63 - 1  # events.seq is a BIGINT


@dataclass(frozen=True)
class _StreamTarget:
    branch_id: uuid.UUID
    user_id: uuid.UUID


async def _authorised_branch(branch_id: uuid.UUID, scope: ScopeDep) -> _StreamTarget:
    # A dependency, so another user's branch is a 404 before the response starts streaming.
    branch = await scope.get(Branch, branch_id)
    target = _StreamTarget(branch.id, scope.user_id)
    # The request's session would otherwise keep its pooled connection checked out for as
    # long as the client stays connected.
    await scope.session.close()
    return target


@router.get(
    "/{branch_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        404: {"description": "No such branch (or not the caller's)"},
    },
)
async def stream_events(
    target: Annotated[_StreamTarget, Depends(_authorised_branch)],
    state: StateDep,
    after: Annotated[
        int | None,
        Query(ge=0, le=_MAX_SEQ, description="Resume after this seq (first load)."),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=_MAX_SEQ,
            description="Resume after this seq; wins over `after` (sent on auto-reconnect).",
        ),
    ] = None,
    follow: Annotated[bool, Query(description="false: return what is stored and end.")] = True,
) -> StreamingResponse:
    """The branch's event log from the resume point on, then live events.

    `Last-Event-ID` wins over `?after=`: a browser's EventSource reconnects to the same URL
    (still carrying the first load's `after`) and sends the last id it saw in the header."""
    last = last_event_id if last_event_id is not None else (after or 0)
    body = _followed(state, target, last) if follow else _stored(state, target, last)
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stored(state: AppState, target: _StreamTarget, last: int) -> AsyncIterator[bytes]:
    while True:
        last, chunk, count = await _read_batch(state, target, last)
        if chunk:
            yield chunk
        if count < BATCH_SIZE:
            return


async def _followed(state: AppState, target: _StreamTarget, last: int) -> AsyncIterator[bytes]:
    async with state.events.subscribe(target.branch_id) as subscription:
        # Subscribed before the first read: see `api.events.hub` for why no wake-up is lost.
        async for chunk in _follow(state, target, last, subscription):
            yield chunk


async def _follow(
    state: AppState, target: _StreamTarget, last: int, subscription: Subscription
) -> AsyncIterator[bytes]:
    ping = state.event_ping_seconds
    while True:
        last, chunk, count = await _read_batch(state, target, last)
        if chunk:
            yield chunk
        if count == BATCH_SIZE:
            continue  # more stored rows: no need to wait for a notification
        if not await subscription.wait(ping):
            yield b": ping\n\n"


async def _read_batch(state: AppState, target: _StreamTarget, last: int) -> tuple[int, bytes, int]:
    """The next rows after `last` as one chunk of frames: (new last seq, chunk, row count)."""
    async with state.sessions() as session:
        scope = OwnerScope(session, target.user_id)
        rows = (
            await session.execute(
                scope.select(Event)
                .with_only_columns(Event.seq, Event.kind, cast(Event.payload, Text))
                .where(Event.branch_id == target.branch_id, Event.seq > last)
                .order_by(Event.seq)
                .limit(BATCH_SIZE)
            )
        ).all()
    if not rows:
        return last, b"", 0
    # JSONB's text form escapes newlines inside strings, so each `data:` stays one line.
    chunk = "".join(f"id: {seq}\nevent: {kind}\ndata: {data}\n\n" for seq, kind, data in rows)
    return rows[-1][0], chunk.encode(), len(rows)
