"""Realized performance once labels arrive, with bootstrap confidence intervals and reference bands.

Every metric is written once, as a *weighted* metric over a ``(resamples, rows)`` weight matrix:
the point estimate is that metric with all weights 1, and the bootstrap re-uses it with
multinomial resampling counts as weights (resampling rows with replacement is exactly
re-weighting each row by how often it was drawn). So the bootstrap is vectorized — no Python
loop over resamples, no re-sorting for ROC AUC — and the point estimate and its interval can never
disagree about the definition of a metric.

Confidence intervals: percentile bootstrap (``n_resamples`` resamples, ``numpy`` generator seeded
with ``seed``, so a rerun of a window gives the same interval). Reference band (as NannyML):
compute the metric on reference chunks and take ``mean ± 3 std``, clipped to the metric's range;
a window is breached when the metric is worse than the band (below it for accuracy-like
metrics, above it for error metrics).

Definitions follow scikit-learn: binary precision/recall/F1 of the positive class; multiclass
precision/recall/F1 are macro averages over ``classes`` with a class that is never predicted (or
never true) counting 0 (``zero_division=0``); multiclass ROC AUC is one-vs-rest macro; log loss clips
probabilities to ``[eps, 1 - eps]``; MAPE divides by ``max(|y|, eps)``.

Example
-------
>>> import numpy as np
>>> y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
>>> p = np.array([0.1, 0.8, 0.6, 0.3, 0.9, 0.6, 0.4, 0.7])
>>> scores = performance_scores("binary", y, (p >= 0.5).astype(int), p)
>>> {s.method: round(s.value, 3) for s in scores}["roc_auc"]
0.9
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from detectors.types import Score
from monitor.methods import CLASSIFICATION_METRICS, REGRESSION_METRICS

Task = Literal["binary", "multiclass", "regression"]

# Metrics where a larger value is worse: their band is breached from above.
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "mape"})
# Theoretical range of each metric: reference bands are clipped to it (as NannyML does).
METRIC_LIMITS: Mapping[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "precision": (0.0, 1.0),
    "recall": (0.0, 1.0),
    "f1": (0.0, 1.0),
    "roc_auc": (0.0, 1.0),
    "log_loss": (0.0, np.inf),
    "mae": (0.0, np.inf),
    "rmse": (0.0, np.inf),
    "mape": (0.0, np.inf),
    "r2": (-np.inf, 1.0),
}
_EPS = float(np.finfo(np.float64).eps)
# Upper bound on the elements of one block of the (resamples x rows) weight matrix (~32 MB of float64).
_BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True, slots=True)
class Band:
    """Acceptable range of a metric, learned from reference chunks."""

    lower: float
    upper: float
    mean: float
    std: float
    n_chunks: int

    def to_dict(self) -> dict[str, float]:
        return {"lower": self.lower, "upper": self.upper, "mean": self.mean, "std": self.std, "n_chunks": self.n_chunks}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Band:
        return cls(
            lower=float(data["lower"]),
            upper=float(data["upper"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
            n_chunks=int(data["n_chunks"]),
        )


def bands_to_dict(bands: Mapping[str, Band]) -> dict[str, dict[str, float]]:
    """Plain-JSON form of reference bands, for caching in the store."""
    return {metric: band.to_dict() for metric, band in bands.items()}


def bands_from_dict(data: Mapping[str, Mapping[str, Any]]) -> dict[str, Band]:
    return {metric: Band.from_dict(band) for metric, band in data.items()}


# --------------------------------------------------------------------------------------------
# Prepared data: labels encoded once, then any weight matrix can be evaluated.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    task: Task
    n: int
    # classification: integer class index per row (binary: 1 = positive); regression: floats
    y_true: np.ndarray
    y_pred: np.ndarray | None
    # binary: (n,) probability of the positive class; multiclass: (n, k); regression: unused
    y_score: np.ndarray | None
    n_classes: int
    dropped_rows: int

    # The metric functions read these; _available_metrics has refused a metric whose input is absent.
    @property
    def pred(self) -> np.ndarray:
        if self.y_pred is None:
            raise ValueError("this metric needs y_pred")
        return self.y_pred

    @property
    def score(self) -> np.ndarray:
        if self.y_score is None:
            raise ValueError("this metric needs y_score")
        return self.y_score


def _is_missing(values: np.ndarray) -> np.ndarray:
    missing = np.asarray(pd.isna(values), dtype=bool)
    return missing if missing.ndim == 1 else np.asarray(missing.any(axis=1))


def _encode(labels: np.ndarray, classes: Sequence[Any], field: str) -> np.ndarray:
    """Map labels to their index in ``classes``; an unknown label is a clear error."""
    lookup = {cls: i for i, cls in enumerate(classes)}
    try:
        return np.fromiter((lookup[v] for v in labels.tolist()), dtype=np.int64, count=len(labels))
    except KeyError as exc:
        raise ValueError(f"{field} contains label {exc.args[0]!r} not in classes {list(classes)}") from exc


def _prepare(
    task: Task,
    y_true: Any,
    y_pred: Any,
    y_score: Any,
    classes: Sequence[Any] | None,
) -> _Prepared:
    if task not in ("binary", "multiclass", "regression"):
        raise ValueError(f"task must be 'binary', 'multiclass' or 'regression', got {task!r}")
    t = np.asarray(y_true)
    p = None if y_pred is None else np.asarray(y_pred)
    s = None if y_score is None else np.asarray(y_score, dtype=np.float64)
    for name, arr in (("y_pred", p), ("y_score", s)):
        if arr is not None and len(arr) != len(t):
            raise ValueError(f"{name} has {len(arr)} rows but y_true has {len(t)}")

    # A row without a label (or with a missing prediction / non-finite score) cannot be scored;
    # label coverage is reported separately by label_scores.
    keep = ~_is_missing(t)
    if p is not None:
        keep &= ~_is_missing(p)
        if task == "regression":
            keep &= np.isfinite(p.astype(np.float64))
    if s is not None:
        finite = np.isfinite(s)
        keep &= finite if finite.ndim == 1 else finite.all(axis=1)
    dropped = int(len(t) - keep.sum())
    t = t[keep]
    p = None if p is None else p[keep]
    s = None if s is None else s[keep]

    if task == "regression":
        t = t.astype(np.float64)
        if not np.isfinite(t).all():
            raise ValueError("y_true contains infinite values")
        return _Prepared(task, len(t), t, None if p is None else p.astype(np.float64), None, 0, dropped)

    if task == "binary":
        if classes is None:
            classes = (0, 1)
            present = set(pd.unique(t).tolist()) | (set() if p is None else set(pd.unique(p).tolist()))
            if not present <= {0, 1}:
                raise ValueError(
                    f"binary labels must be 0/1 (or pass classes=(negative, positive)); got {sorted(map(str, present))}"
                )
            t_idx = t.astype(np.int64)
            p_idx = None if p is None else p.astype(np.int64)
        else:
            if len(classes) != 2:
                raise ValueError(f"binary task needs exactly 2 classes (negative, positive), got {list(classes)}")
            t_idx = _encode(t, classes, "y_true")
            p_idx = None if p is None else _encode(p, classes, "y_pred")
        if s is not None:
            if s.ndim != 1:
                raise ValueError("binary y_score must be 1-D: the probability of the positive class")
            if (s < 0).any() or (s > 1).any():
                raise ValueError("y_score must be probabilities in [0, 1]")
        return _Prepared(task, len(t_idx), t_idx, p_idx, s, 2, dropped)

    if classes is None:
        raise ValueError("multiclass task needs classes (the column order of y_score)")
    t_idx = _encode(t, classes, "y_true")
    p_idx = None if p is None else _encode(p, classes, "y_pred")
    if s is not None:
        if s.ndim != 2 or s.shape[1] != len(classes):
            raise ValueError(f"multiclass y_score must have shape (n, {len(classes)}), got {s.shape}")
        if (s < 0).any() or (s > 1).any():
            raise ValueError("y_score must be probabilities in [0, 1]")
    return _Prepared(task, len(t_idx), t_idx, p_idx, s, len(classes), dropped)


# --------------------------------------------------------------------------------------------
# Weighted metrics: ``w`` has shape (B, n); each returns shape (B,), NaN where undefined.
# --------------------------------------------------------------------------------------------


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _safe_ratio_zero(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # sklearn's zero_division=0 for per-class macro averages
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _binary_confusion(w: np.ndarray, d: _Prepared) -> tuple[np.ndarray, ...]:
    t = d.y_true.astype(bool)
    p = d.pred.astype(bool)
    tp = w @ (t & p).astype(np.float64)
    fp = w @ (~t & p).astype(np.float64)
    fn = w @ (t & ~p).astype(np.float64)
    tn = w @ (~t & ~p).astype(np.float64)
    return tp, fp, fn, tn


def _multiclass_counts(w: np.ndarray, d: _Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eye = np.eye(d.n_classes)
    true_hot = eye[d.y_true]
    pred_hot = eye[d.pred]
    tp = w @ (true_hot * pred_hot)
    return tp, w @ pred_hot, w @ true_hot


def _accuracy(w: np.ndarray, d: _Prepared) -> np.ndarray:
    correct = (d.y_true == d.pred).astype(np.float64)
    return _ratio(w @ correct, w.sum(axis=1))


def _precision(w: np.ndarray, d: _Prepared) -> np.ndarray:
    if d.task == "binary":
        tp, fp, _, _ = _binary_confusion(w, d)
        return _ratio(tp, tp + fp)
    tp, pred_count, _ = _multiclass_counts(w, d)
    return _safe_ratio_zero(tp, pred_count).mean(axis=1)


def _recall(w: np.ndarray, d: _Prepared) -> np.ndarray:
    if d.task == "binary":
        tp, _, fn, _ = _binary_confusion(w, d)
        return _ratio(tp, tp + fn)
    tp, _, true_count = _multiclass_counts(w, d)
    return _safe_ratio_zero(tp, true_count).mean(axis=1)


def _f1(w: np.ndarray, d: _Prepared) -> np.ndarray:
    if d.task == "binary":
        tp, fp, fn, _ = _binary_confusion(w, d)
        return _ratio(2 * tp, 2 * tp + fp + fn)
    tp, pred_count, true_count = _multiclass_counts(w, d)
    return _safe_ratio_zero(2 * tp, pred_count + true_count).mean(axis=1)


def weighted_roc_auc(w: np.ndarray, positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of weights ``w`` (B, n): P(score_pos > score_neg) + ½ P(tie).

    ``positive`` is 0/1 per row, or a probability of being positive: then the result is the
    expected ROC AUC of the ratio form CBPE uses. Sorts once; ties share the mean of the negative
    weight below and up to their score, which is the trapezoid rule scikit-learn applies to the
    ROC curve.
    """
    order = np.argsort(score, kind="stable")
    s = score[order]
    pos = positive[order].astype(np.float64)
    w = w[:, order]
    # index range [start, end) of each row's tie group in sorted order
    new_group = np.r_[True, s[1:] != s[:-1]]
    neg_cum = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(w * (1.0 - pos), axis=1)], axis=1)
    if new_group.all():  # no ties (continuous scores): each row is its own group, slices instead of gathers
        neg_below_or_tied = 0.5 * (neg_cum[:, :-1] + neg_cum[:, 1:])
    else:
        starts = np.flatnonzero(new_group)
        group = np.cumsum(new_group) - 1
        ends = np.r_[starts[1:], len(s)]
        neg_below_or_tied = 0.5 * (neg_cum[:, starts[group]] + neg_cum[:, ends[group]])
    w_pos = w @ pos
    w_neg = neg_cum[:, -1]
    return _ratio((w * pos * neg_below_or_tied).sum(axis=1), w_pos * w_neg)


