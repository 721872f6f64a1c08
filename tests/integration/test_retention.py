"""Retention (issue 16): the `retention:` setting, and prune on both stores while ingestion goes on."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, delete, func, insert, select

from monitor.config import Config, ConfigError, parse_config
from monitor.ingest import ingest_predictions
from monitor.store import retention
from monitor.store.engine import make_engine, upgrade
from monitor.store.queries import sync_models
from monitor.store.tables import (
    Alert,
    IdempotentRequest,
    Notification,
    PendingLabel,
    Prediction,
    RejectedRecord,
    Run,
    Score,
    SegmentScore,
    utcnow,
)
from tests.integration.test_scheduler_cli import invoke


def config_data(retention: dict[str, Any] | None = None, **monitor: Any) -> dict[str, Any]:
    model: dict[str, Any] = {"task": "binary", "features": {"tenure": "numeric", "plan": "categorical"}}
    if retention is not None:
        model["retention"] = retention
    spec = {"model": "churn", "window": "1h", "lateness": "5m", "reference": {"previous_windows": 24}, **monitor}
    return {"models": {"churn": model}, "monitors": {"churn-hourly": spec}, "worker": {"metrics_port": None}}


def test_retention_is_read_per_kind_and_absent_keeps_forever() -> None:
    config = parse_config(config_data({"predictions": "30d", "scores": "365d", "alerts": "90d"}))
    retention = config.models["churn"].retention
    assert (retention.predictions, retention.scores, retention.alerts) == (
        timedelta(days=30),
        timedelta(days=365),
        timedelta(days=90),
    )
    kept = parse_config(config_data()).models["churn"].retention
    assert (kept.predictions, kept.scores, kept.alerts) == (None, None, None)


@pytest.mark.parametrize(
    ("retention", "path", "message"),
    [
        ({"predictions": "0d"}, "models.churn.retention.predictions", "expected a duration greater than 0, got 0s"),
        ({"scores": "-1d"}, "models.churn.retention.scores", "expected a duration like 30s, 5m, 1h or 7d"),
        (
            {"alert": "90d"},
            "models.churn.retention.alert",
            "unknown key (valid keys: alerts, metrics, predictions, scores)",
        ),
    ],
)
def test_a_bad_retention_names_its_key(retention: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(config_data(retention))
    assert [(p, m[: len(message)]) for p, m in raised.value.errors] == [(path, message)]


def test_predictions_kept_shorter_than_previous_windows_need_names_both_keys() -> None:
    # 24 hourly windows before the newest, the newest itself and 5 minutes of lateness: 25h05m.
    with pytest.raises(ConfigError) as raised:
        parse_config(config_data({"predictions": "1d"}))
    assert raised.value.errors == [
        (
            "models.churn.retention.predictions",
            "1d is shorter than monitors.churn-hourly.reference.previous_windows needs: 24 windows of 1h before "
            "the newest, the window itself and its lateness (1505m)",
        )
    ]
    assert parse_config(config_data({"predictions": "1505m"})).models["churn"].retention.predictions == timedelta(
        minutes=1505
    )


# --- prune on a store ---------------------------------------------------------------------------

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
RETENTION = {"predictions": "30d", "scores": "45d", "alerts": "30d"}


def history_data(store: str, t0: datetime) -> dict[str, Any]:
    data = config_data(RETENTION)
    data["store"] = store
    data["monitors"] = {
        # The reference range: the first two hours of data.
        "churn-range": {"model": "churn", "window": "1h", "lateness": "5m", "recompute_within": "2d",
                        "reference": {"range": [t0.isoformat(), (t0 + 2 * HOUR).isoformat()]}},
        # 3 windows before each one; recompute_within (35d) keeps more than the 30 days of retention.
        "churn-rolling": {"model": "churn", "window": "1h", "lateness": "5m", "recompute_within": "35d",
                          "reference": {"previous_windows": 3}},
    }  # fmt: skip
    return data


def first_hour(now: datetime) -> datetime:
    """The start of the hourly window 60 days before ``now``: where the history begins."""
    return (now - 60 * DAY).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class History:
    """Sixty days of a model's life ending at ``now``, with the spans retention must keep or delete."""

    now: datetime
    config: Config

    @property
    def t0(self) -> datetime:
        return first_hour(self.now)

    @property
    def pending(self) -> datetime:  # churn-range's window never computed
        return self.t0 + 10 * DAY

    @property
    def stale(self) -> datetime:  # churn-rolling's window to recompute, with its 3 previous windows
        return self.t0 + 12 * DAY

    def due(self, ts: datetime) -> bool:
        """Whether a prediction at ``ts`` may go: older than 35 days (recompute_within), needed by nothing."""
        kept = [
            (self.t0, self.t0 + 2 * HOUR),
            (self.pending, self.pending + HOUR),
            (self.stale - 3 * HOUR, self.stale + HOUR),
        ]
        return ts < self.now - 35 * DAY and not any(start <= ts < end for start, end in kept)


