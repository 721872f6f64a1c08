"""The canary gate behind ``driftscope canary`` and ``GET /v1/models/{model}/canary``: is a candidate version
worse than the baseline version it would replace?

Both versions' rows over the same time range are compared (:func:`compare`, pure):

- **rows**: each version needs ``canary.min_rows`` rows, else the verdict is *not enough data yet*
  (exit 2) with how many more rows, and about how long at the version's current rate;
- **prediction distribution**: the predictions and the scores of the two versions, as a whole and
  within each slice (each value of a categorical feature), by the two-sample tests of
  :mod:`detectors.comparison`; a difference fails the gate when its test is significant
  (``canary.alpha``, Bonferroni-corrected within each family) and its effect at least
  ``canary.min_effect``. The features are compared too, but only reported: a feature that differs
  says the versions did not see alike traffic, not that the candidate is worse;
- **estimated performance** (no labels needed): CBPE (classifiers with scores) or DLE (regression)
  fitted on the reference of the model's first monitor, applied to each version's rows; worse by more
  than ``canary.margin`` fails the gate;
- **realized performance**, once both versions have ``canary.min_labels`` labels: each metric's
  candidate − baseline with a percentile bootstrap interval
  (:func:`detectors.performance.metric_difference`); worse by more than the margin with the interval
  excluding zero fails the gate, for the whole rows and for each slice (the slices' intervals at a
  Bonferroni-corrected confidence);
- **service metrics** (``canary.service_metrics``, optional): the mean of each metric's series labelled
  with each version; a relative increase beyond ``canary.service_margin`` fails the gate.

Exit codes: 0 promote, 1 worse (each reason names the check, the values and the interval), 2 not
enough data yet (each need names the version, what is missing and how much more). :func:`run_canary`
reads the rows from the store: a row's version is its ``model_version``, or when it names none the
version deployed at its time (the newest deployment at or before it that took all the traffic).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from detectors.comparison import distribution_difference
from detectors.performance import LOWER_IS_BETTER, MetricDifference, metric_difference
from monitor.config import CanarySettings, Config, ModelConfig, MonitorConfig, parse_duration, parse_time
from monitor.errors import DriftscopeError
from monitor.runs.evaluation import (
    PREDICTION,
    SCORE,
    Baseline,
    as_classes,
    classification_classes,
    evaluate,
    plain,
    to_float,
)
from monitor.runs.windows import Batch

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

EXIT_PROMOTE, EXIT_WORSE, EXIT_WAIT = 0, 1, 2
# The longest range a canary compares: run_canary loads every row of both versions in it and bootstraps them,
# so an unbounded range (since=3650d) from any read key or dashboard URL could exhaust the process's memory.
MAX_CANARY_SPAN = timedelta(days=31)
Check = Literal["prediction_drift", "feature_drift", "estimated_performance", "realized_performance", "service_metric"]
Status = Literal["ok", "insufficient_data", "error"]


class CanaryError(DriftscopeError):
    """A canary that cannot be computed as asked (unknown model, the same version twice); exit code 2."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One comparison of the candidate with the baseline; ``worse`` when it fails the gate."""

    check: Check
    name: str  # the column, metric or service metric compared
    message: str
    slice: str | None = None  # "region=eu"; None: all the rows
    candidate: float | None = None
    baseline: float | None = None
    difference: float | None = None  # candidate − baseline (KS D / total variation distance for distributions)
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    threshold: float | None = None
    worse: bool = False
    status: Status = "ok"
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "name": self.name,
            "slice": self.slice,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "difference": self.difference,
            "ci": None if self.ci is None else list(self.ci),
            "p_value": self.p_value,
            "threshold": self.threshold,
            "worse": self.worse,
            "status": self.status,
            "message": self.message,
            "details": plain(dict(self.details)),
        }