def _roc_auc(w: np.ndarray, d: _Prepared) -> np.ndarray:
    if d.task == "binary":
        return weighted_roc_auc(w, d.y_true == 1, d.score)
    per_class = [weighted_roc_auc(w, d.y_true == k, d.score[:, k]) for k in range(d.n_classes)]
    return np.mean(per_class, axis=0)


def _log_loss(w: np.ndarray, d: _Prepared) -> np.ndarray:
    s = d.score
    # probability the model gave to the true class of each row
    p_true = np.where(d.y_true == 1, s, 1.0 - s) if d.task == "binary" else s[np.arange(d.n), d.y_true]
    loss = -np.log(np.clip(p_true, _EPS, 1.0 - _EPS))
    return _ratio(w @ loss, w.sum(axis=1))


def _mae(w: np.ndarray, d: _Prepared) -> np.ndarray:
    return _ratio(w @ np.abs(d.pred - d.y_true), w.sum(axis=1))


def _rmse(w: np.ndarray, d: _Prepared) -> np.ndarray:
    return np.sqrt(_ratio(w @ (d.pred - d.y_true) ** 2, w.sum(axis=1)))


def _mape(w: np.ndarray, d: _Prepared) -> np.ndarray:
    rel = np.abs(d.pred - d.y_true) / np.maximum(np.abs(d.y_true), _EPS)
    return _ratio(w @ rel, w.sum(axis=1))


