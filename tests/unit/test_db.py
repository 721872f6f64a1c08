"""SQLite as the embedded store: write transactions that read first never fail on a concurrent writer."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from monitor.config import parse_config
from monitor.store import engine as db
from monitor.store.queries import sync_models
from monitor.store.tables import Model


@pytest.fixture
def engine(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    db.upgrade(engine)
    yield engine
    engine.dispose()


def test_read_then_write_survives_a_concurrent_writer(engine):
    other_done = threading.Event()

    def other_writer():
        with db.transaction(engine) as session:
            session.add(Model(name="other", task="binary", feature_schema={}))
        other_done.set()

    with db.transaction(engine) as session:
        session.scalars(select(Model)).all()  # a snapshot read first, as ingestion and sync_models do
        writer = threading.Thread(target=other_writer)
        writer.start()
        # With a deferred BEGIN the other writer would commit now and our write below would fail
        # with "database is locked"; holding the write lock from BEGIN makes it wait instead.
        assert not other_done.wait(0.3)
        session.add(Model(name="ours", task="binary", feature_schema={}))
    writer.join(timeout=30)
    with engine.connect() as connection:
        assert sorted(connection.scalars(select(Model.name))) == ["other", "ours"]


def test_processes_syncing_models_together_never_collide(engine):
    config = parse_config({"models": {f"m{i}": {"task": "binary", "features": {"x": "numeric"}} for i in range(5)}})
    errors: list[BaseException] = []

    def sync():
        try:
            sync_models(engine, config)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=sync) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Model)) == 5


def test_a_bad_store_url_never_echoes_its_password():
    with pytest.raises(db.StoreError) as caught:
        db.make_engine("postgresql+psycopg//user:hunter2@host/db")  # missing ":" after the scheme
    assert "hunter2" not in str(caught.value)
