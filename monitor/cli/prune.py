"""``driftscope prune``: apply each model's ``retention:`` now (the worker does it hourly).

The store (SQLAlchemy) is imported inside the command: ``driftscope prune --help`` imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.main import ConfigOption, err_console, open_store, out_console, user_errors

if TYPE_CHECKING:
    from monitor.store.retention import Target


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)


@user_errors
def prune(
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Only this model (repeat for several).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be deleted; delete nothing.")] = False,
    config: ConfigOption = None,
) -> None:
    """Delete what each model's retention lets go, never what a reference or a window still needs.

    Prints the rows per model and table; deletes in batches of a few thousand rows, one short
    transaction each, so ingestion and the worker go on meanwhile (docs/operations.md, Retention).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from monitor.config import load_config
    from monitor.store import retention
    from monitor.store.engine import check_migrated
    from monitor.store.tables import utcnow

    loaded = load_config(config)
    unknown = [name for name in model or () if name not in loaded.models]
    if unknown:
        raise typer.BadParameter(
            f"unknown model {', '.join(map(repr, unknown))} (known: {', '.join(sorted(loaded.models)) or 'none'})",
            param_hint="--model",
        )
    engine = open_store(loaded)
    try:
        check_migrated(engine)
        now = utcnow()
        due = retention.due(engine, loaded, now, model)
        if not due:
            out_console.print("no retention configured: nothing to prune (see `retention:` under each model)")
            return
        if dry_run:
            _print(due, "would delete", "would drop")
            return
        bars = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        with Progress(*bars, console=err_console, transient=True) as progress:
            tasks = {
                (target.model, target.table): progress.add_task(
                    f"{target.model or 'store'} {target.table}", total=count
                )
                for target, count in due
            }
            done = retention.prune(
                engine,
                loaded,
                now,
                model,
                progress=lambda target, count: progress.advance(tasks[target.model, target.table], count),
            )
    finally:
        engine.dispose()  # every path: a pooled Postgres connection left open is a ResourceWarning at exit
    _print(done, "deleted", "dropped")


def _print(counts: list[tuple[Target, int]], deletes: str, drops: str) -> None:
    """One line per model and table; a Postgres partition dropped whole is named with its rows (store-wide)."""
    width = max(len(target.model or "(store)") for target, _ in counts)
    for target, count in counts:
        verb = deletes if target.partition is None else f"{drops} partition with"
        line = f"{target.model or '(store)':<{width}}  {target.table:<18} {verb} {count:,}"
        out_console.print(line + (" rows" if target.partition is not None else ""), highlight=False)
