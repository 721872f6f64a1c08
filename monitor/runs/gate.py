"""The CI/CD gate behind ``driftscope check``: the monitors' detectors on two files, one typed verdict.

Tests: the dataset's drift (share of drifted features, ``drift.drift_share``), the drift of
every column that has its own policy under ``drift.columns`` in the config, and — when both
files hold labels — each performance metric against its band learned from the reference.
Everything else (all per-column drift, data quality, label coverage) is reported, not gated.

Without a config the model is inferred from the reference file (see :func:`infer_model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detectors.drift import infer_kind
from detectors.types import Score
from monitor.config import Config, ModelConfig, MonitorConfig
from monitor.errors import DriftscopeError
from monitor.runs.evaluation import Evaluation, evaluate, fit_baseline, score_dict
from monitor.runs.files import frame_to_batch, read_table

# Column names recognised without a config, in order of preference.
PREDICTION_NAMES = ("prediction", "y_pred", "pred")
SCORE_NAMES = ("score", "y_pred_proba", "proba", "probability")
LABEL_NAMES = ("label", "target", "y_true")
TIMESTAMP_NAMES = ("timestamp", "ts", "time", "date", "@timestamp", "event_time")


class CheckError(DriftscopeError):
    """Input the check cannot use (exit code 2)."""


@dataclass(frozen=True, slots=True)
class GateTest:
    name: str
    score: Score

    @property
    def passed(self) -> bool:
        return self.score.status == "ok" and not self.score.breached


@dataclass(frozen=True, slots=True)
class CheckedFile:
    file: str
    rows: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What :func:`run_check` found: the gating tests and every score of the current file."""

    reference: CheckedFile
    current: CheckedFile
    model: ModelConfig
    inferred: bool  # the model was inferred from the files, not read from a config
    tests: tuple[GateTest, ...]
    scores: tuple[Score, ...]

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the shape of ``driftscope check --format json``."""
        return {
            "passed": self.passed,
            "reference": {"file": self.reference.file, "rows": self.reference.rows},
            "current": {"file": self.current.file, "rows": self.current.rows},
            "model": {"task": self.model.task, "features": dict(self.model.features), "inferred": self.inferred},
            "tests": [{"name": t.name, "passed": t.passed, **score_dict(t.score)} for t in self.tests],
            "scores": [score_dict(s) for s in self.scores],
        }


def _first(columns: Sequence[str], names: Sequence[str], given: str | None) -> str | None:
    if given is not None:
        if given not in columns:
            raise CheckError(f"column {given!r} not in the reference file (columns: {list(columns)})")
        return given
    return next((n for n in names if n in columns), None)


def _is_identifier(name: str) -> bool:
    lowered = name.lower()
    return lowered == "id" or lowered.endswith("_id")


def infer_model(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    prediction: str | None = None,
    score: str | None = None,
    label: str | None = None,
    ignore: Sequence[str] = (),
) -> ModelConfig:
    """A model for two files without a config.

    - Ignored: ``--ignore`` columns, identifiers (``id`` or ``*_id``), timestamps (a datetime
      dtype or a name like ``timestamp``) and columns missing from the current file.
    - Prediction, score and label columns: ``--prediction/--score/--label``, else the first of
      :data:`PREDICTION_NAMES`, :data:`SCORE_NAMES`, :data:`LABEL_NAMES` present. Without a
      single score column, ``<score name>_<class>`` columns (``y_pred_proba_gold``, ...) are a
      multiclass model's per-class probabilities.
    - Every other column is a feature, its kind inferred as Evidently does: floats numeric,
      integers numeric only with more than 10 distinct values, anything else categorical.
    - Task: a float label with more than 10 distinct values is regression; two 0/1 classes
      binary; otherwise multiclass.
    """
    columns = list(reference.columns)
    roles = {
        "prediction": _first(columns, PREDICTION_NAMES, prediction),
        "score": _first(columns, SCORE_NAMES, score),
        "label": _first(columns, LABEL_NAMES, label),
    }
    per_class: list[str] = []
    if roles["score"] is None:
        # Per-class probabilities of a multiclass model: <score>_<class> columns, e.g. y_pred_proba_gold.
        for base in SCORE_NAMES:
            per_class = [c for c in columns if c.startswith(f"{base}_")]
            if len(per_class) >= 2:
                roles["score"] = base
                break
        else:
            per_class = []
    special = {c for c in roles.values() if c is not None} | set(per_class) | set(ignore)
    features: dict[str, str] = {}
    for name in columns:
        series = reference[name]
        if name in special or name not in current.columns or _is_identifier(name):
            continue
        if pd.api.types.is_datetime64_any_dtype(series) or name.lower() in TIMESTAMP_NAMES:
            continue
        # A NumPy dtype holds no pd.NA, and its NaNs change no kind: dropna() only copied the column.
        array = series.to_numpy() if isinstance(series.dtype, np.dtype) else series.dropna().to_numpy()
        features[name] = infer_kind(array)
    if not features:
        raise CheckError(f"no feature columns shared by both files (reference columns: {columns})")
    target = roles["label"] or roles["prediction"]
    task = "binary"
    if target is not None:
        values = reference[target].dropna()
        if pd.api.types.is_float_dtype(values) and values.nunique() > 10:
            task = "regression"
        elif not set(values.unique().tolist()) <= {0, 1}:
            task = "multiclass"
    fields = {"id": "id", "timestamp": "timestamp", "prediction": roles["prediction"] or "prediction"}
    fields.update({k: v for k, v in (("score", roles["score"]), ("label", roles["label"])) if v})
    prefix = len(roles["score"] or "") + 1  # per_class is only filled once roles["score"] is set
    classes = [c[prefix:] for c in per_class] if per_class and task == "multiclass" else None
    return ModelConfig(task=task, features=features, fields=fields, classes=classes)


def _default_metrics(model: ModelConfig, has_score: bool) -> list[str]:
    if model.task == "regression":
        return ["mae", "rmse"]
    return ["accuracy", "f1", "roc_auc"] if has_score else ["accuracy", "f1"]


def _from_config(config: Config, model_name: str | None) -> tuple[ModelConfig, MonitorConfig | None]:
    if model_name is None:
        if len(config.models) != 1:
            raise CheckError(
                f"the config has {len(config.models)} models: pick one with --model ({', '.join(config.models)})"
            )
        model_name = next(iter(config.models))
    model = config.models.get(model_name)
    if model is None:
        raise CheckError(f"unknown model {model_name!r} (known: {', '.join(sorted(config.models)) or 'none'})")
    monitor = next((m for m in config.monitors.values() if m.model == model_name), None)
    return model, monitor


def gate_tests(monitor: MonitorConfig, evaluation: Evaluation) -> list[GateTest]:
    """The scores that decide the exit code (see the module docstring)."""
    tests: list[GateTest] = []
    for s in evaluation.scores:
        if s.kind == "drift" and s.method == "share_drifted":
            tests.append(GateTest("dataset drift", s))
        elif s.kind == "drift" and s.feature in monitor.drift.columns:
            tests.append(GateTest(f"drift of {s.feature}", s))
        elif s.kind == "performance" and (s.threshold is not None or s.status != "ok"):
            tests.append(GateTest(f"{s.method} within its reference band", s))
    return tests


def run_check(
    reference_path: Path,
    current_path: Path,
    *,
    config: Config | None = None,
    model_name: str | None = None,
    prediction: str | None = None,
    score: str | None = None,
    label: str | None = None,
    ignore: Sequence[str] = (),
) -> CheckResult:
    """Score ``current_path`` against ``reference_path``; raises :class:`CheckError` on input it cannot use."""
    reference = read_table(reference_path)
    current = read_table(current_path)
    if config is not None:
        model, monitor = _from_config(config, model_name)
        inferred = False
    else:
        model = infer_model(reference, current, prediction=prediction, score=score, label=label, ignore=ignore)
        monitor, inferred = None, True
    ref_batch = frame_to_batch(reference, model, source=str(reference_path), classes=model.classes)
    cur_batch = frame_to_batch(current, model, source=str(current_path), classes=model.classes)
    if monitor is None:
        labelled = all(b.label is not None and b.label_count for b in (ref_batch, cur_batch))
        has_score = ref_batch.score is not None
        monitor = MonitorConfig(
            model="check",
            reference={"dataset": str(reference_path)},
            performance=_default_metrics(model, has_score) if labelled else [],
        )
    if monitor.drift.slow_drift is not None:
        # One current file has no history of windows: a sequential detector over it would be one step
        # of a CUSUM, on another scale than the drift tests it would then gate as "drift of X".
        monitor = monitor.model_copy(update={"drift": monitor.drift.model_copy(update={"slow_drift": None})})
    for name, batch in (("reference", ref_batch), ("current", cur_batch)):
        if batch.n < monitor.min_rows:
            raise CheckError(f"{name} file has {batch.n} rows, need at least {monitor.min_rows} (min_rows)")
    baseline = fit_baseline(model, monitor, ref_batch, reference_seconds=None, chunk_rows=cur_batch.n)
    evaluation = evaluate(model, monitor, baseline, cur_batch, window_seconds=None)
    return CheckResult(
        reference=CheckedFile(str(reference_path), ref_batch.n),
        current=CheckedFile(str(current_path), cur_batch.n),
        model=model,
        inferred=inferred,
        tests=tuple(gate_tests(monitor, evaluation)),
        scores=tuple(evaluation.scores),
    )
