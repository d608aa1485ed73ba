from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, IdMixin, OwnedMixin, TimestampMixin

CREDENTIAL_PROVIDERS = ("anthropic", "openai", "opencode", "github", "daytona")


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    login: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    github_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    avatar_url: Mapped[str | None] = mapped_column(String(2000))
    # Most branches the user may have at once; None is unlimited (the local admin).
    branch_quota: Mapped[int | None] = mapped_column(Integer)


class ApiToken(IdMixin, OwnedMixin, TimestampMixin, Base):
    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    hint: Mapped[str] = mapped_column(String(16), nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Credential(IdMixin, OwnedMixin, TimestampMixin, Base):
    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("user_id", "provider"),
        CheckConstraint(
            "provider IN ('anthropic','openai','opencode','github','daytona')", name="provider"
        ),
    )

    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    last4: Mapped[str] = mapped_column(String(4), nullable=False)
    base_url: Mapped[str | None] = mapped_column(String(2000))
    # Expiring tokens (GitHub App user tokens): when the access token lapses, and the sealed
    # refresh token (same key and context as `ciphertext`, suffixed ":refresh").
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refresh_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(IdMixin, OwnedMixin, TimestampMixin, Base):
    """A browser sign-in: the cookie holds a random token, this row only its hash."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class UserSettings(TimestampMixin, Base):
    __tablename__ = "user_settings"
    __table_args__ = (
        CheckConstraint("sandbox_auto_stop_minutes BETWEEN 5 AND 20", name="auto_stop_range"),
        CheckConstraint("default_loop_max_iterations BETWEEN 1 AND 25", name="loop_cap_range"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    sandbox_auto_stop_minutes: Mapped[int] = mapped_column(Integer, default=10, nullable=False)
    default_loop_max_iterations: Mapped[int] = mapped_column(Integer, default=10, nullable=False)
    default_agent: Mapped[str] = mapped_column(String(64), default="claude-code", nullable=False)
    default_model: Mapped[str | None] = mapped_column(String(200))
