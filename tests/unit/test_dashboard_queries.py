"""Dashboard queries: the SQL aggregation equals the same aggregation done in pandas on the raw rows,
on SQLite and on Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, insert, select

from dashboard import queries
from dashboard.figures import Timeline, model_timeline
from detectors.quality import volume_score
from monitor.runs.evaluation import score_dict
from monitor.store import actions
from monitor.store.engine import make_engine, upgrade
from monitor.store.tables import MetricPoint, MetricSeries, Model, Prediction, Run, Score
from tests.conftest import unique_name
from tests.seed import SeedInfo, seed_store


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, SeedInfo]]:
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.db'}", None
    else:
        server = request.getfixturevalue("postgres_server")
        dbname = unique_name("dash_")
        server.create_database(dbname)
        url, drop = server.url(dbname), lambda: server.drop_database(dbname)
    engine = make_engine(url)
    upgrade(engine)
    info = seed_store(engine)
    yield engine, info
    engine.dispose()
    if drop:
        drop()


def raw_scores(engine: Engine, model_id: int, kind: str, monitor: str) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(
            select(
                Score.window_start,
                Score.feature,
                Score.method,
                Score.value,
                Score.threshold,
                Score.breached,
                Score.details,
            ).where(Score.model_id == model_id, Score.monitor == monitor, Score.kind == kind, Score.status == "ok")
        )
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    return frame


def bucket_of(ts: pd.Series, bucket: timedelta) -> pd.Series:
    seconds = int(bucket.total_seconds())
    return pd.to_datetime((ts.astype("int64") // 10**9 // seconds) * seconds, unit="s", utc=True)


def expected_severity(value: float, threshold: float, p_value: bool) -> float:
    ratio = threshold / value if p_value else value / threshold
    return min(ratio, queries.SEVERITY_CAP)


@pytest.mark.parametrize("bucket", [timedelta(hours=1), timedelta(hours=6)])
def test_drift_matrix_matches_pandas(seeded: tuple[Engine, SeedInfo], bucket: timedelta) -> None:
    engine, info = seeded
    start, end = info.churn.first_window, info.churn.last_window + timedelta(hours=1)
    with engine.connect() as conn:
        got = queries.drift_matrix(conn, info.churn.id, info.churn.monitor, start, end, bucket)
    raw = raw_scores(engine, info.churn.id, "drift", info.churn.monitor).dropna(subset=["feature"])
    raw["severity"] = [
        expected_severity(v, t, d["p_value"])
        for v, t, d in zip(raw["value"], raw["threshold"], raw["details"], strict=True)
    ]
    raw["bucket"] = bucket_of(raw["window_start"], bucket)
    want = (
        raw.groupby(["bucket", "feature"])
        .agg(severity=("severity", "max"), breached=("breached", "sum"), windows=("value", "size"))
        .reset_index()
    )
    merged = want.merge(got, on=["bucket", "feature"], suffixes=("_want", "_got"), validate="one_to_one")
    assert len(merged) == len(want) == len(got)
    np.testing.assert_allclose(merged["severity_got"], merged["severity_want"], rtol=1e-12)
    assert (merged["breached_got"] == merged["breached_want"]).all()
    assert (merged["windows_got"] == merged["windows_want"]).all()
    assert set(got["feature"]) == {*info.churn.features, "prediction", "score"}


def test_severity_direction_follows_breached(sqlite_engine: Engine) -> None:
    """A distance is bad above its threshold, a p-value below it; None and a zero threshold give no severity."""
    ws = datetime(2026, 1, 1, tzinfo=UTC)
    with sqlite_engine.begin() as conn:
        model_id = conn.execute(
            insert(Model).returning(Model.id), [{"name": "m", "task": "binary", "feature_schema": {}}]
        ).scalar_one()
        run_id = conn.execute(
            insert(Run).returning(Run.id),
            [
                {
                    "monitor": "m1",
                    "model_id": model_id,
                    "window_start": ws,
                    "window_end": ws + timedelta(hours=1),
                    "status": "succeeded",
                }
            ],
        ).scalar_one()
        cases = [  # feature, method, value, threshold, breached, expected severity
            ("p_drift", "ks", 0.01, 0.05, True, 2.0),
            ("p_calm", "ks", 0.5, 0.05, False, 0.1),
            ("p_edge", "ks", 0.04, 0.05, True, 1.25),
            ("d_drift", "wasserstein", 0.15, 0.1, True, 1.5),
            ("d_calm", "wasserstein", 0.05, 0.1, False, 0.5),
            ("d_far", "psi", 0.9, 0.1, True, 2.0),
            ("zero_threshold", "psi", 0.2, 0.0, True, None),
        ]
        conn.execute(
            insert(Score),
            [
                {
                    "run_id": run_id,
                    "monitor": "m1",
                    "model_id": model_id,
                    "window_start": ws,
                    "kind": "drift",
                    "feature": f,
                    "method": m,
                    "value": v,
                    "threshold": t,
                    "breached": b,
                    "status": "ok",
                    "details": {},
                }
                for f, m, v, t, b, _ in cases
            ],
        )
    with sqlite_engine.connect() as conn:
        got = queries.drift_matrix(conn, model_id, "m1", ws, ws + timedelta(hours=1), timedelta(hours=1))
    got = got.set_index("feature")
    for feature, *_, expected in cases:
        if expected is None:
            assert pd.isna(got.loc[feature, "severity"]), feature
        else:
            assert got.loc[feature, "severity"] == pytest.approx(expected), feature


@pytest.mark.parametrize("which", ["monitor", "rolling_monitor"])
def test_series_match_pandas(seeded: tuple[Engine, SeedInfo], which: str) -> None:
    """Each series holds the one monitor's scores (the other monitor of the model scores the same windows)."""
    engine, info = seeded
    monitor = getattr(info.churn, which)
    bucket = timedelta(hours=6)
    start, end = info.churn.first_window, info.churn.last_window + timedelta(hours=1)
    args = (info.churn.id, monitor, start, end, bucket)
    with engine.connect() as conn:
        share = queries.dataset_drift_series(conn, *args)
        perf = queries.performance_series(conn, *args)
        quality = queries.quality_series(conn, *args)
        metrics = queries.metric_series(conn, info.churn.id, start, end, bucket)

    drift = raw_scores(engine, info.churn.id, "drift", monitor)
    drift = drift[drift["feature"].isna() & (drift["method"] == "share_drifted")]
    want_share = drift.groupby(bucket_of(drift["window_start"], bucket))["value"].mean()
    np.testing.assert_allclose(share.set_index("bucket")["share"], want_share, rtol=1e-12)

    est = raw_scores(engine, info.churn.id, "estimated_performance", monitor)
    est["ci_lower"] = [d["ci_lower"] for d in est["details"]]
    want_ci = est.groupby(bucket_of(est["window_start"], bucket))["ci_lower"].mean()
    got_est = perf[(perf["kind"] == "estimated_performance") & (perf["method"] == "roc_auc")].set_index("bucket")
    np.testing.assert_allclose(got_est["ci_lower"], want_ci, rtol=1e-12)
    assert set(perf["kind"]) == {"performance", "estimated_performance"}

    q = raw_scores(engine, info.churn.id, "quality", monitor)
    q["bucket"] = bucket_of(q["window_start"], bucket)
    missing = q[q["method"] == "missing_share"].groupby("bucket")["value"].max()
    rows = q[q["method"] == "volume"].groupby("bucket")["value"].sum()
    breaches = q.groupby("bucket")["breached"].sum()
    got_q = quality.set_index("bucket")
    np.testing.assert_allclose(got_q["worst_missing"], missing, rtol=1e-12)
    np.testing.assert_allclose(got_q["rows"], rows, rtol=1e-12)
    assert (got_q["breaches"] == breaches).all()

    with engine.connect() as conn:
        result = conn.execute(
            select(MetricSeries.name, MetricPoint.ts, MetricPoint.value)
            .join(MetricSeries, MetricSeries.id == MetricPoint.series_id)
            .where(MetricSeries.model_id == info.churn.id)
        )
        points = pd.DataFrame(result.all(), columns=list(result.keys()))
    points["bucket"] = bucket_of(pd.to_datetime(points["ts"], utc=True), bucket)
    want_metrics = points.groupby(["name", "bucket"])["value"].mean()
    got_metrics = metrics.set_index(["name", "bucket"])["value"]
    np.testing.assert_allclose(got_metrics.sort_index(), want_metrics.sort_index(), rtol=1e-12)


