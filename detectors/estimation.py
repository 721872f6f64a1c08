"""Label-free performance estimation for binary classifiers: confidence-based (CBPE).

If the model's scores are calibrated probabilities, the expected confusion matrix of a window can
be computed without labels: a prediction ``ŷ = 1`` with calibrated probability ``p`` is a true
positive with probability ``p`` and a false positive with ``1 - p``. Summing over the window gives
expected TP/FP/FN/TN and from them accuracy, precision, recall and F1; ROC AUC is estimated as
the expected AUC with each row counted positive with weight ``p`` and negative with ``1 - p``,
rows ordered by the raw score. This holds as long as the relation between score and outcome,
P(y | score), stays as in the reference (covariate shift only) — it does not detect concept drift.

Calibration: an isotonic regression fitted on the reference, used only when NannyML's test says
it helps — the expected calibration error (10 equal-count bins) of isotonic-calibrated scores on
10 stratified 90/10 splits of the reference (``random_state=42``) is lower than that of the raw
scores; never for a single-class reference or one already separating almost perfectly
(ROC AUC > 0.999). The fitted isotonic step function is stored as its breakpoints, so a
:class:`CBPEModel` round-trips through :meth:`CBPEModel.to_dict` without pickle and is applied with
:func:`numpy.interp` (what ``IsotonicRegression(out_of_bounds="clip").predict`` computes).

Alert band: the realized metric on reference chunks, ``mean ± 3 std`` (NannyML). Sampling error
of an estimate on ``n`` rows: the bootstrap standard error of the realized metric on the whole
reference scaled by ``sqrt(n_reference / n)`` (NannyML scales reference components the same way);
``details`` carry ``estimate ± 3 sampling_error`` as the confidence band.

References
----------
- NannyML, "Confidence-based Performance Estimation (CBPE)",
  https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html
- NannyML source: ``nannyml/calibration.py`` (``needs_calibration``) and
  ``nannyml/performance_estimation/confidence_based/metrics.py`` (``estimate_roc_auc``, ``estimate_f1``).
- J. Białek, J. Kivimäki, W. Kuberski, N. Perrakis, "Estimating Model Performance Under Covariate
  Shift Without Labels", arXiv:2401.08348 (2024) — describes CBPE and its assumptions (calibration,
  no concept shift), and PAPE, which extends it with density-ratio re-weighted calibration.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.random(4000); y = (rng.random(4000) < p).astype(int)   # calibrated by construction
>>> model = fit_cbpe(p, y, chunk_size=500)
>>> est = {s.method: s for s in estimated_performance_scores(model, rng.random(1000))}
>>> round(est["roc_auc"].value, 2), est["roc_auc"].kind
(0.83, 'estimated_performance')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

from detectors.performance import (
    Band,
    bands_from_dict,
    bands_to_dict,
    fit_performance_bands,
    performance_scores,
    weighted_roc_auc,
)
from detectors.types import Score
from monitor.methods import ESTIMATED_METRICS

# Width of the confidence band in sampling errors (NannyML's SAMPLING_ERROR_RANGE).
SAMPLING_ERROR_RANGE = 3.0


@dataclass(frozen=True, slots=True)
class CBPEModel:
    """Everything CBPE learns from the reference; plain floats so the store can cache it."""

    calibrated: bool
    # isotonic breakpoints (empty when not calibrated)
    calibration_x: tuple[float, ...]
    calibration_y: tuple[float, ...]
    threshold: float
    bands: Mapping[str, Band]
    # reference standard error × sqrt(reference rows), per metric
    sampling_error_unit: Mapping[str, float]
    n_reference: int

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if not self.calibrated:
            return scores
        return np.interp(scores, self.calibration_x, self.calibration_y)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibrated": self.calibrated,
            "calibration_x": list(self.calibration_x),
            "calibration_y": list(self.calibration_y),
            "threshold": self.threshold,
            "bands": bands_to_dict(self.bands),
            "sampling_error_unit": dict(self.sampling_error_unit),
            "n_reference": self.n_reference,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CBPEModel:
        return cls(
            calibrated=bool(data["calibrated"]),
            calibration_x=tuple(float(v) for v in data["calibration_x"]),
            calibration_y=tuple(float(v) for v in data["calibration_y"]),
            threshold=float(data["threshold"]),
            bands=bands_from_dict(data["bands"]),
            sampling_error_unit={k: float(v) for k, v in data["sampling_error_unit"].items()},
            n_reference=int(data["n_reference"]),
        )


def _expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """ECE over equal-count bins of the sorted scores (NannyML's binning: width n // bins, last bin takes the rest)."""
    order = np.argsort(p, kind="stable")
    p, y = p[order], y[order]
    n = len(p)
    bins = min(bins, n // 2)
    width = n // bins
    edges = np.arange(0, n + 1, width)
    edges[-1] = n
    return float(sum((hi - lo) / n * abs(p[lo:hi].mean() - y[lo:hi].mean()) for lo, hi in pairwise(edges)))


def _isotonic(scores: np.ndarray, labels: np.ndarray) -> IsotonicRegression:
    return IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, labels)


def needs_calibration(labels: np.ndarray, scores: np.ndarray, *, bins: int = 10, splits: int = 10) -> bool:
    """NannyML's test: does isotonic calibration lower the cross-validated expected calibration error?"""
    if len(np.unique(labels)) < 2 or roc_auc_score(labels, scores) > 0.999:
        return False
    y_test, raw_test, cal_test = [], [], []
    for train, test in StratifiedShuffleSplit(n_splits=splits, test_size=0.1, random_state=42).split(scores, labels):
        y_test.append(labels[test])
        raw_test.append(scores[test])
        cal_test.append(_isotonic(scores[train], labels[train]).predict(scores[test]))
    y_all = np.concatenate(y_test)
    before = _expected_calibration_error(y_all, np.concatenate(raw_test), bins)
    after = _expected_calibration_error(y_all, np.concatenate(cal_test), bins)
    return after < before


def fit_cbpe(
    reference_scores: Any,
    reference_labels: Any,
    reference_predictions: Any = None,
    *,
    chunk_size: int,
    threshold: float = 0.5,
    std_multiplier: float = 3.0,
    n_resamples: int = 200,
    seed: int = 0,
) -> CBPEModel:
    """Fit CBPE on a labelled reference of a binary classifier.

    ``reference_scores`` are the model's positive-class probabilities, ``reference_labels`` 0/1
    outcomes, ``reference_predictions`` the 0/1 decisions (default: ``score >= threshold``).
    ``chunk_size`` rows per reference chunk for the alert band (pick the monitor's typical
    window size). Raises ``ValueError`` when the reference cannot support CBPE (no rows, one class).
    """
    s = np.asarray(reference_scores, dtype=np.float64)
    y = np.asarray(reference_labels)
    if len(s) != len(y):
        raise ValueError(f"reference_labels has {len(y)} rows but reference_scores has {len(s)}")
    keep = np.isfinite(s) & ~np.isnan(y.astype(np.float64))
    s, y = s[keep], y[keep].astype(np.int64)
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError("reference_labels must be 0/1")
    if len(np.unique(y)) < 2:
        raise ValueError("reference_labels contain a single class: CBPE needs both to calibrate")
    if (s < 0).any() or (s > 1).any():
        raise ValueError("reference_scores must be probabilities in [0, 1]")
    if reference_predictions is None:
        pred = (s >= threshold).astype(np.int64)
    else:
        pred = np.asarray(reference_predictions)[keep]

    calibrated = needs_calibration(y, s)
    if calibrated:
        iso = _isotonic(s, y)
        cal_x, cal_y = tuple(iso.X_thresholds_.tolist()), tuple(iso.y_thresholds_.tolist())
    else:
        cal_x, cal_y = (), ()

    bands = fit_performance_bands(
        "binary", y, pred, s, chunk_size=chunk_size, metrics=ESTIMATED_METRICS, std_multiplier=std_multiplier
    )
    realized = performance_scores("binary", y, pred, s, metrics=ESTIMATED_METRICS, n_resamples=n_resamples, seed=seed)
    unit = {sc.method: sc.details["std_error"] * np.sqrt(len(y)) for sc in realized if "std_error" in sc.details}
    return CBPEModel(
        calibrated=calibrated,
        calibration_x=cal_x,
        calibration_y=cal_y,
        threshold=threshold,
        bands=bands,
        sampling_error_unit=unit,
        n_reference=len(y),
    )


def _estimates(p: np.ndarray, raw: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    predicted = pred == 1
    tp = float(p[predicted].sum())
    fp = float((1.0 - p[predicted]).sum())
    fn = float(p[~predicted].sum())
    tn = float((1.0 - p[~predicted]).sum())

    def ratio(num: float, den: float) -> float:
        return num / den if den > 0 else np.nan

    return {
        "roc_auc": float(weighted_roc_auc(np.ones((1, len(p))), p, raw)[0]),
        "accuracy": (tp + tn) / len(p),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def estimated_performance_scores(
    model: CBPEModel,
    scores: Any,
    predictions: Any = None,
    *,
    metrics: Sequence[str] = ESTIMATED_METRICS,
    min_rows: int = 2,
) -> list[Score]:
    """Estimated performance of one window from scores alone (``kind="estimated_performance"``).

    ``predictions`` are the 0/1 decisions (default: ``score >= model.threshold``). Rows with a
    non-finite score are left out. Breached when the estimate falls below the reference band.
    """
    for name in metrics:
        if name not in ESTIMATED_METRICS:
            raise ValueError(f"unknown estimated metric {name!r}; valid: {', '.join(ESTIMATED_METRICS)}")
    raw = np.asarray(scores, dtype=np.float64)
    pred = (raw >= model.threshold).astype(np.int64) if predictions is None else np.asarray(predictions)
    if len(pred) != len(raw):
        raise ValueError(f"predictions has {len(pred)} rows but scores has {len(raw)}")
    keep = np.isfinite(raw)
    raw, pred = raw[keep], pred[keep].astype(np.int64)
    if (raw < 0).any() or (raw > 1).any():
        raise ValueError("scores must be probabilities in [0, 1]")
    n = len(raw)
    if n < min_rows:
        reason = f"{n} scored rows in window, need at least {min_rows}"
        return [Score.insufficient("estimated_performance", name, reason) for name in metrics]

    values = _estimates(model.calibrate(raw), raw, pred)
    out = []
    for name in metrics:
        value = values[name]
        if not np.isfinite(value):
            reason = "expected confusion matrix has no positives for this metric"
            if name == "roc_auc":
                reason = "calibrated probabilities are all 0 or all 1: no expected class mix"
            out.append(Score.insufficient("estimated_performance", name, reason))
            continue
        details: dict[str, Any] = {"n": n, "dropped_rows": int((~keep).sum()), "calibrated": model.calibrated}
        unit = model.sampling_error_unit.get(name)
        if unit is not None:
            se = unit / np.sqrt(n)
            details.update(
                sampling_error=se,
                ci_lower=max(value - SAMPLING_ERROR_RANGE * se, 0.0),
                ci_upper=min(value + SAMPLING_ERROR_RANGE * se, 1.0),
            )
        band = model.bands.get(name)
        if band is not None:
            details.update(band_lower=band.lower, band_upper=band.upper)
        out.append(
            Score(
                kind="estimated_performance",
                method=name,
                value=value,
                threshold=None if band is None else band.lower,
                breached=None if band is None else bool(value < band.lower),
                details=details,
            )
        )
    return out
