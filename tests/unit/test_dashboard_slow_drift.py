"""Slow-drift scores on the dashboard: the per-window drift views (matrix, drifting features, the feature's
drift chart and worst window) read the window's own test only, and the feature page shows slow drift apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from dashboard import queries
from dashboard.pages.feature import _slow_drift_kpi
from dashboard.queries import WindowScore
from monitor.store import reads
from monitor.store.tables import Model, Run, Score

WS = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _seed(engine: Engine) -> int:
    """Two windows: feature x calm then drifted by KS, y calm by KS in both; the CUSUM raised on both in both."""
    with engine.begin() as conn:
        model_id = conn.execute(
            insert(Model).returning(Model.id), [{"name": "m", "task": "binary", "feature_schema": {"x": "numeric"}}]
        ).scalar_one()
        rows = []
        for i, (p_value, ks_breached) in enumerate([(0.5, False), (0.04, True)]):
            start = WS + i * HOUR
            run_id = conn.execute(
                insert(Run).returning(Run.id),
                [
                    {
                        "monitor": "m1",
                        "model_id": model_id,
                        "window_start": start,
                        "window_end": start + HOUR,
                        "status": "succeeded",
                    }
                ],
            ).scalar_one()
            base = {
                "run_id": run_id,
                "monitor": "m1",
                "model_id": model_id,
                "window_start": start,
                "kind": "drift",
                "feature": "x",
                "status": "ok",
                "details": {},
            }
            rows += [
                {**base, "method": "ks", "value": p_value, "threshold": 0.05, "breached": ks_breached},
                {**base, "method": "cusum", "value": 50.0, "threshold": 5.0, "breached": True},
                # y: calm in every window by its own test, raised by the CUSUM
                {**base, "feature": "y", "method": "ks", "value": 0.6, "threshold": 0.05, "breached": False},
                {**base, "feature": "y", "method": "cusum", "value": 7.0, "threshold": 5.0, "breached": True},
            ]
        conn.execute(insert(Score), rows)
    return model_id


def test_per_window_views_do_not_count_the_slow_drift_score(sqlite_engine: Engine) -> None:
    model_id = _seed(sqlite_engine)
    with sqlite_engine.connect() as conn:
        matrix = queries.drift_matrix(conn, model_id, "m1", WS, WS + 2 * HOUR, 2 * HOUR)
        chart = queries.feature_scores(conn, model_id, "m1", "x", WS, WS + 2 * HOUR, ("drift",))
        worst = queries.worst_window(conn, model_id, "m1", "x", WS, WS + 2 * HOUR)
    row = matrix.set_index("feature").loc["x"].to_dict()
    assert matrix.set_index("feature").loc["y", "breached"] == 0
    # Two windows, one drifted by its own test: not four scores, three of them breached.
    assert (row["windows"], row["breached"], row["method"]) == (2, 1, "ks")
    assert row["severity"] == 1.25  # the KS p-value's (0.05 / 0.04), not the CUSUM statistic's (capped at 2)
    assert set(chart["method"]) == {"ks"} and len(chart) == 2
    assert worst == WS + HOUR


def test_health_lists_the_features_drifting_by_their_window_test(sqlite_engine: Engine) -> None:
    """The read API's and `driftscope status`'s drifting features agree with the dashboard's card."""
    model_id = _seed(sqlite_engine)
    with sqlite_engine.connect() as conn:
        health = reads.model_health(conn, reads.ModelRow(model_id, "m", "binary", {"x": "numeric", "y": "numeric"}))
    assert health.drifting_features == ("x",)


def test_the_feature_page_shows_slow_drift_apart() -> None:
    score = WindowScore("m1", "drift", "cusum", 6.2, 5.0, True, "ok", None, {"windows": 12})
    (card,) = _slow_drift_kpi(score)
    text = str(card)
    assert "Slow drift (cusum)" in text and "DRIFT" in text and "over 12 windows" in text
    assert _slow_drift_kpi(None) == []
