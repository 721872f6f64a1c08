"""Small shared queries on the store that every process needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.config import Config
from monitor.db import transaction
from monitor.errors import StoreError
from monitor.models import Model


def sync_models(engine: Engine, config: Config) -> dict[str, int]:
    """Create or update one ``model`` row per configured model; returns name → id.

    Models removed from the config keep their rows (and history); they are simply no longer
    monitored.
    """
    with transaction(engine) as session:
        existing = {m.name: m for m in session.scalars(select(Model))}
        for name, spec in config.models.items():
            schema = dict(spec.features)
            row = existing.get(name)
            if row is None:
                row = Model(name=name, task=spec.task, feature_schema=schema)
                session.add(row)
                existing[name] = row
            elif row.task != spec.task or row.feature_schema != schema:
                row.task, row.feature_schema = spec.task, schema
        session.flush()
        return {name: row.id for name, row in existing.items()}


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
