"""Calibrated drift thresholds: the (1 − α) quantile of a test's statistic when nothing drifted.

A fixed threshold ignores how noisy a statistic is at a window's size (a distance on 50 rows is
mostly noise; a p-value on a million rows flags shifts too small to matter) and how much the
reference varies along its own rows. :func:`calibrate_column` estimates the statistic's
distribution under no drift for one column, one test and a few window sizes, two ways:

* **resampled**: a bootstrap reference (the reference's size) and a bootstrap window (the window's
  size), both drawn with replacement from the reference, compared with the test — right when the
  reference is well mixed. ``pseudo_references`` bootstrap references are each paired with
  ``draws // pseudo_references`` windows, so the reference's own noise is sampled too.
* **consecutive**: the reference split, in its row order, into consecutive windows of that size,
  each compared with the whole reference — what a structured reference (rows ordered by region, a
  weekly cycle, batches) needs; the idea of NannyML's thresholds from reference chunks.

The data chooses: at the monitor's own window size, a one-sided Mann–Whitney test asks whether the
consecutive windows' statistics are larger than the resampled ones (p < ``STRUCTURE_P``); if so
the reference is *structured* and the consecutive windows set the threshold at every size where
there are at least ``MIN_CONSECUTIVE`` of them.

Statistics are compared on one scale where larger means more drift: a distance as it is, a
p-value as ``-log10(p)``. The threshold is the empirical (1 − α) quantile of the null sample when
it has at least ``MIN_TAIL`` values beyond it, otherwise the quantile of an exponential tail fitted
to the sample's largest tenth (peaks over a threshold; the budget's α is usually far smaller than
1/draws). The exponential tail is exact for ``-log10 p`` of a continuous test under no drift and
conservative for the distances, whose tails fall faster (Gaussian-like). Between calibrated sizes
the threshold is interpolated in log size; outside them the nearest size is used.

Each calibration also reports on the reference itself: how many of its own consecutive windows
(of the monitor's size) it flags — a reference that flags many of its own windows carries little
signal.

>>> rng = np.random.default_rng(0)
>>> cal = calibrate_column("x", rng.normal(size=5000), "numeric", "wasserstein", [500], alpha=0.01, rng=rng)
>>> cal.source, 0.05 < cal.threshold(500) < 0.2
('resampled', True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from detectors.profile import ColumnProfile, make_sample, profile_column
from detectors.stattests import InsufficientDataError, auto_method, get_stattest
from detectors.types import ColumnKind
from monitor.methods import AUTO

Source = Literal["resampled", "consecutive"]

DRAWS = 200
PSEUDO_REFERENCES = 20
MIN_TAIL = 5
MIN_CONSECUTIVE = 5
STRUCTURE_P = 0.01
# p-values are clipped here before -log10: a p of exactly 0 would be an infinite statistic.
P_FLOOR = 1e-300
# Floor of a threshold before its log, for interpolating between sizes.
LOG_FLOOR = 1e-12
# Values of the null sample that the exponential tail is fitted to (at least; a tenth of a larger sample).
TAIL_POINTS = 20


def to_scale(value: float, is_p_value: bool) -> float:
    """A test's value on the calibration scale (larger = more drift)."""
    return -math.log10(max(value, P_FLOOR)) if is_p_value else value


def from_scale(t: float, is_p_value: bool) -> float:
    """Back from the calibration scale to the test's own units."""
    return 10.0 ** (-t) if is_p_value else t


