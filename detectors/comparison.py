"""Two samples of one column, compared directly: are the distributions of two model versions alike?

Drift (:mod:`detectors.drift`) compares a window with a profiled reference; a canary compares the
rows of two versions served over the same time, both raw. Numbers and scores: the two-sample
Kolmogorov–Smirnov test (``scipy.stats.ks_2samp``), its statistic D as the effect. Categories and
class predictions: the chi-square test of independence on the 2 × k table of counts
(``scipy.stats.chi2_contingency``), the total variation distance between the two shares as the
effect (half the L1 distance: the share of rows that would have to change category). A test says
whether a difference is real; the effect says whether it is large enough to matter, since with
enough rows any difference becomes significant.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> d = distribution_difference("numeric", rng.normal(0.5, 1, 500), rng.normal(0, 1, 500))
>>> d.method, round(d.effect, 2), d.p_value < 1e-6
('ks', 0.23, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from detectors.types import ColumnKind


@dataclass(frozen=True, slots=True)
class DistributionDifference:
    method: Literal["ks", "chi2"]
    effect: float  # KS D, or the total variation distance of the category shares
    p_value: float
    n_candidate: int
    n_baseline: int
    # numeric: each sample's mean; categorical: each sample's share of every category
    candidate_summary: float | dict[str, float]
    baseline_summary: float | dict[str, float]


def _categories(values: np.ndarray) -> np.ndarray:
    """Category labels by their string form, missing ones (None, NaN) left out."""
    kept = [v for v in values.tolist() if v is not None and not (isinstance(v, float) and np.isnan(v))]
    return np.array([str(v) for v in kept], dtype=object)


def distribution_difference(kind: ColumnKind, candidate: np.ndarray, baseline: np.ndarray) -> DistributionDifference:
    """Compare one column's values in two samples; missing values are left out.

    Raises ``ValueError`` when either sample holds no value.
    """
    if kind == "numeric":
        a = np.asarray(candidate, dtype=np.float64)
        b = np.asarray(baseline, dtype=np.float64)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if not len(a) or not len(b):
            raise ValueError(f"no values to compare (candidate {len(a)}, baseline {len(b)})")
        result = stats.ks_2samp(a, b)
        return DistributionDifference(
            "ks", float(result.statistic), float(result.pvalue), len(a), len(b), float(a.mean()), float(b.mean())
        )
    ca, cb = _categories(candidate), _categories(baseline)
    if not len(ca) or not len(cb):
        raise ValueError(f"no values to compare (candidate {len(ca)}, baseline {len(cb)})")
    labels = sorted(set(ca.tolist()) | set(cb.tolist()))
    table = np.array([[np.count_nonzero(s == label) for label in labels] for s in (ca, cb)], dtype=np.float64)
    shares = table / table.sum(axis=1, keepdims=True)
    effect = float(0.5 * np.abs(shares[0] - shares[1]).sum())
    # One category on both sides: nothing to test, the samples are alike.
    p_value = 1.0 if len(labels) < 2 else float(stats.chi2_contingency(table).pvalue)
    return DistributionDifference(
        "chi2",
        effect,
        p_value,
        len(ca),
        len(cb),
        {label: float(s) for label, s in zip(labels, shares[0], strict=True)},
        {label: float(s) for label, s in zip(labels, shares[1], strict=True)},
    )
