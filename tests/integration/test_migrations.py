"""Every migration runs up and down on SQLite and Postgres, and the models agree with them."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from monitor.store import engine as db
from monitor.store.tables import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def empty_store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    return request.getfixturevalue("postgres_url")


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory(str(db.migrations_dir()))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_single_head():
    script = ScriptDirectory(str(db.migrations_dir()))
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()} — chain the new migration"


def test_each_migration_up_and_down(empty_store_url):
    engine = db.make_engine(empty_store_url)
    revisions = revisions_oldest_first()
    for revision in revisions:
        db.upgrade(engine, revision)
        assert db.current_revision(engine) == revision
    for previous in [*reversed(revisions[:-1]), None]:
        db.downgrade(engine, previous or "base")
        assert db.current_revision(engine) == previous
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    db.upgrade(engine)  # and up again from nothing
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


def test_models_match_migrations(empty_store_url):
    engine = db.make_engine(empty_store_url)
    db.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_unmigrated_store_is_a_clear_error(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(db.StoreError, match="run `driftscope db upgrade`"):
        db.check_migrated(engine)
