"""event part

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.add_column(
        "events", sa.Column("part", sa.SmallInteger(), server_default="0", nullable=False)
    )
    op.drop_constraint(op.f("uq_events_turn_id_line_no"), "events", type_="unique")
    op.create_unique_constraint(
        op.f("uq_events_turn_id_line_no_part"), "events", ["turn_id", "line_no", "part"]
    )


def downgrade() -> None:

    op.drop_constraint(op.f("uq_events_turn_id_line_no_part"), "events", type_="unique")
    op.create_unique_constraint(
        op.f("uq_events_turn_id_line_no"),
        "events",
        ["turn_id", "line_no"],
        postgresql_nulls_not_distinct=False,
    )
    op.drop_column("events", "part")
