from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_PROMPT_BYTES = 256 * 1024


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(description="The prompt, passed to the agent as data (max 256 KB).")
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    @field_validator("content")
    @classmethod
    def _bounded(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the message is empty")
        if len(value.encode()) > MAX_PROMPT_BYTES:
            raise ValueError(f"the message is larger than {MAX_PROMPT_BYTES // 1024} KB")
        return value


class MessageAccepted(BaseModel):
    message_id: uuid.UUID
    turn_id: uuid.UUID
    queue_position: int = Field(description="0 when it starts right away, else its place in line")
    loop_id: uuid.UUID | None = Field(
        default=None, description="The loop run this message started or steers, if any"
    )


class StopAccepted(BaseModel):
    detail: str