def _r2(w: np.ndarray, d: _Prepared) -> np.ndarray:
    # Centre first so huge values do not cancel catastrophically in sum(y²) - sum(y)²/n.
    y = d.y_true - d.y_true.mean()
    total = w.sum(axis=1)
    sst = w @ y**2 - _ratio((w @ y) ** 2, total)
    sse = w @ (d.pred - d.y_true) ** 2
    # A (resampled) constant target has no variance to explain: R² is undefined there.
    sst = np.where(sst > 1e-12 * np.maximum(w @ y**2, _EPS), sst, 0.0)
    return 1.0 - _ratio(sse, sst)


_METRICS: Mapping[str, Callable[[np.ndarray, _Prepared], np.ndarray]] = {
    "accuracy": _accuracy,
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "roc_auc": _roc_auc,
    "log_loss": _log_loss,
    "mae": _mae,
    "rmse": _rmse,
    "mape": _mape,
    "r2": _r2,
}
_NEEDS_PRED = frozenset({"accuracy", "precision", "recall", "f1", "mae", "rmse", "mape", "r2"})
_NEEDS_SCORE = frozenset({"roc_auc", "log_loss"})


def _why_undefined(metric: str, d: _Prepared) -> str:
    """Reason a metric has no value on this data (called only when the point estimate is NaN)."""
    if metric == "roc_auc":
        return (
            "ROC AUC needs both classes in the labels"
            if d.task == "binary"
            else ("ROC AUC needs every class in the labels")
        )
    if metric == "precision":
        return "no positive predictions"
    if metric == "recall":
        return "no positive labels"
    if metric == "f1":
        return "no positive labels and no positive predictions"
    if metric == "r2":
        return "constant target: R² is undefined"
    return f"{metric} is undefined on this window"


