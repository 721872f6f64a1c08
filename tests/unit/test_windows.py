"""Window arithmetic, window rows → arrays, and the evaluation of one window (no store)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from monitor.config import ModelConfig, MonitorConfig
from monitor.runs.drilldown import _frame
from monitor.runs.evaluation import Baseline, _policy, evaluate, fit_baseline, score_dict, to_float
from monitor.runs.files import frame_to_batch
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
        ("a", "2026-03-02 00:00:00.000000", '{"x": 1.5, "c": "red", "y": 1, "z": 2, "extra": 1}', "1", "0.9", "1",
         "2026-03-02 01:00:00.000000", "2.1"),
        ("b", "2026-03-02 00:01:00.000000", '{"x": null, "y": "7", "z": true}', "0", "0.2", "null", None, None),
        ("c", "2026-03-02 00:02:00.000000", '{"c": 3}', "1", None, None, None, "2.0"),
    ]  # fmt: skip
    schema = {"x": "numeric", "c": "categorical", "y": "numeric", "z": "numeric"}
    batch = batch_from_rows([rows[:1], [], rows[1:]], schema)  # in chunks, as load_window reads them
    assert batch.n == 3 and set(batch.features) == set(schema)
    # A numeric column of numbers (or nothing) is typed, NaN where missing, as a file gives it ...
    assert batch.features["x"].dtype == np.float64
    np.testing.assert_array_equal(batch.features["x"], [1.5, np.nan, np.nan])
    # ... one holding text or a boolean keeps its raw values, for data quality to count as type errors.
    assert batch.features["y"].dtype == object and batch.features["y"].tolist() == [1, "7", None]
    assert batch.features["z"].dtype == object and batch.features["z"].tolist() == [2, True, None]
    assert batch.features["c"].tolist() == ["red", None, 3]
    assert batch.prediction.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(batch.score, [0.9, 0.2, np.nan])
    assert batch.label.tolist() == [1, None, None] and batch.label_count == 1
    assert batch.ts.tolist()[1] == datetime(2026, 3, 2, 0, 1)
    assert np.isnat(batch.label_ts).tolist() == [False, True, True]
    assert batch.model_version.tolist() == ["2.1", None, "2.0"]
    # as Postgres returns them (epoch microseconds)
    epoch = [(r[0], int(T0.timestamp() * 1e6) + i, *r[2:6], None, r[7]) for i, r in enumerate(rows)]
    assert batch_from_rows([epoch], {"x": "numeric"}).ts.tolist()[2] == datetime(2026, 3, 2, 0, 0, 0, 2)


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


FILE_MODEL = ModelConfig(
    task="binary",
    features={
        "x": "numeric",  # float64 with NaN and ±inf
        "count": "numeric",  # int64
        "small": "numeric",  # uint8
        "flag": "numeric",  # bool declared numeric: every value a type error
        "flag_c": "categorical",  # bool
        "tier": "categorical",  # int64, few values
        "ratio_c": "categorical",  # float64 categories with NaN
        "plan": "categorical",  # strings with None: an object column either way
    },
    fields={"prediction": "y_pred", "score": "y_pred_proba", "label": "label"},
)


def file_frame(n: int, *, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.05] = np.nan
    x[:2] = [np.inf, -np.inf]
    proba = 1 / (1 + np.exp(-np.nan_to_num(x, posinf=5, neginf=-5)))
    return pd.DataFrame(
        {
            "x": x,
            "count": rng.integers(0, 500 + int(100 * shift), n),
            "small": rng.integers(0, 200, n).astype(np.uint8),
            "flag": rng.random(n) < 0.3,
            "flag_c": rng.random(n) < 0.3 + 0.2 * shift,
            "tier": rng.choice([1, 2, 3, 4 + int(shift)], n),
            "ratio_c": rng.choice([0.5, 1.0, 2.5, 1e-7, np.nan], n),
            "plan": rng.choice(np.array(["a", "b", None, " "], dtype=object), n),
            "y_pred": (proba >= 0.5).astype(int),
            "y_pred_proba": proba,
            "label": (rng.random(n) < proba).astype(int),
        }
    )


def as_objects(batch: Batch, frame: pd.DataFrame) -> Batch:
    """The batch with every feature boxed as frame_to_batch built them before issue 16."""
    return dataclasses.replace(batch, features={name: frame[name].to_numpy(dtype=object) for name in batch.features})


@pytest.mark.parametrize(
    "settings",
    [
        {"performance": ["accuracy", "roc_auc"], "estimated_performance": True, "drift": {"multivariate": True}},
        {"drift": {"threshold": "calibrated", "false_alarms": "1 per 30 days"}},
    ],
    ids=["every-detector", "calibrated"],
)
def test_a_file_scores_alike_with_typed_or_object_features(settings: dict) -> None:
    """frame_to_batch keeps float/int/bool columns typed (issue 16); every detector must score them exactly
    as the object arrays it built before: drift, quality, performance, CBPE, multivariate, calibration."""
    mon = monitor(**settings)
    ref_frame, cur_frame = file_frame(800), file_frame(200, shift=1.0, seed=3)
    reference = frame_to_batch(ref_frame, FILE_MODEL, source="reference")
    current = frame_to_batch(cur_frame, FILE_MODEL, source="current")
    assert {name: v.dtype.kind for name, v in current.features.items()} == {
        "x": "f", "count": "i", "small": "u", "flag": "b", "flag_c": "b", "tier": "i", "ratio_c": "f", "plan": "O"
    }  # fmt: skip
    assert np.shares_memory(current.features["x"], cur_frame["x"].to_numpy())  # a view, not a copy
    typed_baseline = fit_baseline(FILE_MODEL, mon, reference, reference_seconds=None, chunk_rows=200)
    object_baseline = fit_baseline(
        FILE_MODEL, mon, as_objects(reference, ref_frame), reference_seconds=None, chunk_rows=200
    )
    # The cached bytes may differ only in the width of category strings ('<U21' from an int64 array).
    assert (typed_baseline.quality, typed_baseline.notes) == (object_baseline.quality, object_baseline.notes)
    typed = evaluate(FILE_MODEL, mon, typed_baseline, current, window_seconds=None).scores
    boxed = evaluate(FILE_MODEL, mon, object_baseline, as_objects(current, cur_frame), window_seconds=None).scores
    assert [score_dict(s) for s in typed] == [score_dict(s) for s in boxed]
    assert all(s.status != "error" for s in typed), [s.reason for s in typed if s.status == "error"]
    quality = {(s.feature, s.method): s.value for s in typed if s.kind == "quality"}
    assert quality[("flag", "type_error_share")] == 1.0 and quality[("x", "type_error_share")] > 0  # ±inf
    if "estimated_performance" in settings:
        assert {s.kind for s in typed} >= {"performance", "estimated_performance"}
        assert {s.method for s in typed if s.kind == "drift"} >= {"pca_reconstruction_error", "domain_classifier_auc"}


def test_the_report_frame_is_alike_with_typed_or_object_features() -> None:
    frame = file_frame(300)
    batch = frame_to_batch(frame, FILE_MODEL, source="file")
    pd.testing.assert_frame_equal(
        _frame(batch, FILE_MODEL, "score"), _frame(as_objects(batch, frame), FILE_MODEL, "score")
    )


def test_frame_to_batch_keeps_nullable_and_text_columns_as_objects() -> None:
    frame = pd.DataFrame(
        {"n": pd.array([1, None, 3], dtype="Int64"), "s": ["a", None, "c"], "b": pd.array([True, None, False])}
    )
    model = ModelConfig(task="binary", features={"n": "numeric", "s": "categorical", "b": "categorical"})
    batch = frame_to_batch(frame, model, source="file")
    assert {name: v.dtype for name, v in batch.features.items()} == {"n": object, "s": object, "b": object}
    assert batch.features["n"].tolist() == [1, pd.NA, 3]
    # a typed score column is taken as it is; bools are no scores
    scored = frame_to_batch(frame.assign(score=[1, 0, 1]), model, source="file")
    assert scored.score.dtype == np.float64 and scored.score.tolist() == [1.0, 0.0, 1.0]
    flags = frame_to_batch(frame.assign(score=[True, False, True]), model, source="file").score
    assert np.isnan(flags).all()
