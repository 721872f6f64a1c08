"""The scheduler against a real store (SQLite and Postgres): windows, claims, leases, late labels, references."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, insert, select, update

from monitor.config import Config, parse_config
from monitor.runs.references import upload_dataset
from monitor.runs.scheduler import Scheduler
from monitor.store.queries import sync_models
from monitor.store.tables import Prediction, Reference, Run, Score

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


def make_config(**monitor: Any) -> Config:
    spec = {
        "model": "churn",
        "window": "1h",
        "lateness": "5m",
        "reference": {"range": [T0.isoformat(), (T0 + 2 * HOUR).isoformat()]},
        "min_rows": 20,
        "performance": ["accuracy", "roc_auc"],
        **monitor,
    }
    return parse_config(
        {
            "models": {
                "churn": {
                    "task": "binary",
                    "features": {"tenure": "numeric", "plan": "categorical"},
                    "fields": {"score": "score", "label": "label"},
                }
            },
            "monitors": {"churn-hourly": spec},
            "worker": {"metrics_port": None, "run_lease": "10m"},
        }
    )


def add_predictions(
    engine: Engine,
    config: Config,
    hours: range,
    *,
    rows: int = 100,
    shift: float = 0.0,
    labelled: bool = True,
    label_ts: datetime | None = None,
    seed: int = 0,
) -> None:
    """``rows`` predictions per hour from T0; hours in ``shift_from`` on get drifted tenure."""
    model_id = sync_models(engine, config)["churn"]
    rng = np.random.default_rng(seed)
    records = []
    for hour in hours:
        tenure = rng.normal(shift, 1.0, rows)
        proba = 1 / (1 + np.exp(-tenure))
        label = (rng.random(rows) < proba).astype(int)
        for i in range(rows):
            ts = T0 + hour * HOUR + timedelta(seconds=i * 3600 / rows)
            records.append(
                {
                    "model_id": model_id,
                    "prediction_id": f"{hour}-{i}",
                    "ts": ts,
                    "features": {"tenure": float(tenure[i]), "plan": str(rng.choice(["basic", "pro"]))},
                    "prediction": int(proba[i] >= 0.5),
                    "score": float(proba[i]),
                    "label": int(label[i]) if labelled else None,
                    "label_ts": (label_ts or ts + timedelta(minutes=1)) if labelled else None,
                    "label_received_at": (label_ts or ts + timedelta(minutes=1)) if labelled else None,
                    "source": "test",
                    "ingested_at": ts,  # on time: received as it was made
                }
            )
    with engine.begin() as connection:
        connection.execute(insert(Prediction), records)


def clock_at(moment: datetime):
    return lambda: moment


def runs(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(Run).order_by(Run.window_start)).all()


def scores(engine: Engine, window_start: datetime, **where: Any) -> list[Any]:
    query = select(Score).where(Score.window_start == window_start)
    for column, value in where.items():
        query = query.where(getattr(Score, column) == value)
    with engine.connect() as connection:
        return connection.execute(query).all()


def test_each_window_computed_once_it_closes_plus_lateness(store_engine: Engine) -> None:
    config = make_config()
    add_predictions(store_engine, config, range(4))
    # 04:03: window 03:00-04:00 closed but is within its 5 minutes of lateness.
    scheduler = Scheduler(config, store_engine, clock=clock_at(T0 + 4 * HOUR + timedelta(minutes=3)))
    assert scheduler.tick() == 3
    assert [r.window_start for r in runs(store_engine)] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert scheduler.tick() == 0  # nothing new is due: no run is computed twice
    scheduler.clock = clock_at(T0 + 4 * HOUR + timedelta(minutes=5))
    assert scheduler.tick() == 1
    result = runs(store_engine)
    assert [(r.status, r.attempts, r.row_count) for r in result] == [("succeeded", 1, 100)] * 4
    assert all(r.claimed_until is None and r.finished_at is not None for r in result)


def test_scores_of_a_window(store_engine: Engine) -> None:
    config = make_config()
    add_predictions(store_engine, config, range(2))
    add_predictions(store_engine, config, range(2, 3), shift=3.0, seed=1)
    Scheduler(config, store_engine, clock=clock_at(T0 + 4 * HOUR)).tick()
    drifted = {(s.kind, s.feature, s.method): s for s in scores(store_engine, T0 + 2 * HOUR)}
    assert drifted[("drift", "tenure", "ks")].breached is True
    assert drifted[("drift", None, "share_drifted")].value == 0.5
    assert drifted[("performance", None, "accuracy")].status == "ok"
    assert drifted[("labels", None, "coverage")].value == 1.0
    assert drifted[("quality", None, "volume")].value == 100
    assert drifted[("quality", None, "late_rows")].value == 0  # every row received before the window was due
    assert drifted[("labels", None, "label_corrections")].value == 0
    calm = {(s.kind, s.feature, s.method): s for s in scores(store_engine, T0)}
    assert calm[("drift", "tenure", "ks")].breached is False
    # denormalized columns agree with the run
    run = runs(store_engine)[2]
    assert {(s.run_id, s.monitor, s.model_id) for s in drifted.values()} == {(run.id, "churn-hourly", run.model_id)}


def test_catch_up_after_downtime_is_oldest_first(store_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config()
    add_predictions(store_engine, config, range(8), rows=30)
    with caplog.at_level(logging.INFO, logger="monitor.runs.scheduler"):
        assert Scheduler(config, store_engine, clock=clock_at(T0 + 30 * HOUR + timedelta(minutes=5))).tick() == 30
    order = [r.window_start for r in caplog.records if r.getMessage() == "run finished"]
    assert order == sorted(order) and len(order) == 30
    statuses = [r.status for r in runs(store_engine)]
    assert statuses[:8] == ["succeeded"] * 8
    assert statuses[8:] == ["insufficient_data"] * 22  # no traffic: explicit status, never a NaN


def test_insufficient_data_windows_say_why(store_engine: Engine) -> None:
    config = make_config()
    add_predictions(store_engine, config, range(2))
    add_predictions(store_engine, config, range(2, 3), rows=5, seed=3)
    Scheduler(config, store_engine, clock=clock_at(T0 + 4 * HOUR + timedelta(minutes=5))).tick()
    thin, empty = runs(store_engine)[2:]
    assert (thin.status, thin.error, thin.row_count) == ("insufficient_data", "window has 5 rows (min_rows 20)", 5)
    assert empty.status == "insufficient_data" and empty.row_count == 0
    # The row count itself is still scored, so a volume alert can fire on a quiet window.
    volume = scores(store_engine, T0 + 3 * HOUR, method="volume")
    assert [(v.value, v.breached) for v in volume] == [(0.0, True)]


def test_reference_with_too_few_rows_gives_insufficient_data(store_engine: Engine) -> None:
    config = make_config(reference={"range": [(T0 - 5 * HOUR).isoformat(), (T0 - HOUR).isoformat()]})
    add_predictions(store_engine, config, range(2))
    Scheduler(config, store_engine, clock=clock_at(T0 + 3 * HOUR)).tick()
    assert {(r.status, r.error) for r in runs(store_engine)} == {
        ("insufficient_data", "reference has 0 rows (min_rows 20)")
    }


def test_dead_workers_claim_expires_and_another_takes_over(store_engine: Engine) -> None:
    config = make_config()
    add_predictions(store_engine, config, range(3))
    now = T0 + 4 * HOUR
    dead = Scheduler(config, store_engine, worker_id="dead", clock=clock_at(now))
    dead.plan()
    claim = dead.claim()
    assert claim is not None and claim.window_start == T0
    # Within the lease, the other worker skips the claimed window and takes the next ones.
    alive = Scheduler(config, store_engine, worker_id="alive", clock=clock_at(now + timedelta(minutes=5)))
    assert alive.run_due() == 2
    assert runs(store_engine)[0].status == "running"
    # The lease (10 minutes) expires: the window is taken over.
    alive.clock = clock_at(now + timedelta(minutes=11))
    assert alive.run_due() == 1
    first = runs(store_engine)[0]
    assert (first.status, first.claimed_by, first.attempts) == ("succeeded", "alive", 2)
    # The "dead" worker wakes up and finishes: its result is discarded, not written over the new one.
    before = len(scores(store_engine, T0))
    assert dead.compute(claim) == "lost"
    assert len(scores(store_engine, T0)) == before
    assert runs(store_engine)[0].claimed_by == "alive"


def test_late_labels_recompute_performance_only(store_engine: Engine) -> None:
    config = make_config()
    add_predictions(store_engine, config, range(2))
    add_predictions(store_engine, config, range(2, 4), labelled=False, seed=5)
    computed_at = T0 + 5 * HOUR
    scheduler = Scheduler(config, store_engine, clock=clock_at(computed_at))
    assert scheduler.tick() == 4
    window = T0 + 2 * HOUR
    (accuracy,) = scores(store_engine, window, method="accuracy")
    assert accuracy.status == "insufficient_data"
    drift_ids = {s.id for s in scores(store_engine, window, kind="drift") if s.feature != "label"}
    # Labels for window 02:00 arrive after it was computed.
    arrived = computed_at + timedelta(minutes=1)
    with store_engine.begin() as connection:
        connection.execute(
            update(Prediction)
            .where(Prediction.ts >= window, Prediction.ts < window + HOUR)
            .values(label=1, label_ts=arrived, label_received_at=arrived)
        )
    scheduler.clock = clock_at(computed_at + timedelta(minutes=2))
    assert scheduler.mark_stale() == 1
    assert scheduler.run_due() == 1
    (accuracy,) = scores(store_engine, window, method="accuracy")
    assert accuracy.status == "ok" and accuracy.value is not None
    (coverage,) = scores(store_engine, window, method="coverage")
    assert coverage.value == 1.0
    # Feature drift was not recomputed (same rows); label drift was, and nothing is duplicated.
    drift = scores(store_engine, window, kind="drift")
    assert {s.id for s in drift if s.feature != "label"} == drift_ids
    assert [s.status for s in drift if s.feature == "label"] == ["ok"]
    run = runs(store_engine)[2]
    # attempts counts the claims since the last result: the recompute took one.
    assert (run.status, run.stale_since, run.label_count, run.attempts) == ("succeeded", None, 100, 1)
    # Nothing else is stale: the next tick computes nothing.
    assert scheduler.tick() == 0
    # The window 03:00 never got labels; it was never recomputed.
    assert runs(store_engine)[3].attempts == 1


def test_one_failing_detector_fails_its_score_not_the_run(store_engine: Engine) -> None:
    config = make_config()
    add_predictions(store_engine, config, range(3))
    with store_engine.begin() as connection:  # labels a binary model without classes cannot read
        connection.execute(update(Prediction).where(Prediction.ts >= T0 + 2 * HOUR).values(label="maybe"))
    Scheduler(config, store_engine, clock=clock_at(T0 + 4 * HOUR)).tick()
    assert runs(store_engine)[2].status == "succeeded"
    (perf,) = scores(store_engine, T0 + 2 * HOUR, kind="performance")
    assert perf.status == "error" and "0/1" in perf.reason
    assert scores(store_engine, T0 + 2 * HOUR, kind="drift", feature="tenure")[0].status == "ok"


def test_reference_profiled_once_and_reprofiled_when_config_changes(
    store_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config()
    add_predictions(store_engine, config, range(4))
    with caplog.at_level(logging.INFO, logger="monitor.runs.references"):
        Scheduler(config, store_engine, clock=clock_at(T0 + 3 * HOUR)).tick()
        Scheduler(config, store_engine, clock=clock_at(T0 + 5 * HOUR)).tick()  # a second worker
        assert [r.getMessage() for r in caplog.records].count("reference profiled") == 1
        changed = make_config(performance=["accuracy"])
        Scheduler(changed, store_engine, clock=clock_at(T0 + 6 * HOUR)).tick()
        assert [r.getMessage() for r in caplog.records].count("reference profiled") == 2
    with store_engine.connect() as connection:
        (row,) = connection.execute(select(Reference).where(Reference.name == "monitor:churn-hourly")).all()
    assert row.kind == "range" and row.row_count == 200 and len(row.profile_key) == 64 and row.profile


def test_uploaded_dataset_reference(store_engine: Engine, tmp_path) -> None:
    import pandas as pd

    config = make_config(reference={"dataset": "train.csv"})
    rng = np.random.default_rng(9)
    tenure = rng.normal(0, 1, 500)
    frame = pd.DataFrame(
        {
            "tenure": tenure,
            "plan": rng.choice(["basic", "pro"], 500),
            "prediction": (tenure > 0).astype(int),
            "score": 1 / (1 + np.exp(-tenure)),
            "label": (rng.random(500) < 0.5).astype(int),
        }
    )
    frame.to_csv(tmp_path / "train.csv", index=False)
    name, count = upload_dataset(store_engine, config, "churn", tmp_path / "train.csv")
    assert (name, count) == ("train.csv", 500)
    add_predictions(store_engine, config, range(1), shift=2.0)
    Scheduler(config, store_engine, clock=clock_at(T0 + 2 * HOUR)).tick()
    assert runs(store_engine)[0].status == "succeeded"
    assert scores(store_engine, T0, kind="drift", feature="tenure")[0].breached is True


def test_missing_dataset_reference_fails_the_run_with_the_fix(store_engine: Engine) -> None:
    config = make_config(reference={"dataset": "train.parquet"})
    add_predictions(store_engine, config, range(1))
    Scheduler(config, store_engine, clock=clock_at(T0 + 2 * HOUR)).tick()
    (run,) = runs(store_engine)
    assert run.status == "failed"
    assert "driftscope reference upload --model churn train.parquet" in run.error


def test_previous_windows_reference(store_engine: Engine) -> None:
    config = make_config(reference={"previous_windows": 2}, performance=[])
    add_predictions(store_engine, config, range(4))
    add_predictions(store_engine, config, range(4, 5), shift=3.0, seed=2)
    Scheduler(config, store_engine, clock=clock_at(T0 + 6 * HOUR)).tick()
    statuses = [(r.status, r.error) for r in runs(store_engine)]
    assert statuses[:2] == [
        ("insufficient_data", "reference has 0 of 2 previous windows"),
        ("insufficient_data", "reference has 1 of 2 previous windows"),
    ]
    assert [s for s, _ in statuses[2:]] == ["succeeded"] * 3
    assert scores(store_engine, T0 + 3 * HOUR, kind="drift", feature="tenure")[0].breached is False
    assert scores(store_engine, T0 + 4 * HOUR, kind="drift", feature="tenure")[0].breached is True


def test_previous_windows_reference_waits_for_every_window_with_rows(store_engine: Engine) -> None:
    # 100 rows would pass min_rows: the count of windows is what keeps a first window from being compared
    # with a reference of one window. Hour 3 has no traffic, so window 4's reference has 2 of its 3 windows.
    config = make_config(reference={"previous_windows": 3}, performance=[])
    add_predictions(store_engine, config, [*range(3), *range(4, 8)])
    Scheduler(config, store_engine, clock=clock_at(T0 + 9 * HOUR)).tick()
    by_start = {r.window_start: (r.status, r.error) for r in runs(store_engine)}
    assert [by_start[T0 + h * HOUR] for h in (1, 2, 3, 4, 5, 6, 7)] == [
        ("insufficient_data", "reference has 1 of 3 previous windows"),
        ("insufficient_data", "reference has 2 of 3 previous windows"),
        ("insufficient_data", "window has 0 rows (min_rows 20)"),
        ("insufficient_data", "reference has 2 of 3 previous windows"),
        ("insufficient_data", "reference has 2 of 3 previous windows"),
        ("insufficient_data", "reference has 2 of 3 previous windows"),
        ("succeeded", None),
    ]


def test_rerun_replaces_scores(store_engine: Engine) -> None:
    config = make_config()
    add_predictions(store_engine, config, range(3))
    scheduler = Scheduler(config, store_engine, clock=clock_at(T0 + 4 * HOUR))
    scheduler.tick()
    with store_engine.connect() as connection:
        before = connection.execute(select(func.count()).select_from(Score)).scalar()
    with store_engine.begin() as connection:  # an operator resets a window to pending
        connection.execute(update(Run).where(Run.window_start == T0).values(status="pending"))
    assert scheduler.tick() == 1
    with store_engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Score)).scalar() == before


def test_multivariate_and_estimated_performance(store_engine: Engine) -> None:
    config = make_config(drift={"multivariate": True}, estimated_performance=True)
    add_predictions(store_engine, config, range(2), rows=150)
    add_predictions(store_engine, config, range(2, 3), rows=150, shift=2.0, seed=4)
    Scheduler(config, store_engine, clock=clock_at(T0 + 4 * HOUR)).tick()
    drift = {s.method: s for s in scores(store_engine, T0 + 2 * HOUR, kind="drift", feature=None)}
    assert drift["pca_reconstruction_error"].status == "ok"
    assert drift["domain_classifier_auc"].breached is True
    estimated = scores(store_engine, T0 + 2 * HOUR, kind="estimated_performance")
    assert {s.method for s in estimated} == {"roc_auc", "accuracy"}  # what `performance:` asks for, no more
    assert all(s.status == "ok" for s in estimated)


def test_config_dates_without_an_offset_are_utc(store_engine: Engine) -> None:
    config = make_config(start="2026-03-02 01:00", reference={"range": ["2026-03-02", "2026-03-02T01:00:00"]})
    add_predictions(store_engine, config, range(3))
    assert Scheduler(config, store_engine, clock=clock_at(T0 + 3 * HOUR + timedelta(minutes=5))).tick() == 2
    assert [(r.window_start, r.status) for r in runs(store_engine)] == [
        (T0 + HOUR, "succeeded"),
        (T0 + 2 * HOUR, "succeeded"),
    ]


def test_multiclass_without_configured_classes(store_engine: Engine) -> None:
    config = parse_config(
        {
            "models": {"tier": {"task": "multiclass", "features": {"x": "numeric"}}},
            "monitors": {
                "tier-hourly": {
                    "model": "tier",
                    "lateness": "0s",
                    "min_rows": 20,
                    "reference": {"range": [T0.isoformat(), (T0 + 2 * HOUR).isoformat()]},
                    "performance": ["accuracy", "roc_auc", "log_loss"],
                }
            },
            "worker": {"metrics_port": None},
        }
    )
    model_id = sync_models(store_engine, config)["tier"]
    rng = np.random.default_rng(3)
    classes = ["bronze", "gold", "silver"]
    rows = []
    for hour in range(3):
        for i in range(300):
            proba = rng.dirichlet([2, 2, 2])
            label = classes[int(rng.choice(3, p=proba))]
            ts = T0 + hour * HOUR + timedelta(seconds=i * 12)
            rows.append(
                {
                    "model_id": model_id,
                    "prediction_id": f"{hour}-{i}",
                    "ts": ts,
                    "features": {"x": float(proba[0])},
                    "prediction": classes[int(np.argmax(proba))],
                    "score": dict(zip(classes, map(float, proba), strict=True)),
                    "label": label,
                    "label_ts": ts,
                    "source": "test",
                }
            )
    with store_engine.begin() as connection:
        connection.execute(insert(Prediction), rows)
    Scheduler(config, store_engine, clock=clock_at(T0 + 3 * HOUR)).tick()
    performance = {s.method: s for s in scores(store_engine, T0 + 2 * HOUR, kind="performance")}
    assert {m: s.status for m, s in performance.items()} == {"accuracy": "ok", "roc_auc": "ok", "log_loss": "ok"}
    # Bands come from the reference, whose per-class scores were read in the order its labels gave.
    assert all(s.threshold is not None for s in performance.values())
