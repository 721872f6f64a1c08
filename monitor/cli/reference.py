"""``driftscope reference upload``: store a training/reference dataset for ``reference: {dataset: NAME}``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.file_progress import reading_bar
from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
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
    with reading_bar(file) as progress:
        stored, rows = upload_dataset(engine, settings, model, file, name=name, progress=progress)
    out_console.print(f"reference dataset {stored!r} of model {model!r}: {rows:,} rows stored", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(reference_app, name="reference")
