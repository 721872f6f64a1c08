"""CBPE (binary, multiclass) and DLE: calibration, closed-form estimates, NannyML's sample data
(value for value against NannyML 0.13.1's own figures, and estimated vs realized), edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from detectors.dle import DLE_METRICS, estimated_regression_scores, fit_dle
from detectors.estimation import (
    CBPEModel,
    MulticlassCBPEModel,
    estimated_multiclass_performance_scores,
    estimated_performance_scores,
    fit_cbpe,
    fit_multiclass_cbpe,
    needs_calibration,
)
from detectors.performance import performance_scores

DATA = Path(__file__).resolve().parents[1] / "data" / "nannyml"  # NannyML sample, see its README
# NannyML 0.13.1's figures on those samples, made by scripts/nannyml_expected.py (see its README)
EXPECTED = Path(__file__).resolve().parents[1] / "data" / "nannyml_expected"
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


# --------------------------------------------------------------------------------------------
# Multiclass CBPE against NannyML 0.13.1 on its multiclass sample
# --------------------------------------------------------------------------------------------


def _nannyml_sample(name: str, targets: str, expected: str) -> tuple[pd.DataFrame, dict]:
    """Reference then analysis (targets joined) in one frame, rows as NannyML numbers them per period."""
    ref = pd.read_csv(DATA / f"{name}_reference.csv.gz")
    ana = pd.read_csv(DATA / f"{name}_analysis.csv.gz").merge(
        pd.read_csv(DATA / f"{name}_{targets}.csv.gz"), on="id", validate="one_to_one"
    )
    return pd.concat([ref.assign(period="reference"), ana.assign(period="analysis")], ignore_index=True), json.loads(
        (EXPECTED / expected).read_text()
    )


def _chunk(data: pd.DataFrame, chunk: dict) -> pd.DataFrame:
    period = data[data["period"] == chunk["period"]]
    return period.iloc[chunk["start_index"] : chunk["end_index"] + 1]


@pytest.fixture(scope="module")
def multiclass():
    data, expected = _nannyml_sample("mc", "analysis_gt", "cbpe_multiclass.json")
    classes = expected["classes"]
    columns = [f"y_pred_proba_{c}" for c in classes]
    ref = data[data["period"] == "reference"]
    model = fit_multiclass_cbpe(ref[columns], ref["y_true"], ref["y_pred"], classes=classes, chunk_size=CHUNK)
    return data, expected, columns, model


def test_multiclass_matches_nannyml_chunk_by_chunk(multiclass):
    data, expected, columns, model = multiclass
    assert expected["versions"]["nannyml"] == "0.13.1" and expected["chunk_size"] == CHUNK
    # NannyML calibrates two of the three classes: its cross-validated test says prepaid_card does not gain
    assert model.calibrated_classes == [c for c, yes in expected["calibrated"].items() if yes]
    assert len(expected["chunks"]) == 24
    for chunk in expected["chunks"]:
        rows = _chunk(data, chunk)
        est = _by_method(estimated_multiclass_performance_scores(model, rows[columns], rows["y_pred"]))
        for name in expected["metrics"]:
            nml, ours = chunk[name], est[name]
            where = (chunk["period"], chunk["start_index"], name)
            # ROC AUC: NannyML walks tied scores in sort order and rounds to 5 decimals (module docstring)
            assert ours.value == pytest.approx(nml["value"], abs=5e-6 if name == "roc_auc" else 1e-12), where
            assert ours.details["sampling_error"] == pytest.approx(nml["sampling_error"], rel=1e-9), where
            assert ours.details["ci_lower"] == pytest.approx(nml["lower_confidence_boundary"], abs=2e-5), where
            assert ours.details["ci_upper"] == pytest.approx(nml["upper_confidence_boundary"], abs=2e-5), where
            assert ours.details["band_lower"] == pytest.approx(nml["lower_threshold"], abs=1e-12), where
            assert ours.details["band_upper"] == pytest.approx(nml["upper_threshold"], abs=1e-12), where
            assert ours.breached == nml["alert"], where


def test_multiclass_estimates_track_realized_until_the_concept_shifts(multiclass):
    data, expected, columns, model = multiclass
    for chunk in expected["chunks"]:
        rows = _chunk(data, chunk)
        est = _by_method(estimated_multiclass_performance_scores(model, rows[columns], rows["y_pred"]))
        real = _by_method(
            performance_scores(
                "multiclass",
                rows["y_true"],
                rows["y_pred"],
                rows[columns].to_numpy(),
                classes=expected["classes"],
                metrics=expected["metrics"],
                n_resamples=2,
            )
        )
        shifted = chunk["period"] == "analysis" and chunk["start_index"] >= 30_000
        for name in expected["metrics"]:
            inside = est[name].details["ci_lower"] <= real[name].value <= est[name].details["ci_upper"]
            assert real[name].value == pytest.approx(chunk[name]["realized"], abs=1e-12)
            # Before the shift the realized value lies in the estimate's band on every chunk. After it,
            # P(y | scores) changes (concept shift, which CBPE assumes away): the estimate still alerts,
            # but overstates the realized value by 0.06-0.08.
            assert inside != shifted, (chunk["period"], chunk["start_index"], name)
            assert est[name].breached == shifted
            assert (real[name].value < est[name].details["band_lower"]) == shifted


def test_multiclass_model_round_trips_and_renormalizes(multiclass):
    data, _, columns, model = multiclass
    restored = MulticlassCBPEModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored == model
    ref = data[data["period"] == "reference"]
    scores = np.random.default_rng(5).dirichlet(np.ones(3), size=500)
    by_hand = []
    for k, c in enumerate(model.classes):
        if c in model.calibrated_classes:
            iso = IsotonicRegression(out_of_bounds="clip").fit(ref[columns[k]], ref["y_true"] == c)
            by_hand.append(iso.predict(scores[:, k]))
        else:
            by_hand.append(scores[:, k])
    by_hand = np.column_stack(by_hand)
    np.testing.assert_allclose(restored.calibrate(scores), by_hand / by_hand.sum(axis=1, keepdims=True), atol=1e-12)


def test_multiclass_calibrated_scores_estimate_the_truth():
    rng = np.random.default_rng(7)
    classes = ["a", "b", "c", "d"]

    def draw(n, concentration):
        p = rng.dirichlet(concentration, size=n)
        y = np.array([rng.choice(4, p=row) for row in p])
        return p, np.asarray(classes)[y]

    ref_p, ref_y = draw(20_000, np.ones(4))
    model = fit_multiclass_cbpe(ref_p, ref_y, classes=classes, chunk_size=2000)
    # covariate shift: more confident rows, same P(y | scores)
    win_p, win_y = draw(5000, np.full(4, 0.5))
    pred = np.asarray(classes)[win_p.argmax(axis=1)]
    est = _by_method(estimated_multiclass_performance_scores(model, win_p))
    real = _by_method(
        performance_scores("multiclass", win_y, pred, win_p, classes=classes, metrics=list(est), n_resamples=2)
    )
    for name in est:
        assert est[name].value == pytest.approx(real[name].value, abs=0.02), name
    assert real["accuracy"].value > model.bands["accuracy"].upper  # the shift is large ...
    assert not any(s.breached for s in est.values())  # ... and for the better: no alert


def test_multiclass_input_errors_and_small_windows(multiclass):
    model = multiclass[3]
    p = np.full((10, 3), 1 / 3)
    with pytest.raises(ValueError, match="never occur"):
        fit_multiclass_cbpe(p, ["a"] * 5 + ["b"] * 5, classes=["a", "b", "c"], chunk_size=2)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        estimated_multiclass_performance_scores(model, p[:, :2])
    with pytest.raises(ValueError, match="not in classes"):
        estimated_multiclass_performance_scores(model, p, ["nope"] * 10)
    window = np.r_[np.full((2, 3), np.nan), p[:1]]
    scores = estimated_multiclass_performance_scores(model, window)
    assert all(s.status == "insufficient_data" and "1 scored rows" in s.reason for s in scores)


# --------------------------------------------------------------------------------------------
# DLE against NannyML 0.13.1 on its regression sample
# --------------------------------------------------------------------------------------------

# LightGBM (NannyML) and HistGradientBoostingRegressor (here) learn slightly different loss models;
# on this sample the chunk estimates differ by at most 0.75 % (MAE 0.67 %, MSE 0.75 %, RMSE 0.38 %).
DLE_RELATIVE_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def regression():
    data, expected = _nannyml_sample("regression_synthetic", "analysis_targets", "dle_regression.json")
    ref = data[data["period"] == "reference"]
    model = fit_dle(ref[expected["features"]], ref["y_pred"], ref["y_true"], chunk_size=CHUNK)
    return data, expected, model


def test_dle_matches_nannyml_within_the_learners_difference(regression):
    data, expected, model = regression
    assert expected["metrics"] == list(DLE_METRICS) and len(expected["chunks"]) == 24
    worst = 0.0
    for chunk in expected["chunks"]:
        rows = _chunk(data, chunk)
        est = _by_method(estimated_regression_scores(model, rows[expected["features"]], rows["y_pred"]))
        for name in DLE_METRICS:
            nml, ours = chunk[name], est[name]
            where = (chunk["period"], chunk["start_index"], name)
            worst = max(worst, abs(ours.value / nml["value"] - 1))
            # the sampling error and the band come from the reference alone: these match exactly
            assert ours.details["sampling_error"] == pytest.approx(nml["sampling_error"], rel=1e-9), where
            assert ours.details["band_lower"] == pytest.approx(nml["lower_threshold"], rel=1e-12), where
            assert ours.details["band_upper"] == pytest.approx(nml["upper_threshold"], rel=1e-12), where
            # NannyML alerts on both sides of the band; an error below it (better) is no breach here
            assert ours.breached is False and nml["alert"] == (nml["value"] < nml["lower_threshold"]), where
    assert worst < DLE_RELATIVE_TOLERANCE


def test_dle_estimates_track_realized_error(regression):
    data, expected, model = regression
    below = []
    for chunk in expected["chunks"]:
        rows = _chunk(data, chunk)
        est = _by_method(estimated_regression_scores(model, rows[expected["features"]], rows["y_pred"]))
        real = _by_method(performance_scores("regression", rows["y_true"], rows["y_pred"], metrics=["mae", "rmse"]))
        realized = {"mae": real["mae"].value, "rmse": real["rmse"].value, "mse": real["rmse"].value ** 2}
        for name in DLE_METRICS:
            assert realized[name] == pytest.approx(chunk[name]["realized"], rel=1e-9)
            # the realized error lies in the estimate's band on every chunk, reference and analysis
            assert est[name].details["ci_lower"] <= realized[name] <= est[name].details["ci_upper"], (chunk, name)
        below.append(est["mae"].value < est["mae"].details["band_lower"])
    # the analysis period's second half is easier to predict: estimated (and realized) MAE drops below the band
    assert below == [False] * 18 + [True] * 6


def test_dle_follows_covariate_shift_to_a_noisier_region():
    rng = np.random.default_rng(11)
    n = 8000
    ref = pd.DataFrame({"x": rng.normal(size=n), "kind": rng.choice(["calm", "wild"], size=n, p=[0.9, 0.1])})
    noise = np.where(ref["kind"] == "wild", 5.0, 1.0)
    y = ref["x"] + rng.normal(scale=noise)
    model = fit_dle(ref, ref["x"], y, chunk_size=1000)
    assert set(model.categories) == {"kind"}
    calm = _by_method(estimated_regression_scores(model, ref.iloc[:1000], ref["x"][:1000]))
    wild = pd.DataFrame({"x": rng.normal(size=1000), "kind": ["wild"] * 1000})
    shifted = _by_method(estimated_regression_scores(model, wild, wild["x"]))
    assert calm["mae"].breached is False
    # |N(0, 5)| has mean 5 * sqrt(2 / pi) ≈ 4.0
    assert shifted["mae"].value == pytest.approx(5 * np.sqrt(2 / np.pi), rel=0.1) and shifted["mae"].breached
    assert shifted["rmse"].value == pytest.approx(5.0, rel=0.1)
    # a category never seen in the reference is routed as missing, not refused
    unseen = wild.assign(kind="new")
    assert all(s.status == "ok" for s in estimated_regression_scores(model, unseen, unseen["x"]))


def test_dle_input_errors_and_small_windows():
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"x": rng.normal(size=300)})
    with pytest.raises(ValueError, match="two chunks"):
        fit_dle(x, x["x"], x["x"], chunk_size=200)
    model = fit_dle(x, x["x"], x["x"] + rng.normal(size=300), chunk_size=100)
    with pytest.raises(ValueError, match="lack column 'x'"):
        estimated_regression_scores(model, pd.DataFrame({"z": [1.0, 2.0]}), [1.0, 2.0])
    with pytest.raises(ValueError, match="unknown estimated metric"):
        estimated_regression_scores(model, x, x["x"], metrics=["r2"])
    scores = estimated_regression_scores(model, x.iloc[:3], [np.nan, np.nan, 1.0])
    assert [s.status for s in scores] == ["insufficient_data"] * 3


def test_module_examples_run():
    import doctest

    import detectors.dle
    import detectors.estimation

    assert doctest.testmod(detectors.estimation).failed == 0
    assert doctest.testmod(detectors.dle).failed == 0


def test_multiclass_cbpe_fits_when_a_class_is_never_predicted():
    """A rare class the model never predicts enters no precision term: its variance is 0, not 0/0."""
    rng = np.random.default_rng(11)
    classes = ["a", "b", "c"]
    p = rng.dirichlet([4.0, 4.0, 0.3], size=6000)
    p[:, 2] = np.minimum(p[:, 2], 0.9 * p[:, :2].max(axis=1))  # never the highest: never predicted
    p /= p.sum(axis=1, keepdims=True)
    y = np.asarray(classes)[[rng.choice(3, p=row) for row in p]]
    model = fit_multiclass_cbpe(p, y, classes=classes, chunk_size=1000)
    scores = estimated_multiclass_performance_scores(model, p[:1000])
    assert all(s.status == "ok" and np.isfinite(s.value) for s in scores)
    assert all(np.isfinite([b.lower, b.upper]).all() for b in model.bands.values())
