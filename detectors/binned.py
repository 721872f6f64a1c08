"""Drift statistics of a window known only by counts: what push-down mode gets from Elasticsearch.

In push-down mode (docs/detectors.md, "Push-down mode") the worker never sees a window's values:
Elasticsearch aggregates them and returns counts. This module turns those counts into the same
:class:`~detectors.profile.Sample` the drift tests take, so every score goes through
:func:`detectors.drift.column_drift` like a copy-mode window (thresholds, ``auto``, calibration,
``min_effect``, multiple testing).

**Categorical columns are exact.** A ``terms`` aggregation returns every category with its count;
:func:`categorical_sample` builds the same sample :func:`~detectors.profile.make_sample` builds
from the values, so PSI, Jensen–Shannon, χ², Z, Hellinger and the unseen share are equal to
copy mode, value for value. (If a window holds more new categories than the aggregation returns,
the rest is counted in one ``(other)`` category and the sample says it is not exact:
Hellinger, Jensen–Shannon, χ² and the unseen share are unchanged by that folding, PSI is not.)

**Numeric columns are binned** in equal bins ``[k·w, (k+1)·w)`` by a ``histogram`` aggregation
(one pass over the window, where a ``range`` aggregation over quantile edges costs a pass per
range on some servers). The width ``w`` comes from the reference profile (:func:`bin_width`: the
power of two that cuts the reference's range into 1,000 to 2,000 bins; a power of two, so
``floor(x / w)`` is exact and Elasticsearch and the reference put each value in the same bin).
The bins extend beyond the reference's range as far as the window does. The reference side stays
exact (the profile holds all its values); only the window's CDF ``F_c`` is known at the bin edges
alone. :class:`BinnedSample` estimates it by spreading each bin's count evenly over the reference
values in that bin (a window that did not drift gives back the reference's own shape), or at the
bin's middle where the reference has none.

Bounds, with ``m`` the window's non-missing count and ``c_k`` its count in bin ``k``: the true and
the estimated ``F_c`` agree at every bin edge and both are non-decreasing inside a bin, so they
differ by at most ``c_k / m`` inside bin ``k``. Hence

- **KS**: ``|D_est − D| ≤ sup |F_c,est − F_c| ≤ max_k c_k / m``, the window's largest bin share
  (about the density's peak × ``w``: under 0.004 for a normal column). The p-value is SciPy's
  asymptotic one, ``kstwo.sf(D, round(n·m/(n+m)))``, what ``ks_2samp`` uses beyond 10,000 values
  a side; ``[sf(D + b), sf(D − b)]`` holds the asymptotic p-value of the exact ``D``.
- **Wasserstein** (W1, the area between the CDFs): ``|W_est − W| ≤ ∫ |F_c,est − F_c| ≤ Σ_k w · c_k / m = w``,
  one bin width, divided by ``max(std_ref, 0.001)`` like the score (below 0.009 for a normal
  column, where the default threshold is 0.1).

Both bounds are computed per window and reported in the score's ``details["binned"]``;
``tests/unit/test_binned.py`` checks them against the exact tests on random data.

Not available from bins: Anderson–Darling and Cramér–von Mises (they need the window's ranks),
PSI and Jensen–Shannon on numeric columns (copy mode bins them by Sturges' rule over both ranges),
and χ²/Z on numeric columns with few distinct values (declare such a column categorical). Those
scores are ``insufficient_data`` with that reason.

>>> import numpy as np
>>> from detectors.profile import profile_column
>>> ref = profile_column("x", np.arange(1000.0), "numeric")
>>> bin_width(ref)
0.5
>>> sample = BinnedSample.from_values(bin_width(ref), np.arange(1000.0) + 10)
>>> round(sample.statistic("wasserstein", ref), 4), round(sample.wasserstein_bound(ref), 4)
(0.0346, 0.0017)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.profile import ColumnProfile, Sample

# Bins over the reference's range (up to twice as many: the width is a power of two). The
# Wasserstein bound is range / (PUSHDOWN_BINS × std); a window spread far wider than the reference
# returns more buckets (Elasticsearch allows 65,536 per search).
PUSHDOWN_BINS = 1000
# Categories a terms aggregation returns beyond the reference's: a window with more new ones
# folds the rest into OTHER_CATEGORY.
NEW_CATEGORY_LIMIT = 1000
OTHER_CATEGORY = "(other)"
# Bins of the dashboard's histogram (as detectors.drift.HISTOGRAM_BINS), merged from the push-down bins.
_HISTOGRAM_GROUPS = 10


class BinnedError(ValueError):
    """Counts that cannot describe the window (wrong length, negative); the message says which column."""


def bin_width(ref: ColumnProfile, bins: int = PUSHDOWN_BINS) -> float:
    """The width of a numeric column's bins: the power of two that cuts the reference's range into
    ``bins`` to ``2 × bins`` bins (a power of two, so ``floor(x / width)`` is exact in floating point
    and the source and the reference put every value in the same bin)."""
    values = ref.values
    span = float(values[-1] - values[0]) if values.size else 0.0
    if not (math.isfinite(span) and span > 0):
        scale = abs(float(values[0])) if values.size and math.isfinite(values[0]) else 1.0
        span = max(scale, 1.0)  # a constant reference: any width holds it in one bin
    return float(2.0 ** math.floor(math.log2(span / bins)))


def categorical_sample(counts: Mapping[str, int], n_missing: int, *, other: int = 0) -> Sample:
    """The sample :func:`~detectors.profile.make_sample` builds, from category → count (strings).

    ``other``: values in categories the aggregation did not return; counted as one
    :data:`OTHER_CATEGORY` (then only PSI differs from copy mode).
    """
    merged = {str(key): int(count) for key, count in counts.items() if count > 0}
    if other > 0:
        merged[OTHER_CATEGORY] = merged.get(OTHER_CATEGORY, 0) + int(other)
    keys = np.array(sorted(merged), dtype=str)
    values = np.array([merged[k] for k in keys.tolist()], dtype=np.int64)
    return Sample(None, int(n_missing), categories=keys, counts=values)


class BinnedSample(Sample):
    """A numeric window known by its counts in the bins ``[k·width, (k+1)·width)``: ``keys`` are the
    bins' ``k`` (increasing), ``counts`` their counts; ``n_missing`` the window's missing values."""

    __slots__ = ("_support_of", "bin_counts", "keys", "width")

    def __init__(self, width: float, keys: np.ndarray, counts: np.ndarray, n_missing: int, column: str = "") -> None:
        keys = np.asarray(keys, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        if not (math.isfinite(width) and width > 0):
            raise BinnedError(f"column {column!r}: bin width must be a positive number, got {width!r}")
        if keys.shape != counts.shape or keys.ndim != 1:
            raise BinnedError(f"column {column!r}: {counts.size} counts for {keys.size} bins")
        if (counts < 0).any() or n_missing < 0:
            raise BinnedError(f"column {column!r}: negative counts")
        if (np.diff(keys) <= 0).any():
            raise BinnedError(f"column {column!r}: bins must be distinct and in increasing order")
        self.width = float(width)
        self.keys, self.bin_counts = keys, counts
        self._support_of: tuple[ColumnProfile, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        # Sample's own fields: no values (nothing of the window's size is ever held).
        self.values = None
        self.n = int(counts.sum())
        self.n_missing = int(n_missing)
        self.integer = False
        self._categories = self._counts = self._sorted = None

    @classmethod
    def from_values(cls, width: float, values: np.ndarray, column: str = "") -> BinnedSample:
        """Bin raw values as the histogram aggregation does (tests and benchmarks; missing = non-finite)."""
        arr = np.asarray(values, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        keys, counts = np.unique(np.floor(finite / width).astype(np.int64), return_counts=True)
        return cls(width, keys, counts, int(arr.size - finite.size), column)

    # --- Sample's interface -------------------------------------------------------------------

    @property
    def numeric(self) -> np.ndarray:
        raise TypeError("a binned sample has no values")

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        from detectors.stattests import InsufficientDataError

        raise InsufficientDataError(
            "push-down mode knows a numeric column by its bins, not by its distinct values: tests that treat its "
            "values as categories (χ², Z) need copy mode, or declare the column categorical"
        )

    def is_constant_at(self, value: float) -> bool:
        """Never provable from bins (a bin holds a range): a constant window is tested like any other."""
        return False

    # --- the estimated window CDF -------------------------------------------------------------

    def _support(self, ref: ColumnProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points (sorted), the reference's CDF and the window's estimated CDF at each point."""
        if self._support_of is not None and self._support_of[0] is ref:
            return self._support_of[1]
        u = ref.values
        ref_keys = np.floor(u / self.width).astype(np.int64)  # non-decreasing, as u is sorted
        lo = np.searchsorted(ref_keys, self.keys, side="left")
        hi = np.searchsorted(ref_keys, self.keys, side="right")
        held = hi > lo
        # A bin the reference has values in: its count spread evenly over them (the reference's shape)...
        share = np.zeros(u.size + 1, dtype=np.float64)
        per_value = self.bin_counts[held] / (hi[held] - lo[held])
        np.add.at(share, lo[held], per_value)
        np.add.at(share, hi[held], -per_value)
        weights = np.cumsum(share[:-1])
        # ... a bin it has none in: its count at the bin's middle.
        middles = (self.keys[~held] + 0.5) * self.width
        at = np.searchsorted(u, middles, side="left")
        points = np.insert(u, at, middles)
        window = np.insert(weights, at, self.bin_counts[~held].astype(np.float64)) / max(self.n, 1)
        reference = np.insert(np.full(u.size, 1.0 / max(u.size, 1)), at, 0.0)
        result = (points, np.cumsum(reference), np.cumsum(window))
        self._support_of = (ref, result)
        return result

    def ks_statistic(self, ref: ColumnProfile) -> float:
        """D between the reference's exact CDF and the window's estimated one."""
        points, f_ref, f_cur = self._support(ref)
        last_of_ties = np.append(points[1:] != points[:-1], True)  # a CDF's value at a point counts all its ties
        return float(np.max(np.abs(f_ref[last_of_ties] - f_cur[last_of_ties])))

    def ks_bound(self) -> float:
        """The largest share of the window in one bin: ``|D_est − D|`` never exceeds it."""
        return float(self.bin_counts.max(initial=0)) / max(self.n, 1)

    def wasserstein(self, ref: ColumnProfile) -> float:
        """W1 between the reference and the estimated window (not normed)."""
        points, f_ref, f_cur = self._support(ref)
        with np.errstate(all="ignore"):
            return float(np.dot(np.abs(f_ref[:-1] - f_cur[:-1]), np.diff(points)))

    def wasserstein_bound(self, ref: ColumnProfile) -> float:
        """The bin width, normed like the score: ``|W_est − W| ≤ Σ width × share = width``."""
        return self.width / max(ref.std, 0.001)

    def statistic(self, key: str, ref: ColumnProfile) -> float:
        """The drift test ``key`` on this window, from its bins; see the module for what is supported."""
        from detectors.stattests import InsufficientDataError

        if key == "wasserstein":
            if not math.isfinite(ref.std):
                raise InsufficientDataError("values too large: the reference's standard deviation overflows float64")
            return self.wasserstein(ref) / max(ref.std, 0.001)
        if key == "ks":
            return ks_pvalue(self.ks_statistic(ref), ref.n, self.n)
        raise InsufficientDataError(
            f"{key} needs the window's values; push-down mode computes ks and wasserstein on numeric columns "
            "(copy mode computes every test)"
        )

    def details(self, key: str, ref: ColumnProfile) -> dict[str, Any]:
        """What the score's value is made of and how far the exact value can be from it."""
        out: dict[str, Any] = {"bin_width": self.width, "bins": int(self.keys.size), "exact": False}
        if key == "ks":
            statistic, bound = self.ks_statistic(ref), self.ks_bound()
            out.update(
                ks_statistic=statistic,
                ks_statistic_bound=bound,
                p_value_range=[
                    ks_pvalue(statistic + bound, ref.n, self.n),
                    ks_pvalue(max(statistic - bound, 0.0), ref.n, self.n),
                ],
            )
        elif key == "wasserstein":
            out["bound"] = self.wasserstein_bound(ref)
        return out

    def histogram(self, ref: ColumnProfile) -> dict[str, Any]:
        """The dashboard's reference-vs-window shares on about ten bins made of whole bins of both sides."""
        if self.keys.size == 0 or ref.values.size == 0:
            return {}
        ref_keys = np.floor(ref.values / self.width).astype(np.int64)
        first = int(min(self.keys[0], ref_keys[0]))
        last = int(max(self.keys[-1], ref_keys[-1])) + 1
        step = max(1, math.ceil((last - first) / _HISTOGRAM_GROUPS))
        bounds = np.arange(first, last + step, step)
        cur = np.histogram(self.keys, bounds, weights=self.bin_counts)[0]
        reference = np.histogram(ref_keys, bounds)[0]
        return {
            "edges": (bounds * self.width).tolist(),
            "reference": (reference / max(ref.n, 1)).tolist(),
            "current": (cur / max(self.n, 1)).tolist(),
        }


def ks_pvalue(statistic: float, n_reference: int, n_window: int) -> float:
    """SciPy's asymptotic two-sample KS p-value of ``statistic`` (``ks_2samp(method="asymp")``)."""
    effective = n_reference * n_window / (n_reference + n_window)
    from scipy import stats  # lazily: SciPy is slow to import (stattests.py)

    return float(np.clip(stats.kstwo.sf(statistic, np.round(effective)), 0.0, 1.0))
