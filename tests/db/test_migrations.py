from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from db.migrate import alembic_config, downgrade_to_base, upgrade_to_head


@pytest.fixture
def scratch_database(postgres_server_url: str) -> Iterator[str]:
    name = f"upstream_mig_{uuid.uuid4().hex[:8]}"
    base = postgres_server_url.rpartition("/")[0]
    admin = base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_upgrade_downgrade_upgrade_and_models_match(scratch_database: str) -> None:
    upgrade_to_head(scratch_database)
    downgrade_to_base(scratch_database)
    upgrade_to_head(scratch_database)
    upgrade_to_head(scratch_database)  # idempotent
    # Raises if the models and the migrations disagree.
    command.check(alembic_config(scratch_database))
