"""``driftscope report``: Evidently's HTML drill-down for one window (see :mod:`monitor.runs.drilldown`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
from monitor.config import load_config, parse_time
from monitor.errors import DriftscopeError


def _moment(value: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise DriftscopeError(f"--window: expected an ISO time like 2026-03-02T10:00Z, got {value!r}") from exc


@user_errors
def report(
    monitor: Annotated[str, typer.Option("--monitor", "-m", help="Monitor name.", show_default=False)],
    window: Annotated[
        str, typer.Option("--window", "-w", help="Any time inside the window (ISO 8601; UTC if no offset).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    config: ConfigOption = None,
) -> None:
    """Write Evidently's HTML report (drift, and performance when labelled) of one window against its reference."""
    from monitor.runs.drilldown import window_report_html  # Evidently takes seconds to import: only when needed
    from monitor.store.engine import check_migrated

    settings = load_config(config)
    engine = open_store(settings)
    check_migrated(engine)
    start, html = window_report_html(settings, engine, monitor, _moment(window))
    output.write_text(html, encoding="utf-8")
    out_console.print(
        f"{output}: Evidently report of {monitor}, window {start.isoformat()} ({len(html) / 1e6:.1f} MB)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("report")(report)