@dataclass(frozen=True, slots=True)
class NullSample:
    """The statistic (calibration scale) under no drift at one window size."""

    size: int
    values: np.ndarray  # sorted

    def threshold(self, alpha: float) -> float:
        """The (1 − α) quantile: empirical with enough values beyond it, else the exponential tail's."""
        if self.values.size * alpha >= MIN_TAIL:
            return float(np.quantile(self.values, 1.0 - alpha))
        start, share, scale = self._tail()
        return start + scale * math.log(share / alpha)

    def tail_probability(self, t: float) -> float:
        """P(statistic ≥ t) under no drift, by the same rule as :meth:`threshold`."""
        beyond = int(self.values.size - np.searchsorted(self.values, t, side="left"))
        if beyond >= MIN_TAIL:
            return beyond / self.values.size
        start, share, scale = self._tail()
        return share * math.exp(-max(t - start, 0.0) / scale)

    def _tail(self) -> tuple[float, float, float]:
        """Where the tail starts, the share of the sample beyond it and the mean excess over it."""
        k = min(max(TAIL_POINTS, self.values.size // 10), self.values.size - 1)
        start = float(self.values[-k - 1])
        excess = float(np.mean(self.values[-k:] - start))
        return start, k / self.values.size, max(excess, 1e-12)


@dataclass(frozen=True, slots=True)
class ColumnCalibration:
    """One column's calibrated threshold for one test, at the sizes it was fitted for."""

    column: str
    method: str
    is_p_value: bool
    alpha: float
    source: Source
    samples: tuple[NullSample, ...]  # by increasing size
    structure_p: float | None  # Mann–Whitney p of "consecutive > resampled"; None: too few windows
    self_flagged: int  # the reference's own consecutive windows (monitor's size) that breach
    self_windows: int

    def threshold(self, n: int) -> float:
        """The threshold, in the test's own units, for a window of ``n`` non-missing values."""
        return from_scale(self._interpolate(n, lambda s: s.threshold(self.alpha), log=True), self.is_p_value)

    def tail_probability(self, value: float, n: int) -> float:
        """P(a window of ``n`` values shows ``value`` or worse) when nothing drifted."""
        t = to_scale(value, self.is_p_value)
        return min(max(self._interpolate(n, lambda s: s.tail_probability(t), log=False), 0.0), 1.0)

    def breached(self, value: float, n: int) -> bool:
        return to_scale(value, self.is_p_value) > to_scale(self.threshold(n), self.is_p_value)

    def summary(self) -> str:
        """What a user reads in the baseline notes."""
        how = "consecutive reference windows (structured reference)" if self.source == "consecutive" else "resampling"
        return (
            f"{self.method} calibrated by {how} at α={self.alpha:.2g}; "
            f"the reference flags {self.self_flagged} of its own {self.self_windows} windows"
        )

    def _interpolate(self, n: int, at: Any, *, log: bool) -> float:
        sizes = [s.size for s in self.samples]
        i = int(np.searchsorted(sizes, n))
        if i == 0 or n >= sizes[-1]:
            return float(at(self.samples[0 if i == 0 else -1]))
        lo, hi = self.samples[i - 1], self.samples[i]
        w = (math.log(n) - math.log(lo.size)) / (math.log(hi.size) - math.log(lo.size))
        a, b = float(at(lo)), float(at(hi))
        if log:
            a, b = math.log(max(a, LOG_FLOOR)), math.log(max(b, LOG_FLOOR))
            return math.exp(a + w * (b - a))
        return a + w * (b - a)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "method": self.method,
            "is_p_value": self.is_p_value,
            "alpha": self.alpha,
            "source": self.source,
            "samples": [{"size": s.size, "values": s.values.tolist()} for s in self.samples],
            "structure_p": self.structure_p,
            "self_flagged": self.self_flagged,
            "self_windows": self.self_windows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnCalibration:
        samples = tuple(NullSample(int(s["size"]), np.asarray(s["values"], dtype=np.float64)) for s in data["samples"])
        return cls(
            column=data["column"],
            method=data["method"],
            is_p_value=data["is_p_value"],
            alpha=data["alpha"],
            source=data["source"],
            samples=samples,
            structure_p=data["structure_p"],
            self_flagged=data["self_flagged"],
            self_windows=data["self_windows"],
        )


def _statistics(
    method: str, reference: ColumnProfile, kind: ColumnKind, windows: Sequence[np.ndarray], name: str
) -> np.ndarray:
    test = get_stattest(method)
    out = []
    with np.errstate(all="ignore"):
        for window in windows:
            try:
                value = test.compute(reference, make_sample(kind, window, name))
            except InsufficientDataError:
                continue
            if math.isfinite(value):
                out.append(to_scale(value, test.is_p_value))
    return np.sort(np.asarray(out, dtype=np.float64))


def _consecutive(values: np.ndarray, size: int) -> list[np.ndarray]:
    return [values[i * size : (i + 1) * size] for i in range(values.size // size)]


def calibrate_column(
    name: str,
    values: np.ndarray,
    kind: ColumnKind,
    method: str,
    sizes: Sequence[int],
    *,
    alpha: float,
    rng: np.random.Generator,
    own_size: int | None = None,
    draws: int = DRAWS,
    pseudo_references: int = PSEUDO_REFERENCES,
) -> ColumnCalibration:
    """Calibrate ``method`` on one reference column (``values`` in the reference's row order) for
    windows of ``sizes`` rows; ``own_size`` (default: the middle size) is the monitor's window, where
    the structure test and the report on the reference's own windows are made. ``method`` may be
    ``auto``: the test ``auto`` picks for this reference."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    values = np.asarray(values)
    reference = profile_column(name, values, kind)
    if method == AUTO:
        method = auto_method(reference, make_sample(kind, values, name))
    test = get_stattest(method)
    sizes = sorted({max(int(s), 2) for s in sizes})
    own = own_size if own_size is not None else sizes[len(sizes) // 2]
    if own not in sizes:
        sizes = sorted({*sizes, own})
    per_reference = max(draws // pseudo_references, 1)
    boots = [
        profile_column(name, values[rng.integers(0, values.size, values.size)], kind) for _ in range(pseudo_references)
    ]
    resampled: dict[int, np.ndarray] = {}
    consecutive: dict[int, np.ndarray] = {}
    for size in sizes:
        parts = [
            _statistics(
                method, boot, kind, [values[rng.integers(0, values.size, size)] for _ in range(per_reference)], name
            )
            for boot in boots
        ]
        resampled[size] = np.sort(np.concatenate(parts))
        consecutive[size] = _statistics(method, reference, kind, _consecutive(values, size), name)
    structure_p = None
    if consecutive[own].size >= MIN_CONSECUTIVE and resampled[own].size:
        from scipy import stats  # lazily: SciPy is slow to import (stattests.py)

        structure_p = float(stats.mannwhitneyu(consecutive[own], resampled[own], alternative="greater").pvalue)
    structured = structure_p is not None and structure_p < STRUCTURE_P
    samples = tuple(
        NullSample(
            size, consecutive[size] if structured and consecutive[size].size >= MIN_CONSECUTIVE else resampled[size]
        )
        for size in sizes
        if resampled[size].size
    )
    if not samples:
        raise InsufficientDataError(f"column {name!r}: {method} is undefined on every resampled window")
    own_sample = next(s for s in samples if s.size == own) if any(s.size == own for s in samples) else samples[-1]
    cut = own_sample.threshold(alpha)
    return ColumnCalibration(
        column=name,
        method=method,
        is_p_value=test.is_p_value,
        alpha=alpha,
        source="consecutive" if structured else "resampled",
        samples=samples,
        structure_p=structure_p,
        self_flagged=int(np.count_nonzero(consecutive[own] > cut)),
        self_windows=int(consecutive[own].size),
    )


def alpha_per_feature(false_alarms: float, per_seconds: float, window_seconds: float, n_features: int) -> float:
    """α of one feature-window from a budget of ``false_alarms`` dataset-windows per ``per_seconds``.

    α_window = false_alarms × window_seconds / per_seconds (the expected share of windows that may
    raise a false alarm), split evenly over the features (Bonferroni): α = α_window / n_features.
    """
    windows = per_seconds / window_seconds
    alpha_window = min(false_alarms / windows, 0.5)
    return alpha_window / max(n_features, 1)
