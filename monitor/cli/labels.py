"""``driftscope labels upload``: ground truth from a CSV, CSV.gz or Parquet file, streamed in batches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.file_progress import reading_bar
from monitor.cli.main import ConfigOption, err_console, open_store, out_console, user_errors
from monitor.config import load_config

labels_app = typer.Typer(help="Ground truth (labels) for stored predictions.", no_args_is_help=True)


@labels_app.command("upload")
@user_errors
def upload(
    file: Annotated[Path, typer.Argument(help="CSV (.csv, .csv.gz) or Parquet file.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Model the labels belong to.", show_default=False)],
    id_column: Annotated[str, typer.Option(help="Column of the prediction ids.")] = "id",
    label_column: Annotated[str, typer.Option(help="Column of the labels.")] = "label",
    time_column: Annotated[
        str | None,
        typer.Option(help="Column of the time each label describes (default: timestamp, if the file has it)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Store the labels of FILE; bad rows are rejected with their line (CSV) or row (Parquet), re-runs change nothing.

    Labels of predictions not stored yet wait for them. Every rejection is kept in the store's
    rejected records; the first ones are printed.
    """
    from monitor.ingest.files import LabelColumns, upload_labels  # the store and pyarrow: not for --help
    from monitor.store.engine import check_migrated

    settings = load_config(config)
    engine = open_store(settings)
    check_migrated(engine)
    columns = LabelColumns(id_column, label_column, time_column or "timestamp", time_required=time_column is not None)
    try:
        with reading_bar(file) as progress:
            result = upload_labels(engine, settings, model, file, columns, progress=progress)
    finally:
        engine.dispose()  # a one-shot command: its pooled connections close now, not at garbage collection
    for line in result.first_rejections:
        err_console.print(f"rejected {line}", highlight=False, markup=False)
    if result.rejected > len(result.first_rejections):
        err_console.print(f"… and {result.rejected - len(result.first_rejections):,} more (see rejected records)")
    out_console.print(
        f"labels of model {model!r} from {file.name}: {result.rows:,} rows, {result.accepted:,} stored, "
        f"{result.rejected:,} rejected, {result.replayed:,} already uploaded (unchanged)",
        highlight=False,
    )
    if result.rows and result.accepted == 0 and result.replayed == 0:
        raise typer.Exit(1)  # every row was rejected: nothing was stored


def register(app: typer.Typer) -> None:
    app.add_typer(labels_app, name="labels")
