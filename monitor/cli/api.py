"""``driftscope api`` (the ingestion API under uvicorn) and ``driftscope apikey create|list|revoke``.

FastAPI, uvicorn and the store (SQLAlchemy) are imported inside the commands: ``--help`` imports this module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
from monitor.config import CONFIG_ENV, load_config

if TYPE_CHECKING:
    from fastapi import FastAPI

apikey_app = typer.Typer(help="Create, list and revoke API keys for the ingestion API.", no_args_is_help=True)


def app_from_environment() -> FastAPI:
    """uvicorn factory for ``--workers N``: each worker process builds its app from $DRIFTSCOPE_CONFIG."""
    from monitor.api.app import create_app

    config = load_config()
    return create_app(config, open_store(config))


@user_errors
def api(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Default: api.host from the config.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: api.port from the config.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the ingestion API (POST /v1/models/{model}/predictions and /labels)."""
    import uvicorn

    from monitor.api.app import create_app
    from monitor.metrics.exporter import use_multiprocess_dir
    from monitor.store.engine import check_migrated
    from monitor.store.queries import sync_models

    settings = load_config(config)
    engine = open_store(settings)
    check_migrated(engine)
    sync_models(engine, settings)
    host = host or settings.api.host
    port = port or settings.api.port
    if workers == 1:
        uvicorn.run(create_app(settings, engine), host=host, port=port, log_config=None)
    else:
        if config is not None:
            os.environ[CONFIG_ENV] = str(config)
        use_multiprocess_dir()  # /metrics adds up the counters of every worker process
        uvicorn.run(
            f"{__name__}:app_from_environment", factory=True, workers=workers, host=host, port=port, log_config=None
        )


@apikey_app.command("create")
@user_errors
def apikey_create(
    name: Annotated[str, typer.Option("--name", help="Who uses the key, e.g. svc-checkout.", show_default=False)],
    models: Annotated[
        str | None, typer.Option("--models", help="Comma-separated models the key may write (default: all).")
    ] = None,
    scopes: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", help="What the key may do, repeatable: ingest, read, operate, admin (default: ingest)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from monitor.store.api_keys import create_api_key
    from monitor.store.engine import check_migrated

    settings = load_config(config)
    scope = [m.strip() for m in models.split(",") if m.strip()] if models else None
    unknown = [m for m in scope or () if m not in settings.models]
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {', '.join(unknown)} (known: {', '.join(settings.models)})")
    engine = open_store(settings)
    check_migrated(engine)
    key, info = create_api_key(engine, name, scope, scopes or ("ingest",))
    out_console.print(key, highlight=False, soft_wrap=True)
    typer.echo(
        f"created key {info.name!r} ({', '.join(info.scopes)}) for "
        f"{', '.join(info.models) if info.models else 'all models'}; it is shown only this once",
        err=True,
    )


@apikey_app.command("list")
@user_errors
def apikey_list(config: ConfigOption = None) -> None:
    """List keys (never the keys themselves)."""
    from monitor.store.api_keys import list_api_keys

    engine = open_store(load_config(config))
    table = Table("name", "prefix", "scopes", "models", "created", "last used", "revoked")
    for key in list_api_keys(engine):
        table.add_row(
            key.name,
            key.prefix,
            ", ".join(key.scopes),
            ", ".join(key.models) if key.models else "all",
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )
    out_console.print(table)


@apikey_app.command("revoke")
@user_errors
def apikey_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.", show_default=False)],
    config: ConfigOption = None,
) -> None:
    """Revoke a key: it stops working at once."""
    from monitor.store.api_keys import revoke_api_key

    info = revoke_api_key(open_store(load_config(config)), name)
    out_console.print(f"revoked {info.name!r} ({info.prefix})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    app.add_typer(apikey_app, name="apikey")
