"""Evidently's HTML report for one window of a monitor against its reference.

The one path behind ``driftscope report`` and the dashboard's window report page, so both derive the
classes (and the positive class) the same way. The window and its reference are read exactly as the
scheduler reads them, turned into two frames (features, ``target``, ``prediction`` and the score
column(s)) and handed to :func:`detectors.report.evidently_report_html`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from detectors.report import evidently_report_html
from monitor.config import Config, ModelConfig
from monitor.errors import DriftscopeError
from monitor.runs.evaluation import classification_classes, to_float
from monitor.runs.references import References
from monitor.runs.windows import Batch, load_window, window_floor, window_origin
from monitor.store.queries import model_ids


class ReportError(DriftscopeError):
    """The report cannot be built (unknown monitor, empty window, ...)."""


def _has_scores(batch: Batch) -> bool:
    return batch.score is not None and bool(np.isfinite(batch.score).any())


def _frame(batch: Batch, model: ModelConfig, score_columns: list[str] | str | None) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for name, kind in model.features.items():
        values = batch.features[name]
        data[name] = to_float(values) if kind == "numeric" else pd.Series(values, dtype=object)
    if batch.label is not None:
        data["target"] = batch.label
    if batch.prediction is not None:
        data["prediction"] = batch.prediction
    if batch.score is not None and score_columns is not None:
        if isinstance(score_columns, str):
            data[score_columns] = batch.score
        else:
            for i, column in enumerate(score_columns):
                data[column] = batch.score[:, i]
    frame = pd.DataFrame(data, index=range(batch.n))
    for column in ("target", "prediction"):
        if column in frame and model.task != "regression":
            # Evidently compares labels by value: one type per column (JSON may mix 1 and "1").
            frame[column] = frame[column].map(lambda v: v if v is None else str(v))
    return frame


def window_report_html(config: Config, engine: Engine, monitor_name: str, moment: datetime) -> tuple[datetime, str]:
    """``(window_start, html)`` of the window holding ``moment``."""
    monitor = config.monitors.get(monitor_name)
    if monitor is None:
        raise ReportError(f"unknown monitor {monitor_name!r} (known: {', '.join(sorted(config.monitors)) or 'none'})")
    model = config.models[monitor.model]
    start = window_floor(moment, monitor.window, window_origin(monitor.start))
    # Read, not synced: a report writes nothing, and a model without a row has no window to report.
    ids = model_ids(engine)
    if monitor.model not in ids:
        raise ReportError(f"monitor {monitor_name!r}: model {monitor.model!r} has no data in the store yet")
    reference, _ = References(config, engine, ids).reference_batch(monitor_name, start)
    classes = classification_classes(model, reference.label)
    with engine.connect() as connection:
        window = load_window(
            connection, ids[monitor.model], model.features, start, start + monitor.window,
            score_classes=classes if model.task == "multiclass" else None,
        )  # fmt: skip
    # Probability columns only where both sides logged scores: Evidently fails on an all-empty one.
    scored = _has_scores(window) and _has_scores(reference)
    if model.task == "binary" and scored:
        score_columns: list[str] | str | None = "score"
    elif model.task == "multiclass" and classes is not None and scored:
        score_columns = [str(c) for c in classes]
    else:
        score_columns = None
    # Labels reach Evidently as strings (see _frame): the positive class must be one too.
    pos_label = None
    if model.task == "binary":
        pos_label = str(classes[1]) if classes is not None else (model.positive_class or "1")
    try:
        html = evidently_report_html(
            _frame(reference, model, score_columns),
            _frame(window, model, score_columns),
            dict(model.features),
            model.task,
            score_columns=score_columns,
            pos_label=pos_label,
        )
    except ValueError as exc:
        raise ReportError(f"monitor {monitor_name!r}, window {start.isoformat()}: {exc}") from exc
    return start, html
