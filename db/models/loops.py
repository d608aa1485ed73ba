from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, IdMixin, OwnedMixin, TimestampMixin

LOOP_STOP_REASONS = (
    "finished",
    "max_iterations",
    "budget_tokens",
    "budget_cost",
    "budget_time",
    "stopped",
    "turn_failed",
)


class LoopRun(IdMixin, OwnedMixin, TimestampMixin, Base):
    """One unattended run on a branch: the prompt, then continuations until a stop reason."""

    __tablename__ = "loop_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running','completed')", name="status"),
        CheckConstraint("max_iterations BETWEEN 1 AND 25", name="cap_range"),
        # One active loop per branch, enforced by the database (a second start is a 409).
        Index(
            "uq_loop_runs_active_branch",
            "branch_id",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
    )

    branch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("branches.id", ondelete="CASCADE"), index=True, nullable=False
    )
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="running", nullable=False)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    iterations: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    max_iterations: Mapped[int] = mapped_column(Integer, nullable=False)
    budget_tokens: Mapped[int | None] = mapped_column(BigInteger)
    budget_cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    budget_seconds: Mapped[int | None] = mapped_column(Integer)
    tokens_used: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    cost_used_usd: Mapped[Decimal] = mapped_column(Numeric(12, 4), default=0, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
