"""``driftscope check``: the CI/CD gate — the monitors' detectors on two files, an exit code for the pipeline.

Exit codes: 0 every test passed, 1 a test failed, 2 bad input (unreadable file, missing
columns, too few rows, invalid config).

Tests: the dataset's drift (share of drifted features, ``drift.drift_share``), the drift of
every column that has its own policy under ``drift.columns`` in the config, and — when both
files hold labels — each performance metric against its band learned from the reference.
Everything else (all per-column drift, data quality, label coverage) is reported, not gated.

Without ``--config`` the model is inferred from the reference file (see :func:`infer_model`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from detectors.drift import infer_kind
from detectors.types import Score
from monitor.cli.main import ConfigOption, out_console, user_errors
from monitor.config import Config, ModelConfig, MonitorConfig, load_config
from monitor.errors import DriftscopeError
from monitor.runs.evaluation import LABEL, PREDICTION, SCORE, Evaluation, evaluate, fit_baseline, score_dict
from monitor.runs.references import frame_to_batch, read_table

# Column names recognised without a config, in order of preference.
PREDICTION_NAMES = ("prediction", "y_pred", "pred")
SCORE_NAMES = ("score", "y_pred_proba", "proba", "probability")
LABEL_NAMES = ("label", "target", "y_true")
TIMESTAMP_NAMES = ("timestamp", "ts", "time", "date", "@timestamp", "event_time")


class CheckError(DriftscopeError):
    """Input the check cannot use (exit code 2)."""


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


@dataclass(frozen=True, slots=True)
class GateTest:
    name: str
    score: Score

    @property
    def passed(self) -> bool:
        return self.score.status == "ok" and not self.score.breached


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
        features[name] = infer_kind(series.dropna().to_numpy())
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
    classes = [c[len(roles["score"]) + 1 :] for c in per_class] if per_class and task == "multiclass" else None
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
    tests = []
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
) -> dict[str, Any]:
    """Score ``current_path`` against ``reference_path``; the result as plain JSON (see ``--format json``)."""
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
    for name, batch in (("reference", ref_batch), ("current", cur_batch)):
        if batch.n < monitor.min_rows:
            raise CheckError(f"{name} file has {batch.n} rows, need at least {monitor.min_rows} (min_rows)")
    baseline = fit_baseline(model, monitor, ref_batch, reference_seconds=None, chunk_rows=cur_batch.n)
    evaluation = evaluate(model, monitor, baseline, cur_batch, window_seconds=None)
    tests = gate_tests(monitor, evaluation)
    return {
        "passed": all(t.passed for t in tests),
        "reference": {"file": str(reference_path), "rows": ref_batch.n},
        "current": {"file": str(current_path), "rows": cur_batch.n},
        "model": {"task": model.task, "features": dict(model.features), "inferred": inferred},
        "tests": [{"name": t.name, "passed": t.passed, **score_dict(t.score)} for t in tests],
        "scores": [score_dict(s) for s in evaluation.scores],
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_text(result: dict[str, Any]) -> None:
    ref, cur = result["reference"], result["current"]
    out_console.print(
        f"driftscope check: {cur['file']} ({cur['rows']} rows) against {ref['file']} ({ref['rows']} rows), "
        f"{result['model']['task']} model{' (inferred)' if result['model']['inferred'] else ''}",
        highlight=False,
    )
    columns = Table(title="Drift per column", title_justify="left")
    for header in ("column", "kind", "method", "value", "threshold", "drift"):
        columns.add_column(header)
    kinds = {**result["model"]["features"], PREDICTION: "prediction", SCORE: "score", LABEL: "label"}
    for s in result["scores"]:
        if s["kind"] == "drift" and s["feature"] is not None:
            verdict = s["reason"] if s["status"] != "ok" else ("[red]drifted[/red]" if s["breached"] else "no")
            columns.add_row(
                s["feature"], kinds.get(s["feature"], ""), s["method"], _fmt(s["value"]), _fmt(s["threshold"]), verdict
            )
    out_console.print(columns)
    tests = Table(title="Tests", title_justify="left")
    for header in ("test", "value", "threshold", "result"):
        tests.add_column(header)
    for t in result["tests"]:
        verdict = "[green]PASS[/green]" if t["passed"] else f"[red]FAIL[/red] {t['reason'] or ''}".rstrip()
        tests.add_row(t["name"], _fmt(t["value"]), _fmt(t["threshold"]), verdict)
    out_console.print(tests)
    failed = sum(not t["passed"] for t in result["tests"])
    out_console.print(
        f"[red]{failed} of {len(result['tests'])} test(s) failed[/red]"
        if failed
        else f"[green]all {len(result['tests'])} test(s) passed[/green]"
    )


@user_errors
def check(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference file (.csv, .csv.gz, .parquet).")],
    current: Annotated[Path, typer.Option("--current", help="File to check against the reference.")],
    config: ConfigOption = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model of the config (if it has several).")] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="text (tables) or json (every score).")
    ] = OutputFormat.text,
    prediction: Annotated[str | None, typer.Option(help="Prediction column (without --config).")] = None,
    score: Annotated[str | None, typer.Option(help="Score/probability column (without --config).")] = None,
    label: Annotated[str | None, typer.Option(help="Label column (without --config).")] = None,
    ignore: Annotated[list[str] | None, typer.Option("--ignore", help="Column to leave out (repeatable).")] = None,
) -> None:
    """Gate a deployment: exit 1 if drift or a performance drop fails a test, 0 if all pass, 2 on bad input."""
    settings = load_config(config) if config is not None else None
    result = run_check(
        reference,
        current,
        config=settings,
        model_name=model,
        prediction=prediction,
        score=score,
        label=label,
        ignore=ignore or (),
    )
    if output is OutputFormat.json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_text(result)
    raise typer.Exit(0 if result["passed"] else 1)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