def test_overview_and_alerts(seeded: tuple[Engine, SeedInfo]) -> None:
    """One overview row per monitor, its share the one its alert reports; rows counted in predictions."""
    engine, info = seeded
    churn = info.churn
    with engine.connect() as conn:
        frame = queries.overview(conn).set_index(["model_id", "monitor"])
        open_alerts = queries.open_alerts(conn)
        churn_alerts = queries.model_alerts(conn, "churn", churn.first_window, churn.last_window)
        healthy_alerts = queries.alerts(conn, model="fraud-detector")
        empty = queries.model_extent(conn, queries.model_by_name(conn, info.empty_model).id)
    assert set(frame.loc[churn.id].index) == {churn.monitor, churn.rolling_monitor}
    for monitor in (churn.monitor, churn.rolling_monitor):
        row = frame.loc[(churn.id, monitor)]
        assert row["last_window"] == churn.last_window
        assert row["share_drifted"] == pytest.approx(churn.last_share[monitor])
        # The model's stored predictions, not the sum over both monitors' runs (twice as many).
        assert row["predictions_24h"] == churn.predictions_24h
        assert row["estimated_performance:roc_auc:band_lower"] == pytest.approx(0.83)
    assert churn.last_share[churn.monitor] != churn.last_share[churn.rolling_monitor]
    drift_alert = next(a for a in open_alerts if a.rule == "feature drift")
    assert drift_alert.value == frame.loc[(churn.id, drift_alert.labels["monitor"]), "share_drifted"]
    assert sorted(a.id for a in open_alerts) == sorted(info.firing_alert_ids)
    assert {a.id for a in churn_alerts} == {*info.firing_alert_ids, info.resolved_alert_id}
    assert healthy_alerts == []
    assert (empty.last, empty.monitor, empty.monitors) == (None, None, ())


