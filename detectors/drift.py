"""Per-column and dataset-level drift scores for one window against a reference.

The entry point is :func:`drift_scores`. It takes a :class:`~detectors.profile.ReferenceProfile`
(profile the reference once with :func:`~detectors.profile.profile_reference` and cache
``to_bytes()``), the window's columns as NumPy arrays and one :class:`ColumnPolicy` per column,
and returns one :class:`~detectors.types.Score` per column plus the dataset-level
``share_drifted`` and ``count_drifted`` scores.

With ``method="auto"`` and ``threshold=None`` the scores equal Evidently 0.7's
``DataDriftPreset`` (``ValueDrift`` per column, ``DriftedColumnsCount`` for the dataset) on the
same data. Differences, on purpose, where Evidently has no usable answer: a column left with
fewer than ``min_samples`` values after dropping missing ones (Evidently raises on an empty
column), or constant at the same single value in the reference and the window, or whose
statistic is undefined or not finite, gets ``status="insufficient_data"`` and a reason instead of
an exception or a NaN, and is left out of the dataset-level share.

>>> import numpy as np
>>> from detectors.profile import profile_reference
>>> rng = np.random.default_rng(0)
>>> ref = profile_reference({"x": rng.normal(size=500)}, {"x": "numeric"})
>>> scores = drift_scores(ref, {"x": rng.normal(1.0, size=500)}, [ColumnPolicy("x", "numeric")])
>>> [(s.method, s.breached) for s in scores]
[('ks', True), ('share_drifted', True), ('count_drifted', None)]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from detectors.binned import BinnedSample
from detectors.calibration import ColumnCalibration
from detectors.profile import ColumnProfile, ReferenceProfile, Sample, make_sample, profile_reference
from detectors.stattests import (
    InsufficientDataError,
    aligned_counts,
    auto_method,
    get_stattest,
    histogram_sorted,
)
from detectors.types import ColumnKind, Score
from monitor.methods import AUTO, kind_mismatch

logger = logging.getLogger(__name__)

# Evidently's default number of histogram bins for its drift plots; the dashboard gets the same.
HISTOGRAM_BINS = 10
# Categorical histograms show the most frequent categories and fold the rest into "(other)".
HISTOGRAM_TOP_CATEGORIES = 20
# Evidently's integer columns with at most this many distinct values are categorical.
INTEGER_CARDINALITY_LIMIT = 10
MISSING_NOTE = "missing values (NaN, None, ±inf) dropped before testing, as Evidently does"
MULTIPLE_TESTING = ("none", "holm", "bh")
# Family level of a correction over calibrated columns only, when none is given.
DEFAULT_FAMILY_ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class ColumnPolicy:
    """How one column is tested: ``method`` is a registered key, one of its aliases (kept as the
    key) or ``"auto"``; ``threshold=None`` uses the method's default. ``min_samples`` is the fewest non-missing
    values either side needs for a score.

    ``calibration`` (from :func:`detectors.calibration.calibrate_column`) replaces ``threshold`` by the
    calibrated one at the window's size, when the test run is the one calibrated. ``min_effect``: a
    p-value test flags drift only if the effect size (normed Wasserstein for numeric columns, PSI for
    categories) is at least this; the size is reported either way."""

    name: str
    kind: ColumnKind
    method: str = AUTO
    threshold: float | None = None
    min_samples: int = 2
    min_effect: float | None = None
    calibration: ColumnCalibration | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise ValueError(f"column {self.name!r}: kind must be 'numeric' or 'categorical', got {self.kind!r}")
        if self.method != AUTO:
            key = get_stattest(self.method).key  # raises, listing valid keys
            object.__setattr__(self, "method", key)  # frozen: the alias is replaced once, here
            if mismatch := kind_mismatch(key, self.kind):
                raise ValueError(f"column {self.name!r}: {mismatch}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"column {self.name!r}: threshold must be a finite number, got {self.threshold!r}")
        if self.min_samples < 1:
            raise ValueError(f"column {self.name!r}: min_samples must be >= 1, got {self.min_samples!r}")
        if self.min_effect is not None and not (math.isfinite(self.min_effect) and self.min_effect >= 0):
            raise ValueError(f"column {self.name!r}: min_effect must be a finite number >= 0, got {self.min_effect!r}")


def infer_kind(values: np.ndarray) -> ColumnKind:
    """Evidently's column type inference for drift: floats are numeric, integers numeric only
    with more than 10 distinct values, everything else (bool, strings) categorical."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        return "numeric"
    if arr.dtype.kind in "iu":
        return "categorical" if np.unique(arr).size <= INTEGER_CARDINALITY_LIMIT else "numeric"
    return "categorical"


