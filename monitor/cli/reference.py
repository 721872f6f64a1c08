"""``driftscope reference upload|approve|list``: training/reference datasets for ``reference: {dataset: NAME}`` and,
uploaded with ``--version``, for ``reference: {version: current}`` (docs/versions.md, Baselines per version)."""

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
        str | None,
        typer.Option(
            help="Name monitors refer to (reference: {dataset: NAME}); default: the file name, "
            "with --version FILE@VERSION."
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            help="The model version this is the reference of (reference: {version: current}).", show_default=False
        ),
    ] = None,
    require_approval: Annotated[
        bool, typer.Option("--require-approval", help="No monitor uses it until `driftscope reference approve`.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Check FILE against the model's schema and store it (replacing a dataset of the same name and version;
    another version's is never replaced)."""
    from monitor.runs.references import upload_dataset  # pandas and pyarrow: not for --help
    from monitor.store.engine import check_migrated

    settings = load_config(config)
    engine = open_store(settings)
    try:
        check_migrated(engine)
        with reading_bar(file) as progress:
            stored, rows = upload_dataset(
                engine,
                settings,
                model,
                file,
                name=name,
                version=version,
                require_approval=require_approval,
                progress=progress,
            )
    finally:
        engine.dispose()
    of = "" if version is None else f" (version {version})"
    waits = f"; waits for `driftscope reference approve --model {model} {stored}`" if require_approval else ""
    out_console.print(
        f"reference dataset {stored!r} of model {model!r}{of}: {rows:,} rows stored{waits}",
        highlight=False,
        markup=False,
    )


@reference_app.command("approve")
@user_errors
def approve(
    name: Annotated[
        str, typer.Argument(help="The reference's name, as `reference list` shows it.", show_default=False)
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model the reference belongs to.", show_default=False)],
    by: Annotated[str | None, typer.Option(help="Who approves; default: $USER.")] = None,
    config: ConfigOption = None,
) -> None:
    """Approve an uploaded reference: monitors with `reference: {version: current}` use it from their next window."""
    from monitor.cli.deploy import _user
    from monitor.store.references import approve_reference

    settings = load_config(config)
    engine = open_store(settings)
    try:
        row, changed = approve_reference(engine, model, name, by=_user(by))
    finally:
        engine.dispose()
    done = "approved" if changed else "already approved"
    when = row.approved_at.strftime("%Y-%m-%d %H:%M:%SZ") if row.approved_at else ""
    of = "" if row.version is None else f" (version {row.version})"
    out_console.print(
        f"reference {row.name!r} of model {model!r}{of}: {done} by {row.approved_by} at {when}",
        highlight=False,
        markup=False,
    )


@reference_app.command("list")
@user_errors
def list_references(
    model: Annotated[str, typer.Option("--model", "-m", help="The model.", show_default=False)],
    version: Annotated[str | None, typer.Option(help="Only this version's references.", show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """A model's uploaded references, newest first: version, rows, approval (waiting, approved, at upload)."""
    from monitor.cli.alerts import _print_table, _when
    from monitor.store import reads
    from monitor.store.actions import ActionError
    from monitor.store.references import uploaded_references

    settings = load_config(config)
    engine = open_store(settings)
    try:
        with engine.connect() as connection:
            found = reads.model_by_name(connection, model)
            if found is None:
                known = ", ".join(m.name for m in reads.models(connection)) or "none yet"
                raise ActionError(f"unknown model {model!r} (known: {known})")
            rows = uploaded_references(connection, found.id, version)
    finally:
        engine.dispose()
    lines = [
        (
            r.name,
            r.version or "",
            "" if r.rows is None else f"{r.rows:,}",
            _when(r.created_at),
            r.approval,
            r.approved_by or "",
            _when(r.approved_at),
        )
        for r in rows
    ]
    _print_table(("name", "version", "rows", "uploaded", "approval", "approved by", "approved"), lines)


def register(app: typer.Typer) -> None:
    app.add_typer(reference_app, name="reference")
