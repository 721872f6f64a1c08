"""Small shared queries on the store that every process needs."""

from __future__ import annotations

from sqlalchemy import Engine, select

from monitor.config import Config
from monitor.db import transaction
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
