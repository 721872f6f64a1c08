"""Calibrated thresholds, multiple testing across features and the effect-size floor (issue 15)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import false_discovery_control

from detectors.calibration import ColumnCalibration, alpha_per_feature, calibrate_column, to_scale
from detectors.drift import ColumnPolicy, column_drift, corrected_decisions, drift_scores
from detectors.profile import make_sample, profile_column, profile_reference
from detectors.stattests import get_stattest
from detectors.types import Score
from monitor.config import DriftSettings, FalseAlarms, ModelConfig, MonitorConfig
from monitor.runs.evaluation import Baseline, evaluate, fit_baseline
from monitor.runs.windows import Batch


def _brute_force_quantile(method: str, draw, reference_rows: int, size: int, q: float, repeat: int, seed: int) -> float:
    """The (1 − q) quantile of ``method`` between independent reference and window samples (no drift)."""
    rng = np.random.default_rng(seed)
    test = get_stattest(method)
    values = []
    for _ in range(repeat):
        ref = profile_column("x", draw(rng, reference_rows), "numeric")
        values.append(test.compute(ref, make_sample("numeric", draw(rng, size), "x")))
    return float(np.quantile(values, q if test.is_p_value else 1 - q))


@pytest.mark.parametrize(("method", "size"), [("wasserstein", 100), ("wasserstein", 1000), ("ks", 200)])
def test_resampled_threshold_matches_a_brute_force_simulation(method, size):
    def draw(rng, n):
        return rng.lognormal(0.0, 0.7, n)

    rng = np.random.default_rng(3)
    cal = calibrate_column("x", draw(rng, 5000), "numeric", method, [size], alpha=0.05, rng=rng, draws=400)
    assert cal.source == "resampled"
    expected = _brute_force_quantile(method, draw, 5000, size, 0.05, repeat=1500, seed=4)
    # On the calibration scale (-log10 p for a p-value): bootstrap ties make KS a little conservative.
    scale = get_stattest(method).is_p_value
    assert to_scale(cal.threshold(size), scale) == pytest.approx(to_scale(expected, scale), rel=0.2)


def test_a_small_alpha_uses_the_exponential_tail_and_keeps_the_rate():
    """α far below 1/draws: the fitted tail's threshold lets through about α of fresh null windows, not more."""
    rng = np.random.default_rng(5)
    cal = calibrate_column("x", rng.normal(size=10_000), "numeric", "ks", [200], alpha=0.002, rng=rng, draws=200)
    fresh = np.array(
        [cal.breached(get_stattest("ks").compute(cal_ref, make_sample("numeric", rng.normal(size=200), "x")), 200)
         for cal_ref in [profile_column("x", rng.normal(size=10_000), "numeric")] for _ in range(3000)]
    )  # fmt: skip
    assert fresh.mean() <= 0.006
    assert cal.threshold(200) > 1e-4  # not absurdly strict either: the p-value threshold stays near α


def test_a_structured_reference_is_calibrated_on_its_consecutive_windows():
    rng = np.random.default_rng(6)
    n, cycle = 20_000, 5_000
    phase = 2 * np.pi * (np.arange(n) % cycle) / cycle
    structured = np.sin(phase) + rng.normal(0.0, 0.5, n)
    cal = calibrate_column("x", structured, "numeric", "wasserstein", [200], alpha=0.01, rng=rng)
    assert cal.source == "consecutive"
    assert cal.structure_p is not None and cal.structure_p < 0.01
    # The fixed 0.1 would flag nearly every window of its own reference; the calibrated threshold few.
    ref = profile_column("x", structured, "numeric")
    own = [get_stattest("wasserstein").compute(ref, make_sample("numeric", w, "x")) for w in np.split(structured, 100)]
    assert np.mean(np.array(own) >= 0.1) > 0.9
    assert cal.self_flagged <= 0.05 * cal.self_windows
    assert "flags" in cal.summary() and "structured" in cal.summary()
    mixed = calibrate_column("x", rng.permutation(structured), "numeric", "wasserstein", [200], alpha=0.01, rng=rng)
    assert mixed.source == "resampled"


