"""Evidently HTML report for one window against its reference (the dashboard's drill-down).

Pure: two frames in, one HTML string out; the caller decides where it goes. Built with Evidently
0.7's API: ``Report([DataDriftPreset(...), ClassificationPreset() | RegressionPreset()])`` run on
two :class:`evidently.Dataset` objects sharing a :class:`evidently.DataDefinition`, rendered with
``Snapshot.get_html_str(as_iframe=False)``.

Self-contained: Evidently 0.7 renders with ``embed_lib=True`` and ``embed_font=True``, i.e. its
whole JavaScript bundle (``evidently/nbextension/static/index.js``, React + Plotly, ~5 MB) and the
Material Icons font are inlined into the page, and the data are inlined as JSON. The page needs
no network access to view (tests check that it has no ``<script src>`` / external stylesheet).
The price is size: every report carries the ~5 MB bundle.

Example
-------
>>> import pandas as pd
>>> ref = pd.DataFrame({"x": range(50), "plan": ["a", "b"] * 25})
>>> cur = pd.DataFrame({"x": range(25, 75), "plan": ["a", "c"] * 25})
>>> html = evidently_report_html(ref, cur, {"x": "numeric", "plan": "categorical"})
>>> html.lstrip().startswith("<!DOCTYPE html>") and "plan" in html
True
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, MulticlassClassification, Regression, Report
from evidently.presets import ClassificationPreset, DataDriftPreset, RegressionPreset

from detectors.performance import Task
from detectors.types import ColumnKind

logger = logging.getLogger(__name__)


def _definition(
    column_kinds: Mapping[str, ColumnKind],
    task: Task | None,
    target: str | None,
    prediction: str | None,
    score_columns: str | Sequence[str] | None,
    pos_label: Any,
) -> DataDefinition:
    numerical = [c for c, k in column_kinds.items() if k == "numeric"]
    categorical = [c for c, k in column_kinds.items() if k == "categorical"]
    classification = regression = None
    if task == "binary":
        classification = [
            BinaryClassification(
                target=target,
                prediction_labels=prediction,
                prediction_probas=score_columns if isinstance(score_columns, str) else None,
                pos_label=pos_label,
            )
        ]
    elif task == "multiclass":
        probas = None if score_columns is None else list(score_columns)
        classification = [
            MulticlassClassification(target=target, prediction_labels=prediction, prediction_probas=probas)
        ]
    elif task == "regression":
        regression = [Regression(target=target, prediction=prediction)]
    return DataDefinition(
        numerical_columns=numerical,
        categorical_columns=categorical,
        classification=classification,
        regression=regression,
    )


def _labelled(frame: pd.DataFrame, target: str, task: Task | None) -> pd.DataFrame:
    frame = frame.dropna(subset=[target])
    labels = frame[target]
    # A missing label turns an integer class column into floats (1.0), which Evidently's
    # classification metrics then see as a continuous target; restore the integers.
    if task != "regression" and pd.api.types.is_float_dtype(labels) and (labels % 1 == 0).all():
        frame = frame.assign(**{target: labels.astype("int64")})
    return frame


def evidently_report_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    column_kinds: Mapping[str, ColumnKind],
    task: Task | None = None,
    *,
    target: str = "target",
    prediction: str = "prediction",
    score_columns: str | Sequence[str] | None = None,
    pos_label: Any = 1,
) -> str:
    """Evidently's standalone HTML report of ``current`` against ``reference``.

    ``column_kinds`` names the feature columns (numeric / categorical) whose drift is shown.
    With a ``task`` and labels (a non-empty ``target`` column in both frames), the classification
    or regression preset is added; ``prediction`` holds predicted labels / values and
    ``score_columns`` the positive-class probability column (binary) or the per-class probability
    columns named after their classes (multiclass). Without labels only drift is shown.
    Raises ``ValueError`` for an empty window or a missing column (Evidently cannot render them).
    """
    if current.empty or reference.empty:
        raise ValueError("evidently report needs rows in both the reference and the current window")
    if not column_kinds:
        raise ValueError("evidently report needs at least one feature column")
    for frame_name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in column_kinds if c not in frame.columns]
        if missing:
            raise ValueError(f"{frame_name} frame lacks feature columns {missing}")

    has_labels = (
        task is not None
        and all(target in f.columns and f[target].notna().any() for f in (reference, current))
        and prediction in current.columns
    )
    extra: list[str] = []
    if has_labels:
        extra = [target, prediction]
        if score_columns is not None:
            extra += [score_columns] if isinstance(score_columns, str) else list(score_columns)
        # Evidently's quality metrics cannot score rows whose label has not arrived yet.
        reference = _labelled(reference, target, task)
        current = _labelled(current, target, task)
    columns = list(column_kinds) + extra
    definition = _definition(column_kinds, task if has_labels else None, target, prediction, score_columns, pos_label)
    metrics: list[Any] = [DataDriftPreset(columns=list(column_kinds))]
    if has_labels:
        metrics.append(RegressionPreset() if task == "regression" else ClassificationPreset())
    # Evidently's internals warn about their own corner cases (e.g. sklearn's R² on a one-row
    # bin); that is not actionable for the caller, so it is logged instead of propagated.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        snapshot = Report(metrics).run(
            Dataset.from_pandas(current[columns], data_definition=definition),
            Dataset.from_pandas(reference[columns], data_definition=definition),
        )
        html = snapshot.get_html_str(as_iframe=False)
    for w in caught:
        logger.debug("evidently warning while building report: %s: %s", w.category.__name__, w.message)
    return html
