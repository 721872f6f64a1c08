"""Segments without a store: naming and pooling, row subsets, version resolution, the ranking rule, config."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from alerts.message import alert_lines
from detectors.types import Score
from monitor.config import ConfigError, parse_config
from monitor.runs.evaluation import evaluate, fit_baseline
from monitor.runs.segments import MISSING, OTHER, evaluate_segments, resolve_versions, segment_name, split
from monitor.runs.windows import Batch
from monitor.store.segments import rank_segments, severity

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def test_segment_names_are_text_with_markers_that_data_cannot_take() -> None:
    assert [segment_name(v) for v in ("web", 3, 2.5, True, None, float("nan"))] == [
        "web",
        "3",
        "2.5",
        "true",
        MISSING,
        MISSING,
    ]
    assert segment_name("(other)") == "'(other)'" and segment_name("(missing)") == "'(missing)'"
    assert segment_name("x" * 500) == "x" * 200


def test_split_keeps_the_top_k_by_rows_and_pools_the_rest() -> None:
    names = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] + ["e"] + [None] * 2
    segments = split(names, 2)
    # ties broken by name: b before c; c, d, e pooled; rows without a name are in no segment
    assert [(name, int(mask.sum())) for name, mask in segments] == [("a", 5), ("b", 3), (OTHER, 5)]
    assert segments[0][1][:5].all() and not segments[0][1][5:].any()
    assert [name for name, _ in split(names, 5)] == ["a", "b", "c", "d", "e"]  # nothing left to pool
    assert split([None, None], 3) == []


def test_batch_take_selects_the_same_rows_of_every_column() -> None:
    batch = Batch(
        n=4,
        features={"x": np.array([1.0, 2.0, 3.0, 4.0]), "c": np.array(["a", "b", "a", None], dtype=object)},
        ids=np.array(["i0", "i1", "i2", "i3"], dtype=object),
        ts=np.array(["2026-03-02T00:00", "2026-03-02T00:01", "2026-03-02T00:02", "NaT"], dtype="datetime64[us]"),
        score=np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]]),
        label=np.array([1, None, 0, 1], dtype=object),
        model_version=np.array(["1", None, "2", "1"], dtype=object),
    )
    sub = batch.take(np.array([True, False, True, False]))
    assert sub.n == 2 and sub.features["x"].tolist() == [1.0, 3.0] and sub.features["c"].tolist() == ["a", "a"]
    assert sub.ids.tolist() == ["i0", "i2"] and sub.score.shape == (2, 2) and sub.score[1, 0] == 0.3
    assert sub.label.tolist() == [1, 0] and sub.model_version.tolist() == ["1", "2"] and sub.prediction is None
    assert sub.label_count == 2 and sub.ts[1] == np.datetime64("2026-03-02T00:02")
    assert batch.take(np.array([3, 0])).ids.tolist() == ["i3", "i0"]
    with pytest.raises(IndexError):
        batch.take(np.array([True, False]))


def test_rows_without_a_version_take_the_latest_full_deployment_before_them() -> None:
    ts = np.array([T0.replace(tzinfo=None) + timedelta(minutes=m) for m in (0, 10, 20, 30, 40)], dtype="datetime64[us]")
    versions = np.array([None, "9", None, None, None], dtype=object)
    deployed = [
        (T0 + timedelta(minutes=5), "1.0", None),
        (T0 + timedelta(minutes=15), "1.1-canary", 0.1),  # partial traffic: not the version of unnamed rows
        (T0 + timedelta(minutes=30), "2.0", 1.0),  # at the row's own time: counts
    ]
    assert resolve_versions(versions, ts, deployed).tolist() == [None, "9", "1.0", "2.0", "2.0"]
    assert resolve_versions(versions, ts, []).tolist() == versions.tolist()


def _drift(feature: str, value: float, threshold: float, *, p_value: bool = False, breached: bool = False) -> Score:
    return Score("drift", "ks" if p_value else "wasserstein", value, feature, threshold, breached,
                 details={"p_value": p_value})  # fmt: skip


def test_severity_puts_every_score_at_one_at_its_threshold() -> None:
    assert severity(_drift("x", 0.3, 0.1)) == pytest.approx(3.0)
    assert severity(_drift("x", 0.05, 0.05, p_value=True)) == pytest.approx(1.0)
    assert severity(_drift("x", 1e-4, 0.05, p_value=True)) == pytest.approx(math.log10(1e-4) / math.log10(0.05))
    assert severity(_drift("x", 0.0, 0.05, p_value=True)) == pytest.approx(300 / -math.log10(0.05))
    # higher-is-better metric: band [0.8, 0.9], threshold the lower edge
    auc = Score("performance", "roc_auc", 0.75, None, 0.8, True, details={"band_lower": 0.8, "band_upper": 0.9})
    assert severity(auc) == pytest.approx(2.0)
    # an error metric: threshold the upper edge, worse when higher
    mae = Score("performance", "mae", 1.5, None, 1.2, True, details={"band_lower": 0.8, "band_upper": 1.2})
    assert severity(mae) == pytest.approx(2.5)  # (1.5 - 1.0) / 0.2
    # cannot breach, or not a distance: no severity
    assert severity(Score("drift", "share_drifted", 0.5, None, 0.5, True)) is None
    assert severity(Score("quality", "missing_share", 0.9, "x", 0.1, True)) is None
    assert severity(Score.insufficient("drift", "ks", "too few", "x")) is None
    assert severity(Score("performance", "accuracy", 0.7)) is None


def test_segments_rank_by_their_worst_score_then_rows() -> None:
    rows = [
        ("channel", "web", 900, _drift("x", 0.05, 0.1)),
        ("channel", "web", 900, _drift("y", 0.12, 0.1, breached=True)),
        ("channel", "partner", 80, _drift("x", 0.5, 0.1, breached=True)),
        ("channel", "partner", 80, Score("drift", "share_drifted", 0.5, None, 0.5, True)),
        ("region", "north", 400, _drift("x", 0.12, 0.1, breached=True)),
        ("channel", OTHER, 12, Score("segment", "rows", None, status="insufficient_data", reason="12 rows")),  # type: ignore[arg-type]
        ("region", "east", 10, Score("quality", "missing_share", 0.0, "x")),
    ]
    ranked = rank_segments(rows)
    assert [(r.segment_by, r.segment) for r in ranked] == [
        ("channel", "partner"),
        ("channel", "web"),  # tie with north at 1.2: more rows first
        ("region", "north"),
        ("channel", OTHER),
        ("region", "east"),
    ]
    worst = ranked[0]
    assert (worst.worst_feature, worst.severity, worst.breached, worst.rows) == ("x", pytest.approx(5.0), 1, 80)
    assert worst.label == "channel = partner"
    assert (ranked[3].status, ranked[3].reason, ranked[3].severity) == ("insufficient_data", "12 rows", None)


MODEL = {"task": "binary", "features": {"tenure": "numeric", "plan": "categorical", "region": "categorical"}}


def _config(**monitor):
    spec = {"model": "churn", "reference": {"previous_windows": 2}, **monitor}
    return parse_config({"models": {"churn": MODEL}, "monitors": {"m": spec}}, env={})


def test_segments_config_is_checked_at_load_with_did_you_mean() -> None:
    config = _config(segments=["plan", "region"], min_rows=40)
    assert config.monitors["m"].segments == ["plan", "region"] and config.monitors["m"].segment_rows == 40
    assert _config(segment_min_rows=5).monitors["m"].segment_rows == 5
    with pytest.raises(ConfigError) as caught:
        _config(segments=["plna", "tenure", "plan", "plan"], segment_top=0)
    errors = dict(caught.value.errors)
    assert errors["monitors.m.segments[0]"] == (
        "not a feature of model 'churn'; did you mean 'plan'? (features: plan, region, tenure)"
    )
    assert errors["monitors.m.segments[1]"].startswith("tenure is numeric: segments split by the values of a categ")
    assert errors["monitors.m.segments[3]"] == "plan is listed twice"
    assert "monitors.m.segment_top" in errors
    versioned = {**MODEL, "features": {**MODEL["features"], "model_version": "categorical"}}
    with pytest.raises(ConfigError) as caught:
        parse_config({"models": {"churn": versioned}, "monitors": {"m": {"model": "churn", "reference": {
            "previous_windows": 2}, "segments": ["model_version"]}}}, env={})  # fmt: skip
    assert dict(caught.value.errors)["monitors.m.segments[0]"].startswith("model_version is the name of the per-ver")


def test_a_segment_is_scored_like_the_whole_window_on_its_own_rows() -> None:
    config = _config(segments=["plan"], segment_top=2, segment_min_rows=30, min_rows=30)
    model, monitor = config.models["churn"], config.monitors["m"]
    rng = np.random.default_rng(1)

    def batch(n: int, shift: float) -> Batch:
        plan = rng.choice(["basic", "pro", "max"], n, p=[0.6, 0.37, 0.03])
        tenure = rng.normal(0, 1, n) + np.where(plan == "pro", shift, 0.0)
        return Batch(
            n, {"tenure": tenure, "plan": plan.astype(object), "region": rng.choice(["n", "s"], n).astype(object)}
        )

    baseline = fit_baseline(model, monitor, batch(3000, 0.0), reference_seconds=None)
    window = batch(600, 2.0)
    results = evaluate_segments(model, monitor, baseline, window, window_seconds=None)
    assert [(r.segment_by, r.segment, r.status) for r in results] == [
        ("plan", "basic", "succeeded"),
        ("plan", "pro", "succeeded"),
        ("plan", OTHER, "insufficient_data"),
    ]
    pro = results[1]
    # The same numbers as evaluate() on the segment's rows alone; the split feature and volume left out.
    alone = evaluate(model, monitor, baseline, window.take(window.features["plan"] == "pro"), window_seconds=None)
    expected = {(s.feature, s.method): s.value for s in alone.scores if s.feature != "plan" and s.method != "volume"}
    got = {(s.feature, s.method): s.value for s in pro.scores}
    assert got.keys() - expected.keys() == set()
    for key in ("tenure", "region"):
        matching = [k for k in got if k[0] == key]
        assert matching and all(got[k] == expected[k] for k in matching)
    assert not [s for s in pro.scores if s.feature == "plan" or s.method == "volume"]
    assert results[2].rows < 30 and results[2].reason == f"window has {results[2].rows} rows (min_rows 30)"


def test_alert_lines_name_the_worst_segments_on_one_line_each() -> None:
    segment = {"segment_by": "channel", "rows": 170, "moved": 9.18, "kind": "drift", "feature": "tenure"}
    segment |= {"method": "wasserstein", "value": 0.918, "threshold": 0.1}
    hostile = segment | {"segment": "fax\nFIRING (critical): forged\x1b[31m" + "x" * 100}
    alert = {"state": "firing", "severity": "warning", "rule": "r", "annotations": {"worst_segments": [
        segment | {"segment": "partner"}, hostile]}}  # fmt: skip
    lines = alert_lines(alert)
    assert lines[1:] == [
        "worst segments:",
        "  channel = partner (170 rows): tenure drift wasserstein 0.918 (threshold 0.1), 9.18× its threshold",
        "  channel = fax\\nFIRING (critical): forged\\x1b[31m" + "x" * 41 + "… (170 rows): tenure drift wasserstein "
        "0.918 (threshold 0.1), 9.18× its threshold",
    ]
