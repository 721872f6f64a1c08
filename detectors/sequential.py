"""Slow drift: sequential detectors over per-window statistics.

A per-window test asks whether *this* window differs from the reference; a shift of 0.1 standard
deviation per window stays under every window's threshold for a long time. A sequential detector
accumulates the small evidence each window brings and raises once the sum is too large for chance.

**Input** (:func:`window_input`): one number per window and column, built so that it is about
N(0, 1) when nothing drifted, whatever the window's size — the detectors' parameters then mean the
same thing for every column and every monitor:

* numeric columns: the signed z of the window's mean against the reference's,
  ``(mean_w − mean_ref) / (sd_ref · √(1/n + 1/N))``. Under no drift, by the central limit theorem,
  it is N(0, 1) at the window's size n (the reference's own N adds its sampling noise); its sign
  says in which direction the column moves, so a two-sided CUSUM sees both.
* categorical columns: ``Φ⁻¹(1 − p)`` of a tail probability ``p`` of the window under no drift,
  which is uniform under no drift, so the input is N(0, 1). ``p`` is the calibrated tail
  probability of the column's drift statistic when the monitor calibrates thresholds (the null
  estimated at the window's own size, so right for rare categories and structured references,
  :mod:`detectors.calibration`); otherwise Pearson's χ² of the window's counts against the
  reference's shares, with the cells expected to hold fewer than ``MIN_EXPECTED`` rows (and unseen
  categories) pooled, and the statistic divided by ``1 + n/N`` for the reference's own noise. A
  distance has no direction, so only increases are tracked (one-sided).

**Detectors** (numpy in, numpy out):

* :func:`cusum` — the tabular CUSUM (Page 1954; Montgomery, *Introduction to Statistical Quality
  Control*, 7th ed., §9.1): ``C⁺ₜ = max(0, C⁺ₜ₋₁ + zₜ − k)``, ``C⁻ₜ = max(0, C⁻ₜ₋₁ − zₜ − k)``; an
  alarm when either exceeds ``h``. ``k`` (the allowance) is half the shift, in standard
  deviations, the scheme is tuned to detect fastest; ``h`` sets the false alarm rate: with
  ``k = 0.5``, ``h = 4`` gives an average run length under no drift (ARL₀) of about 168 windows,
  ``h = 5`` about 465 (Montgomery, Table 9.3).
* :func:`page_hinkley` — the Page–Hinkley test (Page 1954; Hinkley 1971) as river's
  ``drift.PageHinkley``: the cumulative deviation from the series' own running mean, less
  ``delta``, against its running minimum (and the mirror for decreases), an alarm above
  ``threshold`` once ``min_instances`` values were seen. It needs no reference mean, so it detects
  a change *within* the monitored period.

``reset=True`` (the textbook scheme) restarts the statistics after an alarm: a persisting shift
alarms again every few windows rather than staying raised. The detectors are deterministic
functions of the series: the scheduler recomputes a window's statistic from the stored inputs of
the monitor's previous windows (:func:`slow_drift_score`), never from state kept in memory.

>>> z = np.r_[np.zeros(5), np.full(10, 1.0)]   # a 1 sd shift from window 5 on
>>> result = cusum(z, k=0.5, h=4.0)
>>> int(np.argmax(result.alarm)), result.upper[:12].tolist()
(13, [0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from detectors.profile import ColumnProfile, make_sample
from detectors.types import Score

SequentialMethod = Literal["cusum", "page_hinkley"]
# Cells expected to hold fewer rows than this are pooled before χ² (its usual validity rule).
MIN_EXPECTED = 5.0
# Tail probabilities are clipped here before Φ⁻¹: one window then adds at most ≈ 7 to a statistic.
P_FLOOR = 1e-12


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """A detector's statistics after each value: ``upper`` tracks increases, ``lower`` decreases
    (zeros when one-sided), ``alarm`` whether the step raised."""

    upper: np.ndarray
    lower: np.ndarray
    alarm: np.ndarray

    @property
    def statistic(self) -> np.ndarray:
        """The larger of the two sides, the value compared with the threshold."""
        return np.maximum(self.upper, self.lower)


def _series(values: Sequence[float] | np.ndarray) -> np.ndarray:
    series = np.asarray(values, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"expected a 1-D series of per-window values, got shape {series.shape}")
    if not np.isfinite(series).all():
        raise ValueError(f"the series holds a non-finite value at position {int(np.argmin(np.isfinite(series)))}")
    return series


def cusum(
    values: Sequence[float] | np.ndarray,
    *,
    k: float = 0.5,
    h: float = 5.0,
    two_sided: bool = True,
    reset: bool = True,
) -> SequentialResult:
    """The tabular CUSUM of standardized values (mean 0, sd 1 under no drift); see the module docstring."""
    if not (math.isfinite(k) and k >= 0):
        raise ValueError(f"k (the allowance) must be a finite number >= 0, got {k!r}")
    if not (math.isfinite(h) and h > 0):
        raise ValueError(f"h (the decision threshold) must be a finite number > 0, got {h!r}")
    z = _series(values)
    upper, lower, alarm = np.zeros(z.size), np.zeros(z.size), np.zeros(z.size, dtype=bool)
    hi = lo = 0.0
    for i, x in enumerate(z.tolist()):
        hi = max(0.0, hi + x - k)
        lo = max(0.0, lo - x - k) if two_sided else 0.0
        upper[i], lower[i] = hi, lo
        alarm[i] = hi > h or lo > h
        if alarm[i] and reset:
            hi = lo = 0.0
    return SequentialResult(upper, lower, alarm)


def page_hinkley(
    values: Sequence[float] | np.ndarray,
    *,
    delta: float = 0.005,
    threshold: float = 50.0,
    alpha: float = 1 - 0.0001,
    min_instances: int = 30,
    two_sided: bool = True,
    reset: bool = True,
) -> SequentialResult:
    """The Page–Hinkley test with river's parameters (``alpha`` is the forgetting factor of the
    cumulative sums); see the module docstring."""
    if not (math.isfinite(delta) and delta >= 0):
        raise ValueError(f"delta must be a finite number >= 0, got {delta!r}")
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a finite number > 0, got {threshold!r}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha (the forgetting factor) must be in (0, 1], got {alpha!r}")
    x = _series(values)
    upper, lower, alarm = np.zeros(x.size), np.zeros(x.size), np.zeros(x.size, dtype=bool)
    n, mean, up, down, min_up, max_down = 0, 0.0, 0.0, 0.0, math.inf, -math.inf
    for i, value in enumerate(x.tolist()):
        n += 1
        mean += (value - mean) / n
        deviation = value - mean
        up = alpha * up + deviation - delta
        down = alpha * down + deviation + delta
        min_up, max_down = min(min_up, up), max(max_down, down)
        upper[i] = up - min_up
        lower[i] = max_down - down if two_sided else 0.0
        alarm[i] = n >= min_instances and (upper[i] > threshold or lower[i] > threshold)
        if alarm[i] and reset:
            n, mean, up, down, min_up, max_down = 0, 0.0, 0.0, 0.0, math.inf, -math.inf
    return SequentialResult(upper, lower, alarm)


# ------------------------------------------------------------------------------------------ inputs


def mean_shift_z(reference: np.ndarray, window: np.ndarray) -> float:
    """Signed z of the window's mean against the reference's (both finite values); NaN when undefined."""
    n, big_n = window.size, reference.size
    if n == 0 or big_n < 2:
        return math.nan
    sd = float(np.std(reference, ddof=1))
    if not sd > 0:
        return math.nan
    return float((np.mean(window) - np.mean(reference)) / (sd * math.sqrt(1.0 / n + 1.0 / big_n)))


def category_tail(
    ref_categories: np.ndarray, ref_counts: np.ndarray, categories: np.ndarray, counts: np.ndarray
) -> float:
    """P-value of Pearson's χ² of the window's category counts against the reference's shares, rare
    cells (and unseen categories) pooled, corrected for the reference's own noise; NaN when undefined."""
    n, big_n = int(counts.sum()), int(ref_counts.sum())
    if n == 0 or big_n == 0:
        return math.nan
    shares = ref_counts / big_n
    observed = np.zeros(ref_categories.size)
    position = np.searchsorted(ref_categories, categories)
    seen = (position < ref_categories.size) & (
        ref_categories[np.minimum(position, ref_categories.size - 1)] == categories
    )
    np.add.at(observed, position[seen], counts[seen])
    expected = n * shares
    kept = expected >= MIN_EXPECTED
    pooled_expected = float(expected[~kept].sum())
    pooled_observed = float(observed[~kept].sum() + counts[~seen].sum())
    o, e = observed[kept], expected[kept]
    if pooled_observed > 0 or pooled_expected > 0:
        # A category the reference never showed has an expected count of at most about half a row.
        o, e = np.r_[o, pooled_observed], np.r_[e, max(pooled_expected, n * 0.5 / big_n)]
    if o.size < 2:
        return math.nan
    statistic = float(np.sum((o - e) ** 2 / e)) / (1.0 + n / big_n)
    from scipy import stats  # lazily: SciPy is slow to import (stattests.py)

    return float(stats.chi2.sf(statistic, o.size - 1))


