"""A branch's conversation: `POST` a message for its agent, `GET` the transcript."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.conversation import submit_message
from api.deps import ScopeDep, SettingsDep, TemporalDep
from api.schemas.conversation import MessageAccepted, MessageCreate
from api.schemas.messages import TranscriptOut
from api.transcript import load_transcript

router = APIRouter(prefix="/branches/{branch_id}/messages", tags=["messages"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=MessageAccepted)
async def send_message(
    branch_id: uuid.UUID,
    body: MessageCreate,
    scope: ScopeDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> MessageAccepted:
    """Queue a message for the branch's agent; answered at once with the turn's id. Messages
    sent while a turn runs wait their turn, in order. The same `idempotency_key` twice makes
    one turn. During a loop run the message steers it (it becomes the next iteration's
    prompt); with `loop_enabled` on the branch it starts a loop run."""
    return await submit_message(scope, temporal, settings.task_queue, branch_id, body)


@router.get("", response_model=TranscriptOut)
async def read_transcript(branch_id: uuid.UUID, scope: ScopeDep) -> TranscriptOut:
    """User messages and assistant replies in order; an assistant reply's content is rebuilt
    from the event log as ordered blocks (text, tool call with its result, error). Continue
    live with `GET /api/branches/{branch_id}/events?after=<last_event_seq>`."""
    return await load_transcript(scope, branch_id)