def test_threshold_is_interpolated_between_sizes_and_survives_a_round_trip():
    rng = np.random.default_rng(7)
    cal = calibrate_column("x", rng.normal(size=8000), "numeric", "wasserstein", [100, 400], alpha=0.05, rng=rng)
    assert cal.threshold(100) > cal.threshold(200) > cal.threshold(400)
    assert cal.threshold(50) == cal.threshold(100) and cal.threshold(4000) == cal.threshold(400)
    again = ColumnCalibration.from_dict(cal.to_dict())
    assert again.threshold(200) == cal.threshold(200) and again.source == cal.source


def test_alpha_from_a_budget():
    # 1 false alarm per 30 days, hourly windows, 10 features: 1/720 per window, a tenth of it per feature.
    assert alpha_per_feature(1, 30 * 86400, 3600, 10) == pytest.approx(1 / 7200)
    with pytest.raises(ValueError, match="alpha"):
        calibrate_column("x", np.arange(100.0), "numeric", "ks", [10], alpha=0.0, rng=np.random.default_rng(0))


def test_calibrated_policy_sets_threshold_and_tail_probability_and_auto_must_match():
    rng = np.random.default_rng(8)
    values = rng.normal(size=5000)
    cal = calibrate_column("x", values, "numeric", "auto", [300], alpha=0.01, rng=rng)
    assert cal.method == "wasserstein"
    ref = profile_column("x", values, "numeric")
    score = column_drift(ref, rng.normal(0.5, 1.0, 300), ColumnPolicy("x", "numeric", calibration=cal))
    assert score.threshold == cal.threshold(300) and score.breached
    assert score.details["calibrated"]["tail_probability"] < 0.01
    calm = column_drift(ref, rng.normal(size=300), ColumnPolicy("x", "numeric", calibration=cal))
    assert calm.threshold == cal.threshold(300)
    other = column_drift(ref, rng.normal(size=300), ColumnPolicy("x", "numeric", "ks", calibration=cal))
    assert other.threshold == 0.05 and "skipped" in other.details["calibrated"]


def _p_scores(p_values: list[float]) -> list[Score]:
    return [
        Score("drift", "ks", p, f"c{i}", 0.05, p <= 0.05, details={"p_value": True}) for i, p in enumerate(p_values)
    ]


P_VALUES = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]


def test_bh_decisions_match_scipy():
    corrected, alpha = corrected_decisions(_p_scores(P_VALUES), "bh", 0.05)
    expected = false_discovery_control(P_VALUES, method="bh") <= 0.05
    assert [s.details["corrected_breached"] for s in corrected] == expected.tolist()
    assert alpha == 0.05


def test_holm_steps_down_until_one_fails():
    corrected, _ = corrected_decisions(_p_scores(P_VALUES), "holm", 0.05)
    # 0.001 <= 0.05/10; 0.008 > 0.05/9 stops it: only the first is rejected, unlike the uncorrected four.
    assert [s.details["corrected_breached"] for s in corrected] == [True] + [False] * 9
    corrected, _ = corrected_decisions(_p_scores([0.001, 0.02, 0.5]), "holm", 0.05)
    assert [s.details["corrected_breached"] for s in corrected] == [True, True, False]


def test_share_drifted_counts_corrected_decisions_and_none_keeps_evidently():
    rng = np.random.default_rng(9)
    n_cols = 20
    ref = {f"c{i}": rng.normal(size=500) for i in range(n_cols)}
    profile = profile_reference(ref, dict.fromkeys(ref, "numeric"))
    policies = [ColumnPolicy(c, "numeric") for c in ref]
    hits = {"none": 0, "holm": 0}
    for _ in range(30):
        window = {c: rng.normal(size=200) for c in ref}
        for mt in hits:
            scores = drift_scores(profile, window, policies, multiple_testing=mt)
            count = scores[-1]
            hits[mt] += count.value > 0
            if mt == "holm":
                assert count.details["uncorrected_count"] >= count.value
            else:
                assert "corrected_breached" not in scores[0].details
    assert hits["holm"] <= 3 < hits["none"]  # family-wise 5 % against ~64 % of windows uncorrected


