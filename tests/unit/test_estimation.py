"""CBPE: calibration, closed-form estimates, NannyML synthetic data (estimated vs realized), edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from detectors.estimation import CBPEModel, estimated_performance_scores, fit_cbpe, needs_calibration
from detectors.performance import performance_scores

DATA = Path(__file__).resolve().parents[1] / "data" / "nannyml"  # NannyML sample, see its README
CHUNK = 5000  # NannyML's documentation chunks this data set by 5000 rows


def _by_method(scores):
    return {s.method: s for s in scores}


def _calibrated(n: int, seed: int):
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return p, (rng.random(n) < p).astype(int)


@pytest.fixture(scope="module")
def synthetic():
    ref_columns = ["y_pred_proba", "y_pred", "work_home_actual"]
    ref = pd.read_csv(DATA / "synthetic_sample_reference.csv.gz", usecols=ref_columns)
    ana = pd.read_csv(DATA / "synthetic_sample_analysis.csv.gz", usecols=["id", "y_pred_proba", "y_pred"])
    gt = pd.read_csv(DATA / "synthetic_sample_analysis_gt.csv.gz")
    ana = ana.merge(gt, on="id", how="left", validate="one_to_one")
    model = fit_cbpe(ref["y_pred_proba"], ref["work_home_actual"], ref["y_pred"], chunk_size=CHUNK)
    return ref, ana, model


def test_synthetic_estimates_track_realized_performance(synthetic):
    _, ana, model = synthetic
    assert model.calibrated  # NannyML's test also decides to calibrate this reference
    inside = {"roc_auc": 0, "accuracy": 0, "f1": 0}
    breached = []
    for start in range(0, len(ana), CHUNK):
        chunk = ana.iloc[start : start + CHUNK]
        est = _by_method(estimated_performance_scores(model, chunk["y_pred_proba"], chunk["y_pred"]))
        real = _by_method(
            performance_scores(
                "binary", chunk["work_home_actual"], chunk["y_pred"], chunk["y_pred_proba"], metrics=list(inside)
            )
        )
        for name in inside:
            ci = real[name].details
            inside[name] += ci["ci_lower"] <= est[name].value <= ci["ci_upper"]
            assert abs(est[name].value - real[name].value) < 0.015, (start, name)
        breached.append(est["roc_auc"].breached)
    n_chunks = len(ana) // CHUNK
    assert inside["roc_auc"] >= 0.8 * n_chunks, inside
    assert inside["accuracy"] >= 0.7 * n_chunks and inside["f1"] >= 0.7 * n_chunks, inside
    # the analysis period drifts half-way through: the estimate alerts there and only there
    assert breached == [False] * 5 + [True] * 5


def test_reference_chunks_do_not_alert(synthetic):
    ref, _, model = synthetic
    for start in range(0, len(ref), CHUNK):
        chunk = ref.iloc[start : start + CHUNK]
        est = estimated_performance_scores(model, chunk["y_pred_proba"], chunk["y_pred"])
        assert not any(s.breached for s in est), start


def test_sampling_error_scales_with_window_size(synthetic):
    _, ana, model = synthetic
    small = _by_method(estimated_performance_scores(model, ana["y_pred_proba"][:1000]))
    large = _by_method(estimated_performance_scores(model, ana["y_pred_proba"][:4000]))
    assert small["roc_auc"].details["sampling_error"] == pytest.approx(2 * large["roc_auc"].details["sampling_error"])
    s = large["roc_auc"]
    assert s.details["ci_lower"] < s.value < s.details["ci_upper"]


def test_model_round_trips_and_calibration_equals_isotonic(synthetic):
    ref, _, model = synthetic
    restored = CBPEModel.from_dict(model.to_dict())
    assert restored == model
    iso = IsotonicRegression(out_of_bounds="clip").fit(ref["y_pred_proba"], ref["work_home_actual"])
    grid = np.linspace(-0.1, 1.1, 241)
    np.testing.assert_allclose(restored.calibrate(grid), iso.predict(grid), atol=1e-12)


def test_calibrated_scores_give_closed_form_estimates():
    p, y = _calibrated(4000, 0)
    model = fit_cbpe(p, y, chunk_size=500)
    window = np.random.default_rng(1).random(2000)
    cal = model.calibrate(window)
    est = _by_method(estimated_performance_scores(model, window))
    pred = window >= 0.5
    tp, fp, fn = cal[pred].sum(), (1 - cal[pred]).sum(), cal[~pred].sum()
    assert est["accuracy"].value == pytest.approx(np.mean(np.where(pred, cal, 1 - cal)), abs=1e-12)
    assert est["f1"].value == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
    assert est["precision"].value == pytest.approx(tp / (tp + fp), abs=1e-12)
    # expected AUC = sum_ij p_i (1 - p_j) [s_i > s_j] + ½ ties, over all ordered pairs
    s = window[:300]
    c = model.calibrate(s)
    gt = (s[:, None] > s[None, :]) + 0.5 * (s[:, None] == s[None, :])
    expected = (c[:, None] * (1 - c[None, :]) * gt).sum() / (c.sum() * (1 - c).sum())
    assert _by_method(estimated_performance_scores(model, s))["roc_auc"].value == pytest.approx(expected, abs=1e-12)


def test_needs_calibration_decisions():
    p, y = _calibrated(3000, 2)
    assert needs_calibration(y, p**4)  # badly miscalibrated scores: isotonic helps
    assert not needs_calibration(np.ones(100, int), p[:100])  # one class
    assert not needs_calibration((p > 0.5).astype(int), p)  # perfect separation


def test_miscalibrated_scores_are_recalibrated_and_estimate_the_truth():
    p, y = _calibrated(20_000, 3)
    model = fit_cbpe(p**4, y, chunk_size=2000)
    assert model.calibrated
    wp, wy = _calibrated(5000, 4)
    est = _by_method(estimated_performance_scores(model, wp**4))
    assert est["roc_auc"].value == pytest.approx(roc_auc_score(wy, wp), abs=0.02)
    assert est["accuracy"].value == pytest.approx(np.mean((wp**4 >= 0.5) == wy), abs=0.02)


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_one_row_windows_are_insufficient(n):
    p, y = _calibrated(2000, 0)
    model = fit_cbpe(p, y, chunk_size=500)
    scores = estimated_performance_scores(model, p[:n])
    assert len(scores) == 5
    assert all(s.status == "insufficient_data" and s.value is None and s.reason for s in scores)


def test_nan_scores_dropped_and_degenerate_windows():
    p, y = _calibrated(2000, 0)
    model = fit_cbpe(p, y, chunk_size=500)
    window = np.r_[np.full(3, np.nan), p[:100]]
    est = _by_method(estimated_performance_scores(model, window))
    assert est["roc_auc"].details == {**est["roc_auc"].details, "n": 100, "dropped_rows": 3}
    # every score certain-negative after calibration: no expected positives anywhere
    zero = _by_method(estimated_performance_scores(model, np.zeros(50)))
    assert zero["roc_auc"].status == "insufficient_data"
    assert zero["recall"].status == "insufficient_data" and zero["accuracy"].value == pytest.approx(1.0, abs=0.01)
    for s in zero.values():
        assert s.value is None or np.isfinite(s.value)


def test_bad_references_are_clear_errors():
    with pytest.raises(ValueError, match="single class"):
        fit_cbpe(np.linspace(0, 1, 10), np.ones(10), chunk_size=5)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        fit_cbpe(np.array([0.2, 1.4, 0.3, 0.9]), np.array([0, 1, 0, 1]), chunk_size=2)
    p, y = _calibrated(200, 0)
    model = fit_cbpe(p, y, chunk_size=50)
    with pytest.raises(ValueError, match="unknown estimated metric 'mae'"):
        estimated_performance_scores(model, p, metrics=["mae"])