def tail_z(p: float) -> float:
    """``Φ⁻¹(1 − p)``: a tail probability as a standard normal value (p clipped to ``P_FLOOR``)."""
    from scipy import stats

    return float(stats.norm.isf(min(max(p, P_FLOOR), 1.0)))


def window_input(
    profile: ColumnProfile, values: np.ndarray, drift: Score | None, min_samples: int
) -> tuple[float | None, str]:
    """One window's input to the slow-drift detector for one column: ``(value, how)`` — or
    ``(None, why not)`` when the window cannot give one. ``drift`` is the column's per-window drift
    score (its calibrated tail probability is used for categories when there is one)."""
    sample = make_sample(profile.kind, values, profile.name)
    if sample.n < min_samples or profile.n < min_samples:
        return None, f"column {profile.name!r}: {min(sample.n, profile.n)} non-missing values (need {min_samples})"
    if profile.kind == "numeric":
        z = mean_shift_z(profile.values, sample.numeric)
        if not math.isfinite(z):
            return None, f"column {profile.name!r}: the reference is constant, a mean shift has no scale"
        return z, "mean_z"
    calibrated = (drift.details.get("calibrated", {}) if drift is not None and drift.status == "ok" else {}).get(
        "tail_probability"
    )
    if calibrated is not None:
        return tail_z(float(calibrated)), "calibrated_tail_z"
    keys, counts = sample.counts()
    p = category_tail(profile.categories, profile.counts, keys, counts)
    if not math.isfinite(p):
        return None, f"column {profile.name!r}: fewer than two categories to compare"
    return tail_z(p), "chisquare_tail_z"


