"""``driftscope dashboard``: serve the Dash app; ``driftscope dashboard hash-password``: make a login hash.

This entry point is where the dashboard meets the detectors: the dashboard package stays read-only and
detector-free, and :func:`build_app` injects a ``render_report(monitor, window_start)`` callable that
loads the window and its reference from the store and renders Evidently's report with
:func:`detectors.report.evidently_report_html`.

Every library beyond typer and rich (pandas, SQLAlchemy, Dash, Evidently, gunicorn) is imported
inside the function that needs it: ``driftscope dashboard --help`` imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
from monitor.config import Config, load_config
from monitor.errors import DriftscopeError

if TYPE_CHECKING:
    from sqlalchemy import Engine

REPORT_CACHE_SIZE = 8  # a report embeds Evidently's ~5 MB bundle: keep only the last few


def report_renderer(config: Config, engine: Engine) -> Callable[[str, datetime], str]:
    """``render_report(monitor, window_start) -> html`` for the dashboard's window report page: the same
    :func:`monitor.runs.drilldown.window_report_html` as ``driftscope report``."""
    from monitor.runs.drilldown import window_report_html

    @lru_cache(maxsize=REPORT_CACHE_SIZE)
    def render(monitor_name: str, window_start: datetime) -> str:
        return window_report_html(config, engine, monitor_name, window_start)[1]

    return render


def build_app(config: Config, engine: Engine) -> Any:
    """The dashboard with Evidently window reports wired in (for ``driftscope dashboard``, ``up`` and ``demo``)."""
    from dashboard import create_app

    return create_app(config, engine, render_report=report_renderer(config, engine))


def register(app: typer.Typer) -> None:
    dashboard_app = typer.Typer(help="The web dashboard (Dash).", invoke_without_command=True)

    @dashboard_app.callback()
    @user_errors
    def dashboard(
        ctx: typer.Context,
        config: ConfigOption = None,
        host: Annotated[str | None, typer.Option(help="Listen address (default: dashboard.host).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default: dashboard.port).")] = None,
        workers: Annotated[
            int | None, typer.Option(min=1, help="Server processes (default: dashboard.workers).")
        ] = None,
        threads: Annotated[
            int | None, typer.Option(min=1, help="Threads per process (default: dashboard.threads).")
        ] = None,
    ) -> None:
        """Serve the dashboard (login, host and port come from the dashboard: section of the config)."""
        if ctx.invoked_subcommand is not None:
            return
        from monitor.cli.dashboard_server import serve_workers
        from monitor.store.engine import check_migrated

        cfg = load_config(config)
        problem = cfg.dashboard.unguarded_proxy(host or cfg.dashboard.host)
        if problem:  # the config was checked with its own host, not --host's
            raise DriftscopeError(problem)
        engine = open_store(cfg)
        check_migrated(engine)
        settings = cfg.dashboard
        out_console.print(
            f"dashboard on http://{host or settings.host}:{port or settings.port} (login: {settings.auth})",
            highlight=False,
        )
        engine.dispose()  # each server process opens its own: pooled connections must not cross a fork
        serve_workers(
            cfg, host or settings.host, port or settings.port, workers or settings.workers, threads or settings.threads
        )

    @dashboard_app.command("hash-password")
    @user_errors
    def hash_password_command(
        password: Annotated[
            str,
            typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Read from a prompt if omitted."),
        ],
    ) -> None:
        """Print a pbkdf2_sha256 hash for dashboard.users.<name>.password_hash."""
        from dashboard.auth import hash_password

        if not password:
            raise DriftscopeError("password must not be empty")
        typer.echo(hash_password(password))  # plain: a console would wrap the hash

    app.add_typer(dashboard_app, name="dashboard")
