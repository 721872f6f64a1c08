"""``driftscope status``: live production health as a gate, like ``check`` gates on files.

It reads the store through :func:`monitor.store.reads.model_health`, the function behind the API's
``GET /v1/models/{model}/health``, so both always agree. Exit 0 healthy, 1 alerting, 2 no data (for
every model: 1 if any alerts, else 2 if any has no data).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
from monitor.config import load_config
from monitor.errors import DriftscopeError


def register(app: typer.Typer) -> None:
    @app.command("status")
    @user_errors
    def status(
        model: Annotated[
            str | None, typer.Option("--model", "-m", help="One model (default: every model).", show_default=False)
        ] = None,
        format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
        config: ConfigOption = None,
    ) -> None:
        """Print each model's live health; exit 0 if healthy, 1 if an alert fires, 2 if there is no data yet."""
        if format not in ("text", "json"):
            raise typer.BadParameter("expected text or json", param_hint="--format")
        from monitor.store import reads
        from monitor.store.engine import check_migrated

        engine = open_store(load_config(config))
        try:
            check_migrated(engine)
            with engine.connect() as conn:
                rows = reads.models(conn, None if model is None else (model,))
                if model is not None and not rows:
                    known = ", ".join(m.name for m in reads.models(conn)) or "none"
                    raise DriftscopeError(f"unknown model {model!r} (known: {known})")
                healths = [reads.model_health(conn, row) for row in rows]
        finally:
            engine.dispose()
        codes = {h.exit_code for h in healths} or {reads.EXIT_NO_DATA}
        code = reads.EXIT_ALERTING if reads.EXIT_ALERTING in codes else max(codes)
        if format == "json":
            body = [reads.health_document(h) for h in healths]
            out_console.print_json(json.dumps(body[0] if model else body))
        else:
            for h in healths:
                age = f"{h.age_seconds / 60:.0f} min ago" if h.age_seconds is not None else "never"
                firing = ", ".join(f"{a.rule} ({a.severity})" for a in h.firing) or "none"
                drifting = ", ".join(h.drifting_features) or "none"
                out_console.print(
                    f"{h.model}: {h.state} — latest window {age}; firing: {firing}; drifting: {drifting}",
                    highlight=False,
                    markup=False,
                )
        raise typer.Exit(code)
