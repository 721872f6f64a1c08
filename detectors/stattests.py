"""Drift tests: pure functions over a reference :class:`ColumnProfile` and a window's values.

Every test is registered once, by a stable string key, in one registry (the idea of Evidently's
``register_stattest``). The keys, the column kinds a user may choose each for and the names
other tools use for them (aliases: ``chi2``, ``ks_2samp``, ...) are declared in
:mod:`monitor.methods`, which the configuration validates against; a test here can only be
registered under a declared key. A test knows its default threshold and how a value breaches
it; the keys, defaults, comparison directions and formulas follow Evidently 0.7
(``evidently.legacy.calculations.stattests``) so a score can be compared with Evidently's
number for number:

==================  ===========  =========  ===================  ===============================
key                 kinds        default    breached when        value
==================  ===========  =========  ===================  ===============================
ks                  numeric      0.05       value <= threshold   two-sample KS p-value
wasserstein         numeric      0.1        value >= threshold   W1 / max(std(reference), 0.001)
psi                 both         0.1        value >= threshold   population stability index
jensenshannon       both         0.1        value >= threshold   Jensen–Shannon distance (base e)
anderson            numeric      0.1        value < threshold    k-sample Anderson–Darling p
cramer_von_mises    numeric      0.1        value <= threshold   two-sample Cramér–von Mises p
chisquare           categorical  0.05       value < threshold    χ² goodness-of-fit p-value
z                   categorical  0.05       value < threshold    two-proportion Z-test p-value
hellinger           categorical  0.1        value >= threshold   Hellinger distance
unseen_share        categorical  0.05       value > threshold    share of unseen categories
==================  ===========  =========  ===================  ===============================

(``unseen_share`` has no Evidently twin.) ``chisquare`` and ``z`` also run on numeric columns,
treating distinct values as categories, because Evidently's ``auto`` picks them for numeric
columns with few distinct values; as in Evidently, a user cannot configure them for one.

Inputs: ``cur`` is the window's :class:`~detectors.profile.Sample` (missing values dropped;
see :func:`~detectors.profile.make_sample`). A test that is undefined
on the data raises :class:`InsufficientDataError` with the reason.

>>> import numpy as np
>>> from detectors.profile import make_sample, profile_column
>>> ref = profile_column("x", np.arange(100.0), "numeric")
>>> round(get_stattest("wasserstein").compute(ref, make_sample("numeric", np.arange(100.0) + 5.0, "x")), 6)
0.173214
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from detectors.binned import BinnedSample
from detectors.profile import FEW_UNIQUE_LIMIT, ColumnProfile, Sample
from detectors.types import ColumnKind
from monitor.methods import DRIFT_METHODS, NUMERIC, UnknownMethodError, resolve_drift_method

Comparison = Literal["lt", "le", "gt", "ge"]
StatTestFunc = Callable[[ColumnProfile, Sample], float]

# Evidently's auto choice: references up to this size get hypothesis tests, larger get distances.
SMALL_REFERENCE_LIMIT = 1000
# ... and numeric columns with at most this many distinct values are tested as categories.
NUMERIC_AS_CATEGORICAL_LIMIT = 5


class InsufficientDataError(Exception):
    """The test is undefined on this data; the message says why (it becomes a Score's reason)."""


class UnknownStatTestError(UnknownMethodError):
    """No test is registered under the key, or it does not apply to the column kind."""


@dataclass(frozen=True, slots=True)
class StatTest:
    """A registered drift test: its key, default threshold and direction.

    ``numeric_as_categories``: ``auto`` may run it on a numeric column with few distinct values.
    """

    key: str
    func: StatTestFunc
    default_threshold: float
    comparison: Comparison
    is_p_value: bool
    numeric_as_categories: bool = False

    @property
    def kinds(self) -> frozenset[str]:
        """The column kinds a user may choose this test for (declared in :mod:`monitor.methods`)."""
        return DRIFT_METHODS[self.key].kinds

    def compute(self, ref: ColumnProfile, cur: Sample) -> float:
        """The test's value for a reference profile and the window's cleaned values."""
        if ref.kind not in self.kinds and not (ref.kind == NUMERIC and self.numeric_as_categories):
            raise UnknownStatTestError(f"column {ref.name!r}: method {self.key!r} does not apply to {ref.kind} columns")
        if isinstance(cur, BinnedSample):  # push-down mode: a numeric window known by its bins
            return cur.statistic(self.key, ref)
        return float(self.func(ref, cur))

    def breached(self, value: float, threshold: float) -> bool:
        """Whether ``value`` signals drift at ``threshold`` (Evidently's exact comparison)."""
        if self.comparison == "lt":
            return value < threshold
        if self.comparison == "le":
            return value <= threshold
        if self.comparison == "gt":
            return value > threshold
        return value >= threshold


_REGISTRY: dict[str, StatTest] = {}


def register_stattest(test: StatTest) -> StatTest:
    """Register ``test`` under ``test.key``, a key declared in :mod:`monitor.methods`, only once."""
    if test.key not in DRIFT_METHODS:
        raise ValueError(f"stat test {test.key!r} is not declared in monitor.methods.DRIFT_METHODS")
    if test.key in _REGISTRY:
        raise ValueError(f"stat test {test.key!r} is already registered")
    _REGISTRY[test.key] = test
    return test


def get_stattest(key: str) -> StatTest:
    """The test registered under ``key`` or one of its aliases; the error lists the valid keys."""
    try:
        return _REGISTRY[resolve_drift_method(key)]
    except UnknownMethodError as exc:
        raise UnknownStatTestError(str(exc)) from None
    except KeyError:  # "auto" names a choice, not a test
        raise UnknownStatTestError(f"{key!r} is not a test; valid: {sorted(_REGISTRY)}") from None


def stattest_keys(kind: ColumnKind | None = None) -> list[str]:
    """Registered keys, optionally only those that apply to ``kind``."""
    return sorted(k for k, t in _REGISTRY.items() if kind is None or kind in t.kinds)


# --- shared helpers ---------------------------------------------------------------------------


def _reference_keys(ref: ColumnProfile) -> tuple[np.ndarray, np.ndarray]:
    """Distinct reference values (categories) and their counts."""
    if ref.kind == "numeric" and ref.n_unique > FEW_UNIQUE_LIMIT:
        return np.unique(ref.values, return_counts=True)
    return ref.categories, ref.counts


def aligned_counts(ref: ColumnProfile, cur: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of reference and window categories (sorted) with the counts of each side."""
    ref_keys, ref_counts = _reference_keys(ref)
    cur_keys, cur_counts = cur.counts()
    keys = np.union1d(ref_keys, cur_keys)
    ref_aligned = np.zeros(keys.size, dtype=np.float64)
    cur_aligned = np.zeros(keys.size, dtype=np.float64)
    ref_aligned[np.searchsorted(keys, ref_keys)] = ref_counts
    cur_aligned[np.searchsorted(keys, cur_keys)] = cur_counts
    return keys, ref_aligned, cur_aligned


def sturges_edges(ref: ColumnProfile, cur: np.ndarray, cur_integer: bool = False) -> np.ndarray:
    """``np.histogram_bin_edges(concat(reference, current), bins="sturges")`` from the profile.

    Reproduces NumPy's arithmetic step by step so edges match bit for bit without
    concatenating (or re-reading) the reference.
    """
    first = min(ref.values[0], cur.min())
    last = max(ref.values[-1], cur.max())
    size = ref.values.size + cur.size
    with np.errstate(all="ignore"):
        delta = np.subtract(last, first)
        width = delta / (np.log2(size) + 1.0)
    if not (np.isfinite(delta) and np.isfinite(width)):
        raise InsufficientDataError("values too large: the value range overflows float64")
    if first == last:
        return np.linspace(first - 0.5, last + 0.5, 2)
    if ref.integer and cur_integer and width < 1:
        width = 1.0
    n_bins = int(np.ceil(delta / width))
    return np.linspace(first, last, n_bins + 1)


def histogram_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` for already sorted values, in O(bins · log n)."""
    positions = np.empty(edges.size, dtype=np.int64)
    positions[:-1] = np.searchsorted(sorted_values, edges[:-1], side="left")
    positions[-1] = np.searchsorted(sorted_values, edges[-1], side="right")  # last bin is closed
    return np.diff(positions)


def binned_shares(ref: ColumnProfile, cur: Sample, fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data``: shares per Sturges bin (numeric, > 20 distinct
    reference values) or per category, with zero shares replaced when ``fill_zeroes``."""
    if ref.kind == "numeric" and ref.n_unique > FEW_UNIQUE_LIMIT:
        edges = sturges_edges(ref, cur.numeric, cur.integer)
        ref_shares = histogram_sorted(ref.values, edges) / ref.values.size
        cur_shares = np.histogram(cur.numeric, edges)[0] / cur.n
    else:
        _, ref_counts, cur_counts = aligned_counts(ref, cur)
        ref_shares = ref_counts / ref.n
        cur_shares = cur_counts / cur.n
    if fill_zeroes:
        for shares in (ref_shares, cur_shares):
            smallest = shares[shares != 0].min()
            np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return ref_shares, cur_shares


# --- the tests --------------------------------------------------------------------------------


# SciPy is imported inside the tests that need it: ``import scipy.stats`` costs about 0.6 s of CPU,
# half of a whole ``driftscope check`` at 300,000 rows, where the default tests (Wasserstein,
# Jensen–Shannon) need none of it.


def ks_pvalue(ref: ColumnProfile, cur: Sample) -> float:
    """Two-sample Kolmogorov–Smirnov p-value (``scipy.stats.ks_2samp``, method auto)."""
    from scipy import stats

    return stats.ks_2samp(ref.values, cur.numeric).pvalue


def wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """``scipy.stats.wasserstein_distance(u, v)`` of two sorted samples, in O(n + m) without searching.

    The distance is the area between the two quantile functions: ``Q_u(t) = u[k]`` on
    ``[k/n, (k+1)/n)``, ``Q_v(t) = v[l]`` on ``[l/m, (l+1)/m)``. In units of ``1/(n·m)`` the
    breakpoints are the integers ``k·m`` and ``l·n``; their merged order is known by arithmetic
    (``l·n`` follows the ``⌊l·n/m⌋ + 1`` breakpoints ``k·m <= l·n``), so no value is compared.
    Equal to SciPy's area between the CDFs up to rounding (ties need nothing special).
    """
    n, m = u.size, v.size
    if n == m:  # the breakpoints coincide: the mean gap between the k-th values of each side
        return float(np.mean(np.abs(u - v)))
    steps = np.arange(m, dtype=np.int64)
    from_v = np.zeros(n + m, dtype=bool)
    from_v[steps + steps * n // m + 1] = True
    breaks = np.empty(n + m + 1, dtype=np.int64)
    breaks[:-1][from_v] = steps * n
    breaks[:-1][~from_v] = np.arange(n, dtype=np.int64) * m
    breaks[-1] = n * m
    starts = breaks[:-1]
    gaps = np.abs(u[starts // m] - v[starts // n])
    return float(np.dot(gaps, np.diff(breaks).astype(np.float64)) / (float(n) * float(m)))


def wasserstein_normed(ref: ColumnProfile, cur: Sample) -> float:
    """First Wasserstein distance divided by ``max(std(reference), 0.001)``.

    The reference is sorted once by its profile; the window once by its sample.
    """
    if not np.isfinite(ref.std):
        raise InsufficientDataError("values too large: the reference's standard deviation overflows float64")
    with np.errstate(all="ignore"):
        distance_ = wasserstein_sorted(ref.values, cur.sorted())
    return distance_ / max(ref.std, 0.001)


def psi(ref: ColumnProfile, cur: Sample) -> float:
    """Population stability index over Evidently's bins (zero shares filled)."""
    ref_shares, cur_shares = binned_shares(ref, cur, fill_zeroes=True)
    return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares)))


