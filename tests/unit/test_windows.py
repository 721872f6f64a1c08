"""Window arithmetic, window rows → arrays, and the evaluation of one window (no store)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.config import ModelConfig, MonitorConfig
from monitor.runs.evaluation import Baseline, _policy, evaluate, fit_baseline, to_float
from monitor.runs.windows import Batch, batch_from_rows, due_windows, score_matrix, window_floor

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_window_floor_aligns_to_the_epoch_or_the_start() -> None:
    assert window_floor(T0 + timedelta(minutes=90), HOUR) == T0 + HOUR
    assert window_floor(T0 + HOUR, HOUR) == T0 + HOUR  # a window includes its start
    assert window_floor(T0 - timedelta(seconds=1), timedelta(days=1)) == T0 - timedelta(days=1)
    origin = T0 + timedelta(minutes=15)
    assert window_floor(T0 + timedelta(minutes=14), HOUR, origin) == origin - HOUR
    assert window_floor(T0 + 2 * HOUR, timedelta(minutes=7), origin) == origin + 15 * timedelta(minutes=7)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0, []),
        (T0 + HOUR, []),  # closed, but still within its lateness
        (T0 + HOUR + timedelta(minutes=5), [T0]),
        (T0 + 3 * HOUR + timedelta(minutes=4, seconds=59), [T0, T0 + HOUR]),
        (T0 - HOUR, []),
    ],
)
def test_due_windows_wait_for_the_lateness(now: datetime, expected: list[datetime]) -> None:
    assert due_windows(T0, HOUR, timedelta(minutes=5), now) == expected


def test_batch_from_rows_builds_columns_by_the_schema() -> None:
    rows = [  # timestamps as SQLite returns them (ISO text)
        ("a", "2026-03-02 00:00:00.000000", '{"x": 1.5, "c": "red", "extra": 1}', "1", "0.9", "1",
         "2026-03-02 01:00:00.000000"),
        ("b", "2026-03-02 00:01:00.000000", '{"x": null}', "0", "0.2", "null", None),
        ("c", "2026-03-02 00:02:00.000000", '{"c": 3}', "1", None, None, None),
    ]  # fmt: skip
    batch = batch_from_rows(rows, {"x": "numeric", "c": "categorical"})
    assert batch.n == 3
    assert batch.features["x"].tolist() == [1.5, None, None]
    assert batch.features["c"].tolist() == ["red", None, 3]
    assert batch.features["x"].dtype == object and set(batch.features) == {"x", "c"}
    assert batch.prediction.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(batch.score, [0.9, 0.2, np.nan])
    assert batch.label.tolist() == [1, None, None] and batch.label_count == 1
    assert batch.ts.tolist()[1] == datetime(2026, 3, 2, 0, 1)
    assert np.isnat(batch.label_ts).tolist() == [False, True, True]
    # as Postgres returns them (epoch microseconds)
    epoch = [(r[0], int(T0.timestamp() * 1e6) + i, *r[2:6], None) for i, r in enumerate(rows)]
    assert batch_from_rows(epoch, {"x": "numeric"}).ts.tolist()[2] == datetime(2026, 3, 2, 0, 0, 0, 2)


def test_empty_window() -> None:
    batch = batch_from_rows([], {"x": "numeric"})
    assert batch.n == 0 and batch.features["x"].shape == (0,) and batch.label_count == 0


def test_score_matrix_per_class_scores() -> None:
    values = [{"a": 0.7, "b": 0.3}, [0.1, 0.9], None, {"a": "oops", "b": 1.0}, [0.5]]
    np.testing.assert_array_equal(
        score_matrix(values, ["a", "b"]),
        [[0.7, 0.3], [0.1, 0.9], [np.nan, np.nan], [np.nan, 1.0], [np.nan, np.nan]],
    )
    np.testing.assert_array_equal(score_matrix([0.2, True, "x", None, 1], None), [0.2, np.nan, np.nan, np.nan, 1.0])


def test_to_float_keeps_clean_columns_fast_and_coerces_the_rest() -> None:
    np.testing.assert_array_equal(to_float(np.array([1, None, 2.5], dtype=object)), [1.0, np.nan, 2.5])
    np.testing.assert_array_equal(to_float(np.array([1, "oops", {"a": 1}], dtype=object)), [1.0, np.nan, np.nan])


MODEL = ModelConfig(task="binary", features={"x": "numeric", "c": "categorical"})


def make_batch(n: int, *, shift: float = 0.0, seed: int = 0, labelled: bool = True) -> Batch:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    proba = 1 / (1 + np.exp(-x))
    label = (rng.random(n) < proba).astype(int)
    ts = np.datetime64("2026-03-02T00:00:00", "us") + np.arange(n) * np.timedelta64(1, "s")
    return Batch(
        n=n,
        features={"x": x.astype(object), "c": rng.choice(["a", "b"], n).astype(object)},
        ids=np.array([str(i) for i in range(n)], dtype=object),
        ts=ts,
        prediction=(proba >= 0.5).astype(int).astype(object),
        score=proba,
        label=label.astype(object) if labelled else np.full(n, None, dtype=object),
        label_ts=ts + np.timedelta64(60, "s") if labelled else np.full(n, np.datetime64("NaT"), "datetime64[us]"),
    )


def monitor(**settings) -> MonitorConfig:
    return MonitorConfig(model="m", reference={"previous_windows": 1}, min_rows=20, **settings)


def test_baseline_round_trips_through_bytes() -> None:
    mon = monitor(performance=["accuracy", "roc_auc"], estimated_performance=True, drift={"multivariate": True})
    baseline = fit_baseline(MODEL, mon, make_batch(2000), reference_seconds=20 * 3600)
    loaded = Baseline.from_bytes(baseline.to_bytes())
    window = make_batch(300, shift=1.0, seed=3)
    first = evaluate(MODEL, mon, baseline, window, window_seconds=3600)
    again = evaluate(MODEL, mon, loaded, window, window_seconds=3600)
    assert first == again
    assert {s.kind for s in first.scores} == {"drift", "quality", "performance", "estimated_performance", "labels"}
    assert all(s.status == "ok" for s in first.scores if s.kind in ("performance", "estimated_performance"))


def test_too_few_rows_is_insufficient_with_the_volume_still_scored() -> None:
    mon = monitor()
    baseline = fit_baseline(MODEL, mon, make_batch(500), reference_seconds=3600)
    result = evaluate(MODEL, mon, baseline, make_batch(3), window_seconds=3600)
    assert (result.status, result.reason) == ("insufficient_data", "window has 3 rows (min_rows 20)")
    assert [(s.method, s.value, s.breached) for s in result.scores] == [("volume", 3.0, True)]


def test_label_part_only() -> None:
    mon = monitor(performance=["accuracy"])
    baseline = fit_baseline(MODEL, mon, make_batch(500), reference_seconds=3600)
    result = evaluate(MODEL, mon, baseline, make_batch(200, seed=2), window_seconds=3600, parts={"labels"})
    assert {(s.kind, s.feature) for s in result.scores} == {
        ("drift", "label"), ("performance", None), ("labels", None)
    }  # fmt: skip


def test_a_failing_detector_fails_only_its_family() -> None:
    mon = monitor(performance=["accuracy"])
    baseline = fit_baseline(MODEL, mon, make_batch(500), reference_seconds=3600)
    window = make_batch(100, seed=1)
    broken = dataclasses.replace(window, label=np.full(100, "yes", dtype=object))
    result = evaluate(MODEL, mon, baseline, broken, window_seconds=3600)
    (performance,) = [s for s in result.scores if s.kind == "performance"]
    assert performance.status == "error" and "0/1" in performance.reason
    assert result.status == "succeeded"
    assert all(s.status == "ok" for s in result.scores if s.kind == "drift" and s.feature in ("x", "c"))


def test_drift_policy_per_column_and_fallback_for_other_kinds() -> None:
    mon = monitor(drift={"method": "ks", "threshold": 0.01, "columns": {"c": {"method": "psi", "threshold": 0.2}}})
    assert (_policy("x", "numeric", mon).method, _policy("x", "numeric", mon).threshold) == ("ks", 0.01)
    assert (_policy("c", "categorical", mon).method, _policy("c", "categorical", mon).threshold) == ("psi", 0.2)
    # KS does not apply to categories: other categorical columns keep Evidently's auto choice.
    assert (_policy("d", "categorical", mon).method, _policy("d", "categorical", mon).threshold) == ("auto", None)


def test_class_labels_match_by_their_string_form() -> None:
    model = ModelConfig(task="binary", features={"x": "numeric", "c": "categorical"}, positive_class="yes")
    reference, window = make_batch(500), make_batch(200, seed=7)
    as_words = {0: "no", 1: "yes"}
    reference = dataclasses.replace(
        reference,
        label=np.array([as_words[v] for v in reference.label], dtype=object),
        prediction=np.array([as_words[v] for v in reference.prediction], dtype=object),
    )
    labels = np.array([as_words[v] for v in window.label], dtype=object)
    window = dataclasses.replace(
        window, label=labels, prediction=np.array([as_words[v] for v in window.prediction], dtype=object)
    )
    mon = monitor(performance=["accuracy", "roc_auc"], estimated_performance=True)
    baseline = fit_baseline(model, mon, reference, reference_seconds=3600)
    assert baseline.classes == ("no", "yes") and baseline.cbpe is not None and set(baseline.bands) == {
        "accuracy", "roc_auc"
    }  # fmt: skip
    scores = {(s.kind, s.method): s for s in evaluate(model, mon, baseline, window, window_seconds=3600).scores}
    words = scores[("performance", "accuracy")]
    numbers = evaluate(MODEL, mon, fit_baseline(MODEL, mon, make_batch(500), reference_seconds=3600),
                       make_batch(200, seed=7), window_seconds=3600).scores  # fmt: skip
    assert words.status == "ok"
    assert words.value == next(s.value for s in numbers if (s.kind, s.method) == ("performance", "accuracy"))
    assert scores[("estimated_performance", "roc_auc")].status == "ok"


def test_module_examples_run() -> None:
    import doctest

    import monitor.runs.windows

    assert doctest.testmod(monitor.runs.windows).failed == 0


def test_every_drift_score_respects_min_rows_of_non_missing_values() -> None:
    """Label drift on 20 labels with min_rows 30 was scored (issue 18, item 11): every column's score
    needs min_rows non-missing values in the window, else it is insufficient_data."""
    mon = MonitorConfig(model="m", reference={"previous_windows": 1}, min_rows=30)
    baseline = fit_baseline(MODEL, mon, make_batch(1000), reference_seconds=3600)
    window = make_batch(100, seed=5)
    label = window.label.copy()
    label[20:] = None  # 20 of 100 rows labelled so far
    x = window.features["x"].copy()
    x[25:] = None  # 25 non-missing values of feature x
    window = dataclasses.replace(window, label=label, features={**window.features, "x": x})
    scores = {(s.kind, s.feature): s for s in evaluate(MODEL, mon, baseline, window, window_seconds=3600).scores}
    for column, present in (("label", 20), ("x", 25)):
        score = scores[("drift", column)]
        assert (score.status, score.value) == ("insufficient_data", None), column
        assert f"has {present} non-missing values (need 30)" in score.reason
    assert scores[("drift", "c")].status == "ok"
    assert scores[("drift", "prediction")].status == "ok"