def _histogram(ref: ColumnProfile, cur: Sample) -> dict[str, Any]:
    """Small reference-vs-window histogram (shares) for the dashboard."""
    if isinstance(cur, BinnedSample):
        return cur.histogram(ref)
    if ref.kind == "numeric":
        low = min(ref.values[0], cur.numeric.min())
        high = max(ref.values[-1], cur.numeric.max())
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1) if low < high else np.array([low - 0.5, low + 0.5])
        if not np.all(np.isfinite(edges)):
            return {}
        return {
            "edges": edges.tolist(),
            "reference": (histogram_sorted(ref.values, edges) / ref.n).tolist(),
            "current": (histogram_sorted(cur.sorted(), edges) / cur.n).tolist(),
        }
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    ref_shares = ref_counts / ref.n
    cur_shares = cur_counts / cur.n
    order = np.argsort(-(ref_shares + cur_shares), kind="stable")[:HISTOGRAM_TOP_CATEGORIES]
    hist = {
        "categories": keys[order].tolist(),
        "reference": ref_shares[order].tolist(),
        "current": cur_shares[order].tolist(),
    }
    if keys.size > HISTOGRAM_TOP_CATEGORIES:
        hist["categories"].append("(other)")
        hist["reference"].append(float(1.0 - ref_shares[order].sum()))
        hist["current"].append(float(1.0 - cur_shares[order].sum()))
    return hist


def _is_same_constant(ref: ColumnProfile, cur: Sample) -> bool:
    if ref.n_unique != 1:
        return False
    if isinstance(cur, BinnedSample):
        return cur.is_constant_at(float(ref.values[0]))
    if ref.kind == "numeric":
        return bool(np.all(cur.values == ref.values[0]))
    keys, _ = cur.counts()
    return keys.size == 1 and keys[0] == ref.categories[0]


