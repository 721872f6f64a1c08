"""Every migration runs up and down on SQLite and Postgres, and the models agree with them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from monitor.store import engine as db
from monitor.store.tables import ApiKey, Base, PendingLabel, Prediction


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


# What the models do not describe on Postgres, where prediction is partitioned (migration 0010): the
# partitions and the key table, and the unique constraint, which has to include ts there.
_POSTGRES_ONLY = re.compile(r"^(prediction_key|prediction_default|prediction_p\d{8})$")
_PREDICTION_UNIQUE = {"uq_prediction_model_id_prediction_id", "uq_prediction_model_id_prediction_id_ts"}


def _described_by_models(obj, name, type_, reflected, compare_to) -> bool:
    if type_ == "table":
        return not _POSTGRES_ONLY.match(name or "")
    if type_ == "unique_constraint":
        return name not in _PREDICTION_UNIQUE
    return not (type_ == "index" and _POSTGRES_ONLY.match(getattr(obj.table, "name", "")))


def test_models_match_migrations(empty_store_url):
    engine = db.make_engine(empty_store_url)
    db.upgrade(engine)
    with engine.connect() as connection:
        opts = {"compare_type": True}
        if connection.dialect.name == "postgresql":
            opts["include_object"] = _described_by_models
        context = MigrationContext.configure(connection, opts=opts)
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


@pytest.mark.integration
def test_postgres_prediction_is_partitioned_by_week_and_keeps_its_rows(postgres_url):
    engine = db.make_engine(postgres_url)
    db.upgrade(engine, "0009")
    ts = [datetime(2026, 3, 2, 1, tzinfo=UTC), datetime(2026, 3, 8, 23, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)]
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO model (id, name, task, feature_schema, created_at, updated_at) "
                 "VALUES (1, 'churn', 'binary', '{}', :t, :t)"),
            {"t": ts[0]},
        )  # fmt: skip
        for i, moment in enumerate(ts):
            connection.execute(
                text("INSERT INTO prediction (model_id, prediction_id, ts, features, source, ingested_at) "
                     "VALUES (1, :pid, :t, '{}', 'api', :t)"),
                {"pid": f"p{i}", "t": moment},
            )  # fmt: skip
    db.upgrade(engine)
    with engine.connect() as connection:
        where = connection.execute(
            text("SELECT prediction_id, tableoid::regclass::text FROM prediction ORDER BY prediction_id")
        ).all()
        keys = connection.execute(text("SELECT prediction_id, ts FROM prediction_key ORDER BY prediction_id")).all()
    # Monday 2 March to Sunday 8 March is one week; Monday 9 March starts the next.
    assert [tuple(w) for w in where] == [("p0", "prediction_p20260302"), ("p1", "prediction_p20260302"),
                                         ("p2", "prediction_p20260309")]  # fmt: skip
    assert [tuple(k) for k in keys] == [(f"p{i}", moment) for i, moment in enumerate(ts)]
    with pytest.raises(IntegrityError, match="pk_prediction_key"), engine.begin() as connection:
        # Another timestamp, another partition: the key table still refuses a second row for the id.
        connection.execute(
            text("INSERT INTO prediction (model_id, prediction_id, ts, features, source, ingested_at) "
                 "VALUES (1, 'p0', :t, '{}', 'api', :t)"),
            {"t": ts[2]},
        )  # fmt: skip
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO prediction (model_id, prediction_id, ts, features, source, ingested_at) "
                                "VALUES (1, 'p3', :t, '{}', 'api', :t)"), {"t": ts[2]})  # fmt: skip
        connection.execute(text("DELETE FROM prediction WHERE prediction_id = 'p1'"))
    db.downgrade(engine, "0009")  # and back to one table, every row with its id
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT prediction_id, ts FROM prediction ORDER BY prediction_id")).all()
        partitioned = connection.scalar(text("SELECT count(*) FROM pg_partitioned_table"))
    assert [tuple(r) for r in rows] == [("p0", ts[0]), ("p2", ts[2]), ("p3", ts[2])]
    assert partitioned == 0
    engine.dispose()


def test_keys_made_before_scopes_keep_ingesting(empty_store_url):
    engine = db.make_engine(empty_store_url)
    db.upgrade(engine, "0006")
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO api_key (name, prefix, key_hash, created_at) VALUES ('old', 'abc', 'h', :now)"),
            {"now": datetime.now(UTC)},
        )
    db.upgrade(engine)
    with engine.connect() as connection:
        assert connection.scalars(select(ApiKey.scopes)).all() == [["ingest"]]
    engine.dispose()


def test_unmigrated_store_is_a_clear_error(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(db.StoreError, match="run `driftscope db upgrade`"):
        db.check_migrated(engine)


def test_labels_stored_before_0008_keep_their_time_as_their_reception(empty_store_url):
    engine = db.make_engine(empty_store_url)
    db.upgrade(engine, "0007")
    labelled_at, ingested_at = datetime(2026, 3, 2, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO model (id, name, task, feature_schema, created_at, updated_at) "
                 "VALUES (1, 'churn', 'binary', '{}', :t, :t)"),
            {"t": ingested_at},
        )  # fmt: skip
        for pid, label, label_ts in [("a", "1", labelled_at), ("b", None, None)]:
            connection.execute(
                text("INSERT INTO prediction (model_id, prediction_id, ts, features, label, label_ts, source, "
                     "ingested_at) VALUES (1, :pid, :t, '{}', :label, :label_ts, 'api', :t)"),
                {"pid": pid, "t": ingested_at, "label": label, "label_ts": label_ts},
            )  # fmt: skip
        connection.execute(
            text("INSERT INTO pending_label (model_id, prediction_id, label, label_ts, source, received_at) "
                 "VALUES (1, 'c', '0', :t, 'api', :t)"),
            {"t": labelled_at},
        )  # fmt: skip
    db.upgrade(engine)
    with engine.connect() as connection:
        predictions = connection.execute(
            select(Prediction.prediction_id, Prediction.label_received_at, Prediction.label_corrections).order_by(
                Prediction.prediction_id
            )
        ).all()
        pending = connection.execute(select(PendingLabel.prediction_id, PendingLabel.label_received_at)).all()
    assert [tuple(p) for p in predictions] == [("a", labelled_at, 0), ("b", None, 0)]
    assert [tuple(p) for p in pending] == [("c", labelled_at)]
    db.downgrade(engine, "0007")  # and back: the pending label keeps its reception time as received_at
    with engine.connect() as connection:
        assert connection.execute(text("SELECT prediction_id FROM pending_label")).scalars().all() == ["c"]
    engine.dispose()
