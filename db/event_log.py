"""Appending to a branch's event log: per-branch `seq`, idempotent per output line, NOTIFY.

NOTIFY carries ids only (`<branch_id>:<seq>`): payloads can exceed PostgreSQL's 8000-byte
notification limit, and listeners re-select rows anyway.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
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
    session: AsyncSession, branch_id: uuid.UUID, events: list[NewEvent]
) -> list[int]:
    """Append in order; returns the seqs assigned. Lines already stored (same turn and line
    number) are skipped, so a retried activity can re-send a batch safely. Runs inside the
    caller's transaction: the NOTIFY is delivered on commit."""
    if not events:
        return []
    fresh = await _drop_already_stored(session, events)
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
    await session.execute(
        insert(Event)
        .values(
            [
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
        )
        .on_conflict_do_nothing(index_elements=["turn_id", "line_no", "part"])
    )
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": NOTIFY_CHANNEL, "payload": f"{branch_id}:{last}"},
    )
    return seqs


async def _drop_already_stored(session: AsyncSession, events: list[NewEvent]) -> list[NewEvent]:
    keyed = [
        (e.turn_id, e.line_no, e.part)
        for e in events
        if e.turn_id is not None and e.line_no is not None
    ]
    if not keyed:
        return events
    result = await session.execute(
        select(Event.turn_id, Event.line_no, Event.part).where(
            func.row(Event.turn_id, Event.line_no, Event.part).in_(keyed)
        )
    )
    stored = {(turn_id, line_no, part) for turn_id, line_no, part in result}
    return [e for e in events if (e.turn_id, e.line_no, e.part) not in stored]
