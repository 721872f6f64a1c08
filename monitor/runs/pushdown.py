"""Push-down windows: a window's scores from Elasticsearch aggregations, no document copied.

For a model with ``mode: pushdown`` the scheduler calls :func:`pushdown_window` instead of loading
the window from the store. It asks the source (``collectors.elasticsearch.ElasticsearchCollector.aggregate``,
injected as ``aggregate``: this package may not import the collectors) for one search of
``size: 0`` over the window's event time with, per drift column (features, prediction, score):

- categorical: a ``terms`` aggregation sized to return every reference category and up to
  :data:`~detectors.binned.NEW_CATEGORY_LIMIT` new ones (exact counts);
- numeric: a ``histogram`` of the bin width the reference profile gives
  (:func:`~detectors.binned.bin_width`), and a ``filter`` counting values outside the reference's
  ``[min, max]`` for the quality score;
- the exact document count (``track_total_hits``): the volume, and with each column's counted
  values its missing count.

The counts become the samples of :mod:`detectors.binned` and go through the same drift and
quality code as a copy-mode window. What counts cannot give — drill-down, duplicate ids, type
errors (a mapped field refuses or drops a malformed value at index time), performance, labels,
estimated performance, multivariate drift — is not computed here: configured, those scores are
``insufficient_data`` saying so. Memory is the size of the aggregation response, whatever the
window's row count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from detectors.binned import NEW_CATEGORY_LIMIT, OTHER_CATEGORY, BinnedSample, bin_width, categorical_sample
from detectors.profile import ColumnProfile, Sample
from detectors.quality import ColumnCounts, counted_quality_scores
from detectors.types import Score
from monitor.config import ModelConfig, MonitorConfig
from monitor.runs.evaluation import (
    LABEL,
    PREDICTION,
    SCORE,
    Baseline,
    Evaluation,
    _drift,
    _family,
    quality_thresholds,
)

# (window start, window end, aggregations) -> {"total": documents, "aggregations": {...}, "bytes": n}
Aggregate = Callable[[datetime, datetime, Mapping[str, Any]], Mapping[str, Any]]

NOT_PUSHED_DOWN = "not computed in push-down mode (counts only): use mode copy"


def field_path(model: ModelConfig, column: str) -> str:
    """Where ``column`` (a feature, ``prediction`` or ``score``) is in the source's documents."""
    fields = model.fields
    if column == PREDICTION:
        return fields.prediction
    if column == SCORE:
        return str(fields.score)
    return f"{fields.features}.{column}" if fields.features else column


def pushdown_columns(model: ModelConfig, baseline: Baseline) -> dict[str, ColumnProfile]:
    """The drift columns a push-down window aggregates: the features, and prediction and score when the
    reference has them (labels are not pushed down)."""
    columns = {name: baseline.drift[name] for name in model.features if name in baseline.drift}
    for extra in (PREDICTION, SCORE):
        if extra in baseline.drift and (extra != SCORE or model.fields.score):
            columns[extra] = baseline.drift[extra]
    return columns


def window_aggregations(model: ModelConfig, baseline: Baseline) -> dict[str, Any]:
    """The ``aggs`` of the window's one search (names ``c<i>_…`` by column order: field paths may hold dots)."""
    aggs: dict[str, Any] = {}
    for i, (name, profile) in enumerate(pushdown_columns(model, baseline).items()):
        field = field_path(model, name)
        if profile.kind == "categorical":
            size = int(profile.categories.size) + NEW_CATEGORY_LIMIT
            aggs[f"c{i}_terms"] = {"terms": {"field": field, "size": size}}
            continue
        aggs[f"c{i}_bins"] = {"histogram": {"field": field, "interval": bin_width(profile), "min_doc_count": 1}}
        quality = baseline.quality.columns.get(name)
        if quality is not None and quality.minimum is not None and quality.maximum is not None:
            outside = [{"range": {field: {"lt": quality.minimum}}}, {"range": {field: {"gt": quality.maximum}}}]
            aggs[f"c{i}_outside"] = {"filter": {"bool": {"should": outside, "minimum_should_match": 1}}}
    return aggs


def _category(bucket: Mapping[str, Any]) -> str:
    """A terms bucket's key as the category string copy mode compares (``str(value)``)."""
    key, text = bucket["key"], bucket.get("key_as_string")
    if isinstance(key, bool) or text in ("true", "false"):  # a boolean field: Elasticsearch sends 1/0 and the text
        return str(key if isinstance(key, bool) else text == "true")
    return str(key)