def test_active_silences_soonest_to_lift_first(sqlite_engine: Engine) -> None:
    """The alerts page lists the silences in force, the soonest to lift first (the read API lists the
    one ending last first)."""
    now = datetime(2024, 3, 1, tzinfo=UTC)
    for model, starts, ends in (
        ("late", now - timedelta(hours=1), now + timedelta(days=2)),
        ("soon", now - timedelta(hours=1), now + timedelta(hours=1)),
        ("over", now - timedelta(hours=2), now - timedelta(hours=1)),
        ("future", now + timedelta(hours=1), now + timedelta(hours=2)),
    ):
        actions.create_silence(sqlite_engine, {"model": model}, starts, ends, "dana", "maintenance")
    with sqlite_engine.connect() as conn:
        active = queries.active_silences(conn, now)
    assert [s.matchers["model"] for s in active] == ["soon", "late"]


def test_model_monitors_primary_first(seeded: tuple[Engine, SeedInfo], sqlite_engine: Engine) -> None:
    """The primary monitor is the one with the shortest window, then the first by name; an unknown
    monitor (a stale link) falls back to it."""
    engine, info = seeded
    churn = info.churn
    with engine.connect() as conn:
        assert [m.name for m in queries.model_monitors(conn, churn.id)] == [churn.monitor, churn.rolling_monitor]
        for asked, got in (
            (None, churn.monitor),
            (churn.rolling_monitor, churn.rolling_monitor),
            ("gone", churn.monitor),
        ):
            extent = queries.model_extent(conn, churn.id, asked)
            assert (extent.monitor, extent.first, extent.last, extent.window) == (
                got,
                churn.first_window,
                churn.last_window,
                timedelta(hours=1),
            )
            assert extent.monitors == (churn.monitor, churn.rolling_monitor)
    ws = datetime(2026, 1, 1, tzinfo=UTC)
    with sqlite_engine.begin() as conn:
        model_id = conn.execute(
            insert(Model).returning(Model.id), [{"name": "m", "task": "binary", "feature_schema": {}}]
        ).scalar_one()
        conn.execute(
            insert(Run),
            [
                {"monitor": name, "model_id": model_id, "window_start": ws, "window_end": ws + length, "status": status}
                for name, length, status in (
                    ("a-daily", timedelta(days=1), "succeeded"),
                    ("b-5m", timedelta(minutes=5), "succeeded"),
                    ("c-hourly", timedelta(hours=1), "succeeded"),
                    ("d-never", timedelta(minutes=1), "pending"),
                )
            ],
        )
    with sqlite_engine.connect() as conn:
        got = [(m.name, m.window) for m in queries.model_monitors(conn, model_id)]
    assert got == [("b-5m", timedelta(minutes=5)), ("c-hourly", timedelta(hours=1)), ("a-daily", timedelta(days=1))]


