from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.conversation import MAX_PROMPT_BYTES


class LoopCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="The first message of the run (max 256 KB).")
    max_iterations: Annotated[int, Field(ge=1, le=25)] | None = None
    budget_tokens: Annotated[int, Field(ge=1)] | None = None
    budget_cost_usd: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=4)] | None = None
    budget_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] | None = None

    @field_validator("prompt")
    @classmethod
    def _bounded(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty")
        if len(value.encode()) > MAX_PROMPT_BYTES:
            raise ValueError(f"the prompt is larger than {MAX_PROMPT_BYTES // 1024} KB")
        return value


class LoopOut(BaseModel):
    id: uuid.UUID
    branch_id: uuid.UUID
    status: str
    stop_reason: str | None
    detail: str | None
    iterations: int
    max_iterations: int
    budget_tokens: int | None
    budget_cost_usd: Decimal | None
    budget_seconds: int | None
    tokens_used: int
    cost_used_usd: Decimal
    created_at: datetime
    finished_at: datetime | None
    running_turn: uuid.UUID | None = None
    first_turn_id: uuid.UUID | None = None
    first_message_id: uuid.UUID | None = None


class LoopSummary(BaseModel):
    id: uuid.UUID
    status: str
    iterations: int
    max_iterations: int
    stop_reason: str | None
