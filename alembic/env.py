"""Alembic environment: runs with the engine Driftscope passes in (see monitor.store.engine)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from monitor.store.tables import Base

target_metadata = Base.metadata


def run_migrations() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI: take the URL from -x store=... or alembic.ini
        url = context.get_x_argument(as_dictionary=True).get("store") or context.config.get_main_option(
            "sqlalchemy.url"
        )
        engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER TABLE needs batch mode
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
