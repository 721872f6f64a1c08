"""Weekly partitions of ``prediction`` on Postgres (issue 16): ingestion from several threads while retention
drops whole weeks and new weeks are created — nothing lost, nothing stored twice, nothing needed deleted."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text

from monitor.config import parse_config
from monitor.ingest import ingest_labels, ingest_predictions
from monitor.store import partitions, retention
from monitor.store.partitions import WEEK
from monitor.store.tables import utcnow
from tests.integration.test_retention import (
    DAY,
    HOUR,
    config_data,
    first_hour,
    history_data,
    make_history,
    predictions,
)
from tests.integration.test_scheduler_cli import invoke
from tests.integration.test_workers import wait_until

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)


def records(ids: list[str], at: Callable[[int], datetime]) -> list[dict[str, Any]]:
    return [
        {"id": pid, "timestamp": at(i).isoformat(), "features": {"tenure": 2.0, "plan": "basic"}, "prediction": 0,
         "score": 0.2}
        for i, pid in enumerate(ids)
    ]  # fmt: skip


def create_weeks(engine: Engine, start: datetime, end: datetime) -> None:
    """The weekly partitions from ``start``'s week to ``end``'s (the store was migrated today)."""
    with engine.begin() as connection:
        week = partitions.week(start)
        while week.start <= end:
            partitions.create(connection, week)
            week = partitions.week(week.end)


def rows_per_id(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        found = connection.execute(text("SELECT prediction_id, count(*) FROM prediction GROUP BY prediction_id"))
        return dict(found.all())  # type: ignore[arg-type]


def test_ingestion_from_several_threads_while_weeks_are_dropped_and_created(postgres_engine: Engine) -> None:
    engine = postgres_engine
    create_weeks(engine, first_hour(NOW), NOW)
    history = make_history(engine, str(engine.url), NOW)
    config = history.config
    before = predictions(engine)
    due_rows = {pid for pid, ts in before.items() if history.due(ts)}

    due = retention.due(engine, config, NOW)
    dropping = [target.partition for target, _ in due if target.partition is not None]
    # The weeks wholly past the 35 days that recompute_within keeps, clear of the pending and stale windows.
    assert dropping and all(p.end <= NOW - 35 * DAY and p.start > history.stale + HOUR for p in dropping)
    counts = {target.table: n for target, n in due}
    assert counts["prediction"] + sum(counts[p.name] for p in dropping) == len(due_rows)

    # Kept rows re-sent with another timestamp (three days later) must stay one row, at their first time.
    resent = sorted(pid for pid, ts in before.items() if ts > NOW - 20 * DAY)[:200]
    future = NOW + 6 * WEEK  # beyond the weeks created: the default partition takes them until their week exists
    stop, pushed_future = threading.Event(), threading.Event()
    ingested: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)

    def loop(name: str, body: Callable[[int], list[str]], batches: int | None = None) -> threading.Thread:
        """``body(batch)`` until prune is done (at least three times), or ``batches`` times."""

        def run() -> None:
            batch = 0
            try:
                while (not stop.is_set() or batch < 3) if batches is None else batch < batches:
                    ids = body(batch)
                    with lock:
                        ingested.extend(ids)
                    batch += 1
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)
                barrier.abort()

        return threading.Thread(target=run, name=name)

    def push(ids: list[str], at: Callable[[int], datetime]) -> list[str]:
        result = ingest_predictions(engine, config, "churn", records(ids, at), "live", shape="canonical")
        assert not result.rejected, result.rejected
        return ids

    def fresh(batch: int) -> list[str]:
        return push([f"fresh-{batch}-{i}" for i in range(50)], lambda i: NOW - HOUR + i * timedelta(seconds=10))

    def needed(batch: int) -> list[str]:  # into the reference range and the window still pending, labelled
        spans = [history.t0, history.pending]
        ids = push([f"needed-{batch}-{i}" for i in range(20)], lambda i: spans[batch % 2] + i * timedelta(minutes=2))
        labels = [{"id": pid, "label": 1, "timestamp": NOW.isoformat()} for pid in ids]
        assert ingest_labels(engine, config, "churn", labels, "live", shape="canonical").rejected == ()
        return ids

    def again(batch: int) -> list[str]:
        chunk = resent[(batch * 20) % len(resent) :][:20]
        push(chunk, lambda i: before[chunk[i]] + 3 * DAY)
        ids = push([f"future-{batch}-{i}" for i in range(20)], lambda i: future + i * HOUR)
        pushed_future.set()
        return ids

    def racing(side: int) -> Callable[[int], list[str]]:
        # Both threads send the same new ids at the same moment with timestamps a week apart: one row each.
        def body(batch: int) -> list[str]:
            barrier.wait()
            return push([f"race-{batch}-{i}" for i in range(30)], lambda i: NOW - 2 * DAY - side * WEEK + i * HOUR)

        return body

    def maintain() -> None:
        try:
            pushed_future.wait()
            for ahead in range(1, 4):
                partitions.ensure(engine, NOW + ahead * WEEK)
        except BaseException as exc:
            failures.append(exc)

    threads = [
        loop("fresh", fresh),
        loop("needed", needed),
        loop("again", again),
        loop("race-a", racing(0), batches=8),
        loop("race-b", racing(1), batches=8),
        threading.Thread(target=maintain, name="maintain"),
    ]
    for thread in threads:
        thread.start()
    try:
        done = retention.prune(engine, config, NOW, batch=250)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == [], "\n".join(map(str, failures))

    after = predictions(engine)
    new = set(ingested) - set(before)
    assert set(after) == (set(before) - due_rows) | new  # nothing needed is gone, every due row is
    assert all(after[pid] == before[pid] for pid in resent)  # re-sent with another time: still the first one
    assert set(rows_per_id(engine).values()) == {1}  # the racing ids too
    deleted = {target.table: n for target, n in done}
    assert deleted["prediction"] + sum(deleted[p.name] for p in dropping) == len(due_rows)
    with engine.connect() as connection:
        keys = set(connection.execute(text("SELECT prediction_id, ts FROM prediction_key")).all())
        labelled = connection.execute(
            text("SELECT count(*) FROM prediction WHERE prediction_id LIKE 'needed-%' AND label IS NULL")
        ).scalar_one()
        in_default = connection.execute(text(f"SELECT count(*) FROM {partitions.DEFAULT} WHERE ts >= :t"),
                                        {"t": future}).scalar_one()  # fmt: skip
        existing = {p.name for p in partitions.partitions(connection)}
    assert keys == set(after.items())  # one key per row, at the row's time
    assert labelled == 0
    assert in_default == 0 and partitions.week(future).name in existing  # the week took its rows over
    assert not existing & {p.name for p in dropping}
    # The scheduler leaves the dropped weeks' windows alone (and the batch-deleted ones before them).
    with engine.connect() as connection:
        floor = connection.execute(text("SELECT pruned_before FROM model WHERE name = 'churn'")).scalar_one()
    assert floor >= max(p.end for p in dropping) - timedelta(microseconds=1)
    assert {n for _, n in retention.prune(engine, config, NOW)} == {0}


def test_prune_dry_run_names_the_weeks_it_would_drop(postgres_engine: Engine, tmp_path: Path) -> None:
    engine, now = postgres_engine, utcnow()
    create_weeks(engine, first_hour(now), now)
    history = make_history(engine, str(engine.url), now)
    file = tmp_path / "driftscope.yaml"
    file.write_text(yaml.safe_dump(history_data(engine.url.render_as_string(False), history.t0)), encoding="utf-8")
    before = predictions(engine)

    dry = invoke("prune", "--dry-run", "-c", str(file))
    assert dry.exit_code == 0, dry.output
    weeks = re.findall(r"^\(store\)  (prediction_p\d{8}) would drop partition with ([\d,]+) rows$", dry.output, re.M)
    batched = re.search(r"^churn    prediction         would delete ([\d,]+)$", dry.output, re.M)
    assert weeks and batched, dry.output
    with engine.connect() as connection:
        stored = {p.name for p in partitions.partitions(connection)}
    assert {name for name, _ in weeks} <= stored
    assert sum(int(n.replace(",", "")) for _, n in [*weeks, ("", batched.group(1))]) == sum(
        history.due(ts) for ts in before.values()
    )
    assert predictions(engine) == before  # a dry run


def test_the_worker_creates_the_weeks_ahead_of_its_clock(postgres_engine: Engine) -> None:
    from monitor.cli.worker_process import Worker

    later = utcnow() + 10 * WEEK  # the store was migrated today: these weeks do not exist yet
    wanted = {partitions.week(later + ahead * WEEK).name for ahead in range(partitions.AHEAD + 1)}

    def created() -> set[str]:
        with postgres_engine.connect() as connection:
            return wanted & {p.name for p in partitions.partitions(connection)}

    assert created() == set()
    worker = Worker(parse_config(config_data()), postgres_engine, clock=lambda: later)
    worker.start()
    try:
        wait_until(lambda: created() == wanted, "the worker's partitions job")
    finally:
        worker.shutdown()
