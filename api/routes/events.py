"""`GET /api/branches/{branch_id}/events`: the branch's event log as Server-Sent Events.

Each event is `event: <kind>`, `data: <payload JSON>`, `id: <seq>` (FastAPI writes the fields
in that order; SSE clients do not care). The stream first replays what is stored after the
resume point, then, with `follow` (the default), waits on the process's `EventHub` and
re-selects whenever a commit may have added rows. A `: ping` comment goes out after
`event_ping_seconds` of silence so proxies keep the connection open.

No database connection is held while the stream waits: the request's session is closed once
the branch is authorised, and each batch opens (and returns) its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

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
    response_class=EventSourceResponse,
    responses={404: {"description": "No such branch (or not the caller's)"}},
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
) -> AsyncIterator[ServerSentEvent]:
    """The branch's event log from the resume point on, then live events.

    `Last-Event-ID` wins over `?after=`: a browser's EventSource reconnects to the same URL
    (still carrying the first load's `after`) and sends the last id it saw in the header."""
    last = last_event_id if last_event_id is not None else (after or 0)
    if not follow:
        async for frame in _stored(state, target, last):
            yield frame
        return
    async with state.events.subscribe(target.branch_id) as subscription:
        async for frame in _followed(state, target, last, subscription):
            yield frame


async def _stored(
    state: AppState, target: _StreamTarget, last: int
) -> AsyncIterator[ServerSentEvent]:
    while True:
        batch = await _read_batch(state, target, last)
        for seq, frame in batch:
            last = seq
            yield frame
        if len(batch) < BATCH_SIZE:
            return


async def _followed(
    state: AppState, target: _StreamTarget, last: int, subscription: Subscription
) -> AsyncIterator[ServerSentEvent]:
    # Subscribed before the first read: see `api.events.hub` for why no wake-up is lost.
    ping = state.event_ping_seconds
    while True:
        batch = await _read_batch(state, target, last)
        for seq, frame in batch:
            last = seq
            yield frame
        if len(batch) == BATCH_SIZE:
            continue  # more stored rows: no need to wait for a notification
        if not await subscription.wait(ping):
            yield ServerSentEvent(comment="ping")


async def _read_batch(
    state: AppState, target: _StreamTarget, last: int
) -> list[tuple[int, ServerSentEvent]]:
    async with state.sessions() as session:
        scope = OwnerScope(session, target.user_id)
        rows = await session.execute(
            scope.select(Event)
            .with_only_columns(Event.seq, Event.kind, Event.payload)
            .where(Event.branch_id == target.branch_id, Event.seq > last)
            .order_by(Event.seq)
            .limit(BATCH_SIZE)
        )
        return [(seq, _frame(seq, kind, payload)) for seq, kind, payload in rows]


def _frame(seq: int, kind: str, payload: object) -> ServerSentEvent:
    # raw_data: JSON encoded once here; JSON escapes newlines, so `data:` stays one line.
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return ServerSentEvent(raw_data=data, event=kind, id=str(seq))
