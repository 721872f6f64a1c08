"""Realized performance: values vs scikit-learn, intervals, bands, label coverage/lag, edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from detectors.performance import (
    Band,
    bands_from_dict,
    bands_to_dict,
    fit_performance_bands,
    label_scores,
    performance_scores,
    weighted_roc_auc,
)

CLASSES = ["prepaid", "highstreet", "upmarket"]


def _by_method(scores):
    return {s.method: s for s in scores}


def _binary(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # rounded scores create many ties, the case where AUC implementations differ
    p = np.round(np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1), 2)
    return y, (p >= 0.5).astype(int), p


def _multiclass(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    proba = rng.dirichlet([1.0, 1.0, 1.0], n)
    proba[np.arange(n), y] += 0.4
    proba /= proba.sum(axis=1, keepdims=True)
    labels = np.array(CLASSES)
    return labels[y], labels[proba.argmax(axis=1)], proba


def _regression(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, n)
    return y, y + rng.normal(0, 3, n)


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_metrics_match_sklearn(seed):
    y, yp, p = _binary(3000, seed)
    got = _by_method(performance_scores("binary", y, yp, p))
    expected = {
        "accuracy": skm.accuracy_score(y, yp),
        "precision": skm.precision_score(y, yp),
        "recall": skm.recall_score(y, yp),
        "f1": skm.f1_score(y, yp),
        "roc_auc": skm.roc_auc_score(y, p),
        "log_loss": skm.log_loss(y, p),
    }
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].value == pytest.approx(value, abs=1e-9), name
        assert got[name].kind == "performance" and got[name].status == "ok"


def test_binary_with_string_classes_and_extreme_probabilities():
    y, yp, p = _binary(500, 3)
    p[:5] = [0.0, 1.0, 0.0, 1.0, 1.0]  # log loss clipping path
    names = np.array(["stay", "churn"])
    got = _by_method(performance_scores("binary", names[y], names[yp], p, classes=["stay", "churn"]))
    assert got["f1"].value == pytest.approx(skm.f1_score(names[y], names[yp], pos_label="churn"), abs=1e-9)
    assert got["log_loss"].value == pytest.approx(skm.log_loss(y, p), abs=1e-9)


def test_multiclass_macro_metrics_match_sklearn():
    y, yp, proba = _multiclass(3000, 0)
    got = _by_method(performance_scores("multiclass", y, yp, proba, classes=CLASSES))
    kw = {"average": "macro", "labels": CLASSES, "zero_division": 0}
    # sklearn wants probability columns in sorted label order; ours follow ``classes`` as given
    order = np.argsort(CLASSES)
    expected = {
        "accuracy": skm.accuracy_score(y, yp),
        "precision": skm.precision_score(y, yp, **kw),
        "recall": skm.recall_score(y, yp, **kw),
        "f1": skm.f1_score(y, yp, **kw),
        "roc_auc": skm.roc_auc_score(y, proba[:, order], multi_class="ovr", labels=sorted(CLASSES)),
        "log_loss": skm.log_loss(y, proba[:, order], labels=sorted(CLASSES)),
    }
    for name, value in expected.items():
        assert got[name].value == pytest.approx(value, abs=1e-9), name


def test_multiclass_class_never_predicted_counts_zero_like_sklearn():
    y, yp, proba = _multiclass(300, 1)
    yp = np.where(yp == "upmarket", "prepaid", yp)
    got = _by_method(performance_scores("multiclass", y, yp, proba, classes=CLASSES))
    kw = {"average": "macro", "labels": CLASSES, "zero_division": 0}
    assert got["precision"].value == pytest.approx(skm.precision_score(y, yp, **kw), abs=1e-9)
    assert got["f1"].value == pytest.approx(skm.f1_score(y, yp, **kw), abs=1e-9)


@pytest.mark.parametrize("scale", [1.0, 1e12])
def test_regression_metrics_match_sklearn(scale):
    y, yp = _regression(2000, 0)
    y, yp = y * scale, yp * scale
    got = _by_method(performance_scores("regression", y, yp))
    expected = {
        "mae": skm.mean_absolute_error(y, yp),
        "rmse": skm.root_mean_squared_error(y, yp),
        "mape": skm.mean_absolute_percentage_error(y, yp),
        "r2": skm.r2_score(y, yp),
    }
    for name, value in expected.items():
        assert got[name].value == pytest.approx(value, rel=1e-9, abs=1e-9), name


def test_mape_with_zero_targets_matches_sklearn():
    y = np.array([0.0, 1.0, 2.0, 0.0])
    yp = np.array([0.5, 1.0, 1.0, 0.0])
    got = _by_method(performance_scores("regression", y, yp))
    assert got["mape"].value == pytest.approx(skm.mean_absolute_percentage_error(y, yp), rel=1e-9)


def test_weighted_auc_equals_sklearn_with_sample_weight():
    y, _, p = _binary(400, 5)
    w = np.random.default_rng(0).integers(0, 4, size=(3, 400)).astype(float)
    got = weighted_roc_auc(w, y == 1, p)
    for row, value in zip(w, got, strict=True):
        assert value == pytest.approx(skm.roc_auc_score(y, p, sample_weight=row), abs=1e-9)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_interval_contains_estimate_and_narrows_with_n(task):
    widths = {}
    for n in (500, 8000):
        if task == "binary":
            args = _binary(n, 7)
            kwargs = {}
        elif task == "multiclass":
            args = _multiclass(n, 7)
            kwargs = {"classes": CLASSES}
        else:
            args = _regression(n, 7)
            kwargs = {}
        scores = performance_scores(task, *args, **kwargs, n_resamples=200, seed=1)
        for s in scores:
            assert s.details["ci_lower"] <= s.value <= s.details["ci_upper"], (task, n, s.method)
        widths[n] = {s.method: s.details["ci_upper"] - s.details["ci_lower"] for s in scores}
    for method, wide in widths[500].items():
        # sqrt(16) = 4x more data: the interval must shrink clearly (expected ~4x)
        assert widths[8000][method] < wide / 2, method


def test_bootstrap_interval_is_seeded():
    y, yp, p = _binary(300, 2)
    a = performance_scores("binary", y, yp, p, seed=3)
    b = performance_scores("binary", y, yp, p, seed=3)
    c = performance_scores("binary", y, yp, p, seed=4)
    assert a == b
    assert [s.details["ci_lower"] for s in a] != [s.details["ci_lower"] for s in c]


def test_bootstrap_interval_agrees_with_normal_theory_for_accuracy():
    y, yp, p = _binary(4000, 11)
    acc = _by_method(performance_scores("binary", y, yp, p, n_resamples=400))["accuracy"]
    binomial_se = np.sqrt(acc.value * (1 - acc.value) / 4000)
    assert acc.details["std_error"] == pytest.approx(binomial_se, rel=0.15)


def test_bands_from_reference_chunks_and_breach_directions():
    y, yp, p = _binary(5000, 0)
    bands = fit_performance_bands("binary", y, yp, p, chunk_size=500)
    acc_chunks = [skm.accuracy_score(y[i : i + 500], yp[i : i + 500]) for i in range(0, 5000, 500)]
    assert bands["accuracy"].mean == pytest.approx(np.mean(acc_chunks), abs=1e-12)
    assert bands["accuracy"].lower == pytest.approx(np.mean(acc_chunks) - 3 * np.std(acc_chunks), abs=1e-12)
    assert bands["roc_auc"].upper <= 1.0
    assert bands_from_dict(bands_to_dict(bands)) == bands

    # a degraded window: predictions shuffled -> accuracy drops below, log loss rises above the band
    rng = np.random.default_rng(1)
    yb, ypb, pb = _binary(500, 9)
    bad = _by_method(performance_scores("binary", yb, rng.permutation(ypb), rng.permutation(pb), bands=bands))
    assert bad["accuracy"].breached and bad["accuracy"].threshold == bands["accuracy"].lower
    assert bad["log_loss"].breached and bad["log_loss"].threshold == bands["log_loss"].upper
    good = _by_method(performance_scores("binary", yb, ypb, pb, bands=bands))
    assert not good["accuracy"].breached and not good["log_loss"].breached


def test_band_is_clipped_and_needs_two_chunks():
    band = Band(lower=0.1, upper=0.2, mean=0.15, std=0.01, n_chunks=3)
    assert Band.from_dict(band.to_dict()) == band
    y, yp, p = _binary(700, 0)
    assert fit_performance_bands("binary", y, yp, p, chunk_size=500) == {}


# ------------------------------------------------------------------ edge cases


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_one_row_windows_are_insufficient(n):
    y, yp, p = _binary(5, 0)
    for task, args, kw in [
        ("binary", (y[:n], yp[:n], p[:n]), {}),
        ("multiclass", tuple(a[:n] for a in _multiclass(5, 0)), {"classes": CLASSES}),
        ("regression", tuple(a[:n] for a in _regression(5, 0)), {}),
    ]:
        scores = performance_scores(task, *args, **kw)
        assert scores and all(s.status == "insufficient_data" and s.value is None for s in scores)
        assert all("labelled rows" in s.reason for s in scores)


def test_single_class_labels():
    y = np.ones(50, dtype=int)
    p = np.linspace(0.2, 0.9, 50)
    got = _by_method(performance_scores("binary", y, (p >= 0.5).astype(int), p))
    assert got["roc_auc"].status == "insufficient_data" and "both classes" in got["roc_auc"].reason
    assert got["accuracy"].value == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert got["recall"].status == "ok"
    zeros = performance_scores("binary", np.zeros(50, int), np.zeros(50, int), np.full(50, 0.1))
    z = _by_method(zeros)
    assert z["precision"].status == z["recall"].status == z["f1"].status == "insufficient_data"
    assert z["accuracy"].value == 1.0
    for s in zeros:
        assert s.value is None or np.isfinite(s.value)


def test_multiclass_auc_needs_every_class():
    y, yp, proba = _multiclass(100, 0)
    y = np.where(y == "upmarket", "prepaid", y)
    got = _by_method(performance_scores("multiclass", y, yp, proba, classes=CLASSES))
    assert got["roc_auc"].status == "insufficient_data"
    assert got["f1"].status == "ok"


def test_constant_target_regression():
    got = _by_method(performance_scores("regression", np.full(20, 3.0), np.linspace(2, 4, 20)))
    assert got["r2"].status == "insufficient_data" and "constant" in got["r2"].reason
    assert got["mae"].value == pytest.approx(skm.mean_absolute_error(np.full(20, 3.0), np.linspace(2, 4, 20)))


def test_unlabelled_and_non_finite_rows_are_dropped_and_counted():
    y, yp, p = _binary(200, 4)
    y_obj = y.astype(object)
    y_obj[:20] = None
    p = p.copy()
    p[20:25] = np.nan
    got = _by_method(performance_scores("binary", y_obj, yp, p))
    keep = slice(25, None)
    assert got["roc_auc"].value == pytest.approx(skm.roc_auc_score(y[keep], p[keep]), abs=1e-9)
    assert got["roc_auc"].details["n"] == 175 and got["roc_auc"].details["dropped_rows"] == 25
    all_missing = performance_scores("regression", np.full(10, np.nan), np.ones(10))
    assert all(s.status == "insufficient_data" for s in all_missing)


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="y_true contains label 'maybe'"):
        performance_scores("binary", np.array(["yes", "maybe"]), np.array(["yes", "no"]), classes=["no", "yes"])
    with pytest.raises(ValueError, match="binary labels must be 0/1"):
        performance_scores("binary", np.array([0, 2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="y_pred has 2 rows"):
        performance_scores("regression", np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="unknown binary metric 'mae'"):
        performance_scores("binary", np.ones(3), np.ones(3), metrics=["mae"])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        performance_scores("binary", np.array([0, 1]), None, np.array([0.5, 1.5]))


def test_only_metrics_the_inputs_allow():
    y, yp, p = _binary(100, 0)
    assert {s.method for s in performance_scores("binary", y, None, p)} == {"roc_auc", "log_loss"}
    assert {s.method for s in performance_scores("binary", y, yp)} == {"accuracy", "precision", "recall", "f1"}


# ------------------------------------------------------------------ labels


def test_label_coverage_and_lag():
    pred = pd.date_range("2026-01-01", periods=10, freq="min")
    lab = pd.Series(pred + pd.to_timedelta(np.arange(10) * 60, unit="s"))
    lab[[1, 3, 5]] = pd.NaT
    got = _by_method(label_scores(pred, lab, min_coverage=0.8, max_lag_p95_seconds=400))
    assert got["coverage"].value == pytest.approx(0.7) and got["coverage"].breached
    lags = np.array([0, 2, 4, 6, 7, 8, 9]) * 60.0
    assert got["lag_median_seconds"].value == pytest.approx(np.median(lags))
    assert got["lag_p95_seconds"].value == pytest.approx(np.quantile(lags, 0.95))
    assert got["lag_p95_seconds"].breached


def test_labels_stopped_arriving_and_empty_window():
    pred = pd.date_range("2026-01-01", periods=5, freq="min")
    got = _by_method(label_scores(pred, [None] * 5))
    assert got["coverage"].value == 0.0 and got["coverage"].breached
    assert got["lag_median_seconds"].status == "insufficient_data"
    empty = label_scores([], [])
    assert all(s.status == "insufficient_data" and s.kind == "labels" for s in empty)
