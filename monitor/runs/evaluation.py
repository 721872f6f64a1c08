"""From a window's columns to its scores: the one place that wires the detectors together.

The scheduler (a window from the store) and ``driftscope check`` (two files) both go through
:func:`fit_baseline` (profile the reference once) and :func:`evaluate` (score one window), so
both give the same numbers for the same data.

Scores are computed in families (drift, quality, performance, ...). A family that raises becomes
one ``status="error"`` score with the reason and the other families go on: one failing detector
never fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, overload

import numpy as np
import orjson
import pandas as pd

from detectors.calibration import ColumnCalibration, alpha_per_feature, calibrate_column
from detectors.drift import ColumnPolicy, column_drift, drift_scores
from detectors.npz import pack, unpack
from detectors.performance import Band, bands_from_dict, bands_to_dict, fit_performance_bands, label_scores
from detectors.performance import performance_scores as realized_performance_scores
from detectors.profile import ColumnProfile, ReferenceProfile, Sample, profile_reference
from detectors.quality import QualityReference, QualityThresholds, quality_scores
from detectors.sequential import SlowDriftParams, slow_drift_score, window_input
from detectors.stattests import InsufficientDataError
from detectors.types import ColumnKind, Score, ScoreKind
from monitor.config import ModelConfig, MonitorConfig, SlowDriftSettings
from monitor.methods import kind_mismatch
from monitor.runs.windows import Batch

if TYPE_CHECKING:
    # Both import scikit-learn (≈ 0.5 s): imported where CBPE or multivariate drift is configured,
    # so a check or a window without them never loads it.
    from detectors.dle import DLEModel
    from detectors.estimation import CBPEModel, MulticlassCBPEModel
    from detectors.multivariate import MultivariateReference

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1
# Columns beside the features whose drift is scored too.
PREDICTION, SCORE, LABEL = "prediction", "score", "label"

Part = Literal["features", "labels"]
ALL_PARTS: frozenset[Part] = frozenset({"features", "labels"})
# What a late label changes (performance, label coverage/lag, label drift): recomputed when labels
# arrive for an already computed window.
LABEL_PARTS: frozenset[Part] = frozenset({"labels"})


# ------------------------------------------------------------------------------------ conversions


def plain(details: Any) -> Any:
    """Detector details as plain JSON values (NumPy scalars and arrays included; NaN → null)."""
    return orjson.loads(orjson.dumps(details, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str))


def score_dict(score: Score) -> dict[str, Any]:
    """A :class:`Score` as plain JSON (for ``driftscope check --format json`` and the store)."""
    return {
        "kind": score.kind,
        "feature": score.feature,
        "method": score.method,
        "value": None if score.value is None else float(score.value),
        "threshold": None if score.threshold is None else float(score.threshold),
        "breached": None if score.breached is None else bool(score.breached),
        "status": score.status,
        "reason": score.reason,
        "details": plain(dict(score.details)),
    }


def to_float(values: np.ndarray) -> np.ndarray:
    """Raw JSON values → float64; ``None`` and anything non-numeric become NaN.

    A float64 column (from a file) is returned as it is: the detectors only read it.
    """
    if values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    try:
        return np.array(values.tolist(), dtype=np.float64)  # None → NaN, fast for clean columns
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def classification_classes(model: ModelConfig, reference_labels: np.ndarray | None = None) -> tuple[str, ...] | None:
    """Class order for the performance detectors, as strings: ``(negative, positive)`` for binary.

    Labels are matched by their string form, as ingestion checks them against ``classes``
    (a stored ``1`` and a configured ``"1"`` are the same class). Without configured classes a
    binary model uses 0/1 — or, with a ``positive_class``, the other label seen in the reference;
    a multiclass model uses the reference's labels in sorted order.
    """
    if model.task == "regression":
        return None
    seen = [] if reference_labels is None else sorted({str(v) for v in reference_labels if v is not None})
    if model.task == "multiclass":
        return tuple(model.classes) if model.classes is not None else (tuple(seen) or None)
    if model.classes is not None:
        positive = model.positive_class or model.classes[-1]
        negative = [c for c in model.classes if c != positive]
        return (negative[0] if negative else "", positive)
    if model.positive_class is not None:
        negative = [c for c in seen if c != model.positive_class]
        if len(negative) == 1:
            return (negative[0], model.positive_class)
    return None


@overload
def as_classes(values: np.ndarray) -> np.ndarray: ...
@overload
def as_classes(values: None) -> None: ...
@overload
def as_classes(values: np.ndarray | None) -> np.ndarray | None: ...
def as_classes(values: np.ndarray | None) -> np.ndarray | None:
    """Class labels by their string form (``None`` stays missing)."""
    if values is None:
        return None
    out = np.empty(len(values), dtype=object)
    out[:] = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
    return out


def _binary01(values: np.ndarray, classes: Sequence[str] | None) -> np.ndarray:
    """Binary labels → 1.0 / 0.0 (NaN where missing), positive = ``classes[1]`` or 1."""
    positive = "1" if classes is None else str(classes[1])
    out = np.full(len(values), np.nan)
    labels = as_classes(values)
    present = labels != None  # noqa: E711  (element-wise on an object array)
    out[present] = labels[present] == positive
    return out


def _performance_labels(
    batch: Batch, y_pred: np.ndarray | None, classes: Sequence[str] | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Labels and predictions as the performance detectors take them: by class string when classes are known."""
    if classes is None:
        return batch.label, y_pred
    return as_classes(batch.label), as_classes(y_pred)


