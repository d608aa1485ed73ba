"""github and git

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_web_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"], unique=False)
    op.add_column("branches", sa.Column("pushed_sha", sa.String(length=64), nullable=True))
    op.add_column("branches", sa.Column("pull_request_url", sa.String(length=2000), nullable=True))
    op.add_column("branches", sa.Column("pull_request_number", sa.Integer(), nullable=True))
    op.add_column("credentials", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("credentials", sa.Column("refresh_ciphertext", sa.LargeBinary(), nullable=True))
    op.add_column(
        "credentials", sa.Column("refresh_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("repos", sa.Column("github_full_name", sa.String(length=200), nullable=True))
    op.add_column(
        "repos", sa.Column("push_enabled", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column("users", sa.Column("avatar_url", sa.String(length=2000), nullable=True))
    op.add_column("users", sa.Column("branch_quota", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "branch_quota")
    op.drop_column("users", "avatar_url")
    op.drop_column("repos", "push_enabled")
    op.drop_column("repos", "github_full_name")
    op.drop_column("credentials", "refresh_expires_at")
    op.drop_column("credentials", "refresh_ciphertext")
    op.drop_column("credentials", "expires_at")
    op.drop_column("branches", "pull_request_number")
    op.drop_column("branches", "pull_request_url")
    op.drop_column("branches", "pushed_sha")
    op.drop_index(op.f("ix_web_sessions_user_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