def make_history(engine: Engine, store: str, now: datetime) -> History:
    t0 = first_hour(now)
    history = History(now, parse_config(history_data(store, t0)))
    model_id = sync_models(engine, history.config)["churn"]
    # Three rows an hour, none within two hours of the 35-day cut-off: a command that reads the clock
    # a moment later deletes the same rows.
    quiet = (now - 35 * DAY - 2 * HOUR, now - 35 * DAY + 2 * HOUR)
    rows = [
        {"model_id": model_id, "prediction_id": f"h{hour}-{i}", "ts": ts, "features": {"tenure": 1.0, "plan": "pro"},
         "prediction": 1, "score": 0.7, "label": None, "source": "test", "ingested_at": ts}
        for hour in range(60 * 24 - 1)
        for i in range(3)
        if not quiet[0] <= (ts := t0 + hour * HOUR + i * 20 * timedelta(minutes=1)) < quiet[1]
    ]  # fmt: skip
    newest = now - 2 * HOUR
    runs = []
    for monitor in ("churn-range", "churn-rolling"):
        for hour in range(int((newest - t0) / HOUR) + 1):
            start = t0 + hour * HOUR
            status, stale = "succeeded", None
            if monitor == "churn-range" and start == history.pending:
                status = "pending"
            if monitor == "churn-rolling" and start == history.stale:
                stale = now - HOUR
            runs.append({"monitor": monitor, "model_id": model_id, "window_start": start, "window_end": start + HOUR,
                         "status": status, "attempts": 1, "stale_since": stale})  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(Prediction), rows)
        connection.execute(insert(Run), runs)
        run_ids = connection.execute(select(Run.id, Run.monitor, Run.window_start)).all()
        connection.execute(
            insert(Score),
            [{"run_id": r.id, "monitor": r.monitor, "model_id": model_id, "window_start": r.window_start,
              "kind": "drift", "feature": feature, "method": "psi", "value": 0.01, "details": {}}
             for r in run_ids for feature in ("tenure", "plan")],
        )  # fmt: skip
        old, recent = t0 + 5 * DAY, now - 5 * DAY
        for received in (old, recent):
            connection.execute(
                insert(RejectedRecord).values(model="churn", source="api", reason="bad", received_at=received)
            )
            connection.execute(insert(PendingLabel).values(model_id=model_id, prediction_id=f"p{received:%j}",
                                                           label=1, label_ts=received, source="api",
                                                           label_received_at=received))  # fmt: skip
        # Idempotency-Keys are remembered a day, whatever the model's retention.
        connection.execute(
            insert(IdempotentRequest),
            [{"key": "day-old", "response": {}, "created_at": now - DAY - HOUR},
             {"key": "hour-old", "response": {}, "created_at": now - HOUR}],
        )  # fmt: skip
        alerts = {
            "gone": ("resolved", old, "delivered"),
            "recent": ("resolved", recent, "delivered"),
            "firing": ("firing", None, "delivered"),
            "unsent": ("resolved", old, "pending"),
        }
        for name, (state, resolved_at, delivery) in alerts.items():
            alert_id = connection.execute(
                insert(Alert).values(rule=name, fingerprint=name, labels={"model": "churn", "rule": name},
                                     severity="warning", state=state, started_at=t0, resolved_at=resolved_at)
                .returning(Alert.id)
            ).scalar_one()  # fmt: skip
            for event in ("firing", "resolved"):
                connection.execute(insert(Notification).values(
                    idempotency_key=f"{name}-{event}", alert_id=alert_id, group_key=None, channel="ops", event=event,
                    payload={}, status=delivery, created_at=t0))  # fmt: skip
    return history


