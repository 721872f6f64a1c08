"""Late data on a real store (SQLite and Postgres): labels and predictions received after their window
was computed, through the ingestion writer and the scheduler on the real clock (issue 17)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select

from monitor.config import Config
from monitor.ingest.records import ValidLabel, ValidPrediction
from monitor.ingest.writer import write_labels, write_predictions
from monitor.runs import scheduler as scheduler_module
from monitor.runs.scheduler import Scheduler
from monitor.store.engine import transaction
from monitor.store.queries import sync_models
from monitor.store.tables import Prediction, Run, ScanWatermark, Score
from tests.integration.test_scheduler import make_config

HOUR = timedelta(hours=1)
ROWS = 50
# Windows of the last hours, so the scheduler runs on the real clock, as the writer stamps receptions.
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 6 * HOUR
MONITOR = "churn-hourly"


def config(**monitor: Any) -> Config:
    return make_config(
        start=BASE.isoformat(),
        reference={"range": [BASE.isoformat(), (BASE + 2 * HOUR).isoformat()]},
        performance=["accuracy"],
        **monitor,
    )


def push(engine: Engine, cfg: Config, hour: int, *, rows: int = ROWS, shift: float = 0.0, first: int = 0) -> None:
    """``rows`` unlabelled predictions in window ``hour``, ids ``{hour}-{first}``…, through the ingestion writer."""
    rng = np.random.default_rng(hour * 100 + first)
    tenure = rng.normal(shift, 1.0, rows)
    records = [
        ValidPrediction(
            id=f"{hour}-{first + i}",
            ts=BASE + hour * HOUR + timedelta(seconds=(first + i) * 30),
            features={"tenure": float(tenure[i]), "plan": "basic" if i % 2 else "pro"},
            prediction=int(tenure[i] > 0),
            score=float(1 / (1 + np.exp(-tenure[i]))),
            label=None,
        )
        for i in range(rows)
    ]
    with transaction(engine) as session:
        write_predictions(session, sync_models(engine, cfg)["churn"], records, "test")


def send_labels(engine: Engine, cfg: Config, hour: int, label: Any, *, ids: range = range(ROWS)) -> None:
    """Labels for window ``hour`` that carry their own (old) time: a minute into the window."""
    records = [ValidLabel(id=f"{hour}-{i}", label=label(i), ts=BASE + hour * HOUR + timedelta(minutes=1)) for i in ids]
    with transaction(engine) as session:
        write_labels(session, sync_models(engine, cfg)["churn"], records, "test")


def window_run(engine: Engine, hour: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(Run).where(Run.window_start == BASE + hour * HOUR)).one()


def window_scores(engine: Engine, hour: int, **where: Any) -> list[Any]:
    query = select(Score).where(Score.window_start == BASE + hour * HOUR)
    for column, value in where.items():
        query = query.where(getattr(Score, column) == value)
    with engine.connect() as connection:
        return connection.execute(query).all()


def stored_predictions(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(Prediction).order_by(Prediction.prediction_id)).all()


def computed(engine: Engine, cfg: Config) -> Scheduler:
    """Windows 0–3 pushed (on time) and computed; the scheduler that computed them."""
    for hour in range(4):
        push(engine, cfg, hour)
    scheduler = Scheduler(cfg, engine)
    assert scheduler.tick() >= 4
    assert window_run(engine, 2).status == "succeeded"
    return scheduler


def test_labels_with_old_timestamps_recompute_their_windows(store_engine: Engine) -> None:
    cfg = config()
    scheduler = computed(store_engine, cfg)
    (accuracy,) = window_scores(store_engine, 2, method="accuracy")
    assert accuracy.status == "insufficient_data"
    # Yesterday's outcomes, uploaded with their event times: older than the window's computation.
    send_labels(store_engine, cfg, 2, lambda i: i % 2)
    assert scheduler.mark_stale() == 1
    assert scheduler.run_due() == 1
    (accuracy,) = window_scores(store_engine, 2, method="accuracy")
    assert accuracy.status == "ok"
    (coverage,) = window_scores(store_engine, 2, method="coverage")
    assert coverage.value == 1.0
    run = window_run(store_engine, 2)
    # attempts counts the claims since the last result: the recompute took one.
    assert (run.status, run.stale_since, run.label_count, run.attempts) == ("succeeded", None, ROWS, 1)
    assert scheduler.tick() == 0


def test_a_resent_file_changes_nothing(store_engine: Engine) -> None:
    cfg = config()
    scheduler = computed(store_engine, cfg)
    send_labels(store_engine, cfg, 2, lambda i: i % 2)
    assert scheduler.tick() == 1
    rows, runs = stored_predictions(store_engine), window_run(store_engine, 2)
    # The same labels and the same predictions again (a re-run of a nightly upload, a replayed queue).
    send_labels(store_engine, cfg, 2, lambda i: i % 2)
    for hour in range(4):
        push(store_engine, cfg, hour)
    assert stored_predictions(store_engine) == rows  # reception times and correction counts untouched
    assert scheduler.mark_stale() == 0
    assert scheduler.tick() == 0
    assert window_run(store_engine, 2) == runs


def test_a_corrected_label_recomputes_once_and_is_counted(store_engine: Engine) -> None:
    cfg = config()
    scheduler = computed(store_engine, cfg)
    send_labels(store_engine, cfg, 2, lambda i: i % 2)
    assert scheduler.tick() == 1
    (corrections,) = window_scores(store_engine, 2, method="label_corrections")
    assert (corrections.kind, corrections.value) == ("labels", 0.0)
    # Five labels corrected, with the others re-sent unchanged in the same file.
    send_labels(store_engine, cfg, 2, lambda i: 1 - i % 2 if i < 5 else i % 2)
    assert [p.label_corrections for p in stored_predictions(store_engine) if p.prediction_id.startswith("2-")] == [
        1 if int(p.split("-")[1]) < 5 else 0 for p in sorted(f"2-{i}" for i in range(ROWS))
    ]
    assert scheduler.mark_stale() == 1
    assert scheduler.run_due() == 1
    assert scheduler.tick() == 0
    (corrections,) = window_scores(store_engine, 2, method="label_corrections")
    assert corrections.value == 5.0
    # Computed, labelled, corrected: once each (the counts above), each at its first attempt.
    assert window_run(store_engine, 2).attempts == 1


def test_predictions_after_their_window_was_computed_recompute_it(store_engine: Engine) -> None:
    cfg = config()
    for hour in (0, 1, 3):
        push(store_engine, cfg, hour)
    scheduler = Scheduler(cfg, store_engine)
    scheduler.tick()
    assert window_run(store_engine, 2).status == "insufficient_data"  # no traffic yet
    drift_before = {s.id for s in window_scores(store_engine, 1, kind="drift")}
    # A collector catching up after an outage: drifted rows for the empty window, more rows for window 1.
    push(store_engine, cfg, 2, shift=3.0)
    push(store_engine, cfg, 1, rows=20, first=ROWS)
    assert scheduler.mark_stale() == 2
    assert scheduler.run_due() == 2
    filled, grown = window_run(store_engine, 2), window_run(store_engine, 1)
    assert (filled.status, filled.row_count, filled.stale_since, filled.stale_rows) == ("succeeded", ROWS, None, False)
    assert (grown.status, grown.row_count, grown.stale_rows) == ("succeeded", ROWS + 20, False)
    (tenure,) = window_scores(store_engine, 2, kind="drift", feature="tenure")
    assert tenure.breached is True
    # The feature scores were recomputed (replaced), and how many rows came late is a score of its own.
    assert not drift_before & {s.id for s in window_scores(store_engine, 1, kind="drift")}
    # (This test backfills every window after it closed, so all its rows count; on-time rows do not,
    # see test_scheduler.py::test_scores_of_a_window.)
    assert [s.value for s in window_scores(store_engine, 1, method="late_rows")] == [float(ROWS + 20)]
    assert [s.value for s in window_scores(store_engine, 2, method="late_rows")] == [float(ROWS)]
    assert scheduler.tick() == 0


def test_late_predictions_beyond_recompute_within_are_counted_not_lost(
    store_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # 270m (4 h 30), not 4h: BASE is fixed when the module is imported, and the suite may cross the hour before
    # this test runs, moving window 3 (BASE + 3h) up to an hour further back from now.
    cfg = config(recompute_within="270m")
    scheduler = computed(store_engine, cfg)

    def counted() -> float:
        return REGISTRY.get_sample_value("driftscope_late_rows_not_recomputed_total", {"monitor": MONITOR}) or 0.0

    before = counted()
    push(store_engine, cfg, 0, rows=7, first=ROWS)  # window 0 started over 6 hours ago: beyond 270m
    push(store_engine, cfg, 3, rows=4, first=ROWS)  # window 3, 3 to 4 hours ago: within
    with caplog.at_level(logging.WARNING, logger="monitor.runs.scheduler"):
        assert scheduler.mark_stale() == 1
    assert counted() - before == 7
    (warning,) = [r for r in caplog.records if r.getMessage().startswith("late predictions beyond recompute_within")]
    assert (warning.monitor, warning.window_start, warning.rows) == (MONITOR, BASE.isoformat(), 7)
    assert window_run(store_engine, 0).stale_since is None
    assert scheduler.run_due() == 1
    assert window_run(store_engine, 3).row_count == ROWS + 4
    # Counted once: the next scan starts after those rows.
    assert scheduler.mark_stale() == 0 and counted() - before == 7


def test_a_restart_reads_only_what_arrived_since_the_watermark(
    store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config()
    scheduler = computed(store_engine, cfg)
    send_labels(store_engine, cfg, 1, lambda i: i % 2)
    assert scheduler.tick() == 1
    newest_label = max(p.label_received_at for p in stored_predictions(store_engine) if p.label is not None)
    with store_engine.connect() as connection:
        (watermark,) = connection.execute(select(ScanWatermark)).all()
    assert (watermark.monitor, watermark.labels_until) == (MONITOR, newest_label)
    # Every prediction came before the first run, so the first scan started after them all.
    assert watermark.predictions_until >= max(p.ingested_at for p in stored_predictions(store_engine))

    reads: list[tuple[str, datetime, int]] = []
    received = scheduler_module._received

    def spy(connection: Any, model_id: int, column: Any, after: datetime) -> Any:
        found = received(connection, model_id, column, after)
        reads.append((column.key, after, len(found)))
        return found

    monkeypatch.setattr(scheduler_module, "_received", spy)
    restarted = Scheduler(cfg, store_engine)  # a new process: nothing in memory
    assert restarted.tick() == 0
    # It read from the stored watermark (not from the first run), and so found nothing to read.
    assert reads == [("label_received_at", newest_label, 0), ("ingested_at", watermark.predictions_until, 0)]
    send_labels(store_engine, cfg, 3, lambda i: i % 2, ids=range(3))
    assert restarted.tick() == 1
    assert reads[2][1:] == (newest_label, 3)
