"""``driftscope dashboard``: serve the Dash app; ``driftscope dashboard hash-password``: make a login hash.

This entry point is where the dashboard meets the detectors: the dashboard package stays read-only and
detector-free, and :func:`build_app` injects a ``render_report(monitor, window_start)`` callable that
loads the window and its reference from the store and renders Evidently's report with
:func:`detectors.report.evidently_report_html`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
import typer
from sqlalchemy import Engine
from werkzeug.serving import make_server

from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
from monitor.config import Config, ModelConfig, load_config
from monitor.errors import DriftscopeError
from monitor.store.engine import check_migrated
from monitor.store.queries import model_ids

if TYPE_CHECKING:
    from monitor.runs.windows import Batch

log = logging.getLogger(__name__)
REPORT_CACHE_SIZE = 8  # a report embeds Evidently's ~5 MB bundle: keep only the last few


def batch_frame(batch: Batch, model: ModelConfig) -> pd.DataFrame:
    """A window's rows as the frame Evidently reads: typed feature columns, prediction, score, label."""
    columns: dict[str, Any] = {}
    for name, kind in model.features.items():
        values = batch.features.get(name, np.full(batch.n, None, dtype=object))
        columns[name] = pd.to_numeric(pd.Series(values), errors="coerce") if kind == "numeric" else pd.Series(values)
    frame = pd.DataFrame(columns)
    for name, column in (("prediction", batch.prediction), ("label", batch.label)):
        if column is not None:
            frame[name] = pd.Series(column)
    if batch.score is not None and batch.score.ndim == 1:
        frame["score"] = batch.score
    return frame


def report_renderer(config: Config, engine: Engine) -> Callable[[str, datetime], str]:
    """``render_report(monitor, window_start) -> html`` for the dashboard's window report page."""
    # Imported here, not at the top: every `driftscope` command imports this module, and the detectors
    # (Evidently above all) take seconds to import.
    from detectors.report import evidently_report_html
    from monitor.runs.references import References
    from monitor.runs.windows import load_window

    references = References(config, engine, model_ids(engine))

    @lru_cache(maxsize=REPORT_CACHE_SIZE)
    def render(monitor_name: str, window_start: datetime) -> str:
        monitor = config.monitors.get(monitor_name)
        if monitor is None:
            raise LookupError(f"unknown monitor {monitor_name!r} (known: {', '.join(config.monitors) or 'none'})")
        model = config.models[monitor.model]
        reference, _ = references.reference_batch(monitor_name, window_start)
        classes = model.classes if model.task == "multiclass" else None
        with engine.connect() as connection:
            window = load_window(
                connection,
                model_ids(engine)[monitor.model],
                model.features,
                window_start,
                window_start + monitor.window,
                score_classes=classes,
            )
        binary = model.task == "binary"
        return evidently_report_html(
            batch_frame(reference, model),
            batch_frame(window, model),
            model.features,
            model.task,
            target="label",
            prediction="prediction",
            score_columns="score" if binary and window.score is not None else None,
            pos_label=model.positive_class if model.positive_class is not None else 1,
        )

    return render


def build_app(config: Config, engine: Engine) -> Any:
    """The dashboard with Evidently window reports wired in (for ``driftscope dashboard``, ``up`` and ``demo``)."""
    from dashboard import create_app  # Dash and Plotly load only for the commands that serve it

    return create_app(config, engine, render_report=report_renderer(config, engine))


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` with werkzeug's threaded WSGI server until interrupted."""
    server = make_server(host, port, app.server, threaded=True)
    log.info("dashboard listening on http://%s:%s", host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    dashboard_app = typer.Typer(help="The web dashboard (Dash).", invoke_without_command=True)

    @dashboard_app.callback()
    @user_errors
    def dashboard(
        ctx: typer.Context,
        config: ConfigOption = None,
        host: Annotated[str | None, typer.Option(help="Listen address (default: dashboard.host).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default: dashboard.port).")] = None,
    ) -> None:
        """Serve the dashboard (login, host and port come from the dashboard: section of the config)."""
        if ctx.invoked_subcommand is not None:
            return
        cfg = load_config(config)
        engine = open_store(cfg)
        check_migrated(engine)
        settings = cfg.dashboard
        out_console.print(
            f"dashboard on http://{host or settings.host}:{port or settings.port} (login: {settings.auth})",
            highlight=False,
        )
        serve(build_app(cfg, engine), host or settings.host, port or settings.port)

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