def predictions(engine: Engine) -> dict[str, datetime]:
    with engine.connect() as connection:
        return dict(connection.execute(select(Prediction.prediction_id, Prediction.ts)).all())


def table(engine: Engine, column: Any) -> set[Any]:
    with engine.connect() as connection:
        return set(connection.scalars(select(column)))


def test_prune_deletes_what_is_due_and_nothing_needed_while_ingestion_goes_on(store_engine: Engine) -> None:
    now = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    history = make_history(store_engine, str(store_engine.url), now)
    config = history.config
    before = predictions(store_engine)
    due_rows = {pid for pid, ts in before.items() if history.due(ts)}
    assert 0 < len(due_rows) < len(before)
    counts = {target.table: n for target, n in retention.due(store_engine, config, now)}
    assert counts["prediction"] == len(due_rows)

    # Ingestion through monitor.ingest all along: fresh rows, rows of the window still pending and of the reference.
    stop, ingested, failures = threading.Event(), [], []

    def ingest() -> None:
        spans = [now - HOUR, history.pending, history.t0]
        batch = 0
        while not stop.is_set() or batch < 3:
            start = spans[batch % 3]
            records = [{"id": f"live-{batch}-{i}", "timestamp": (start + i * timedelta(seconds=30)).isoformat(),
                        "features": {"tenure": 2.0, "plan": "basic"}, "prediction": 0, "score": 0.2}
                       for i in range(20)]  # fmt: skip
            try:
                ingest_predictions(store_engine, config, "churn", records, "live", shape="canonical")
            except Exception as exc:
                failures.append(exc)
                return
            ingested.extend(r["id"] for r in records)
            batch += 1

    thread = threading.Thread(target=ingest)
    thread.start()
    try:
        done = retention.prune(store_engine, config, now, batch=250)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    deleted = {target.table: n for target, n in done}

    after = predictions(store_engine)
    assert set(after) == (set(before) - due_rows) | set(ingested)  # nothing needed is gone, every due row is
    assert deleted["prediction"] == len(due_rows) == len(before) + len(ingested) - len(after)
    assert min(ts for pid, ts in after.items() if pid not in ingested and not history.due(ts)) == history.t0
    # Runs ended before 45 days ago go with their scores, except the window pending and the one to recompute.
    with store_engine.connect() as connection:
        runs = connection.execute(select(Run.monitor, Run.window_start, Run.window_end)).all()
        orphans = connection.scalar(select(func.count()).where(~Score.run_id.in_(select(Run.id))))
    old_runs = sorted((r.monitor, r.window_start) for r in runs if r.window_end < now - 45 * DAY)
    assert old_runs == [("churn-range", history.pending), ("churn-rolling", history.stale)]
    assert deleted["run"] == counts["run"] > 0 and deleted["score"] == counts["score"] == 2 * deleted["run"]
    assert orphans == 0 and len(table(store_engine, Score.id)) == 2 * len(runs)
    # Alerts: only the one resolved long ago with nothing left to send, with its notifications.
    assert {rule for rule in table(store_engine, Alert.rule)} == {"recent", "firing", "unsent"}
    assert table(store_engine, Notification.idempotency_key) == {
        f"{name}-{event}" for name in ("recent", "firing", "unsent") for event in ("firing", "resolved")
    }
    assert len(table(store_engine, RejectedRecord.id)) == len(table(store_engine, PendingLabel.id)) == 1
    assert table(store_engine, IdempotentRequest.key) == {"hour-old"}
    assert {t: n for t, n in deleted.items()} == {**counts, "prediction": len(due_rows)}
    # A second pass finds nothing left to delete.
    assert {n for _, n in retention.prune(store_engine, config, now)} == {0}


def add_segment_scores(engine: Engine, history: History) -> dict[int, tuple[str, datetime]]:
    """Two segment scores for every run of the history; returns each one's monitor and window.

    None for windows ending within two hours of the 45-day cut-off: a command that reads the clock a moment later
    deletes the same rows.
    """
    cutoff = history.now - 45 * DAY
    with engine.begin() as connection:
        runs = [
            r
            for r in connection.execute(select(Run.id, Run.monitor, Run.model_id, Run.window_start, Run.window_end))
            if not cutoff - 2 * HOUR <= r.window_end < cutoff + 2 * HOUR
        ]
        connection.execute(
            insert(SegmentScore),
            [{"run_id": r.id, "monitor": r.monitor, "model_id": r.model_id, "window_start": r.window_start,
              "segment_by": "plan", "segment": segment, "rows": 3, "kind": "drift", "feature": "tenure",
              "method": "psi", "value": 0.01}
             for r in runs for segment in ("basic", "pro")],
        )  # fmt: skip
        return {row.id: (row.monitor, row.window_start) for row in connection.execute(select(SegmentScore))}


