"""Label-free performance estimation for classifiers: confidence-based (CBPE), binary and multiclass.

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

Multiclass (:func:`fit_multiclass_cbpe`, as NannyML): each class one-vs-rest, its probability column
calibrated on its own by the same test, then each row renormalized to sum to 1. Estimates are the
macro averages of the per-class expected precision, recall and F1 (a class with an empty
denominator counts 0), the mean of the per-class expected ROC AUCs, and accuracy = the mean
calibrated probability of the predicted class. Sampling errors use NannyML's closed forms from the
reference (see :func:`_multiclass_sampling_error_units`) instead of the bootstrap, so the confidence
band is NannyML's too. ROC AUC ties: Driftscope counts tied scores ½ (the trapezoid of the collapsed
ROC curve); NannyML walks tied rows in sort order and rounds the cumulative counts to 5 decimals,
so on its sample data (probabilities with 2 decimals) the two differ by about 1e-6.

References
----------
- NannyML, "Confidence-based Performance Estimation (CBPE)",
  https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html
- NannyML source: ``nannyml/calibration.py`` (``needs_calibration``),
  ``nannyml/performance_estimation/confidence_based/metrics.py`` (``estimate_roc_auc``, ``estimate_f1``),
  ``cbpe.py`` (``_fit_calibrators``, ``_calibrate_predicted_probabilities``) and
  ``nannyml/sampling_error/multiclass_classification.py``.
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
import pandas as pd
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
    # NannyML's default (unstable) sort: tied scores that straddle a bin edge land in the bin
    # NannyML puts them in, so a close decision (one class of NannyML's multiclass sample) agrees.
    order = np.argsort(p)
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


def _fit_calibration(labels: np.ndarray, scores: np.ndarray) -> tuple[bool, tuple[float, ...], tuple[float, ...]]:
    """``(calibrated, breakpoints x, breakpoints y)``: isotonic only where :func:`needs_calibration` says so."""
    if not needs_calibration(labels, scores):
        return False, (), ()
    iso = _isotonic(scores, labels)
    return True, tuple(iso.X_thresholds_.tolist()), tuple(iso.y_thresholds_.tolist())


def _sampling_error_units(realized: Sequence[Score], n_reference: int) -> dict[str, float]:
    return {sc.method: sc.details["std_error"] * np.sqrt(n_reference) for sc in realized if "std_error" in sc.details}


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

    calibrated, cal_x, cal_y = _fit_calibration(y, s)

    bands = fit_performance_bands(
        "binary", y, pred, s, chunk_size=chunk_size, metrics=ESTIMATED_METRICS, std_multiplier=std_multiplier
    )
    realized = performance_scores("binary", y, pred, s, metrics=ESTIMATED_METRICS, n_resamples=n_resamples, seed=seed)
    return CBPEModel(
        calibrated=calibrated,
        calibration_x=cal_x,
        calibration_y=cal_y,
        threshold=threshold,
        bands=bands,
        sampling_error_unit=_sampling_error_units(realized, len(y)),
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
    check_metrics(metrics, ESTIMATED_METRICS)
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
    details = {"n": n, "dropped_rows": int((~keep).sum()), "calibrated": model.calibrated}
    return window_scores(values, metrics, model.sampling_error_unit, model.bands, details)


def check_metrics(metrics: Sequence[str], valid: Sequence[str]) -> None:
    for name in metrics:
        if name not in valid:
            raise ValueError(f"unknown estimated metric {name!r}; valid: {', '.join(valid)}")


def window_scores(
    values: Mapping[str, float],
    metrics: Sequence[str],
    sampling_error_unit: Mapping[str, float],
    bands: Mapping[str, Band],
    base_details: Mapping[str, Any],
    *,
    upper_limit: float = 1.0,
    lower_is_better: bool = False,
) -> list[Score]:
    """One estimated Score per metric: ``estimate ± 3 sampling errors`` and the reference band.

    Breached when the estimate is worse than the band: below it, or above it for an error metric
    (``lower_is_better``).
    """
    n = int(base_details["n"])
    out = []
    for name in metrics:
        value = values[name]
        if not np.isfinite(value):
            reason = "expected confusion matrix has no positives for this metric"
            if name == "roc_auc":
                reason = "calibrated probabilities are all 0 or all 1: no expected class mix"
            out.append(Score.insufficient("estimated_performance", name, reason))
            continue
        details: dict[str, Any] = dict(base_details)
        unit = sampling_error_unit.get(name)
        if unit is not None:
            se = unit / np.sqrt(n)
            details.update(
                sampling_error=se,
                ci_lower=max(value - SAMPLING_ERROR_RANGE * se, 0.0),
                ci_upper=min(value + SAMPLING_ERROR_RANGE * se, upper_limit),
            )
        band = bands.get(name)
        threshold, breached = None, None
        if band is not None:
            details.update(band_lower=band.lower, band_upper=band.upper)
            threshold = band.upper if lower_is_better else band.lower
            breached = bool(value > threshold) if lower_is_better else bool(value < threshold)
        out.append(
            Score(
                kind="estimated_performance",
                method=name,
                value=value,
                threshold=threshold,
                breached=breached,
                details=details,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Multiclass: CBPE one-vs-rest per class, macro-averaged (NannyML's multiclass CBPE).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MulticlassCBPEModel:
    """CBPE fitted on a multiclass reference: one isotonic calibration per class (or none)."""

    classes: tuple[Any, ...]
    # per class, in ``classes`` order: isotonic breakpoints, both empty when not calibrated
    calibration_x: tuple[tuple[float, ...], ...]
    calibration_y: tuple[tuple[float, ...], ...]
    bands: Mapping[str, Band]
    sampling_error_unit: Mapping[str, float]
    n_reference: int

    @property
    def calibrated_classes(self) -> list[Any]:
        return [c for c, x in zip(self.classes, self.calibration_x, strict=True) if x]

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """Calibrate each class column on its own, then renormalize rows to sum to 1 (NannyML).

        A row whose calibrated probabilities are all 0 gets the uniform distribution.
        """
        s = np.asarray(scores, dtype=np.float64)
        cal = np.column_stack(
            [
                np.interp(s[:, k], x, y) if x else s[:, k]
                for k, (x, y) in enumerate(zip(self.calibration_x, self.calibration_y, strict=True))
            ]
        )
        total = cal.sum(axis=1, keepdims=True)
        uniform = np.full_like(cal, 1.0 / len(self.classes))
        return np.divide(cal, total, out=uniform, where=total != 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "calibration_x": [list(x) for x in self.calibration_x],
            "calibration_y": [list(y) for y in self.calibration_y],
            "bands": bands_to_dict(self.bands),
            "sampling_error_unit": dict(self.sampling_error_unit),
            "n_reference": self.n_reference,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MulticlassCBPEModel:
        return cls(
            classes=tuple(data["classes"]),
            calibration_x=tuple(tuple(float(v) for v in x) for x in data["calibration_x"]),
            calibration_y=tuple(tuple(float(v) for v in y) for y in data["calibration_y"]),
            bands=bands_from_dict(data["bands"]),
            sampling_error_unit={k: float(v) for k, v in data["sampling_error_unit"].items()},
            n_reference=int(data["n_reference"]),
        )


def _class_index(labels: Any, classes: Sequence[Any], field: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    try:
        return np.array([index[v] for v in np.asarray(labels).tolist()], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"{field} contains label {exc.args[0]!r} not in classes {list(classes)}") from exc


def _score_matrix(scores: Any, classes: Sequence[Any], field: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(classes):
        raise ValueError(f"{field} must have shape (n, {len(classes)}): one probability column per class")
    return s


def fit_multiclass_cbpe(
    reference_scores: Any,
    reference_labels: Any,
    reference_predictions: Any = None,
    *,
    classes: Sequence[Any],
    chunk_size: int,
    std_multiplier: float = 3.0,
) -> MulticlassCBPEModel:
    """Fit multiclass CBPE on a labelled reference.

    ``reference_scores`` is an ``(n, k)`` matrix of class probabilities, columns in ``classes``
    order; ``reference_predictions`` the predicted classes (default: the most probable class).
    Each class is calibrated one-vs-rest, with the same test as the binary case. Raises
    ``ValueError`` when a class never occurs in the reference labels.
    """
    if len(classes) < 3:
        raise ValueError(f"multiclass CBPE needs at least 3 classes, got {list(classes)}: use fit_cbpe")
    s = _score_matrix(reference_scores, classes, "reference_scores")
    labels = np.asarray(reference_labels)
    if len(labels) != len(s):
        raise ValueError(f"reference_labels has {len(labels)} rows but reference_scores has {len(s)}")
    pred_labels = (
        np.asarray(classes, dtype=object)[s.argmax(axis=1)]
        if reference_predictions is None
        else np.asarray(reference_predictions)
    )
    keep = np.isfinite(s).all(axis=1) & ~pd.isna(labels) & ~pd.isna(pred_labels)
    s, labels, pred_labels = s[keep], labels[keep], pred_labels[keep]
    if (s < 0).any() or (s > 1).any():
        raise ValueError("reference_scores must be probabilities in [0, 1]")
    y = _class_index(labels, classes, "reference_labels")
    missing = [c for i, c in enumerate(classes) if not (y == i).any()]
    if missing:
        raise ValueError(f"classes {missing} never occur in reference_labels: CBPE cannot calibrate them")

    fitted = [_fit_calibration((y == k).astype(np.int64), s[:, k]) for k in range(len(classes))]
    bands = fit_performance_bands(
        "multiclass",
        labels,
        pred_labels,
        s,
        chunk_size=chunk_size,
        classes=classes,
        metrics=ESTIMATED_METRICS,
        std_multiplier=std_multiplier,
    )
    return MulticlassCBPEModel(
        classes=tuple(classes),
        calibration_x=tuple(x for _, x, _ in fitted),
        calibration_y=tuple(y for _, _, y in fitted),
        bands=bands,
        sampling_error_unit=_multiclass_sampling_error_units(y, _class_index(pred_labels, classes, "predictions"), s),
        n_reference=len(y),
    )


def _auroc_rank_variance(positive: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """NannyML's per-class AUROC component: the variance, over positives, of the share of negatives
    ranked below each, and the share of positives (the rarer side is taken as positive)."""
    if positive.mean() > 0.5:
        positive, score = 1 - positive, 1.0 - score
    ranks = np.flatnonzero(positive[np.argsort(score)])
    # NannyML drops rank 0 (np.unique(y * rank)[1:]); kept so the figures agree
    ranks = ranks[ranks > 0]
    below = (ranks - np.arange(len(ranks))) / (len(positive) - positive.sum())
    return float(np.var(below)), float(positive.mean())


def _multiclass_sampling_error_units(y: np.ndarray, pred: np.ndarray, s: np.ndarray) -> dict[str, float]:
    """Sampling error × sqrt(rows) per metric, NannyML's closed forms (``sampling_error/multiclass_classification.py``).

    Per class, the metric is a mean of 0/1 outcomes over the rows that enter it (TP against FP for
    precision, TP against FN for recall, TP against FP + FN for F1): variance ``q (1 - q)`` over the
    share of rows that enter it; the macro average's error is ``sqrt(sum of class variances) / k``.
    Accuracy: the standard deviation of "correct". ROC AUC: the rank variance above, times 1.2 (NannyML's
    allowance for the dependence between the classes' one-vs-rest AUCs).
    """
    k = s.shape[1]
    true_hot = y[:, None] == np.arange(k)[None, :]
    pred_hot = pred[:, None] == np.arange(k)[None, :]
    tp = (true_hot & pred_hot).sum(axis=0)
    fp = (~true_hot & pred_hot).sum(axis=0)
    fn = (true_hot & ~pred_hot).sum(axis=0)
    n = len(y)

    def macro_unit(relevant: np.ndarray) -> float:
        q = tp / np.maximum(relevant, 1)
        # A class no row enters (never predicted, for precision) adds no variance: 0, not 0/0.
        variance = np.divide(q * (1 - q) * n, relevant, out=np.zeros(k), where=relevant > 0)
        return float(np.sqrt(np.sum(variance)) / k)

    auroc = [_auroc_rank_variance(true_hot[:, c].astype(np.int64), s[:, c]) for c in range(k)]
    return {
        "roc_auc": float(np.sqrt(sum(var / share for var, share in auroc)) / k * 1.2),
        "accuracy": float(np.std(y == pred)),
        "precision": macro_unit(tp + fp),
        "recall": macro_unit(tp + fn),
        "f1": macro_unit(tp + fp + fn),
    }


def _multiclass_estimates(p: np.ndarray, raw: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Macro averages of the per-class (one-vs-rest) expected confusion matrices; a class with an
    empty denominator counts 0, as scikit-learn's ``zero_division=0`` and NannyML do."""
    k = p.shape[1]
    predicted = pred[:, None] == np.arange(k)[None, :]
    tp = (p * predicted).sum(axis=0)
    fp = ((1.0 - p) * predicted).sum(axis=0)
    fn = (p * ~predicted).sum(axis=0)

    def macro(num: np.ndarray, den: np.ndarray) -> float:
        safe = np.where(den > 0, den, 1.0)
        return float(np.where(den > 0, num / safe, 0.0).mean())

    ones = np.ones((1, len(p)))
    return {
        "roc_auc": float(np.mean([weighted_roc_auc(ones, p[:, c], raw[:, c])[0] for c in range(k)])),
        "accuracy": float(p[np.arange(len(p)), pred].mean()),
        "precision": macro(tp, tp + fp),
        "recall": macro(tp, tp + fn),
        "f1": macro(tp, tp + 0.5 * (fp + fn)),
    }


def estimated_multiclass_performance_scores(
    model: MulticlassCBPEModel,
    scores: Any,
    predictions: Any = None,
    *,
    metrics: Sequence[str] = ESTIMATED_METRICS,
    min_rows: int = 2,
) -> list[Score]:
    """Estimated macro-averaged performance of one multiclass window from its probabilities alone.

    ``scores`` is ``(n, k)`` in ``model.classes`` order; ``predictions`` the predicted classes
    (default: the most probable). Rows with a non-finite probability or no prediction are left out.
    """
    check_metrics(metrics, ESTIMATED_METRICS)
    raw = _score_matrix(scores, model.classes, "scores")
    pred_labels = (
        np.asarray(model.classes, dtype=object)[raw.argmax(axis=1)] if predictions is None else np.asarray(predictions)
    )
    if len(pred_labels) != len(raw):
        raise ValueError(f"predictions has {len(pred_labels)} rows but scores has {len(raw)}")
    keep = np.isfinite(raw).all(axis=1) & ~pd.isna(pred_labels)
    raw = raw[keep]
    if (raw < 0).any() or (raw > 1).any():
        raise ValueError("scores must be probabilities in [0, 1]")
    n = len(raw)
    if n < min_rows:
        reason = f"{n} scored rows in window, need at least {min_rows}"
        return [Score.insufficient("estimated_performance", name, reason) for name in metrics]
    pred = _class_index(pred_labels[keep], model.classes, "predictions")
    values = _multiclass_estimates(model.calibrate(raw), raw, pred)
    details = {"n": n, "dropped_rows": int((~keep).sum()), "calibrated_classes": model.calibrated_classes}
    return window_scores(values, metrics, model.sampling_error_unit, model.bands, details)
