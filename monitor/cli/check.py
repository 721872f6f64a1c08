"""``driftscope check``: the CI/CD gate — the monitors' detectors on two files, an exit code for the pipeline.

Exit codes: 0 every test passed, 1 a test failed, 2 bad input (unreadable file, missing
columns, too few rows, invalid config). The gate itself (which scores are tests, how a model is
inferred without ``--config``) is :mod:`monitor.runs.gate`; this module parses and prints.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from monitor.cli.main import ConfigOption, out_console, user_errors
from monitor.config import load_config

if TYPE_CHECKING:
    from monitor.runs.gate import CheckResult


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_text(result: CheckResult) -> None:
    from monitor.runs.evaluation import LABEL, PREDICTION, SCORE

    ref, cur = result.reference, result.current
    out_console.print(
        f"driftscope check: {cur.file} ({cur.rows} rows) against {ref.file} ({ref.rows} rows), "
        f"{result.model.task} model{' (inferred)' if result.inferred else ''}",
        highlight=False,
    )
    columns = Table(title="Drift per column", title_justify="left")
    for header in ("column", "kind", "method", "value", "threshold", "drift"):
        columns.add_column(header)
    kinds = {**result.model.features, PREDICTION: "prediction", SCORE: "score", LABEL: "label"}
    for s in result.scores:
        if s.kind == "drift" and s.feature is not None:
            verdict = s.reason if s.status != "ok" else ("[red]drifted[/red]" if s.breached else "no")
            columns.add_row(s.feature, kinds.get(s.feature, ""), s.method, _fmt(s.value), _fmt(s.threshold), verdict)
    out_console.print(columns)
    tests = Table(title="Tests", title_justify="left")
    for header in ("test", "value", "threshold", "result"):
        tests.add_column(header)
    for t in result.tests:
        verdict = "[green]PASS[/green]" if t.passed else f"[red]FAIL[/red] {t.score.reason or ''}".rstrip()
        tests.add_row(t.name, _fmt(t.score.value), _fmt(t.score.threshold), verdict)
    out_console.print(tests)
    failed = sum(not t.passed for t in result.tests)
    out_console.print(
        f"[red]{failed} of {len(result.tests)} test(s) failed[/red]"
        if failed
        else f"[green]all {len(result.tests)} test(s) passed[/green]"
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
    # The detectors and pandas load here: `check --help` needs none of them.
    import pyarrow as pa

    from monitor.runs.gate import run_check

    # One short process that reads two files: Arrow's default allocator (mimalloc) faulted in fresh
    # pages for every decoded column, about 2 s of system time reading 2 × 1M rows × 25 columns;
    # the system allocator reuses freed memory (1.0 s of CPU in all, and a lower peak).
    pa.set_memory_pool(pa.system_memory_pool())

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
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_text(result)
    raise typer.Exit(0 if result.passed else 1)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
