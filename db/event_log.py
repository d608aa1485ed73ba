"""Appending to a branch's event log: per-branch `seq`, idempotent per output line, NOTIFY.

NOTIFY carries ids only (`<branch_id>:<seq>`): payloads can exceed PostgreSQL's 8000-byte
notification limit, and listeners re-select rows anyway.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Branch, Event

NOTIFY_CHANNEL = "branch_events"


@dataclass(frozen=True)
class NewEvent:
    kind: str
    payload: dict[str, Any]
    turn_id: uuid.UUID | None = None
    line_no: int | None = None
    part: int = 0


async def append_events(
    session: AsyncSession,
    branch_id: uuid.UUID,
    events: list[NewEvent],
    *,
    known_new: bool = False,
) -> list[int]:
    """Append in order; returns the seqs assigned. Lines already stored (same turn and line
    number) are skipped, so a retried activity can re-send a batch safely; a caller that has
    established the lines are new (`known_new`) saves that lookup. Runs inside the caller's
    transaction: the NOTIFY is delivered on commit."""
    if not events:
        return []
    fresh = events if known_new else await _drop_already_stored(session, events)
    if not fresh:
        return []
    row = (
        await session.execute(
            update(Branch)
            .where(Branch.id == branch_id)
            .values(last_event_seq=Branch.last_event_seq + len(fresh))
            .returning(Branch.last_event_seq, Branch.user_id)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if row is None:
        raise LookupError(f"branch {branch_id} not found")
    last, owner = row
    first_seq = last - len(fresh) + 1
    seqs = list(range(first_seq, last + 1))
    rows = [
        {
            "branch_id": branch_id,
            "user_id": owner,
            "seq": seq,
            "turn_id": event.turn_id,
            "line_no": event.line_no,
            "part": event.part,
            "kind": event.kind,
            "payload": event.payload,
        }
        for seq, event in zip(seqs, fresh, strict=True)
    ]
    # executemany: SQLAlchemy batches the rows into multi-VALUES statements below PostgreSQL's
    # 65535-parameter limit, so a 100,000-line burst is a handful of round trips.
    await session.execute(
        insert(Event).on_conflict_do_nothing(index_elements=["turn_id", "line_no", "part"]),
        rows,
    )
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": NOTIFY_CHANNEL, "payload": f"{branch_id}:{last}"},
    )
    return seqs


async def _drop_already_stored(session: AsyncSession, events: list[NewEvent]) -> list[NewEvent]:
    """Skip output lines a previous attempt stored. Looks up each turn's stored keys within the
    batch's line range (an index range scan), never the whole turn."""
    ranges: dict[uuid.UUID, tuple[int, int]] = {}
    for e in events:
        if e.turn_id is not None and e.line_no is not None:
            low, high = ranges.get(e.turn_id, (e.line_no, e.line_no))
            ranges[e.turn_id] = (min(low, e.line_no), max(high, e.line_no))
    if not ranges:
        return events
    stored: set[tuple[uuid.UUID | None, int | None, int]] = set()
    for turn_id, (low, high) in ranges.items():
        result = await session.execute(
            select(Event.line_no, Event.part).where(
                Event.turn_id == turn_id, Event.line_no.between(low, high)
            )
        )
        stored.update((turn_id, line_no, part) for line_no, part in result)
    if not stored:
        return events
    return [e for e in events if (e.turn_id, e.line_no, e.part) not in stored]