def test_segment_scores_go_with_their_runs_in_batches_of_their_own(store_engine: Engine) -> None:
    now = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    history = make_history(store_engine, str(store_engine.url), now)
    segments = add_segment_scores(store_engine, history)
    # Windows ended before 45 days ago, except the one still pending and the one to recompute.
    kept_windows = {("churn-range", history.pending), ("churn-rolling", history.stale)}
    old = {i for i, (monitor, start) in segments.items()
           if start + HOUR < now - 45 * DAY and (monitor, start) not in kept_windows}  # fmt: skip
    assert 0 < len(old) < len(segments)
    counts = {target.table: n for target, n in retention.due(store_engine, history.config, now)}
    assert counts["segment_score"] == len(old)

    tables = [target.table for target in retention.targets(history.config, {"churn": 1}, now)]
    assert tables.index("segment_score") < tables.index("run")
    # When the runs go, none of their segment scores is left to cascade to.
    left_when_runs_go: list[int] = []

    def progress(target: retention.Target, count: int) -> None:
        if target.table == "run" and not left_when_runs_go:
            left_when_runs_go.append(len(set(segments) - table(store_engine, SegmentScore.id)))

    done = {t.table: n for t, n in retention.prune(store_engine, history.config, now, batch=500, progress=progress)}
    assert done["segment_score"] == len(old) and left_when_runs_go == [len(old)]
    assert table(store_engine, SegmentScore.id) == set(segments) - old


def test_a_monitor_without_runs_keeps_every_row_of_its_model(sqlite_engine: Engine) -> None:
    now = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    history = make_history(sqlite_engine, str(sqlite_engine.url), now)
    with sqlite_engine.begin() as connection:
        connection.execute(delete(Run).where(Run.monitor == "churn-rolling"))
    counts = {t.table: n for t, n in retention.due(sqlite_engine, history.config, now)}
    assert counts["prediction"] == 0
    assert len(predictions(sqlite_engine)) == len(
        retention.prune(sqlite_engine, history.config, now) and predictions(sqlite_engine)
    )


def test_prune_command_dry_run_then_prune(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'driftscope.db'}"
    engine = make_engine(url)
    upgrade(engine)
    history = make_history(engine, url, utcnow())
    segments = add_segment_scores(engine, history)
    file = tmp_path / "driftscope.yaml"
    file.write_text(yaml.safe_dump(history_data(url, history.t0)), encoding="utf-8")
    before = predictions(engine)
    due_rows = sum(history.due(ts) for ts in before.values())

    dry = invoke("prune", "--dry-run", "-c", str(file))
    assert dry.exit_code == 0, dry.output
    assert f"churn    prediction         would delete {due_rows:,}" in dry.output
    assert "churn    alert              would delete 1" in dry.output
    old_segments = sum(
        start + HOUR < history.now - 45 * DAY
        and (monitor, start) not in {("churn-range", history.pending), ("churn-rolling", history.stale)}
        for monitor, start in segments.values()
    )
    assert old_segments > 0 and f"churn    segment_score      would delete {old_segments:,}" in dry.output
    assert predictions(engine) == before
    assert len(table(engine, SegmentScore.id)) == len(segments)

    wet = invoke("prune", "--model", "churn", "-c", str(file))
    assert wet.exit_code == 0, wet.output
    assert f"churn  prediction         deleted {due_rows:,}" in wet.output
    assert "idempotent_request" not in wet.output  # store-wide tables only when every model is pruned
    assert len(predictions(engine)) == len(before) - due_rows
    assert invoke("prune", "--model", "nope", "-c", str(file)).exit_code == 2
    engine.dispose()