def _present(values: np.ndarray | None) -> TypeGuard[np.ndarray]:
    if values is None or len(values) == 0:
        return False
    if values.dtype == object:
        return any(v is not None for v in values)
    return bool(np.isfinite(values).any())


def drift_columns(model: ModelConfig, batch: Batch) -> dict[str, tuple[ColumnKind, np.ndarray]]:
    """Every column whose drift is scored, with its kind and its values ready for the drift detector."""
    out: dict[str, tuple[ColumnKind, np.ndarray]] = {}
    for name, kind in model.features.items():
        values = batch.features[name]
        out[name] = (kind, to_float(values) if kind == "numeric" else values)
    for extra, extra_values in ((PREDICTION, batch.prediction), (LABEL, batch.label)):
        extra_kind = model.column_kind(extra)
        if extra_values is not None and extra_kind is not None:
            out[extra] = (extra_kind, to_float(extra_values) if extra_kind == "numeric" else extra_values)
    if batch.score is not None and batch.score.ndim == 1:
        out[SCORE] = ("numeric", batch.score)
    return out


# --------------------------------------------------------------------------------------- baseline


@dataclass(frozen=True, eq=False)
class Baseline:
    """A reference reduced to what every detector needs; cached in the store as bytes."""

    n_rows: int
    drift: ReferenceProfile
    quality: QualityReference
    bands: Mapping[str, Band] = field(default_factory=dict)
    cbpe: CBPEModel | MulticlassCBPEModel | None = None
    classes: tuple[Any, ...] | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    multivariate: MultivariateReference | None = None
    calibration: Mapping[str, ColumnCalibration] = field(default_factory=dict)
    # DLE's learners are scikit-learn objects, which the no-pickle bytes cannot hold: only the chunk
    # size they were fitted with is stored, and whoever loads the bytes refits them on the same
    # reference (:meth:`with_dle`; deterministic, so the estimates are the same). The scheduler
    # does it once per cache key: the loaded baseline stays in its memory cache.
    dle_chunk: int | None = None
    dle: DLEModel | None = None

    @property
    def needs_dle(self) -> bool:
        """A DLE was fitted on the reference but is not held (the baseline came from bytes)."""
        return self.dle_chunk is not None and self.dle is None

    def with_dle(self, model: ModelConfig, reference: Batch) -> Baseline:
        """This baseline with its DLE refitted on ``reference`` (the one it was profiled from)."""
        if self.dle_chunk is None:
            return self
        return replace(self, dle=_fit_dle(model, reference, self.dle_chunk))

    def to_bytes(self) -> bytes:
        meta = {
            "version": _FORMAT_VERSION,
            "n_rows": self.n_rows,
            "quality": self.quality.to_dict(),
            "bands": bands_to_dict(self.bands),
            "cbpe": None if self.cbpe is None else self.cbpe.to_dict(),
            "cbpe_task": "multiclass" if self.classes is not None and len(self.classes) > 2 else "binary",
            "dle_chunk": self.dle_chunk,
            "classes": None if self.classes is None else list(self.classes),
            "notes": dict(self.notes),
            "calibration": {name: cal.to_dict() for name, cal in self.calibration.items()},
        }
        arrays = {"drift": np.frombuffer(self.drift.to_bytes(), dtype=np.uint8)}
        if self.multivariate is not None:
            arrays["multivariate"] = np.frombuffer(self.multivariate.to_bytes(), dtype=np.uint8)
        return pack(meta, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Baseline:
        meta, arrays = unpack(data, "baseline", version=_FORMAT_VERSION)
        cbpe, multivariate, packed = None, None, arrays.get("multivariate")
        if meta["cbpe"] is not None:
            from detectors.estimation import CBPEModel, MulticlassCBPEModel

            kind = MulticlassCBPEModel if meta.get("cbpe_task") == "multiclass" else CBPEModel
            cbpe = kind.from_dict(meta["cbpe"])
        if packed is not None:
            from detectors.multivariate import MultivariateReference

            multivariate = MultivariateReference.from_bytes(packed.tobytes())
        return cls(
            n_rows=meta["n_rows"],
            drift=ReferenceProfile.from_bytes(arrays["drift"].tobytes()),
            quality=QualityReference.from_dict(meta["quality"]),
            bands=bands_from_dict(meta["bands"]),
            cbpe=cbpe,
            classes=None if meta["classes"] is None else tuple(meta["classes"]),
            notes=meta["notes"],
            # A baseline cached before calibrated thresholds existed has none.
            calibration={n: ColumnCalibration.from_dict(c) for n, c in meta.get("calibration", {}).items()},
            multivariate=multivariate,
            dle_chunk=meta.get("dle_chunk"),
        )


def _chunk_size(n_rows: int, reference_seconds: float | None, window_seconds: float | None, min_rows: int) -> int:
    """Rows per reference chunk for alert bands: a window's worth of reference rows (at least two chunks)."""
    if reference_seconds and window_seconds:
        per_window = round(n_rows * window_seconds / reference_seconds)
    else:
        per_window = n_rows // 10
    return max(min(per_window, n_rows // 2), min_rows, 1)


def fit_baseline(
    model: ModelConfig,
    monitor: MonitorConfig,
    reference: Batch,
    *,
    reference_seconds: float | None,
    chunk_rows: int | None = None,
) -> Baseline:
    """Profile a reference once: drift profile, quality reference, performance bands, CBPE.

    Alert bands come from reference chunks of ``chunk_rows`` rows (default: as many rows as the
    reference holds per monitor window).
    """
    columns = drift_columns(model, reference)
    present = {name: kc for name, kc in columns.items() if name in model.features or _present(kc[1])}
    drift = profile_reference({n: v for n, (_, v) in present.items()}, {n: k for n, (k, _) in present.items()})
    quality = QualityReference.fit(reference.features, dict(model.features), reference_seconds=reference_seconds)
    classes = classification_classes(model, reference.label)
    notes: dict[str, str] = {}
    bands: dict[str, Band] = {}
    cbpe = None
    if chunk_rows is None:
        chunk = _chunk_size(reference.n, reference_seconds, monitor.window.total_seconds(), monitor.min_rows)
    else:
        chunk = max(min(chunk_rows, reference.n // 2), 1)
    y_pred = reference.prediction if _present(reference.prediction) else None
    y_score = reference.score if _present(reference.score) else None
    if monitor.performance and _present(reference.label):
        try:
            y_true, y_pred_classes = _performance_labels(reference, y_pred, classes)
            bands = fit_performance_bands(
                model.task,
                y_true,
                y_pred_classes,
                y_score,
                chunk_size=chunk,
                classes=classes,
                metrics=monitor.performance,
            )
        except ValueError as exc:
            notes["performance"] = f"no performance bands: {exc}"
    dle_chunk, dle = None, None
    if monitor.estimated_performance and model.task == "regression":
        if not _present(reference.label) or y_pred is None:
            notes["estimated_performance"] = "reference has no labels or predictions: DLE cannot be fitted"
        else:
            try:
                dle_chunk, dle = chunk, _fit_dle(model, reference, chunk)
            except ValueError as exc:
                notes["estimated_performance"] = f"DLE cannot be fitted: {exc}"
    elif monitor.estimated_performance:
        if reference.label is None or y_score is None:
            notes["estimated_performance"] = "reference has no labels or scores: CBPE cannot be fitted"
        else:
            try:
                cbpe = _fit_cbpe(model, reference.label, y_pred, y_score, classes, chunk)
            except ValueError as exc:
                notes["estimated_performance"] = f"CBPE cannot be fitted: {exc}"
    multivariate = None
    if monitor.drift.multivariate:
        from detectors.multivariate import fit_multivariate

        try:
            features = {name: columns[name] for name in model.features}
            multivariate = fit_multivariate({n: v for n, (_, v) in features.items()}, dict(model.features))
        except ValueError as exc:  # ProfileError: too few reference rows
            notes["multivariate"] = str(exc)
    calibration = _calibrate(model, monitor, present, chunk, notes) if monitor.drift.threshold == "calibrated" else {}
    return Baseline(reference.n, drift, quality, bands, cbpe, classes, notes, multivariate, calibration, dle_chunk, dle)


def _fit_cbpe(
    model: ModelConfig,
    labels: np.ndarray,
    y_pred: np.ndarray | None,
    y_score: np.ndarray,
    classes: tuple[str, ...] | None,
    chunk: int,
) -> CBPEModel | MulticlassCBPEModel:
    if model.task == "multiclass":
        from detectors.estimation import fit_multiclass_cbpe

        if classes is None or y_score.ndim != 2:
            raise ValueError("the reference has no per-class scores")
        return fit_multiclass_cbpe(y_score, as_classes(labels), as_classes(y_pred), classes=classes, chunk_size=chunk)
    from detectors.estimation import fit_cbpe

    labels01 = _binary01(labels, classes)
    preds01 = None if y_pred is None else _binary01(y_pred, classes)
    keep = np.isfinite(labels01) & (np.ones(len(labels01), bool) if preds01 is None else np.isfinite(preds01))
    return fit_cbpe(y_score[keep], labels01[keep], None if preds01 is None else preds01[keep], chunk_size=chunk)


def _dle_features(model: ModelConfig, batch: Batch) -> pd.DataFrame:
    """The features as DLE reads them: numbers as floats, categories by their string form."""
    return pd.DataFrame(
        {
            name: to_float(batch.features[name]) if kind == "numeric" else as_classes(batch.features[name])
            for name, kind in model.features.items()
        }
    )


def _fit_dle(model: ModelConfig, reference: Batch, chunk: int) -> DLEModel:
    from detectors.dle import fit_dle

    if reference.prediction is None or reference.label is None:
        raise ValueError("the reference has no predictions or labels")
    categorical = [name for name, kind in model.features.items() if kind == "categorical"]
    return fit_dle(
        _dle_features(model, reference),
        to_float(reference.prediction),
        to_float(reference.label),
        chunk_size=chunk,
        categorical=categorical,
    )


# Window sizes calibrated around the monitor's own (rows per window vary with traffic).
CALIBRATION_SPAN = (0.5, 1.0, 2.0)


def feature_alpha(model: ModelConfig, monitor: MonitorConfig) -> float:
    """α of one feature-window from the monitor's ``false_alarms`` budget (docs/detectors.md)."""
    budget = monitor.drift.false_alarm_budget
    return alpha_per_feature(
        budget.alarms, budget.per.total_seconds(), monitor.window.total_seconds(), len(model.features)
    )


def _calibrate(
    model: ModelConfig,
    monitor: MonitorConfig,
    columns: Mapping[str, tuple[ColumnKind, np.ndarray]],
    window_rows: int,
    notes: dict[str, str],
) -> dict[str, ColumnCalibration]:
    """Calibrated thresholds of every drift column without a threshold of its own; each column's
    report on the reference's own windows goes into ``notes`` as ``calibration.<column>``."""
    alpha = feature_alpha(model, monitor)
    rng = np.random.default_rng(0)  # the same reference gives the same baseline
    sizes = [max(round(window_rows * f), monitor.min_rows, 2) for f in CALIBRATION_SPAN]
    out: dict[str, ColumnCalibration] = {}
    for name, (kind, values) in columns.items():
        policy = _policy(name, kind, monitor)
        if policy.threshold is not None:
            continue
        try:
            cal = calibrate_column(name, values, kind, policy.method, sizes, alpha=alpha, rng=rng, own_size=window_rows)
        except (InsufficientDataError, ValueError) as exc:
            notes[f"calibration.{name}"] = f"not calibrated, the method's default threshold applies: {exc}"
            continue
        out[name] = cal
        notes[f"calibration.{name}"] = cal.summary()
    return out


# ------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class Evaluation:
    status: Literal["succeeded", "insufficient_data"]
    scores: list[Score]
    reason: str | None = None


def _family(kind: ScoreKind, method: str, compute: Callable[[], list[Score]]) -> list[Score]:
    """Run one detector family; if it raises, one error score says why and the run goes on."""
    try:
        return compute()
    except Exception as exc:
        log.warning("detector %s/%s failed: %s", kind, method, exc, exc_info=True)
        return [Score(kind=kind, method=method, value=None, status="error", reason=f"{type(exc).__name__}: {exc}")]


def _policy(
    name: str, kind: ColumnKind, monitor: MonitorConfig, calibration: ColumnCalibration | None = None
) -> ColumnPolicy:
    settings = monitor.drift
    override = settings.columns.get(name)
    threshold = None if settings.threshold in ("auto", "calibrated") else float(settings.threshold)
    if override is not None:
        return ColumnPolicy(
            name,
            kind,
            override.method,
            override.threshold if override.threshold is not None else threshold,
            min_samples=monitor.min_rows,
            min_effect=settings.min_effect,
            calibration=calibration if override.threshold is None else None,
        )
    # A dataset-wide method applies to the column kinds it supports; the others keep auto.
    method = settings.method
    if kind_mismatch(method, kind):
        method, threshold = "auto", None
    # min_rows holds per column too: a window of 200 rows with 20 labels has 20 values of label drift.
    return ColumnPolicy(
        name,
        kind,
        method,
        threshold,
        min_samples=monitor.min_rows,
        min_effect=settings.min_effect,
        calibration=calibration,
    )


def _drift(
    model: ModelConfig,
    monitor: MonitorConfig,
    baseline: Baseline,
    columns: Mapping[str, np.ndarray | Sample],
    parts: Collection[Part],
) -> list[Score]:
    """Drift of the window's ``columns`` (values, or samples counted by the source in push-down mode)."""
    out: list[Score] = []
    if "features" in parts:
        # The config refused, at load, a method that is unknown or does not apply to its column.
        policies = [
            _policy(name, kind, monitor, baseline.calibration.get(name)) for name, kind in model.features.items()
        ]
        current = {name: columns[name] for name in model.features if name in columns}
        settings = monitor.drift
        # Calibrated columns are corrected at the budget's window level; p-value tests at their threshold.
        family_alpha = feature_alpha(model, monitor) * len(model.features) if baseline.calibration else None
        out += drift_scores(
            baseline.drift, current, policies, settings.drift_share, settings.multiple_testing, family_alpha
        )
    extras = ([PREDICTION, SCORE] if "features" in parts else []) + ([LABEL] if "labels" in parts else [])
    for name in extras:
        if name in baseline.drift and name in columns:
            policy = _policy(name, baseline.drift[name].kind, monitor, baseline.calibration.get(name))
            out += _family("drift", "auto", partial(_one_column, baseline.drift[name], columns[name], policy))
    return out


def _one_column(profile: ColumnProfile, values: np.ndarray | Sample, policy: ColumnPolicy) -> list[Score]:
    return [column_drift(profile, values, policy)]


def _multivariate(model: ModelConfig, baseline: Baseline, window: Batch) -> list[Score]:
    if baseline.multivariate is None:
        reason = baseline.notes.get("multivariate", "no multivariate reference fitted")
        return [Score.insufficient("drift", m, reason) for m in ("pca_reconstruction_error", "domain_classifier_auc")]
    from detectors.multivariate import multivariate_scores

    columns = drift_columns(model, window)
    return list(multivariate_scores(baseline.multivariate, {name: columns[name][1] for name in model.features}))


def _slow_drift(
    model: ModelConfig,
    monitor: MonitorConfig,
    settings: SlowDriftSettings,
    baseline: Baseline,
    window: Batch,
    drift: Sequence[Score],
    history: Mapping[str, Sequence[float]],
) -> list[Score]:
    """Each feature's slow-drift score: the sequential detector over ``history`` (the feature's inputs in
    the monitor's earlier windows, oldest first) and this window's input (docs/detectors.md, Slow drift)."""
    params = SlowDriftParams(
        settings.method, settings.allowance, settings.threshold, settings.reset, settings.min_windows
    )
    per_window = {s.feature: s for s in drift if s.feature is not None}
    out = []
    for name, kind in model.features.items():
        values = window.features[name]
        value, how = window_input(
            baseline.drift[name],
            to_float(values) if kind == "numeric" else values,
            per_window.get(name),
            monitor.min_rows,
        )
        out.append(slow_drift_score(name, params, history.get(name, ()), value, how))
    return out


def quality_thresholds(monitor: MonitorConfig) -> QualityThresholds:
    settings = monitor.quality
    return QualityThresholds(
        missing_share_increase=settings.missing_share,
        out_of_range_share=settings.out_of_range_share,
        unseen_category_share=settings.unseen_share,
    )


def _quality(monitor: MonitorConfig, baseline: Baseline, window: Batch, window_seconds: float | None) -> list[Score]:
    return quality_scores(
        baseline.quality,
        window.features,
        ids=window.ids,
        window_seconds=window_seconds,
        thresholds=quality_thresholds(monitor),
    )


def _performance(model: ModelConfig, monitor: MonitorConfig, baseline: Baseline, window: Batch) -> list[Score]:
    y_pred = window.prediction if _present(window.prediction) else None
    y_score = window.score if _present(window.score) else None
    if model.task == "multiclass" and y_score is not None and y_score.ndim != 2:
        y_score = None
    y_true, y_pred = _performance_labels(window, y_pred, baseline.classes)
    return realized_performance_scores(
        model.task,
        y_true,
        y_pred,
        y_score,
        classes=baseline.classes,
        bands=baseline.bands,
        metrics=monitor.performance,
        min_rows=monitor.min_rows,
    )


def _estimated(model: ModelConfig, monitor: MonitorConfig, baseline: Baseline, window: Batch) -> list[Score]:
    metrics = monitor.estimated_metrics(model.task)
    if model.task == "regression":
        return _estimated_regression(model, metrics, baseline, window)
    if baseline.cbpe is None:
        reason = baseline.notes.get("estimated_performance", "no CBPE model fitted on the reference")
        return [Score.insufficient("estimated_performance", m, reason) for m in metrics]
    if window.score is None:
        return [Score.insufficient("estimated_performance", m, "window has no scores") for m in metrics]
    from detectors.estimation import (
        MulticlassCBPEModel,
        estimated_multiclass_performance_scores,
        estimated_performance_scores,
    )

    if isinstance(baseline.cbpe, MulticlassCBPEModel):
        if window.score.ndim != 2:
            return [Score.insufficient("estimated_performance", m, "window has no per-class scores") for m in metrics]
        labels = as_classes(window.prediction) if _present(window.prediction) else None
        return estimated_multiclass_performance_scores(baseline.cbpe, window.score, labels, metrics=metrics)
    preds = _binary01(window.prediction, baseline.classes) if _present(window.prediction) else None
    if preds is not None and not np.isfinite(preds).all():
        preds = None  # a missing decision: derive all decisions from the scores instead
    return estimated_performance_scores(baseline.cbpe, window.score, preds, metrics=metrics)


def _estimated_regression(model: ModelConfig, metrics: Sequence[str], baseline: Baseline, window: Batch) -> list[Score]:
    if baseline.dle is None:
        reason = baseline.notes.get("estimated_performance", "no DLE model fitted on the reference")
        if baseline.needs_dle:
            reason = "DLE not refitted after the baseline was loaded (Baseline.with_dle)"
        return [Score.insufficient("estimated_performance", m, reason) for m in metrics]
    if window.prediction is None:
        return [Score.insufficient("estimated_performance", m, "window has no predictions") for m in metrics]
    from detectors.dle import estimated_regression_scores

    return estimated_regression_scores(
        baseline.dle, _dle_features(model, window), to_float(window.prediction), metrics=metrics
    )


def evaluate(
    model: ModelConfig,
    monitor: MonitorConfig,
    baseline: Baseline,
    window: Batch,
    *,
    window_seconds: float | None,
    parts: Collection[Part] = ALL_PARTS,
    history: Mapping[str, Sequence[float]] | None = None,
) -> Evaluation:
    """Every configured score of one window; ``parts`` limits it to the features or the label part.

    ``history``: per feature, the slow-drift inputs of the monitor's earlier windows, oldest first
    (the scheduler reads them from the store; none: this window is the first)."""
    quality_on = monitor.quality.enabled and "features" in parts
    if baseline.n_rows < monitor.min_rows:
        return Evaluation(
            "insufficient_data", [], f"reference has {baseline.n_rows} rows (min_rows {monitor.min_rows})"
        )
    if window.n < monitor.min_rows:
        reason = f"window has {window.n} rows (min_rows {monitor.min_rows})"
        # The row count itself still matters: a window that went quiet is what a volume alert is for.
        volume = (
            [
                s
                for s in _family("quality", "volume", lambda: _quality(monitor, baseline, window, window_seconds))
                if s.method == "volume"
            ]
            if quality_on
            else []
        )
        return Evaluation("insufficient_data", volume, reason)
    columns = {name: values for name, (_, values) in drift_columns(model, window).items()}
    scores = _family("drift", "drift", lambda: _drift(model, monitor, baseline, columns, parts))
    if "features" in parts and monitor.drift.multivariate:
        scores += _family("drift", "multivariate", lambda: _multivariate(model, baseline, window))
    if "features" in parts and (slow := monitor.drift.slow_drift) is not None:
        drift = list(scores)
        scores += _family(
            "drift", slow.method, lambda: _slow_drift(model, monitor, slow, baseline, window, drift, history or {})
        )
    if quality_on:
        scores += _family("quality", "quality", lambda: _quality(monitor, baseline, window, window_seconds))
    if "features" in parts and monitor.estimated_performance:
        scores += _family("estimated_performance", "cbpe", lambda: _estimated(model, monitor, baseline, window))
    if "labels" in parts and (monitor.performance or window.label_count):
        if monitor.performance:
            scores += _family("performance", "performance", lambda: _performance(model, monitor, baseline, window))
        if window.ts is not None and window.label_ts is not None:  # files (driftscope check) have no label times
            scores += _family("labels", "labels", lambda: label_scores(window.ts, window.label_ts))
    return Evaluation("succeeded", scores)