@dataclass(frozen=True, slots=True)
class Need:
    """Data a version still lacks before the gate can decide."""

    version: str
    role: Literal["candidate", "baseline"]
    what: Literal["rows", "labels"]
    have: int
    need: int
    per_minute: float | None  # the version's current rate, to say how long the rest takes

    @property
    def more(self) -> int:
        return max(self.need - self.have, 0)

    @property
    def eta_seconds(self) -> float | None:
        return None if not self.per_minute else 60.0 * self.more / self.per_minute

    @property
    def message(self) -> str:
        text = f"{self.role} {self.version} has {self.have} {self.what}, needs {self.need}: {self.more} more"
        if self.eta_seconds is not None:
            text += f" (about {_duration(self.eta_seconds)} at its current {self.per_minute:.3g} {self.what}/min)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "role": self.role,
            "what": self.what,
            "have": self.have,
            "need": self.need,
            "more": self.more,
            "per_minute": self.per_minute,
            "eta_seconds": self.eta_seconds,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class CanaryVerdict:
    model: str
    candidate: str
    baseline: str
    start: datetime
    end: datetime
    rows: Mapping[str, int]  # role → rows
    labels: Mapping[str, int]  # role → labelled rows
    findings: tuple[Finding, ...]
    needs: tuple[Need, ...]  # what is missing before the gate can decide
    notes: tuple[str, ...]  # what was skipped and why; features that differ
    require_labels: bool = False

    @property
    def worse(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.worse)

    @property
    def exit_code(self) -> int:
        # Too few rows: nothing else can be trusted yet. Labels only hold the gate back when asked to.
        if any(n.what == "rows" for n in self.needs):
            return EXIT_WAIT
        if self.worse:
            return EXIT_WORSE
        if self.require_labels and self.needs:
            return EXIT_WAIT
        return EXIT_PROMOTE

    @property
    def verdict(self) -> Literal["promote", "worse", "not enough data"]:
        return ("promote", "worse", "not enough data")[self.exit_code]

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the exit code is what it is: the failed checks (1) or what is missing (2)."""
        if self.exit_code == EXIT_WORSE:
            return tuple(f.message for f in self.worse)
        if self.exit_code == EXIT_WAIT:
            return tuple(n.message for n in self.needs)
        return ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the shape of ``driftscope canary --format json`` and of the API's answer."""
        total = sum(self.rows.values())
        return {
            "model": self.model,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "reasons": list(self.reasons),
            "rows": dict(self.rows),
            "labels": dict(self.labels),
            "candidate_traffic_share": self.rows.get("candidate", 0) / total if total else None,
            "needs": [n.to_dict() for n in self.needs],
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _g(value: float) -> str:
    return f"{value:.3g}"


# ------------------------------------------------------------------------------------- comparing


def _bonferroni(alpha: float, tests: int) -> float:
    return alpha / max(tests, 1)


def _slices(
    model: ModelConfig, settings: CanarySettings, candidate: Batch, baseline: Batch, min_rows: int
) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(feature, value, candidate mask, baseline mask)`` of every slice with ``min_rows`` rows on both sides."""
    names = (
        settings.slices
        if settings.slices is not None
        else [name for name, kind in model.features.items() if kind == "categorical"]
    )
    out = []
    for name in names:
        cand, base = as_classes(candidate.features[name]), as_classes(baseline.features[name])
        values = sorted({v for v in (*cand.tolist(), *base.tolist()) if v is not None})
        if settings.slices is None and len(values) > settings.max_slice_categories:
            continue
        for value in values:
            cm, bm = cand == value, base == value
            if cm.sum() >= min_rows and bm.sum() >= min_rows:
                out.append((name, value, cm, bm))
    return out


def _distribution_findings(
    model: ModelConfig, settings: CanarySettings, candidate: Batch, baseline: Batch, versions: tuple[str, str]
) -> tuple[list[Finding], list[str]]:
    """Predictions and scores (gating, overall and per slice) and features (reported) of both versions."""
    findings: list[Finding] = []
    notes: list[str] = []
    gated: list[tuple[str, Any, Any]] = []  # (column, kind, values getter)
    pred_kind = model.column_kind(PREDICTION)
    if candidate.prediction is not None and pred_kind is not None:
        gated.append((PREDICTION, pred_kind, lambda b: _column(b.prediction, pred_kind)))
    if candidate.score is not None and candidate.score.ndim == 1 and np.isfinite(candidate.score).any():
        gated.append((SCORE, "numeric", lambda b: b.score))

    def test(column: str, kind: Any, a: np.ndarray, b: np.ndarray, alpha: float, where: str | None) -> Finding | None:
        try:
            d = distribution_difference(kind, a, b)
        except ValueError:
            return None
        worse = d.p_value < alpha and d.effect >= settings.min_effect
        label = "KS D" if d.method == "ks" else "total variation distance"
        what = f"{column} distribution" + (f" in {where}" if where else "")
        summary = (
            f"mean {_g(d.candidate_summary)} vs {_g(d.baseline_summary)}"  # type: ignore[arg-type]
            if d.method == "ks"
            else _share_change(d.candidate_summary, d.baseline_summary)  # type: ignore[arg-type]
        )
        verdict = "differs from" if worse else "is like"
        message = (
            f"{what} of {versions[0]} {verdict} {versions[1]}'s: {label} {_g(d.effect)} (fails at ≥ "
            f"{_g(settings.min_effect)} with p < {_g(alpha)}), p={_g(d.p_value)}; {summary}; "
            f"{d.n_candidate} vs {d.n_baseline} rows"
        )
        return Finding(
            "prediction_drift",
            column,
            message,
            slice=where,
            candidate=d.candidate_summary if d.method == "ks" else None,  # type: ignore[arg-type]
            baseline=d.baseline_summary if d.method == "ks" else None,  # type: ignore[arg-type]
            difference=d.effect,
            p_value=d.p_value,
            threshold=settings.min_effect,
            worse=worse,
            details={
                "method": d.method,
                "alpha": alpha,
                "n_candidate": d.n_candidate,
                "n_baseline": d.n_baseline,
                **(
                    {"shares": {"candidate": d.candidate_summary, "baseline": d.baseline_summary}}
                    if d.method == "chi2"
                    else {}
                ),
            },
        )

    overall_alpha = _bonferroni(settings.alpha, len(gated))
    for column, kind, values in gated:
        if (f := test(column, kind, values(candidate), values(baseline), overall_alpha, None)) is not None:
            findings.append(f)
    slices = _slices(model, settings, candidate, baseline, settings.min_slice_rows)
    if gated and slices:
        column, kind, values = gated[-1]  # the scores when there are any: they show more than the decisions
        slice_alpha = _bonferroni(settings.alpha, len(slices))
        for name, value, cm, bm in slices:
            f = test(column, kind, values(candidate)[cm], values(baseline)[bm], slice_alpha, f"{name}={value}")
            if f is not None:
                findings.append(f)
    feature_alpha = _bonferroni(settings.alpha, len(model.features))
    for name, kind in model.features.items():
        f = test(name, kind, _column(candidate.features[name], kind), _column(baseline.features[name], kind),
                 feature_alpha, None)  # fmt: skip
        if f is None:
            continue
        findings.append(replace(f, check="feature_drift", worse=False))
        if f.worse:
            notes.append(f"feature {name} differs between the versions' rows (not gated: the versions did not see "
                         f"alike traffic, so the other comparisons may be biased)")  # fmt: skip
    return findings, notes


def _share_change(candidate: Mapping[str, float], baseline: Mapping[str, float]) -> str:
    """The category whose share moved most, as 'share of 1: 0.41 vs 0.22'."""
    label = max(candidate.keys() | baseline.keys(), key=lambda k: abs(candidate.get(k, 0.0) - baseline.get(k, 0.0)))
    return f"share of {label}: {_g(candidate.get(label, 0.0))} vs {_g(baseline.get(label, 0.0))}"


def _column(values: np.ndarray | None, kind: str) -> np.ndarray:
    if values is None:
        return np.empty(0)
    return to_float(values) if kind == "numeric" else values


def _worse_by(metric: str, difference: float, margin: float) -> bool:
    """Worse than the baseline by more than ``margin``, in the direction that is bad for ``metric``."""
    return difference > margin if metric in LOWER_IS_BETTER else difference < -margin


def default_metrics(model: ModelConfig, monitor: MonitorConfig | None, has_score: bool) -> list[str]:
    """The metrics a canary compares when ``canary.metrics`` is empty (see :class:`CanarySettings`)."""
    if monitor is not None and monitor.performance:
        return list(monitor.performance)
    if model.task == "regression":
        return ["mae"]
    return ["roc_auc"] if has_score and model.task == "binary" else ["accuracy"]


def _estimated_findings(
    model: ModelConfig,
    settings: CanarySettings,
    metrics: Sequence[str],
    reference: Baseline,
    monitor: MonitorConfig,
    candidate: Batch,
    baseline: Batch,
    versions: tuple[str, str],
) -> tuple[list[Finding], list[str]]:
    """CBPE/DLE of the monitor's reference on both versions' rows."""
    quiet = monitor.quality.model_copy(update={"enabled": False})  # only the estimates are read
    estimating = monitor.model_copy(
        update={"estimated_performance": True, "performance": list(metrics), "min_rows": 2, "quality": quiet}
    )
    if not estimating.estimated_metrics(model.task):
        return [], [f"estimated performance: none of {', '.join(metrics)} can be estimated for a {model.task} model"]
    values: list[dict[str, Any]] = []
    for batch in (candidate, baseline):
        evaluation = evaluate(model, estimating, reference, batch, window_seconds=None, parts={"features"})
        values.append({s.method: s for s in evaluation.scores if s.kind == "estimated_performance"})
    findings, notes = [], []
    for metric in estimating.estimated_metrics(model.task):
        c, b = values[0].get(metric), values[1].get(metric)
        if c is None or b is None or c.value is None or b.value is None:
            why = next((s.reason for s in (c, b) if s is not None and s.reason), "no estimate")
            notes.append(f"estimated {metric}: skipped ({why})")
            continue
        difference = c.value - b.value
        worse = _worse_by(metric, difference, settings.margin)
        message = (
            f"estimated {metric} of {versions[0]} {_g(c.value)} vs {_g(b.value)} for {versions[1]} "
            f"({difference:+.3g}; fails beyond a {_g(settings.margin)} loss)"
        )
        findings.append(
            Finding("estimated_performance", metric, message, candidate=c.value, baseline=b.value,
                    difference=difference, threshold=settings.margin, worse=worse)
        )  # fmt: skip
    return findings, notes


def _performance_rows(model: ModelConfig, batch: Batch, classes: Sequence[str] | None) -> tuple[Any, Any, Any]:
    score = batch.score
    if score is not None and not np.isfinite(score).any():
        score = None
    if model.task == "multiclass" and score is not None and score.ndim != 2:
        score = None
    prediction = batch.prediction
    if model.task == "regression":
        return to_float(batch.label) if batch.label is not None else None, _float_or_none(prediction), None
    if classes is None:
        return batch.label, prediction, score
    return as_classes(batch.label), as_classes(prediction), score


def _float_or_none(values: np.ndarray | None) -> np.ndarray | None:
    return None if values is None else to_float(values)


def _realized_findings(
    model: ModelConfig,
    settings: CanarySettings,
    metrics: Sequence[str],
    classes: Sequence[str] | None,
    candidate: Batch,
    baseline: Batch,
    versions: tuple[str, str],
) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    notes: list[str] = []
    # Slices are drawn among the labelled rows: a slice needs min_slice_rows labels in both versions.
    lc, lb = candidate.take(_labelled(candidate)), baseline.take(_labelled(baseline))
    slices = _slices(model, settings, lc, lb, settings.min_slice_rows)
    parts: list[tuple[str | None, Batch, Batch, float]] = [(None, candidate, baseline, settings.confidence)]
    slice_confidence = 1.0 - (1.0 - settings.confidence) / max(len(slices), 1)
    parts += [(f"{name}={value}", lc.take(cm), lb.take(bm), slice_confidence) for name, value, cm, bm in slices]
    for metric in metrics:
        for where, c, b, confidence in parts:
            try:
                d = metric_difference(
                    model.task,
                    metric,
                    _performance_rows(model, c, classes),
                    _performance_rows(model, b, classes),
                    classes=classes,
                    confidence=confidence,
                    n_resamples=settings.n_resamples,
                )
            except ValueError as exc:
                notes.append(f"realized {metric}{f' in {where}' if where else ''}: skipped ({exc})")
                continue
            findings.append(_realized_finding(settings, d, where, versions))
    sliceable = settings.slices or [name for name, kind in model.features.items() if kind == "categorical"]
    if sliceable and not slices and lc.n >= settings.min_slice_rows:
        notes.append("realized performance per slice: no slice has enough labelled rows in both versions")
    return findings, notes


def _labelled(batch: Batch) -> np.ndarray:
    if batch.label is None:
        return np.zeros(batch.n, dtype=bool)
    return batch.label != None  # noqa: E711  (element-wise on an object array)


def _realized_finding(
    settings: CanarySettings, d: MetricDifference, where: str | None, versions: tuple[str, str]
) -> Finding:
    ci = None if d.ci_lower is None or d.ci_upper is None else (d.ci_lower, d.ci_upper)
    # Worse beyond the margin, and surely worse: the whole interval on the bad side of zero.
    excludes_zero = ci is not None and (ci[0] > 0 if d.lower_is_better else ci[1] < 0)
    worse = _worse_by(d.metric, d.difference, settings.margin) and excludes_zero
    interval = "no interval" if ci is None else f"{d.confidence:.3g} CI [{ci[0]:+.3g}, {ci[1]:+.3g}]"
    message = (
        f"realized {d.metric}{f' in {where}' if where else ''} of {versions[0]} {_g(d.candidate)} vs {_g(d.baseline)} "
        f"for {versions[1]}: {d.difference:+.3g}, {interval} (fails beyond a {_g(settings.margin)} loss with the "
        f"interval excluding 0); {d.n_candidate} vs {d.n_baseline} labelled rows"
    )
    return Finding(
        "realized_performance", d.metric, message, slice=where, candidate=d.candidate, baseline=d.baseline,
        difference=d.difference, ci=ci, threshold=settings.margin, worse=worse,
        details={"confidence": d.confidence, "n_resamples": d.n_resamples, "n_valid_resamples": d.n_valid_resamples,
                 "n_candidate": d.n_candidate, "n_baseline": d.n_baseline, "ci_method": "bootstrap_percentile"},
    )  # fmt: skip


def _service_findings(
    settings: CanarySettings, service: Mapping[str, tuple[np.ndarray, np.ndarray]], versions: tuple[str, str]
) -> tuple[list[Finding], list[str]]:
    findings, notes = [], []
    for name in settings.service_metrics:
        c, b = (np.asarray(v, dtype=np.float64) for v in service.get(name, (np.empty(0), np.empty(0))))
        c, b = c[np.isfinite(c)], b[np.isfinite(b)]
        if not len(c) or not len(b):
            missing = "both versions" if not len(c) and not len(b) else versions[0] if not len(c) else versions[1]
            notes.append(f"service metric {name}: no points labelled {settings.version_label}=<version> for {missing}")
            findings.append(Finding("service_metric", name, notes[-1], status="insufficient_data"))
            continue
        mc, mb = float(c.mean()), float(b.mean())
        limit = mb * (1 + settings.service_margin)
        worse = mc > limit if mb > 0 else mc > mb
        message = (
            f"{name} of {versions[0]} {_g(mc)} vs {_g(mb)} for {versions[1]} (mean of {len(c)} and {len(b)} points; "
            f"fails above {_g(limit)}, {settings.service_margin:.0%} more)"
        )
        findings.append(Finding("service_metric", name, message, candidate=mc, baseline=mb, difference=mc - mb,
                                threshold=settings.service_margin, worse=worse))  # fmt: skip
    if not settings.service_metrics:
        notes.append("service metrics: not compared (no canary.service_metrics configured)")
    return findings, notes


def compare(
    model_name: str,
    model: ModelConfig,
    versions: tuple[str, str],
    candidate: Batch,
    baseline: Batch,
    *,
    start: datetime,
    end: datetime,
    monitor: MonitorConfig | None = None,
    reference: Baseline | None = None,
    service: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    notes: Collection[str] = (),
) -> CanaryVerdict:
    """The verdict on ``candidate``'s rows against ``baseline``'s, both over ``[start, end)``.

    ``reference`` (the monitor's profiled reference, with CBPE/DLE) enables estimated performance;
    ``service`` holds each service metric's points for (candidate, baseline).
    """
    settings = model.canary
    minutes = max((end - start).total_seconds() / 60, 1e-9)
    rows = {"candidate": candidate.n, "baseline": baseline.n}
    labels = {"candidate": candidate.label_count, "baseline": baseline.label_count}
    all_notes = list(notes)
    needs = [
        Need(version, role, "rows", rows[role], settings.min_rows, rows[role] / minutes)  # type: ignore[arg-type]
        for role, version in zip(("candidate", "baseline"), versions, strict=True)
        if rows[role] < settings.min_rows
    ]
    verdict = CanaryVerdict(model_name, *versions, start, end, rows, labels, (), tuple(needs), (),
                            settings.require_labels)  # fmt: skip
    if needs:
        return replace(verdict, notes=tuple(all_notes))
    findings, found_notes = _distribution_findings(model, settings, candidate, baseline, versions)
    all_notes += found_notes
    has_score = candidate.score is not None and bool(np.isfinite(candidate.score).any())
    metrics = list(settings.metrics) or default_metrics(model, monitor, has_score)
    if reference is not None and monitor is not None:
        est, est_notes = _estimated_findings(
            model, settings, metrics, reference, monitor, candidate, baseline, versions
        )
        findings += est
        all_notes += est_notes
    else:
        all_notes.append("estimated performance: skipped (no monitor reference for this model)")
    label_needs = [
        Need(version, role, "labels", labels[role], settings.min_labels, labels[role] / minutes)  # type: ignore[arg-type]
        for role, version in zip(("candidate", "baseline"), versions, strict=True)
        if labels[role] < settings.min_labels
    ]
    if label_needs:
        all_notes += [f"realized performance: not yet compared ({n.message})" for n in label_needs]
    else:
        classes = reference.classes if reference is not None else classification_classes(model, baseline.label)
        realized, realized_notes = _realized_findings(model, settings, metrics, classes, candidate, baseline, versions)
        findings += realized
        all_notes += realized_notes
    service_found, service_notes = _service_findings(settings, service or {}, versions)
    findings += service_found
    all_notes += service_notes
    return replace(verdict, findings=tuple(findings), needs=tuple(label_needs), notes=tuple(all_notes))


# ---------------------------------------------------------------------------------------- store


def primary_monitor(config: Config, model_name: str) -> tuple[str, MonitorConfig] | None:
    """The model's first monitor: shortest window, then name (as the dashboard and the read API pick it)."""
    monitors = sorted(
        ((name, m) for name, m in config.monitors.items() if m.model == model_name),
        key=lambda item: (item[1].window, item[0]),
    )
    return monitors[0] if monitors else None


def _service_points(
    conn: Connection, model_id: int, settings: CanarySettings, versions: tuple[str, str], start: datetime, end: datetime
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sqlalchemy import select

    from monitor.store.tables import MetricPoint, MetricSeries

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in settings.service_metrics:
        rows = conn.execute(
            select(MetricSeries.labels, MetricPoint.value)
            .join(MetricPoint, MetricPoint.series_id == MetricSeries.id)
            .where(MetricSeries.model_id == model_id, MetricSeries.name == name)
            .where(MetricPoint.ts >= start, MetricPoint.ts < end)
        ).all()
        per_version = [
            np.array([v for labels, v in rows if (labels or {}).get(settings.version_label) == version], dtype=float)
            for version in versions
        ]
        out[name] = (per_version[0], per_version[1])
    return out


def parse_since(text: str) -> timedelta | datetime:
    """``--since``/``?since=``: a duration back from now (``30m``, ``1h``) or an ISO 8601 time; else ValueError."""
    try:
        return parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        raise ValueError(f"since: expected a duration (30m, 1h, 2d) or an ISO time, got {text!r}") from None


def run_canary(
    engine: Engine,
    config: Config,
    model_name: str,
    candidate: str,
    baseline: str,
    *,
    since: timedelta | datetime | None = None,
    now: datetime | None = None,
) -> CanaryVerdict:
    """Read both versions' rows from the store and :func:`compare` them.

    The range ends now; it starts ``since`` ago (or at ``since``), by default at the candidate's newest
    recorded deployment, else an hour ago. A ``since`` further back than :data:`MAX_CANARY_SPAN` is a
    :class:`CanaryError`; a deployment further back starts the range ``MAX_CANARY_SPAN`` ago instead.
    """
    from sqlalchemy import select

    from monitor.runs.references import References
    from monitor.runs.segments import resolve_versions
    from monitor.store.segments import deployments
    from monitor.store.tables import Model

    model = config.models.get(model_name)
    if model is None:
        raise CanaryError(f"unknown model {model_name!r} (known: {', '.join(sorted(config.models)) or 'none'})")
    if candidate == baseline:
        raise CanaryError(f"the candidate and the baseline are the same version ({candidate!r})")
    end = now or datetime.now(UTC)
    notes: list[str] = []
    with engine.connect() as conn:
        model_id = conn.execute(select(Model.id).where(Model.name == model_name)).scalar_one_or_none()
        if model_id is None:
            raise CanaryError(f"model {model_name!r} has no data in the store yet")
        deployed = deployments(conn, model_id, end)  # (deployed_at, version, traffic), oldest first
        if isinstance(since, datetime):
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
        if since is not None:
            # Checked before subtracting: a range this long would load every row in it (and 999999999d is
            # before year 1).
            span = since if isinstance(since, timedelta) else end - since
            if span > MAX_CANARY_SPAN:
                raise CanaryError(
                    f"since: the range reaches {span.days} days back, longer than the {MAX_CANARY_SPAN.days} days "
                    f"a canary compares at most; give a later since (at most {MAX_CANARY_SPAN.days}d)"
                )
            start = end - since if isinstance(since, timedelta) else since
        else:
            recorded = [at for at, version, _ in deployed if version == candidate]
            if recorded and end - max(recorded) > MAX_CANARY_SPAN:
                start = end - MAX_CANARY_SPAN
                notes.append(f"range: the last {MAX_CANARY_SPAN.days} days, the longest a canary compares (the "
                             f"deployment of {candidate} at {max(recorded).isoformat()} is older)")  # fmt: skip
            elif recorded:
                start = max(recorded)
                notes.append(f"range: since the deployment of {candidate} at {start.isoformat()}")
            else:
                start = end - timedelta(hours=1)
                notes.append(f"range: the last hour (no deployment of {candidate} recorded; give --since)")
        if start >= end:
            raise CanaryError(f"empty time range: {start.isoformat()} is not before {end.isoformat()}")
        from monitor.runs.windows import load_window

        classes = model.classes if model.task == "multiclass" else None
        batch = load_window(conn, model_id, model.features, start, end, score_classes=classes)
        service = _service_points(conn, model_id, model.canary, (candidate, baseline), start, end)
    assert batch.model_version is not None and batch.ts is not None  # load_window reads both columns
    versions = resolve_versions(batch.model_version, batch.ts, deployed)
    cand, base = batch.take(versions == candidate), batch.take(versions == baseline)
    primary = primary_monitor(config, model_name)
    reference = None
    monitor = None
    if primary is not None:
        monitor_name, monitor = primary
        try:
            # Under reference: {version: current}, the baseline version's own reference (docs/versions.md).
            references = References(config, engine, {model_name: model_id})
            ref_batch, seconds = references.reference_batch(monitor_name, start, baseline)
            estimating = monitor.model_copy(update={"estimated_performance": True})
            reference = fit_reference(model, estimating, ref_batch, seconds)
            notes.append(f"estimated performance: fitted on the reference of monitor {monitor_name} "
                         f"({ref_batch.n} rows)")  # fmt: skip
        except (DriftscopeError, ValueError) as exc:
            notes.append(f"estimated performance: skipped (reference of monitor {monitor_name}: {exc})")
            monitor = None
    return compare(model_name, model, (candidate, baseline), cand, base, start=start, end=end, monitor=monitor,
                   reference=reference, service=service, notes=notes)  # fmt: skip


def fit_reference(model: ModelConfig, monitor: MonitorConfig, batch: Batch, seconds: float | None) -> Baseline:
    """The monitor's reference profiled for estimation (CBPE/DLE), without calibrated drift thresholds."""
    from monitor.runs.evaluation import fit_baseline

    plain_drift = monitor.drift.model_copy(update={"threshold": "auto", "multivariate": False})
    return fit_baseline(model, monitor.model_copy(update={"drift": plain_drift}), batch, reference_seconds=seconds)