def jensenshannon(ref: ColumnProfile, cur: Sample) -> float:
    """Jensen–Shannon distance (natural log) over Evidently's bins."""
    ref_shares, cur_shares = binned_shares(ref, cur, fill_zeroes=False)
    return jensenshannon_distance(ref_shares, cur_shares)


def jensenshannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """``scipy.spatial.distance.jensenshannon(p, q)`` (natural log), its steps in NumPy.

    ``rel_entr(x, y)`` is ``x·log(x/y)``, and 0 where ``x`` is 0; the mixture ``m`` is positive
    wherever ``p`` or ``q`` is, so no infinite term can arise from shares.
    """
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2.0
    with np.errstate(all="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    return float(np.sqrt((np.sum(left) + np.sum(right)) / 2.0))


def anderson_pvalue(ref: ColumnProfile, cur: Sample) -> float:
    """k-sample Anderson–Darling p-value (midrank variant, as Evidently's default call).

    SciPy caps the p-value to [0.001, 0.25] and warns when it does; the cap is the documented
    behaviour, so the warning is not an error here.
    """
    if ref.n_unique < 2 and np.all(cur.numeric == ref.values[0]):
        raise InsufficientDataError("Anderson–Darling needs at least two distinct values")
    from scipy import stats

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="p-value (capped|floored)", category=UserWarning)
        return stats.anderson_ksamp([ref.values, cur.numeric], variant="midrank").pvalue