def _available_metrics(d: _Prepared, requested: Sequence[str] | None) -> list[str]:
    allowed = REGRESSION_METRICS if d.task == "regression" else CLASSIFICATION_METRICS
    names = list(allowed) if requested is None else list(requested)
    for name in names:
        if name not in allowed:
            raise ValueError(f"unknown {d.task} metric {name!r}; valid: {', '.join(allowed)}")
    if requested is None:
        names = [
            m
            for m in names
            if (m not in _NEEDS_PRED or d.y_pred is not None) and (m not in _NEEDS_SCORE or d.y_score is not None)
        ]
    for name in names:
        if name in _NEEDS_PRED and d.y_pred is None:
            raise ValueError(f"metric {name!r} needs y_pred")
        if name in _NEEDS_SCORE and d.y_score is None:
            raise ValueError(f"metric {name!r} needs y_score")
    return names


def _multiclass_auc_undefined(d: _Prepared) -> bool:
    return d.task == "multiclass" and len(np.unique(d.y_true)) < d.n_classes


def _bootstrap(
    metric_fns: Mapping[str, Callable[[np.ndarray, _Prepared], np.ndarray]], d: _Prepared, n_resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Each metric on the same ``n_resamples`` bootstrap resamples, in blocks that bound memory.

    The resamples are drawn once for all metrics (drawing them is as costly as a metric): each
    metric sees the draws it would see alone with ``seed``.
    """
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // max(d.n, 1))
    out: dict[str, list[np.ndarray]] = {name: [] for name in metric_fns}
    for start in range(0, n_resamples, block):
        counts = _resample_counts(rng, min(block, n_resamples - start), d.n)
        for name, metric_fn in metric_fns.items():
            out[name].append(metric_fn(counts, d))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _resample_counts(rng: np.random.Generator, resamples: int, n: int) -> np.ndarray:
    """How often each of ``n`` rows is drawn in each of ``resamples`` resamples with replacement, ``(resamples, n)``.

    The draws are ``rng.integers(0, n, (resamples, n))``: the indices scipy.stats.bootstrap draws.
    """
    draws = rng.integers(0, n, size=(resamples, n))
    return counts_of_draws(draws, n)


def counts_of_draws(draws: np.ndarray, n: int) -> np.ndarray:
    """Resampled row indices ``(B, m)`` as weights ``(B, n)``: how often each row was drawn."""
    b = draws.shape[0]
    flat = (draws + (np.arange(b) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def _band_check(metric: str, value: float, band: Band | None) -> tuple[float | None, bool | None]:
    if band is None:
        return None, None
    if metric in LOWER_IS_BETTER:
        return band.upper, bool(value > band.upper)
    return band.lower, bool(value < band.lower)


def performance_scores(
    task: Task,
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    *,
    classes: Sequence[Any] | None = None,
    bands: Mapping[str, Band] | None = None,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 200,
    seed: int = 0,
    min_rows: int = 2,
) -> list[Score]:
    """Realized performance of one window, one :class:`Score` per metric (``kind="performance"``).

    ``y_true`` may hold missing values for predictions not yet labelled; those rows are left
    out (``details["n"]`` is the number scored). ``y_pred`` are predicted labels (classification)
    or values (regression); ``y_score`` the positive-class probability (binary) or an ``(n, k)``
    probability matrix in ``classes`` order (multiclass). Binary labels are 0/1 unless
    ``classes=(negative, positive)`` is given. ``metrics=None`` scores every metric the inputs
    allow. ``bands`` (from :func:`fit_performance_bands`) set ``threshold`` and ``breached``.

    A window with fewer than ``min_rows`` labelled rows, or on which a metric is undefined
    (one class only for ROC AUC, constant target for R², ...), gets ``Score.insufficient``.
    """
    d = _prepare(task, y_true, y_pred, y_score, classes)
    names = _available_metrics(d, metrics)
    if d.n < min_rows:
        reason = f"{d.n} labelled rows in window, need at least {min_rows}"
        return [Score.insufficient("performance", name, reason) for name in names]

    alpha = (1.0 - confidence) / 2.0
    ones = np.ones((1, d.n))
    values: dict[str, float] = {}
    for name in names:
        if not (name == "roc_auc" and _multiclass_auc_undefined(d)):
            values[name] = float(_METRICS[name](ones, d)[0])
    defined = {name: _METRICS[name] for name, value in values.items() if np.isfinite(value)}
    resampled = _bootstrap(defined, d, n_resamples, seed) if defined else {}
    scores = []
    for name in names:
        if name not in defined:
            scores.append(Score.insufficient("performance", name, _why_undefined(name, d)))
            continue
        value = values[name]
        boot = resampled[name]
        boot = boot[np.isfinite(boot)]
        details: dict[str, Any] = {
            "n": d.n,
            "dropped_rows": d.dropped_rows,
            "confidence": confidence,
            "ci_method": "bootstrap_percentile",
            "n_resamples": n_resamples,
            "n_valid_resamples": len(boot),
            "seed": seed,
        }
        # A resample on which the metric is undefined (e.g. no positives drawn) is skipped; if most
        # are, the interval would describe a different population, so it is left out.
        if len(boot) >= n_resamples / 2:
            lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
            details.update(ci_lower=float(lo), ci_upper=float(hi), std_error=float(boot.std(ddof=1)))
        band = None if bands is None else bands.get(name)
        threshold, breached = _band_check(name, value, band)
        if band is not None:
            details.update(band_lower=band.lower, band_upper=band.upper)
        scores.append(
            Score(kind="performance", method=name, value=value, threshold=threshold, breached=breached, details=details)
        )
    return scores


def metric_values(
    task: Task,
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    *,
    classes: Sequence[Any] | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, float]:
    """Point values only (no interval), NaN where undefined: for reference chunks."""
    d = _prepare(task, y_true, y_pred, y_score, classes)
    names = _available_metrics(d, metrics)
    ones = np.ones((1, d.n))
    out = {}
    for name in names:
        undefined = d.n == 0 or (name == "roc_auc" and _multiclass_auc_undefined(d))
        out[name] = np.nan if undefined else float(_METRICS[name](ones, d)[0])
    return out


def band_from_values(values: Sequence[float], metric: str, std_multiplier: float = 3.0) -> Band | None:
    """``mean ± std_multiplier * std`` of a metric over reference chunks, clipped to its range."""
    vals = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if len(vals) < 2:
        return None
    mean, std = float(vals.mean()), float(vals.std(ddof=0))
    lo_limit, hi_limit = METRIC_LIMITS.get(metric, (-np.inf, np.inf))
    return Band(
        lower=max(mean - std_multiplier * std, lo_limit),
        upper=min(mean + std_multiplier * std, hi_limit),
        mean=mean,
        std=std,
        n_chunks=len(vals),
    )


def fit_performance_bands(
    task: Task,
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    *,
    chunk_size: int,
    classes: Sequence[Any] | None = None,
    metrics: Sequence[str] | None = None,
    std_multiplier: float = 3.0,
) -> dict[str, Band]:
    """Reference bands per metric from consecutive reference chunks of ``chunk_size`` rows.

    A trailing partial chunk is dropped (its sampling noise would widen the band). Metrics with
    fewer than two defined chunks get no band. Serialize with :func:`bands_to_dict`.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    t = np.asarray(y_true)
    p = None if y_pred is None else np.asarray(y_pred)
    s = None if y_score is None else np.asarray(y_score)
    per_metric: dict[str, list[float]] = {}
    for start in range(0, len(t) - chunk_size + 1, chunk_size):
        sl = slice(start, start + chunk_size)
        values = metric_values(
            task, t[sl], None if p is None else p[sl], None if s is None else s[sl], classes=classes, metrics=metrics
        )
        for name, value in values.items():
            per_metric.setdefault(name, []).append(value)
    bands = {}
    for name, chunk_values in per_metric.items():
        band = band_from_values(chunk_values, name, std_multiplier)
        if band is not None:
            bands[name] = band
    return bands


def label_scores(
    prediction_times: Any,
    label_times: Any,
    *,
    min_coverage: float = 0.5,
    max_lag_p95_seconds: float | None = None,
) -> list[Score]:
    """Label coverage and label lag of one window (``kind="labels"``).

    ``prediction_times`` / ``label_times`` are datetime-like, one per prediction in the window;
    a missing label time (NaT/None) means the prediction has no label yet. Scores:
    ``coverage`` (share labelled; breached below ``min_coverage``), ``lag_median_seconds`` and
    ``lag_p95_seconds`` (label time minus prediction time; the p95 breaches above
    ``max_lag_p95_seconds`` when given).
    """
    pred = pd.to_datetime(pd.Series(prediction_times), utc=True)
    lab = pd.to_datetime(pd.Series(label_times), utc=True)
    if len(pred) != len(lab):
        raise ValueError(f"label_times has {len(lab)} rows but prediction_times has {len(pred)}")
    n = len(pred)
    if n == 0:
        reason = "no predictions in window"
        return [Score.insufficient("labels", m, reason) for m in ("coverage", "lag_median_seconds", "lag_p95_seconds")]
    labelled = lab.notna().to_numpy()
    coverage = float(labelled.mean())
    scores = [
        Score(
            kind="labels",
            method="coverage",
            value=coverage,
            threshold=min_coverage,
            breached=coverage < min_coverage,
            details={"n": n, "labelled": int(labelled.sum())},
        )
    ]
    if not labelled.any():
        reason = "no labels in window"
        scores += [Score.insufficient("labels", m, reason) for m in ("lag_median_seconds", "lag_p95_seconds")]
        return scores
    lag = ((lab - pred)[labelled]).dt.total_seconds().to_numpy()
    details = {"labelled": int(labelled.sum()), "negative_lags": int((lag < 0).sum())}
    scores.append(Score(kind="labels", method="lag_median_seconds", value=float(np.median(lag)), details=details))
    p95 = float(np.quantile(lag, 0.95))
    scores.append(
        Score(
            kind="labels",
            method="lag_p95_seconds",
            value=p95,
            threshold=max_lag_p95_seconds,
            breached=None if max_lag_p95_seconds is None else p95 > max_lag_p95_seconds,
            details=details,
        )
    )
    return scores


@dataclass(frozen=True, slots=True)
class MetricDifference:
    """One metric on a candidate's rows and on a baseline's, and the interval of candidate − baseline."""

    metric: str
    candidate: float
    baseline: float
    n_candidate: int
    n_baseline: int
    confidence: float
    n_resamples: int
    n_valid_resamples: int
    ci_lower: float | None  # None when most resamples left the metric undefined
    ci_upper: float | None

    @property
    def difference(self) -> float:
        return self.candidate - self.baseline

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER


Rows = tuple[Any, Any, Any]  # y_true, y_pred, y_score of one sample, as performance_scores takes them


def metric_difference(
    task: Task,
    metric: str,
    candidate: Rows,
    baseline: Rows,
    *,
    classes: Sequence[Any] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> MetricDifference:
    """``metric`` on two independent samples and a percentile bootstrap interval of their difference.

    The samples are rows served by two model versions: nothing pairs a row of one with a row of the
    other, so each resample draws ``n_candidate`` candidate rows and ``n_baseline`` baseline rows with
    replacement, independently, and takes candidate − baseline. That is
    ``scipy.stats.bootstrap((candidate, baseline), statistic, paired=False, method="percentile")``,
    draw for draw with the same generator (the candidate's draws, then the baseline's, per block;
    tests/unit/test_canary.py compares the intervals value for value). Unlabelled rows are left out.
    Raises ``ValueError`` when the metric is undefined on either sample (no labelled rows, one class
    only for ROC AUC, ...).
    """
    c = _prepare(task, *candidate, classes)
    b = _prepare(task, *baseline, classes)
    fn = _METRICS[_available_metrics(c, [metric])[0]]
    _available_metrics(b, [metric])
    points = []
    for side, d in (("candidate", c), ("baseline", b)):
        undefined = d.n == 0 or (metric == "roc_auc" and _multiclass_auc_undefined(d))
        value = np.nan if undefined else float(fn(np.ones((1, d.n)), d)[0])
        if not np.isfinite(value):
            why = _why_undefined(metric, d) if d.n else "no labelled rows"
            raise ValueError(f"{metric} is undefined on the {side}'s rows: {why}")
        points.append(value)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // max(c.n, b.n))
    out = []
    for start in range(0, n_resamples, block):
        k = min(block, n_resamples - start)
        out.append(fn(_resample_counts(rng, k, c.n), c) - fn(_resample_counts(rng, k, b.n), b))
    boot = np.concatenate(out) if out else np.empty(0)
    boot = boot[np.isfinite(boot)]
    lower = upper = None
    if len(boot) and len(boot) >= n_resamples / 2:
        alpha = (1.0 - confidence) / 2.0
        lower, upper = (float(v) for v in np.quantile(boot, [alpha, 1.0 - alpha]))
    return MetricDifference(metric, points[0], points[1], c.n, b.n, confidence, n_resamples, len(boot), lower, upper)
