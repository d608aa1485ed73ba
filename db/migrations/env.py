from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from db.models import Base

config = context.config


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            # Serialises concurrent `migrate` runs (two stacks booting on one database).
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7314159265)")
            context.run_migrations()
    engine.dispose()


run_migrations()