@dataclass(frozen=True, slots=True)
class SlowDriftParams:
    """A monitor's slow-drift settings: ``allowance`` is CUSUM's k or Page–Hinkley's delta and
    ``threshold`` CUSUM's h or Page–Hinkley's λ; ``min_windows`` is Page–Hinkley's min_instances."""

    method: SequentialMethod = "cusum"
    allowance: float = 0.5
    threshold: float = 5.0
    reset: bool = True
    min_windows: int = 10


def slow_drift_score(
    feature: str, params: SlowDriftParams, history: Sequence[float], current: float | None, how: str
) -> Score:
    """The drift score (method ``params.method``) of one column in one window: the detector run over
    ``history`` (the inputs of the monitor's earlier windows, oldest first) then ``current``.

    ``how`` names the input (``mean_z``, ``chisquare_tail_z``, …), or says why ``current`` is None.
    """
    if current is None:
        return Score.insufficient("drift", params.method, how, feature)
    two_sided = how == "mean_z"
    series = [*history, current]
    if params.method == "cusum":
        result = cusum(series, k=params.allowance, h=params.threshold, two_sided=two_sided, reset=params.reset)
    else:
        result = page_hinkley(
            series,
            delta=params.allowance,
            threshold=params.threshold,
            alpha=1.0,
            min_instances=params.min_windows,
            two_sided=two_sided,
            reset=params.reset,
        )
    upper, lower = float(result.upper[-1]), float(result.lower[-1])
    details: dict[str, Any] = {
        "input": current,
        "input_kind": how,
        "upper": upper,
        "lower": lower,
        "direction": "up" if upper >= lower else "down",
        "windows": len(series),
        "allowance": params.allowance,
        "reset": params.reset,
        "sequential": True,
    }
    return Score(
        "drift", params.method, max(upper, lower), feature, params.threshold, bool(result.alarm[-1]), details=details
    )
