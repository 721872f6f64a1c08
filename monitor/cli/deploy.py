"""``driftscope deploy record|list``: deployments as events, from the deployment pipeline (docs/versions.md).

The store (SQLAlchemy) is imported inside each command: ``driftscope deploy --help`` imports this module.
"""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

from monitor.cli.alerts import _parse_time, _print_table, _store, _when
from monitor.cli.main import ConfigOption, out_console, user_errors

deploy_app = typer.Typer(help="Record deployments of model versions; list them.", no_args_is_help=True)


def _user(given: str | None) -> str:
    """--by, else $USER, else the login name: who deployed."""
    if given:
        return given
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container): ask for --by
        raise typer.BadParameter("cannot tell who deploys: give --by", param_hint="--by") from None


def _traffic(share: float | None) -> str:
    return "all" if share is None else f"{share * 100:g}%"


@deploy_app.command("record")
@user_errors
def record(
    model: Annotated[str, typer.Option("--model", "-m", help="The model deployed.", show_default=False)],
    version: Annotated[str, typer.Option(help="The version deployed, e.g. 2.1.", show_default=False)],
    commit: Annotated[str | None, typer.Option(help="The commit it was built from.")] = None,
    url: Annotated[str | None, typer.Option(help="The pipeline run (http or https), linked on the dashboard.")] = None,
    traffic: Annotated[
        str | None, typer.Option(help="Share of traffic it gets: 10% or 0.1 (a canary); default: all of it.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="When it went live (ISO, e.g. 2026-03-02T08:00Z); default: now.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Anything the next person should know.")] = None,
    by: Annotated[str | None, typer.Option(help="Who deployed; default: $USER.")] = None,
    config: ConfigOption = None,
) -> None:
    """Record that a version of a model went live: markers on the dashboard, context in alert messages."""
    from monitor.store.deployments import record_deployment
    from monitor.store.queries import sync_models

    when = None if at is None else _parse_time(at, "--at")
    settings, engine = _store(config)
    try:
        if model in settings.models:
            sync_models(engine, settings)  # a model configured but not yet ingested still has a row
        row = record_deployment(
            engine, model, version, deployed_by=_user(by), at=when, traffic=traffic, commit=commit, url=url, note=note
        )
    finally:
        engine.dispose()
    out_console.print(
        f"deployment {row.id}: {row.model} {row.version} at {_when(row.deployed_at)}, traffic {_traffic(row.traffic)}",
        highlight=False,
        markup=False,
    )


@deploy_app.command("list")
@user_errors
def list_deployments(
    model: Annotated[str, typer.Option("--model", "-m", help="The model.", show_default=False)],
    limit: Annotated[int, typer.Option(min=1)] = 50,
    config: ConfigOption = None,
) -> None:
    """A model's deployments, newest first."""
    from monitor.store import reads
    from monitor.store.deployments import DeploymentError, deployments

    _, engine = _store(config)
    try:
        with engine.connect() as connection:
            found = reads.model_by_name(connection, model)
            if found is None:
                known = ", ".join(m.name for m in reads.models(connection)) or "none yet"
                raise DeploymentError(f"unknown model {model!r} (known: {known})")
            rows = deployments(connection, found.id, limit=limit)
    finally:
        engine.dispose()
    lines = [
        (
            str(r.id),
            r.version,
            _when(r.deployed_at),
            _traffic(r.traffic),
            r.commit or "",
            r.deployed_by,
            r.url or "",
            r.note or "",
        )
        for r in rows
    ]
    _print_table(("id", "version", "deployed", "traffic", "commit", "by", "url", "note"), lines)


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