def cramer_von_mises_pvalue(ref: ColumnProfile, cur: Sample) -> float:
    """Two-sample Cramér–von Mises p-value (``scipy.stats.cramervonmises_2samp``)."""
    if ref.values.size < 2 or cur.n < 2:
        raise InsufficientDataError("Cramér–von Mises needs at least two values on each side")
    from scipy import stats

    return stats.cramervonmises_2samp(ref.values, cur.numeric).pvalue


def chisquare_pvalue(ref: ColumnProfile, cur: Sample) -> float:
    """χ² goodness-of-fit p-value of the window's counts against reference shares.

    Equals ``scipy.stats.chisquare(f_obs=current counts, f_exp=reference counts * m / n)``; a
    category absent from the reference has zero expected count, so the statistic is infinite
    and the p-value 0 (SciPy gives the same, with a division warning).
    """
    _, ref_counts, cur_counts = aligned_counts(ref, cur)
    if ref_counts.size < 2:
        raise InsufficientDataError("chi-square needs at least two categories (one category: no dof)")
    expected = ref_counts * (cur.n / ref.n)
    if np.any(expected == 0):
        return 0.0
    statistic = float(np.sum((cur_counts - expected) ** 2 / expected))
    from scipy import stats

    return float(stats.chi2.sf(statistic, ref_counts.size - 1))