def column_drift(ref: ColumnProfile, current: np.ndarray | Sample | None, policy: ColumnPolicy) -> Score:
    """The drift score of one column: never raises on bad data, never returns a NaN.

    ``current`` is the window's values, or a sample already made of them (push-down mode's
    counts, :mod:`detectors.binned`)."""
    method = policy.method
    if current is None:
        return Score.insufficient("drift", method, f"column {ref.name!r} is not in the window", ref.name)
    cur = current if isinstance(current, Sample) else make_sample(ref.kind, current, ref.name)
    details: dict[str, Any] = {
        "n_reference": ref.n,
        "n_current": cur.n,
        "reference_missing": ref.n_missing,
        "current_missing": cur.n_missing,
        "missing_values": MISSING_NOTE,
    }
    if ref.n < policy.min_samples or cur.n < policy.min_samples:
        side = "reference" if ref.n < policy.min_samples else "window"
        reason = f"column {ref.name!r}: {side} has {min(ref.n, cur.n)} non-missing values (need {policy.min_samples})"
        return Score("drift", method, None, ref.name, status="insufficient_data", reason=reason, details=details)
    if _is_same_constant(ref, cur):
        reason = f"column {ref.name!r} is constant (one value in reference and window): no distribution to compare"
        return Score("drift", method, None, ref.name, status="insufficient_data", reason=reason, details=details)
    if method == AUTO:
        try:
            method = auto_method(ref, cur)
        except InsufficientDataError as exc:  # a binned window cannot say how many distinct values it has
            reason = f"column {ref.name!r}: {exc}"
            return Score("drift", method, None, ref.name, status="insufficient_data", reason=reason, details=details)
        details["auto"] = True
    test = get_stattest(method)
    threshold = test.default_threshold if policy.threshold is None else policy.threshold
    details["p_value"] = test.is_p_value
    try:
        with np.errstate(all="ignore"):
            value = test.compute(ref, cur)
            details["histogram"] = _histogram(ref, cur)
            if isinstance(cur, BinnedSample):
                details["binned"] = cur.details(method, ref)
    except InsufficientDataError as exc:
        return Score(
            "drift",
            method,
            None,
            ref.name,
            threshold,
            status="insufficient_data",
            reason=f"column {ref.name!r}: {exc}",
            details=details,
        )
    except Exception as exc:  # one failing column fails its score, the others go on
        logger.exception("drift test %s failed on column %r", method, ref.name)
        return Score(
            "drift",
            method,
            None,
            ref.name,
            threshold,
            status="error",
            reason=f"column {ref.name!r}: {method} failed: {exc}",
            details=details,
        )
    if not math.isfinite(value):
        reason = f"column {ref.name!r}: {method} is not finite ({value}); values may be too large"
        return Score(
            "drift", method, None, ref.name, threshold, status="insufficient_data", reason=reason, details=details
        )
    breached = test.breached(value, threshold)
    calibration = policy.calibration
    if calibration is not None and calibration.method == method:
        threshold = calibration.threshold(cur.n)
        breached = calibration.breached(value, cur.n)
        details["calibrated"] = {
            "alpha": calibration.alpha,
            "source": calibration.source,
            "tail_probability": calibration.tail_probability(value, cur.n),
            # A reference that flags many of its own windows carries little signal: say so beside every score.
            "reference_flags": f"{calibration.self_flagged} of its own {calibration.self_windows} windows",
        }
    elif calibration is not None:
        details["calibrated"] = {"skipped": f"calibrated for {calibration.method}, the window is tested by {method}"}
    if test.is_p_value and policy.min_effect is not None:
        breached = _effect_floor(ref, cur, policy.min_effect, details) and breached
    return Score("drift", method, value, ref.name, threshold, breached, details=details)


def _effect_floor(ref: ColumnProfile, cur: Sample, floor: float, details: dict[str, Any]) -> bool:
    """Whether the effect size reaches ``floor``; the size goes into ``details["effect"]``."""
    effect_method = "wasserstein" if ref.kind == "numeric" and ref.n_unique > 1 and cur.n > 1 else "psi"
    try:
        with np.errstate(all="ignore"):
            size = get_stattest(effect_method).compute(ref, cur)
    except InsufficientDataError:
        return True  # no size to compare: the p-value alone decides
    details["effect"] = {"method": effect_method, "value": size, "min_effect": floor}
    return size >= floor


def _p_value(score: Score) -> float | None:
    """A column's p-value for multiple testing: its calibrated tail probability, or its test's p-value."""
    calibrated = score.details.get("calibrated", {})
    if "tail_probability" in calibrated:
        return float(calibrated["tail_probability"])
    if score.details.get("p_value") and score.value is not None:
        return float(score.value)
    return None