def test_effect_floor_keeps_a_tiny_shift_at_large_n_out_of_drift():
    rng = np.random.default_rng(10)
    ref = profile_column("x", rng.normal(size=100_000), "numeric")
    window = rng.normal(0.03, 1.0, 100_000)
    plain = column_drift(ref, window, ColumnPolicy("x", "numeric", "ks"))
    floored = column_drift(ref, window, ColumnPolicy("x", "numeric", "ks", min_effect=0.1))
    assert plain.breached and not floored.breached
    assert floored.value == plain.value and floored.details["effect"]["value"] < 0.1
    big = column_drift(ref, window + 0.5, ColumnPolicy("x", "numeric", "ks", min_effect=0.1))
    assert big.breached and big.details["effect"]["value"] >= 0.1
    cats = profile_column("c", rng.choice(["a", "b"], 50_000), "categorical")
    cat = column_drift(
        cats, rng.choice(["a", "b"], 50_000, p=[0.51, 0.49]), ColumnPolicy("c", "categorical", "z", min_effect=0.1)
    )
    assert cat.details["effect"]["method"] == "psi"
    with pytest.raises(ValueError, match="min_effect"):
        ColumnPolicy("x", "numeric", min_effect=-1.0)


def test_drift_settings_validate_the_new_keys():
    settings = DriftSettings(threshold="calibrated", false_alarms="2 per 1 week", multiple_testing="bh", min_effect=0.1)
    assert settings.false_alarm_budget == FalseAlarms(2.0, timedelta(days=7))
    assert DriftSettings().false_alarm_budget == FalseAlarms(1.0, timedelta(days=30))
    assert DriftSettings().multiple_testing == "none" and DriftSettings().threshold == "auto"  # defaults unchanged
    for bad, key in [
        ({"false_alarms": "often"}, "false_alarms"),
        ({"false_alarms": "0 per 30 days"}, "false_alarms"),
        ({"multiple_testing": "bonferroni"}, "multiple_testing"),
        ({"min_effect": -0.1}, "min_effect"),
        ({"threshold": "calibrate"}, "threshold"),
    ]:
        with pytest.raises(ValidationError, match=key):
            DriftSettings(**bad)


def test_a_calibrated_monitor_fits_its_thresholds_into_the_baseline_and_reports_its_reference():
    """A reference ordered by a cycle: the fixed threshold flags its own windows, the calibrated one does not."""
    rng = np.random.default_rng(11)
    n, cycle = 12_000, 3_000
    phase = 2 * np.pi * (np.arange(n) % cycle) / cycle
    cyclic = (np.sin(phase) + rng.normal(0.0, 0.5, n)).astype(object)
    plain = rng.normal(size=n).astype(object)
    model = ModelConfig(task="binary", features={"cyclic": "numeric", "plain": "numeric"})

    def monitor(**drift) -> MonitorConfig:
        return MonitorConfig(model="m", reference={"previous_windows": 1}, min_rows=20, drift=drift)

    reference = Batch(n, {"cyclic": cyclic, "plain": plain})
    calibrated = monitor(threshold="calibrated", multiple_testing="holm")
    # 12,000 rows over 12 hours: hourly windows of 1,000 rows.
    baseline = fit_baseline(model, calibrated, reference, reference_seconds=12 * 3600)
    baseline = Baseline.from_bytes(baseline.to_bytes())
    assert baseline.calibration["cyclic"].source == "consecutive"
    assert baseline.calibration["plain"].source == "resampled"
    assert "the reference flags" in baseline.notes["calibration.cyclic"]
    fixed = monitor()
    fixed_baseline = fit_baseline(model, fixed, reference, reference_seconds=12 * 3600)
    flagged = {"fixed": 0, "calibrated": 0}
    for i in range(0, n, 1000):
        window = Batch(1000, {"cyclic": cyclic[i : i + 1000], "plain": plain[i : i + 1000]})
        for name, (mon, base) in {"fixed": (fixed, fixed_baseline), "calibrated": (calibrated, baseline)}.items():
            scores = evaluate(model, mon, base, window, window_seconds=3600).scores
            cyc = next(s for s in scores if s.feature == "cyclic")
            flagged[name] += bool(cyc.breached)
            if name == "calibrated":
                assert cyc.details["calibrated"]["source"] == "consecutive"
                assert "of its own" in cyc.details["calibrated"]["reference_flags"]
                share = next(s for s in scores if s.method == "share_drifted")
                assert share.details["multiple_testing"] == "holm"
    assert flagged["fixed"] >= 10 and flagged["calibrated"] <= 1