def _column(
    name: str, profile: ColumnProfile, aggregations: Mapping[str, Any], index: int, total: int
) -> tuple[Sample, ColumnCounts]:
    """One column's drift sample and quality counts from its aggregations."""
    if profile.kind == "categorical":
        terms = aggregations[f"c{index}_terms"]
        counts = {_category(b): int(b["doc_count"]) for b in terms.get("buckets", [])}
        other = int(terms.get("sum_other_doc_count", 0) or 0)
        valued = sum(counts.values()) + other
        # Copy mode's drift keeps a blank string as a category; its quality counts it as missing.
        blank = sum(c for k, c in counts.items() if not k.strip())
        categories = {k: c for k, c in counts.items() if k.strip()}
        if other:
            categories[OTHER_CATEGORY] = categories.get(OTHER_CATEGORY, 0) + other
        quality = ColumnCounts(total, total - valued + blank, 0, 0, categories)
        return categorical_sample(counts, total - valued, other=other), quality
    width = bin_width(profile)
    buckets = aggregations[f"c{index}_bins"].get("buckets", [])
    keys = np.array([round(float(b["key"]) / width) for b in buckets], dtype=np.int64)
    binned = np.array([int(b["doc_count"]) for b in buckets], dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sample = BinnedSample(width, keys[order], binned[order], total - int(binned.sum()), column=name)
    outside = int(aggregations.get(f"c{index}_outside", {}).get("doc_count", 0))
    return sample, ColumnCounts(total, total - sample.n, 0, outside, {})


def pushdown_window(
    model: ModelConfig,
    monitor: MonitorConfig,
    baseline: Baseline,
    aggregate: Aggregate,
    start: datetime,
    end: datetime,
) -> tuple[Evaluation, int, int]:
    """The window ``[start, end)`` scored from aggregations: (evaluation, row count, response bytes)."""
    if baseline.n_rows < monitor.min_rows:
        reason = f"reference has {baseline.n_rows} rows (min_rows {monitor.min_rows})"
        return Evaluation("insufficient_data", [], reason), 0, 0
    response = aggregate(start, end, window_aggregations(model, baseline))
    total = int(response["total"])
    aggregations = response["aggregations"]
    samples: dict[str, Sample] = {}
    counts: dict[str, ColumnCounts] = {}
    for i, (name, profile) in enumerate(pushdown_columns(model, baseline).items()):
        samples[name], counts[name] = _column(name, profile, aggregations, i, total)
    window_seconds = (end - start).total_seconds()
    quality_on = monitor.quality.enabled

    def quality() -> list[Score]:
        features = {name: c for name, c in counts.items() if name in model.features}
        return counted_quality_scores(
            baseline.quality, features, total, window_seconds=window_seconds, thresholds=quality_thresholds(monitor)
        )

    if total < monitor.min_rows:
        volume = [s for s in _family("quality", "volume", quality) if s.method == "volume"] if quality_on else []
        reason = f"window has {total} rows (min_rows {monitor.min_rows})"
        return Evaluation("insufficient_data", volume, reason), total, int(response.get("bytes", 0))
    scores = _family("drift", "drift", lambda: _drift(model, monitor, baseline, samples, {"features"}))
    if quality_on:
        scores += _family("quality", "quality", quality)
    scores += _not_pushed_down(model, monitor, baseline)
    return Evaluation("succeeded", scores), total, int(response.get("bytes", 0))


def _not_pushed_down(model: ModelConfig, monitor: MonitorConfig, baseline: Baseline) -> list[Score]:
    """The configured scores counts cannot give, each ``insufficient_data`` with the reason."""
    out: list[Score] = []
    if monitor.drift.multivariate:
        methods = ("pca_reconstruction_error", "domain_classifier_auc")
        out += [Score.insufficient("drift", m, NOT_PUSHED_DOWN) for m in methods]
    if monitor.estimated_performance:
        metrics = monitor.estimated_metrics(model.task)
        out += [Score.insufficient("estimated_performance", m, NOT_PUSHED_DOWN) for m in metrics]
    out += [Score.insufficient("performance", m, NOT_PUSHED_DOWN) for m in monitor.performance]
    if LABEL in baseline.drift:
        out.append(Score.insufficient("drift", "auto", NOT_PUSHED_DOWN, feature=LABEL))
    return out
