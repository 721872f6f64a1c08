"""Small shared queries on the store that every process needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.config import Config
from monitor.errors import StoreError
from monitor.store.engine import transaction
from monitor.store.tables import Model, utcnow


def sync_models(engine: Engine, config: Config) -> dict[str, int]:
    """Create or update one ``model`` row per configured model; returns name → id.

    An upsert, so processes starting together on an empty store (API and workers) never collide.
    Models removed from the config keep their rows (and history); they are simply no longer
    monitored.
    """
    with transaction(engine) as session:
        if config.models:
            insert = upsert_insert(session.get_bind().dialect.name)
            rows = [
                {"name": name, "task": spec.task, "feature_schema": dict(spec.features), "created_at": utcnow(),
                 "updated_at": utcnow()}
                for name, spec in config.models.items()
            ]  # fmt: skip
            statement = insert(Model).values(rows)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=[Model.name],
                    set_={
                        "task": statement.excluded.task,
                        "feature_schema": statement.excluded.feature_schema,
                        "updated_at": statement.excluded.updated_at,
                    },
                )
            )
        return {name: id_ for id_, name in session.execute(select(Model.id, Model.name))}


def model_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {name: id_ for id_, name in connection.execute(select(Model.id, Model.name))}


def upsert_insert(dialect_name: str) -> Any:
    """The dialect's ``insert`` construct, which has ``on_conflict_do_nothing/do_update`` (Postgres, SQLite)."""
    if dialect_name == "postgresql":
        return postgresql.insert
    if dialect_name == "sqlite":
        return sqlite.insert
    raise StoreError(f"store: unsupported database {dialect_name!r} (expected postgresql or sqlite)")
