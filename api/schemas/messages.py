"""The transcript (`GET /api/branches/{branch_id}/messages`): user messages as sent, assistant
messages rebuilt from the event log as ordered content blocks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

MAX_NOTICES = 200

TurnStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class TextBlock(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ToolResult(BaseModel):
    output: Any = None
    is_error: bool = False


class ToolCallBlock(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    id: str
    tool: str
    summary: str | None = None
    input: Any = None
    result: ToolResult | None = Field(
        default=None, description="null until the tool's result event has arrived"
    )


class ErrorBlock(BaseModel):
    type: Literal["error"] = "error"
    message: str


ContentBlock = Annotated[TextBlock | ToolCallBlock | ErrorBlock, Field(discriminator="type")]


class Usage(BaseModel):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


class UserMessageOut(BaseModel):
    role: Literal["user"] = "user"
    id: uuid.UUID
    content: str
    turn_id: uuid.UUID | None
    created_at: datetime


class AssistantMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    id: uuid.UUID | None = Field(description="the stored reply once the turn has ended, else null")
    turn_id: uuid.UUID
    reply_to: uuid.UUID = Field(description="id of the user message that started the turn")
    status: TurnStatusName
    agent: str
    model: str | None
    blocks: list[ContentBlock]
    commit_sha: str | None = None
    usage: Usage | None = None
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


TranscriptEntry = Annotated[UserMessageOut | AssistantMessageOut, Field(discriminator="role")]


class NoticeOut(BaseModel):
    """A branch-level event shown between messages: a push, a git operation, a loop start/end."""

    seq: int
    type: Literal["git", "loop"]
    data: dict[str, Any]
    created_at: datetime


class TranscriptOut(BaseModel):
    branch_id: uuid.UUID
    last_event_seq: int = Field(
        description=(
            "The transcript reflects events up to this seq: continue live with "
            "GET /api/branches/{branch_id}/events?after=<last_event_seq>."
        )
    )
    messages: list[TranscriptEntry]
    notices: list[NoticeOut] = Field(
        default_factory=list,
        description=f"The latest {MAX_NOTICES} git and loop events up to last_event_seq, "
        "oldest first",
    )