def test_feature_queries(seeded: tuple[Engine, SeedInfo]) -> None:
    engine, info = seeded
    start, end = info.churn.first_window, info.churn.last_window + timedelta(hours=1)
    monitor = info.churn.rolling_monitor
    with engine.connect() as conn:
        matrix = queries.drift_matrix(conn, info.churn.id, monitor, start, end, timedelta(hours=12))
        breached = queries.breached_features(matrix).set_index("feature")
        worst = queries.worst_window(conn, info.churn.id, monitor, "monthly_charges", start, end)
        window = queries.feature_window(conn, info.churn.id, monitor, "monthly_charges", worst)
        drift = queries.feature_scores(conn, info.churn.id, monitor, "monthly_charges", start, end, ("drift",))
        quality = queries.feature_scores(conn, info.churn.id, monitor, "monthly_charges", start, end, ("quality",))
    raw = raw_scores(engine, info.churn.id, "drift", monitor)
    mine = raw[(raw["feature"] == "monthly_charges") & raw["breached"]]
    assert breached.loc["monthly_charges", "breached"] == len(mine)
    assert breached.loc["age", "windows"] == len(raw[raw["feature"] == "age"])
    assert breached.loc["monthly_charges", "first_breach"] == mine["window_start"].min()
    assert breached.loc["monthly_charges", "last_breach"] == info.churn.last_window
    assert worst >= info.drift_start
    # One monitor's scores only: one drift score and one of each quality check per window.
    assert [s.kind for s in window].count("drift") == 1
    assert sorted(s.method for s in window if s.kind == "quality") == sorted(
        ["missing_share", "type_error_share", "out_of_range_share"]
    )
    assert {s.monitor for s in window} == {monitor}
    drift_score = next(s for s in window if s.kind == "drift")
    assert drift_score.method == "wasserstein"
    assert set(drift_score.details["histogram"]) == {"edges", "reference", "current"}
    assert len(drift) == len(raw[raw["feature"] == "monthly_charges"]) == drift["window_start"].nunique()
    assert set(drift["method"]) == {"wasserstein"} and set(drift["monitor"]) == {monitor}
    assert not quality.duplicated(["window_start", "method"]).any()


def test_label_coverage_and_newest_computation(store_engine: Engine) -> None:
    """Coverage per bucket is the labels the runs were computed from; the newest window's computation
    counts its labels received after it closed (read by it) and since (waiting for the recompute)."""
    ws, hour = datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1)
    runs = [  # window, rows, labels, finished after the window's end, stale since after the window's end
        (0, 1000, 812, timedelta(days=3), None),
        (1, 500, 0, timedelta(minutes=5), None),
        (2, 4, 2, timedelta(hours=2), timedelta(hours=3)),
    ]
    with store_engine.begin() as conn:
        model_id = conn.execute(
            insert(Model).returning(Model.id), [{"name": "m", "task": "binary", "feature_schema": {}}]
        ).scalar_one()
        conn.execute(
            insert(Run),
            [
                {
                    "monitor": monitor,
                    "model_id": model_id,
                    "window_start": ws + i * hour,
                    "window_end": ws + (i + 1) * hour,
                    "status": "succeeded",
                    "row_count": rows,
                    "label_count": labels,
                    "started_at": ws + (i + 1) * hour + finished - timedelta(seconds=2),
                    "finished_at": ws + (i + 1) * hour + finished,
                    "stale_since": None if stale is None else ws + (i + 1) * hour + stale,
                }
                for monitor in ("m-hourly", "other")
                for i, rows, labels, finished, stale in runs
            ],
        )
        newest_end = ws + 3 * hour
        received = [  # the newest window's 4 predictions: label received …
            ws + 2 * hour + timedelta(minutes=30),  # in the window: read, not late
            newest_end + timedelta(hours=1),  # after it closed, before the run started: read, late
            newest_end + timedelta(hours=4),  # after the run started: waiting
            None,  # no label
        ]
        conn.execute(
            insert(Prediction),
            [
                {
                    "model_id": model_id,
                    "prediction_id": f"p{i}",
                    "ts": ws + 2 * hour + timedelta(minutes=i),
                    "features": {},
                    "source": "test",
                    "label_received_at": at,
                }
                for i, at in enumerate(received)
            ],
        )
    with store_engine.connect() as conn:
        hourly = queries.label_coverage(conn, model_id, "m-hourly", ws, ws + 3 * hour, hour)
        merged = queries.label_coverage(conn, model_id, "m-hourly", ws, ws + 4 * hour, 2 * hour)
        newest = queries.newest_computation(conn, model_id, "m-hourly")
    assert hourly["coverage"].tolist() == pytest.approx([0.812, 0.0, 0.5])
    assert hourly["stale"].tolist() == [0, 0, 1]
    assert list(hourly["computed_at"]) == [ws + (i + 1) * hour + f for i, _, _, f, _ in runs]
    assert merged[["windows", "rows", "labelled", "stale"]].values.tolist() == [[2, 1500, 812, 0], [1, 4, 2, 1]]
    assert merged["coverage"].tolist() == pytest.approx([812 / 1500, 0.5])
    assert merged["computed_at"].iloc[0] == ws + hour + timedelta(days=3)  # the bucket's newest computation
    assert newest is not None
    assert (newest.window_start, newest.rows, newest.labelled, newest.coverage) == (ws + 2 * hour, 4, 2, 0.5)
    assert (newest.computed_at, newest.stale_since) == (newest_end + 2 * hour, newest_end + 3 * hour)
    assert (newest.late_labels, newest.waiting_labels) == (1, 1)


