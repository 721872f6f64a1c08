"""``driftscope runs list|retry``: the runs of the monitors' windows, and starting failed ones again.

The store (SQLAlchemy) is imported inside each command: ``driftscope runs --help`` imports this module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from monitor.cli.alerts import _parse_time, _print_table, _store, _when
from monitor.cli.main import ConfigOption, out_console, user_errors

runs_app = typer.Typer(help="List the runs of the monitors' windows; start failed ones again.", no_args_is_help=True)

STATUSES = ("pending", "running", "succeeded", "insufficient_data", "failed")


@runs_app.command("list")
@user_errors
def list_runs(
    monitor: Annotated[str | None, typer.Option("--monitor", "-m", help="Only this monitor's runs.")] = None,
    status: Annotated[str, typer.Option(help=f"{', '.join(STATUSES)} or all.")] = "all",
    limit: Annotated[int, typer.Option(min=1)] = 50,
    config: ConfigOption = None,
) -> None:
    """Runs, newest window first, with their attempts and last error (why a run failed)."""
    from sqlalchemy import select

    from monitor.store.tables import Run

    if status != "all" and status not in STATUSES:
        raise typer.BadParameter(f"expected one of {', '.join(STATUSES)} or all", param_hint="--status")
    _, engine = _store(config)
    query = select(Run).order_by(Run.window_start.desc(), Run.monitor).limit(limit)
    if monitor is not None:
        query = query.where(Run.monitor == monitor)
    if status != "all":
        query = query.where(Run.status == status)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    engine.dispose()
    lines = [
        (
            str(r.id),
            r.monitor,
            _when(r.window_start),
            r.status + (" (stale)" if r.stale_since is not None else ""),
            str(r.attempts),
            "" if r.row_count is None else str(r.row_count),
            _when(r.finished_at),
            r.error or "",
        )
        for r in rows
    ]
    _print_table(("id", "monitor", "window", "status", "attempts", "rows", "finished", "error"), lines)


@runs_app.command("retry")
@user_errors
def retry(
    run_id: Annotated[int | None, typer.Option("--id", help="The run's id (see `runs list`).")] = None,
    monitor: Annotated[str | None, typer.Option("--monitor", "-m", help="With --window, or --all-failed.")] = None,
    window: Annotated[
        str | None, typer.Option(help="With --monitor: an ISO time in the window, e.g. its start 2026-03-02T08:00Z.")
    ] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed run (of --monitor if given).")] = False,
    config: ConfigOption = None,
) -> None:
    """Compute runs again from scratch: one of --id, --monitor with --window, or --all-failed.

    The run becomes pending with no attempt spent; a worker computes it on its next tick.
    """
    from monitor.store.actions import retry_failed, retry_run, retry_window

    chosen = [run_id is not None, window is not None, all_failed]
    if sum(chosen) != 1 or (window is not None and monitor is None):
        raise typer.BadParameter("give one of --id, --monitor with --window, or --all-failed")
    if monitor is not None and run_id is not None:
        raise typer.BadParameter("--monitor goes with --window or --all-failed, not --id")
    at = None if window is None else _parse_time(window, "--window")
    _, engine = _store(config)
    try:
        if all_failed:
            count = retry_failed(engine, None if monitor is None else [monitor])
            out_console.print(f"{count} failed run(s) pending again", highlight=False)
        elif run_id is not None:
            retry_run(engine, run_id, now=datetime.now(UTC))
            out_console.print(f"run {run_id} pending again", highlight=False)
        elif monitor is not None and at is not None:
            retried = retry_window(engine, monitor, at, now=datetime.now(UTC))
            out_console.print(f"run {retried} ({monitor}, window {window}) pending again", highlight=False)
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