def z_pvalue(ref: ColumnProfile, cur: Sample) -> float:
    """Two-sided two-proportion Z-test p-value: the first category (sorted) against the rest.

    Both sides holding the same single category give p = 1, as in Evidently.
    """
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    if keys.size == 1:
        return 1.0
    n1, n2 = ref.n, cur.n
    p1 = (n1 - ref_counts[0]) / n1
    p2 = (n2 - cur_counts[0]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    from scipy import stats

    # 2 * (1 - cdf) rather than 2 * sf: Evidently's formula, kept for number-for-number equality.
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def hellinger(ref: ColumnProfile, cur: Sample) -> float:
    """Hellinger distance between category shares."""
    _, ref_counts, cur_counts = aligned_counts(ref, cur)
    overlap = float(np.sum(np.sqrt((ref_counts / ref.n) * (cur_counts / cur.n))))
    return float(np.sqrt(1 - np.clip(overlap, 0, 1)))


def unseen_share(ref: ColumnProfile, cur: Sample) -> float:
    """Share of the window's values whose category never occurs in the reference."""
    keys, counts = cur.counts()
    unseen = ~np.isin(keys, ref.categories)
    return float(counts[unseen].sum() / cur.n)


for _test in (
    StatTest("ks", ks_pvalue, 0.05, "le", True),
    StatTest("wasserstein", wasserstein_normed, 0.1, "ge", False),
    StatTest("psi", psi, 0.1, "ge", False),
    StatTest("jensenshannon", jensenshannon, 0.1, "ge", False),
    StatTest("anderson", anderson_pvalue, 0.1, "lt", True),
    StatTest("cramer_von_mises", cramer_von_mises_pvalue, 0.1, "le", True),
    StatTest("chisquare", chisquare_pvalue, 0.05, "lt", True, numeric_as_categories=True),
    StatTest("z", z_pvalue, 0.05, "lt", True, numeric_as_categories=True),
    StatTest("hellinger", hellinger, 0.1, "ge", False),
    StatTest("unseen_share", unseen_share, 0.05, "gt", False),
):
    register_stattest(_test)


def auto_method(ref: ColumnProfile, cur: Sample) -> str:
    """The key Evidently 0.7's DataDriftPreset picks (legacy ``_get_default_stattest``).

    Sizes count non-missing values; "distinct values" counts the union of both sides.
    """
    if ref.kind == "numeric" and ref.n_unique > NUMERIC_AS_CATEGORICAL_LIMIT:
        n_values = ref.n_unique  # the union can only be larger: no need to look at the window
    else:
        n_values = aligned_counts(ref, cur)[0].size
    if ref.n <= SMALL_REFERENCE_LIMIT:
        if ref.kind == "numeric" and n_values > NUMERIC_AS_CATEGORICAL_LIMIT:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if ref.kind == "numeric" and n_values > NUMERIC_AS_CATEGORICAL_LIMIT:
        return "wasserstein"
    return "jensenshannon"
