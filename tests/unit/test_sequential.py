"""Slow drift (detectors/sequential.py): CUSUM against its closed form and its known ARL₀, Page–Hinkley
value for value against river, inputs ~N(0, 1) under no drift, and a gradual shift no window shows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from river import drift as river_drift
from scipy import stats

from alerts.rules import RuleError, compile_rules
from detectors.profile import profile_column
from detectors.sequential import (
    SlowDriftParams,
    category_tail,
    cusum,
    page_hinkley,
    slow_drift_score,
    window_input,
)
from monitor.config import ConfigError, parse_config


def _cusum_closed_form(z: np.ndarray, k: float, h: float, reset: bool) -> tuple[np.ndarray, np.ndarray]:
    """Upper CUSUM as a partial sum less its running minimum (with 0): Cₜ = Sₜ − min(0, min_{j≤t} Sⱼ),
    Sₜ = Σ (zᵢ − k); with reset, the same on each segment after an alarm."""
    out, alarms, start = np.zeros(z.size), np.zeros(z.size, dtype=bool), 0
    while start < z.size:
        partial = np.cumsum(z[start:] - k)
        stat = partial - np.minimum(np.minimum.accumulate(partial), 0.0)
        out[start:] = stat
        above = np.flatnonzero(stat > h)
        if not reset or above.size == 0:
            alarms[start:] = stat > h
            break
        alarms[start + above[0]] = True
        start += above[0] + 1
    return out, alarms


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("reset", [True, False])
def test_cusum_equals_its_closed_form(seed: int, reset: bool) -> None:
    z = np.random.default_rng(seed).normal(0.3, 1.0, 2000)
    one = cusum(z, k=0.5, h=4.0, two_sided=False, reset=reset)
    upper, alarms = _cusum_closed_form(z, 0.5, 4.0, reset)
    np.testing.assert_allclose(one.upper, upper, rtol=1e-12, atol=1e-9)
    assert (one.alarm == alarms).all() and alarms.sum() > 3
    assert not one.lower.any()
    if not reset:  # two-sided: the lower side is the upper CUSUM of −z
        both = cusum(z, k=0.5, h=4.0, two_sided=True, reset=False)
        np.testing.assert_allclose(both.lower, _cusum_closed_form(-z, 0.5, 4.0, False)[0], rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(("h", "arl0"), [(4.0, 168.0), (5.0, 465.0)])
def test_cusum_average_run_length_without_drift_is_montgomerys(h: float, arl0: float) -> None:
    """Montgomery, Introduction to Statistical Quality Control, Table 9.3 (two-sided, k = 0.5). With
    reset, the runs between alarms of one long N(0, 1) stream are independent run lengths."""
    n = int(arl0 * 2500)  # ≈ 2,500 runs: the mean's standard error is 2 % of ARL₀
    alarms = np.flatnonzero(cusum(np.random.default_rng(7).normal(size=n), k=0.5, h=h).alarm)
    runs = np.diff(np.r_[-1, alarms])
    assert abs(runs.mean() / arl0 - 1) < 0.05, runs.mean()


@pytest.mark.parametrize(
    ("mode", "delta", "threshold", "alpha", "min_instances"),
    [("both", 0.005, 20.0, 1.0, 30), ("up", 0.1, 10.0, 0.999, 5), ("both", 0.5, 5.0, 1 - 1e-4, 10)],
)
def test_page_hinkley_equals_river(mode: str, delta: float, threshold: float, alpha: float, min_instances: int) -> None:
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(size=400), rng.normal(0.6, 1.0, 400), rng.normal(-0.4, 2.0, 400)]
    reference = river_drift.PageHinkley(
        min_instances=min_instances, delta=delta, threshold=threshold, alpha=alpha, mode=mode
    )
    up, down, alarm = [], [], []
    for value in x:
        reference.update(float(value))
        up.append(reference._sum_increase - reference._min_increase)
        down.append(reference._max_decrease - reference._sum_decrease)
        alarm.append(reference.drift_detected)
    ours = page_hinkley(
        x, delta=delta, threshold=threshold, alpha=alpha, min_instances=min_instances, two_sided=mode == "both"
    )
    np.testing.assert_allclose(ours.upper, up, rtol=1e-9, atol=1e-9)
    if mode == "both":
        np.testing.assert_allclose(ours.lower, down, rtol=1e-9, atol=1e-9)
    assert ours.alarm.tolist() == alarm and sum(alarm) >= 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cusum([0.0, math.nan]), "non-finite value at position 1"),
        (lambda: cusum([0.0], k=-1), "k .the allowance."),
        (lambda: cusum([0.0], h=0), "h .the decision threshold."),
        (lambda: page_hinkley([0.0], alpha=0), "alpha"),
        (lambda: cusum(np.zeros((2, 2))), "1-D series"),
    ],
)
def test_bad_inputs_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def _null_inputs(kind: str, rng: np.random.Generator, windows: int, n: int) -> np.ndarray:
    if kind == "numeric":  # skewed: the mean's z is normal by the central limit theorem, not by the data
        draw = lambda size: rng.lognormal(0.0, 0.8, size)  # noqa: E731
    else:  # rare categories: cells pooled before χ²
        cats, p = np.array(["a", "b", "c", "d", "e"]), np.array([0.6, 0.3, 0.08, 0.015, 0.005])
        draw = lambda size: rng.choice(cats, size, p=p).astype(object)  # noqa: E731
    profile = profile_column("x", draw(20_000), kind)  # type: ignore[arg-type]
    out = [window_input(profile, draw(n), None, 30)[0] for _ in range(windows)]
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
@pytest.mark.parametrize("n", [100, 2000])
def test_inputs_are_standard_normal_without_drift(kind: str, n: int) -> None:
    z = _null_inputs(kind, np.random.default_rng(11), 1500, n)
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.1, (z.mean(), z.std())
    assert stats.kstest(z, "norm").pvalue > 0.001


def test_category_tail_is_pearsons_chisquare_without_rare_cells() -> None:
    ref_cats, ref_counts = np.array(["a", "b", "c"]), np.array([5_000_000, 3_000_000, 2_000_000])
    counts = np.array([520, 290, 190])
    expected = stats.chisquare(counts, 1000 * ref_counts / ref_counts.sum()).pvalue
    assert category_tail(ref_cats, ref_counts, ref_cats, counts) == pytest.approx(expected, rel=1e-3)
    # A category the reference never showed is drift, not an error.
    unseen = category_tail(ref_cats, ref_counts, np.array(["a", "b", "c", "zz"]), np.array([500, 300, 150, 50]))
    assert unseen < 1e-10


def test_a_gradual_shift_no_window_flags_is_raised_by_cusum() -> None:
    """The mean moves 0.005 sd per window up to 0.1 sd (windows of 200 rows): each window's own z test,
    at the same false-alarm rate as the CUSUM (two-sided α = 1/465), stays quiet; the CUSUM raises."""
    rng = np.random.default_rng(0)
    reference = profile_column("x", rng.normal(size=20_000), "numeric")
    shift = np.minimum(np.arange(60) * 0.005, 0.1)
    z = np.array([window_input(reference, rng.normal(s, 1.0, 200), None, 30)[0] for s in shift], dtype=np.float64)
    raised = int(np.argmax(cusum(z, k=0.5, h=5.0).alarm))
    assert cusum(z, k=0.5, h=5.0).alarm.any() and raised < 45
    per_window = stats.norm.isf(1 / 465 / 2)
    assert not (np.abs(z[: raised + 1]) > per_window).any()


def test_cusum_detects_faster_than_a_per_window_test_at_the_same_false_alarm_rate() -> None:
    """Over 200 streams of the same gradual shift: the CUSUM's median windows to detection is far below the
    per-window test's, and the null stream of the same length raises neither often."""
    rng = np.random.default_rng(5)
    shift_z = np.minimum(np.arange(150) * 0.005, 0.1) * math.sqrt(200)  # the mean of each window's z
    cusum_at, window_at = [], []
    for _ in range(200):
        z = rng.normal(shift_z, 1.0)
        cusum_at.append(int(np.argmax(a)) if (a := cusum(z, k=0.5, h=5.0).alarm).any() else 150)
        hits = np.abs(z) > stats.norm.isf(1 / 465 / 2)
        window_at.append(int(np.argmax(hits)) if hits.any() else 150)
    assert np.median(cusum_at) < 0.6 * np.median(window_at), (np.median(cusum_at), np.median(window_at))
    assert np.quantile(cusum_at, 0.95) < 60