def test_the_worker_prunes_on_its_own(sqlite_engine: Engine) -> None:
    from monitor.cli.worker_process import Worker

    now = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    history = make_history(sqlite_engine, str(sqlite_engine.url), now)
    before = predictions(sqlite_engine)
    due_rows = {pid for pid, ts in before.items() if history.due(ts)}
    worker = Worker(history.config, sqlite_engine, clock=lambda: now)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while set(predictions(sqlite_engine)) & due_rows and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.shutdown()
    after = predictions(sqlite_engine)
    assert not set(after) & due_rows
    assert {pid for pid, ts in after.items() if ts < history.t0 + 2 * HOUR} == {
        pid for pid, ts in before.items() if ts < history.t0 + 2 * HOUR
    }


# --- a late label for a window retention reached ------------------------------------------------


def test_a_late_label_for_a_window_retention_reached_does_not_recompute_it(store_engine: Engine) -> None:
    from monitor.config import Retention
    from monitor.ingest.writer import write_labels
    from tests.integration import test_late_data as late

    plain = late.config(recompute_within="1m")
    model = plain.models["churn"].model_copy(update={"retention": Retention(predictions=timedelta(hours=3))})
    cfg = plain.model_copy(update={"models": {"churn": model}})
    scheduler = late.computed(store_engine, cfg)  # windows 0-3 hold 50 rows each, computed
    # Retention (3h) reaches window 2 only (0-1 are the reference range); the pass stops after one batch
    # of 30 rows, in the middle of window 2, as a worker's shutdown would stop it.
    stop = threading.Event()
    done = retention.prune(store_engine, cfg, utcnow(), batch=30, stop=stop, progress=lambda target, n: stop.set())
    assert ("prediction", 30) in [(target.table, n) for target, n in done]
    left = sorted(pid for pid, ts in predictions(store_engine).items() if pid.startswith("2-"))
    assert len(left) == late.ROWS - 30

    # Late labels for what is left of window 2, and for window 3, which retention did not reach.
    for hour, ids in ((2, range(30, late.ROWS)), (3, range(late.ROWS))):
        with late.transaction(store_engine) as session:
            records = [late.ValidLabel(id=f"{hour}-{i}", label=i % 2, ts=late.BASE + hour * HOUR) for i in ids]
            write_labels(session, sync_models(store_engine, cfg)["churn"], records, "test")
    assert scheduler.mark_stale() == 1  # window 3 only: window 2 computed from 20 rows would replace its scores
    assert late.window_run(store_engine, 2).stale_since is None
    assert late.window_run(store_engine, 3).stale_since is not None
    scores = late.window_scores(store_engine, 2, method="volume")
    assert [s.value for s in scores] == [late.ROWS]  # window 2 keeps what it was computed from


def test_metric_samples_older_than_their_retention_go_per_model(store_engine: Engine) -> None:
    from monitor.config import Retention
    from monitor.store.tables import MetricPoint, MetricSeries

    now = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    data = config_data()
    data["models"]["other"] = data["models"]["churn"]
    plain = parse_config(data)
    churn = plain.models["churn"].model_copy(update={"retention": Retention(metrics=timedelta(days=90))})
    config = plain.model_copy(update={"models": {**plain.models, "churn": churn}})
    ids = sync_models(store_engine, config)
    with store_engine.begin() as connection:
        for model in ("churn", "other"):
            series = connection.execute(
                insert(MetricSeries).values(model_id=ids[model], name="latency", query="q", labels={},
                                            labels_hash=model).returning(MetricSeries.id)
            ).scalar_one()  # fmt: skip
            connection.execute(
                insert(MetricPoint), [{"series_id": series, "ts": now - d * DAY, "value": 1.0} for d in range(0, 120)]
            )
    counts = {(t.model, t.table): n for t, n in retention.due(store_engine, config, now)}
    assert counts[("churn", "metric_point")] == 29  # days 91-119; day 90 is exactly the cut-off and stays
    retention.prune(store_engine, config, now, batch=7)
    with store_engine.connect() as connection:
        kept = connection.execute(
            select(MetricSeries.labels_hash, func.min(MetricPoint.ts), func.count())
            .join(MetricPoint, MetricPoint.series_id == MetricSeries.id)
            .group_by(MetricSeries.labels_hash)
        ).all()
    assert sorted(tuple(k) for k in kept) == [("churn", now - 90 * DAY, 91), ("other", now - 119 * DAY, 120)]
