"""``driftscope collect <source>``: read a source into the store now (the worker does it on a schedule).

``collect`` is a sub-app: each source adds its own command to :data:`collect_app`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from monitor.cli.main import ConfigOption, err_console, open_store, out_console, user_errors
from monitor.config import load_config

collect_app = typer.Typer(help="Read a source into the store now.", no_args_is_help=True)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} docs/s")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from monitor.ingest.records import parse_timestamp  # the store's tables (SQLAlchemy): not for --help

    try:
        return parse_timestamp(int(value) if value.isdigit() else value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


@collect_app.command("elasticsearch")
@user_errors
def collect_elasticsearch(
    model: Annotated[str, typer.Option("--model", "-m", help="The model to collect.", show_default=False)],
    start: Annotated[str | None, typer.Option("--from", help="Backfill from this time (ISO-8601 or epoch).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Backfill up to this time (default: now).")] = None,
    labels: Annotated[bool, typer.Option("--labels", help="Read the model's label_index instead.")] = False,
    config: ConfigOption = None,
) -> None:
    """Collect new prediction logs of MODEL, or backfill [--from, --to) with a progress bar; resumable."""
    from collectors.elasticsearch import ElasticsearchCollector
    from monitor.store.engine import check_migrated

    settings = load_config(config)
    engine = open_store(settings)
    check_migrated(engine)
    collector = ElasticsearchCollector(engine, settings, model, kind="label" if labels else "prediction")
    begin, finish = _time(start, "--from"), _time(end, "--to")
    if begin is None and finish is not None:
        raise typer.BadParameter("--to needs --from", param_hint="--to")
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(collector.name, total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        if begin is not None:
            result = collector.backfill(begin, finish or datetime.now(begin.tzinfo), advance)
        else:
            result = collector.collect(progress=advance)
    state = "done" if result.caught_up else "stopped early (see the log); run again to resume"
    out_console.print(
        f"{result.collector}: {result.stored} stored, {result.rejected} rejected — {state}",
        highlight=False,
        soft_wrap=True,
    )
    if not result.caught_up:
        raise typer.Exit(1)


@collect_app.command("prometheus")
@user_errors
def collect_prometheus(
    model: Annotated[
        str, typer.Option("--model", "-m", help="The model whose metrics to collect.", show_default=False)
    ],
    start: Annotated[str | None, typer.Option("--from", help="Backfill from this time (ISO-8601 or epoch).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Backfill up to this time (default: now).")] = None,
    config: ConfigOption = None,
) -> None:
    """Collect MODEL's Prometheus queries from their checkpoints, or backfill [--from, --to] with progress."""
    from collectors.prometheus import build_prometheus_collectors
    from monitor.store.engine import check_migrated
    from monitor.store.queries import sync_models

    settings = load_config(config)
    if model not in settings.models:
        raise typer.BadParameter(
            f"unknown model {model!r} (known: {', '.join(sorted(settings.models))})", param_hint="--model"
        )
    engine = open_store(settings)
    check_migrated(engine)
    sync_models(engine, settings)
    begin, finish = _time(start, "--from"), _time(end, "--to")
    if begin is None and finish is not None:
        raise typer.BadParameter("--to needs --from", param_hint="--to")
    collectors = build_prometheus_collectors(settings, engine, model=model)
    if not collectors:
        out_console.print(f"model {model} has no metrics configured", highlight=False)
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"))
    with Progress(*columns, TimeElapsedColumn(), console=err_console) as progress:
        for collector in collectors:
            task = progress.add_task(collector.name, total=None)

            def advance(done: int, total: int, task: TaskID = task) -> None:
                progress.update(task, completed=done, total=total)

            try:
                if begin is not None:
                    result = collector.backfill(begin, finish or datetime.now(begin.tzinfo), advance)
                else:
                    result = collector.collect()
            finally:
                collector.close()
            progress.update(task, description=collector.name)
            position = result.position.isoformat() if result.position else "none"
            out_console.print(f"{collector.name}: {result.stored} points stored, at {position}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(collect_app, name="collect")