def test_a_null_stream_raises_no_alarm_at_a_threshold_chosen_for_its_length() -> None:
    """1,000 windows of real inputs (a skewed column) at h = 8 (ARL₀ ≈ 9,500 windows by Siegmund's
    approximation): no alarm."""
    z = _null_inputs("numeric", np.random.default_rng(2), 1000, 300)
    result = cusum(z, k=0.5, h=8.0)
    assert not result.alarm.any() and result.statistic.max() > 2  # it moved, and stayed below h


def test_slow_drift_score_is_a_function_of_its_history() -> None:
    params = SlowDriftParams(threshold=3.5)
    history = [0.2, 1.4, 1.1, 1.6, 0.9]
    first = slow_drift_score("x", params, history, 1.5, "mean_z")
    assert first == slow_drift_score("x", params, list(history), 1.5, "mean_z")  # recomputed: the same score
    assert first.breached and first.value == pytest.approx(0.9 + 0.6 + 1.1 + 0.4 + 1.0)
    assert (first.threshold, first.details["direction"], first.details["input"]) == (3.5, "up", 1.5)
    # A category's input has no direction: one-sided, a negative input only lowers the statistic.
    one_sided = slow_drift_score("c", params, [-3.0] * 5, -3.0, "chisquare_tail_z")
    assert one_sided.value == 0.0 and not one_sided.breached
    missing = slow_drift_score("x", params, history, None, "column 'x': 3 non-missing values (need 30)")
    assert missing.status == "insufficient_data" and "need 30" in (missing.reason or "")
    ph = slow_drift_score("x", SlowDriftParams("page_hinkley", 0.1, 2.0, min_windows=3), [0.0] * 20, 4.0, "mean_z")
    assert ph.method == "page_hinkley" and ph.breached