def corrected_decisions(
    column_scores: Sequence[Score], method: str, family_alpha: float | None = None
) -> tuple[list[Score], float | None]:
    """The columns with ``details["corrected_breached"]``: Holm (family-wise error) or
    Benjamini–Hochberg (false discovery rate, :func:`scipy.stats.false_discovery_control`) at
    ``family_alpha`` over the columns that have a p-value; those without one (an uncalibrated
    distance) keep their own decision. ``family_alpha=None``: the smallest threshold of the
    p-value columns. An effect below ``min_effect`` stays not drifted."""
    if method not in MULTIPLE_TESTING:
        raise ValueError(f"multiple_testing must be one of {MULTIPLE_TESTING}, got {method!r}")
    tested = [i for i, s in enumerate(column_scores) if s.status == "ok" and _p_value(s) is not None]
    if method == "none" or not tested:
        return list(column_scores), family_alpha
    p = np.array([_p_value(column_scores[i]) for i in tested])
    if family_alpha is None:
        fixed = [
            float(s.threshold)
            for s in (column_scores[i] for i in tested)
            if s.threshold is not None and "tail_probability" not in s.details.get("calibrated", {})
        ]
        family_alpha = min(fixed, default=DEFAULT_FAMILY_ALPHA)
    if method == "bh":
        from scipy.stats import false_discovery_control  # lazily: SciPy is slow to import (stattests.py)

        reject = false_discovery_control(p, method="bh") <= family_alpha
    else:  # Holm's step-down: the i-th smallest p against alpha / (k - i), until one fails
        order = np.argsort(p, kind="stable")
        passes = p[order] <= family_alpha / (p.size - np.arange(p.size))
        n_reject = p.size if passes.all() else int(np.argmin(passes))
        reject = np.zeros(p.size, dtype=bool)
        reject[order[:n_reject]] = True
    out = list(column_scores)
    for i, rejected in zip(tested, reject, strict=True):
        score = out[i]
        effect = score.details.get("effect")
        big_enough = effect is None or effect["value"] >= effect["min_effect"]
        out[i] = replace(score, details={**score.details, "corrected_breached": bool(rejected and big_enough)})
    return out, family_alpha


def dataset_drift(
    column_scores: Sequence[Score],
    drift_share_threshold: float = 0.5,
    multiple_testing: str = "none",
    family_alpha: float | None = None,
) -> list[Score]:
    """``share_drifted`` (breached when share >= threshold, as Evidently's dataset drift) and
    ``count_drifted`` over the columns that have a score; with ``multiple_testing`` (``holm`` or
    ``bh``) both count the decisions :func:`corrected_decisions` put in the scores."""
    tested = [s for s in column_scores if s.status == "ok"]
    details = {
        "n_columns": len(column_scores),
        "n_tested": len(tested),
        "not_tested": sorted(str(s.feature) for s in column_scores if s.status != "ok"),
    }
    if not tested:
        reason = "no column has enough data for a drift test"
        return [
            Score("drift", "share_drifted", None, status="insufficient_data", reason=reason, details=details),
            Score("drift", "count_drifted", None, status="insufficient_data", reason=reason, details=details),
        ]
    if multiple_testing != "none":
        details["multiple_testing"] = multiple_testing
        details["family_alpha"] = family_alpha
        details["uncorrected_count"] = sum(1 for s in tested if s.breached)
    drifted = sum(1 for s in tested if s.details.get("corrected_breached", s.breached))
    share = drifted / len(tested)
    return [
        Score(
            "drift",
            "share_drifted",
            share,
            None,
            drift_share_threshold,
            share >= drift_share_threshold,
            details=details,
        ),
        Score("drift", "count_drifted", float(drifted), None, details=details),
    ]


def drift_scores(
    reference: ReferenceProfile | Mapping[str, np.ndarray],
    current_columns: Mapping[str, np.ndarray | Sample],
    policies: Sequence[ColumnPolicy],
    drift_share_threshold: float = 0.5,
    multiple_testing: str = "none",
    family_alpha: float | None = None,
) -> list[Score]:
    """One drift Score per policy's column, then ``share_drifted`` and ``count_drifted``.

    ``reference`` is a profile (fast path: profile once, reuse for every window) or raw arrays
    (profiled here). ``current_columns`` maps column names to 1-D arrays of the window.
    """
    if not isinstance(reference, ReferenceProfile):
        reference = profile_reference(reference, {p.name: p.kind for p in policies})
    missing = [p.name for p in policies if p.name not in reference]
    if missing:
        raise ValueError(f"reference profile has no columns {missing} (has {sorted(reference)})")
    wrong_kind = [p.name for p in policies if reference[p.name].kind != p.kind]
    if wrong_kind:
        raise ValueError(f"columns {wrong_kind}: policy kind differs from the reference profile's kind")
    columns = [column_drift(reference[p.name], current_columns.get(p.name), p) for p in policies]
    columns, family_alpha = corrected_decisions(columns, multiple_testing, family_alpha)
    return columns + dataset_drift(columns, drift_share_threshold, multiple_testing, family_alpha)