def test_failed_runs_per_monitor(store_engine: Engine) -> None:
    """Runs that ended failed, counted per monitor of the model with the newest one's window, attempts and
    error; a failed run backing off before its next attempt (its lease kept) has not ended."""
    ws, hour = datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1)
    hostile = "<script>alert(1)</script> value 'x' not in reference"
    with store_engine.begin() as conn:
        model_id, other_model = conn.execute(
            insert(Model).returning(Model.id),
            [{"name": name, "task": "binary", "feature_schema": {}} for name in ("m", "n")],
        ).scalars()
        runs = [  # monitor, model, window, status, attempts, lease kept, error
            ("m-hourly", model_id, 0, "failed", 3, False, "old error"),
            ("m-hourly", model_id, 1, "succeeded", 1, False, None),
            ("m-hourly", model_id, 2, "failed", 3, False, hostile),
            ("m-hourly", model_id, 3, "failed", 1, True, "backing off"),
            ("m-daily", model_id, 0, "failed", 2, False, "abandoned after 2 attempts"),
            ("m-clean", model_id, 0, "succeeded", 1, False, None),
            ("n-hourly", other_model, 0, "failed", 3, False, "another model's"),
        ]
        conn.execute(
            insert(Run),
            [
                {
                    "monitor": monitor,
                    "model_id": model,
                    "window_start": ws + i * hour,
                    "window_end": ws + (i + 1) * hour,
                    "status": status,
                    "attempts": attempts,
                    "claimed_until": ws + timedelta(days=1) if lease else None,
                    "error": error,
                }
                for monitor, model, i, status, attempts, lease, error in runs
            ],
        )
    with store_engine.connect() as conn:
        every = queries.failed_runs(conn, model_id)
        hourly = queries.failed_runs(conn, model_id, "m-hourly")
        clean = queries.failed_runs(conn, model_id, "m-clean")
    assert every == [
        queries.FailedRuns("m-daily", 1, ws, 2, "abandoned after 2 attempts"),
        queries.FailedRuns("m-hourly", 2, ws + 2 * hour, 3, hostile),
    ]
    assert hourly == every[1:]
    assert clean == []


def test_volume_of_a_dataset_referenced_monitor_is_drawn(sqlite_engine: Engine) -> None:
    """An uploaded dataset has no time span, so no expected row rate: the window's row count still reaches
    the volume panel (issue 18's primary monitor showed an empty one)."""
    ws = datetime(2026, 1, 1, tzinfo=UTC)
    volumes = [volume_score(n, window_seconds=3600.0, reference_rate_per_second=None) for n in (120, 95)]
    with sqlite_engine.begin() as conn:
        model_id = conn.execute(
            insert(Model).returning(Model.id), [{"name": "m", "task": "binary", "feature_schema": {}}]
        ).scalar_one()
        for i, score in enumerate(volumes):
            start = ws + timedelta(hours=i)
            run_id = conn.execute(
                insert(Run).returning(Run.id),
                [
                    {
                        "monitor": "m1",
                        "model_id": model_id,
                        "window_start": start,
                        "window_end": start + timedelta(hours=1),
                        "status": "succeeded",
                    }
                ],
            ).scalar_one()
            conn.execute(
                insert(Score),
                [{"run_id": run_id, "monitor": "m1", "model_id": model_id, "window_start": start, **score_dict(score)}],
            )
    end = ws + timedelta(hours=2)
    with sqlite_engine.connect() as conn:
        quality = queries.quality_series(conn, model_id, "m1", ws, end, timedelta(hours=1))
    assert quality["rows"].tolist() == [120, 95] and quality["expected_rows"].isna().all()

    empty = pd.DataFrame()
    timeline = Timeline(
        share=empty,
        matrix=pd.DataFrame(columns=["feature", "bucket", "severity", "breached"]),
        performance=pd.DataFrame(columns=["method", "kind"]),
        coverage=empty,
        quality=quality,
        metrics=empty,
        alerts=[],
        start=ws,
        end=end,
        bucket=timedelta(hours=1),
        window=timedelta(hours=1),
    )
    bars = [t for t in model_timeline(timeline)["data"] if t.get("name") == "rows"]
    assert [list(t["y"]) for t in bars] == [[120, 95]]
