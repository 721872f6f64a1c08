"""``driftscope reference upload``: store a training/reference dataset for ``reference: {dataset: NAME}``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from monitor.cli.main import ConfigOption, err_console, open_store, out_console, user_errors
from monitor.config import load_config

reference_app = typer.Typer(help="Reference datasets that monitors compare windows with.", no_args_is_help=True)


@reference_app.command("upload")
@user_errors
def upload(
    file: Annotated[Path, typer.Argument(help="CSV (.csv, .csv.gz) or Parquet file.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Model the dataset belongs to.", show_default=False)],
    name: Annotated[
        str | None, typer.Option(help="Name monitors refer to (reference: {dataset: NAME}); default: the file name.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Check FILE against the model's schema and store it in the store (replacing a dataset of the same name)."""
    from monitor.runs.references import upload_dataset  # pandas and pyarrow: not for --help
    from monitor.store.engine import check_migrated

    settings = load_config(config)
    engine = open_store(settings)
    check_migrated(engine)
    columns = [TextColumn("reading {task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn()]
    if file.suffix.lower() in (".parquet", ".pq"):
        # Parquet reports rows, and its total is unknown until the footer is read: "?" until then.
        columns[2] = MofNCompleteColumn(" of ")
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(file.name, total=None)
        stored, rows = upload_dataset(
            engine, settings, model, file, name=name,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )  # fmt: skip
    out_console.print(f"reference dataset {stored!r} of model {model!r}: {rows:,} rows stored", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(reference_app, name="reference")