def _config(slow_drift: object, rules: list[dict[str, object]] | None = None) -> object:
    return parse_config(
        {
            "models": {"churn": {"task": "binary", "features": {"tenure": "numeric"}}},
            "monitors": {
                "m": {"model": "churn", "reference": {"previous_windows": 3}, "drift": {"slow_drift": slow_drift}}
            },
            "alerts": {"rules": rules or []},
        },
        env={},
    )


def test_slow_drift_config_is_validated_at_load_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        _config({"method": "cusm", "threshold": 0, "lookback": 0})
    text = str(caught.value)
    for path in ("slow_drift.method", "slow_drift.threshold", "slow_drift.lookback"):
        assert f"monitors.m.drift.{path}" in text, text


def test_an_alert_rule_targets_the_slow_drift_score() -> None:
    compile_rules(_config({"method": "cusum"}, [{"name": "slow", "when": "drift.cusum.breached"}]))  # type: ignore[arg-type]
    with pytest.raises(RuleError, match=r"drift\.slow_drift\.method"):
        compile_rules(_config(None, [{"name": "slow", "when": "drift.cusum > threshold"}]))  # type: ignore[arg-type]


def test_the_module_docstring_example_runs() -> None:
    import doctest

    import detectors.sequential

    result = doctest.testmod(detectors.sequential)
    assert result.attempted > 0 and result.failed == 0
