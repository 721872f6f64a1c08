"""``driftscope canary``: is the candidate version worse than the baseline it would replace?

Exit codes: 0 promote, 1 worse (the reasons name the check, the values and the interval), 2 not
enough data yet (how many more rows or labels, and about how long) or bad input. The comparison
itself is :mod:`monitor.runs.canary`; the API's ``GET /v1/models/{model}/canary`` gives the same verdict.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
from monitor.config import load_config

if TYPE_CHECKING:
    from monitor.runs.canary import CanaryVerdict

SINCE_HELP = (
    "Start of the compared range: a duration back from now (30m, 1h, 2d) or an ISO time "
    "(default: the candidate's newest recorded deployment, else 1h)."
)


def _print_text(verdict: CanaryVerdict) -> None:
    rows, labels = verdict.rows, verdict.labels

    def when(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d %H:%M UTC")

    out_console.print(
        f"driftscope canary: {verdict.model} {verdict.candidate} ({rows['candidate']} rows, {labels['candidate']} "
        f"labels) against {verdict.baseline} ({rows['baseline']} rows, {labels['baseline']} labels), "
        f"{when(verdict.start)} – {when(verdict.end)}",
        highlight=False,
        markup=False,
    )
    for finding in verdict.findings:
        mark = "WORSE" if finding.worse else ("skip " if finding.status != "ok" else "ok   ")
        out_console.print(f"  {mark} {finding.message}", highlight=False, markup=False)
    for note in verdict.notes:
        out_console.print(f"  note  {note}", highlight=False, markup=False)
    headline = {
        0: f"[green]promote[/green]: {verdict.candidate} is not worse than {verdict.baseline}",
        1: f"[red]worse[/red]: {verdict.candidate} is worse than {verdict.baseline}",
        2: "[yellow]not enough data yet[/yellow]",
    }[verdict.exit_code]
    out_console.print(headline, highlight=False)
    for reason in verdict.reasons:
        out_console.print(f"  - {reason}", highlight=False, markup=False)


@user_errors
def canary(
    model: Annotated[str, typer.Option("--model", "-m", help="The model.", show_default=False)],
    candidate: Annotated[str, typer.Option("--candidate", help="The new version, e.g. 2.1.", show_default=False)],
    baseline: Annotated[
        str, typer.Option("--baseline", help="The version it would replace, e.g. 2.0.", show_default=False)
    ],
    since: Annotated[str | None, typer.Option("--since", help=SINCE_HELP, show_default=False)] = None,
    format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    config: ConfigOption = None,
) -> None:
    """Compare a candidate version with its baseline: exit 0 to promote, 1 if worse, 2 if not enough data yet."""
    if format not in ("text", "json"):
        raise typer.BadParameter("expected text or json", param_hint="--format")
    # NumPy, SciPy and the store load here: `canary --help` needs none of them.
    from monitor.runs.canary import parse_since, run_canary

    try:
        start = None if since is None else parse_since(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    from monitor.store.engine import check_migrated

    settings = load_config(config)
    engine = open_store(settings)
    try:
        check_migrated(engine)
        verdict = run_canary(engine, settings, model, candidate, baseline, since=start)
    finally:
        engine.dispose()
    if format == "json":
        typer.echo(json.dumps(verdict.to_dict(), indent=2))
    else:
        _print_text(verdict)
    raise typer.Exit(verdict.exit_code)


def register(app: typer.Typer) -> None:
    app.command("canary")(canary)
