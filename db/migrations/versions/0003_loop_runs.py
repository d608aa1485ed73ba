"""loop runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "loop_runs",
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stop_reason", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("max_iterations", sa.Integer(), nullable=False),
        sa.Column("budget_tokens", sa.BigInteger(), nullable=True),
        sa.Column("budget_cost_usd", sa.Numeric(precision=12, scale=4), nullable=True),
        sa.Column("budget_seconds", sa.Integer(), nullable=True),
        sa.Column("tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("cost_used_usd", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint("status IN ('running','completed')", name=op.f("ck_loop_runs_status")),
        sa.CheckConstraint("max_iterations BETWEEN 1 AND 25", name=op.f("ck_loop_runs_cap_range")),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["branches.id"],
            name=op.f("fk_loop_runs_branch_id_branches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_loop_runs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loop_runs")),
    )
    op.create_index(op.f("ix_loop_runs_branch_id"), "loop_runs", ["branch_id"], unique=False)
    op.create_index(op.f("ix_loop_runs_user_id"), "loop_runs", ["user_id"], unique=False)
    op.create_index(
        "uq_loop_runs_active_branch",
        "loop_runs",
        ["branch_id"],
        unique=True,
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:

    op.drop_index(
        "uq_loop_runs_active_branch",
        table_name="loop_runs",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.drop_index(op.f("ix_loop_runs_user_id"), table_name="loop_runs")
    op.drop_index(op.f("ix_loop_runs_branch_id"), table_name="loop_runs")
    op.drop_table("loop_runs")
