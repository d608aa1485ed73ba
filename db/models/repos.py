from __future__ import annotations

import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, IdMixin, OwnedMixin, TimestampMixin

BRANCH_STATUSES = ("idle", "creating", "running", "stopped", "error")
SANDBOX_STATUSES = ("creating", "started", "stopped", "deleted", "error")


class Repo(IdMixin, OwnedMixin, TimestampMixin, Base):
    __tablename__ = "repos"
    __table_args__ = (UniqueConstraint("user_id", "url"),)

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    default_branch: Mapped[str] = mapped_column(String(255), nullable=False)
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # `owner/name` when the repository lives on GitHub (pull requests go through its API).
    github_full_name: Mapped[str | None] = mapped_column(String(200))
    # Push the branch after every turn that committed.
    push_enabled: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true(), nullable=False
    )
    # Per-repo environment for sandboxes: one AES-GCM sealed JSON object (values write-only).
    env_key_id: Mapped[str | None] = mapped_column(String(32))
    env_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)


class Branch(IdMixin, OwnedMixin, TimestampMixin, Base):
    __tablename__ = "branches"
    __table_args__ = (
        UniqueConstraint("repo_id", "name"),
        CheckConstraint("status IN ('idle','creating','running','stopped','error')", name="status"),
        CheckConstraint(
            "loop_max_iterations IS NULL OR loop_max_iterations BETWEEN 1 AND 25",
            name="loop_cap_range",
        ),
    )

    repo_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("repos.id", ondelete="CASCADE"), index=True, nullable=False
    )
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    base_branch: Mapped[str] = mapped_column(String(255), nullable=False)
    agent: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="creating", nullable=False)
    status_detail: Mapped[str | None] = mapped_column(Text)
    loop_enabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    loop_max_iterations: Mapped[int | None] = mapped_column(Integer)
    # Highest event seq handed out; bumped with UPDATE ... RETURNING, whose row lock is what
    # serialises concurrent appends to one branch's log.
    last_event_seq: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    # What the remote is known to hold for this branch after our last successful push.
    pushed_sha: Mapped[str | None] = mapped_column(String(64))
    pull_request_url: Mapped[str | None] = mapped_column(String(2000))
    pull_request_number: Mapped[int | None] = mapped_column(Integer)


class Sandbox(IdMixin, OwnedMixin, TimestampMixin, Base):
    __tablename__ = "sandboxes"
    __table_args__ = (
        CheckConstraint(
            "status IN ('creating','started','stopped','deleted','error')", name="status"
        ),
    )

    branch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("branches.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    external_id: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="creating", nullable=False)
    workdir: Mapped[str | None] = mapped_column(String(1000))
    error: Mapped[str | None] = mapped_column(Text)
