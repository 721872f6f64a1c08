"""The Dash app: one router callback renders a page from the URL, so the URL is the whole page state.

Controls (time range, alert filters, a click on the heatmap) only rewrite the URL; the router then
rebuilds the page server-side. A link copied from the address bar or sent by an alert therefore opens
exactly the same view.

This module only routes: it holds the shell (navigation bar, toast), matches the URL against the
pages of :data:`dashboard.pages.PAGES` and lets each page register its own callbacks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate
from flask import Response
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from dashboard import auth, queries
from dashboard.context import Context, ReportRenderer
from dashboard.pages import PAGES
from dashboard.pages.base import Page
from dashboard.state import Location, PageQuery, match_path
from dashboard.theme import empty_state, register_range_picker
from monitor.config import Config

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
REFRESH_S = 30  # how often an open page checks for new windows or alert changes


def create_app(
    config: Config, engine: Engine, *, render_report: ReportRenderer | None = None, refresh_seconds: float = REFRESH_S
) -> dash.Dash:
    """The dashboard for ``engine``'s store. ``render_report(monitor, window_start) -> html`` serves the
    Evidently window report; without it the report page says where to get one. An open page checks for
    new windows and alert changes every ``refresh_seconds`` and re-renders only when there are some.
    Nothing is queried here: the store is read per request."""
    ctx = Context(config, engine, render_report)
    app = dash.Dash(
        __name__,
        title="Driftscope",
        update_title=None,  # type: ignore[arg-type]  # documented ("None or ''"), though annotated str
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,  # page components appear only after the router renders them
        serve_locally=True,
    )
    auth.install(app.server, config.dashboard, engine)
    app.layout = html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Interval(id="refresh", interval=int(refresh_seconds * 1000)),
            dcc.Store(id="data-version"),
            _navbar(ctx),
            html.Main(id="page", className="ds-main"),
            dbc.Toast(
                id="action-toast",
                header="Done",
                icon="success",
                is_open=False,
                duration=6000,
                dismissable=True,
                className="ds-toast",
            ),
        ]
    )
    _register_probes(app, ctx)
    _register_router(app, ctx)
    register_range_picker(app)
    for page in PAGES:
        page.register_callbacks(app, ctx)
    _register_security_headers(app)  # last: the policy hashes every inline script registered above
    return app


def dashboard_policy(script_hashes: list[str]) -> str:
    """The Content-Security-Policy of every dashboard response but the report's: scripts only from the
    dashboard's own bundles and Dash's inline bootstrap (by hash), and no framing (clickjacking of the
    acknowledge and silence buttons). Inline styles stay allowed: Plotly and AG Grid inject ``<style>``."""
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {' '.join(script_hashes)}".rstrip(),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _register_security_headers(app: dash.Dash) -> None:
    headers = {
        "Content-Security-Policy": dashboard_policy(list(app.csp_hashes())),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }

    @app.server.after_request
    def secure(response: Response) -> Response:
        # A route that set its own (the sandboxed report) keeps it.
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response


def _navbar(ctx: Context) -> html.Nav:
    return html.Nav(
        [
            dcc.Link([html.Span("◆", className="ds-logo"), " Driftscope"], href="/", className="ds-brand"),
            dcc.Link("Models", href="/", className="ds-nav-link"),
            dcc.Link(
                ["Alerts ", html.Span(id="nav-firing", className="ds-nav-count")],
                href="/alerts",
                className="ds-nav-link",
            ),
            html.Div(id="nav-user", className="ds-nav-user"),
        ],
        className="ds-nav",
    )


def route(pathname: str | None, search: str | None) -> tuple[Page[Any], Location] | None:
    """The page that answers ``pathname`` and where it is, or None when no page does."""
    for page in PAGES:
        params = match_path(page.path, pathname)
        if params is not None:
            return page, Location(params, PageQuery.parse(search))
    return None


def render_page(ctx: Context, pathname: str | None, search: str | None) -> Component:
    """The page component for a URL (also what tests and the benchmark call)."""
    found = route(pathname, search)
    if found is None:
        return empty_state(
            "Page not found", f"Nothing lives at {pathname}. Start from ", dcc.Link("the overview", href="/"), "."
        )
    page, location = found
    return page.layout(ctx, location)


def _register_probes(app: dash.Dash, ctx: Context) -> None:
    """``/healthz`` (the process answers) and ``/readyz`` (the store answers), like the API's; the only
    routes open without login (see :data:`dashboard.auth.PROBE_PATHS`)."""

    def healthz() -> Response:
        return Response('{"status": "ok"}', 200, mimetype="application/json")

    def readyz() -> Response:
        try:
            with ctx.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError:
            log.warning("dashboard readiness: store unreachable", exc_info=True)
            return Response('{"status": "unavailable"}', 503, mimetype="application/json")
        return Response('{"status": "ready"}', 200, mimetype="application/json")

    app.server.add_url_rule("/healthz", "driftscope_healthz", healthz)
    app.server.add_url_rule("/readyz", "driftscope_readyz", readyz)


def _register_router(app: dash.Dash, ctx: Context) -> None:
    @app.callback(
        Output("page", "children"),
        Output("nav-firing", "children"),
        Output("nav-user", "children"),
        Output("data-version", "data"),
        Input("url", "pathname"),
        Input("url", "search"),
        Input("refresh", "n_intervals"),
        State("data-version", "data"),
    )
    def show(
        pathname: str | None, search: str | None, _tick: int | None, seen: dict[str, str] | None
    ) -> tuple[Any, ...]:
        with queries.read_only(ctx.engine) as conn:
            # What the page shows: the data version and the URL it was rendered for. Dash drops the
            # answer of a call overtaken by a newer call of the same callback, so a tick that fires
            # while a slow navigation renders supersedes it; the tick must then render the new URL.
            shown = {"version": queries.data_version(conn), "url": f"{pathname}{search or ''}"}
            triggered = dash.ctx.triggered_prop_ids
            # A navigation that lands while a tick is pending arrives as one call triggered by both (the
            # tick may be listed first): only a tick alone may skip the render.
            if "refresh.n_intervals" in triggered and not any(p.startswith("url.") for p in triggered):
                found = route(pathname, search)
                same_url = shown["url"] == (seen or {}).get("url")
                if shown == seen or (same_url and found is not None and not found[0].auto_refresh):
                    raise PreventUpdate
            firing = sum(1 for a in queries.open_alerts(conn) if a.state == "firing")
        page = render_page(ctx, pathname, search)
        user = auth.current_user()
        signed_in = f"signed in as {user} · {auth.current_role(ctx.config.dashboard)}" if user else ""
        return page, str(firing) if firing else "", signed_in, shown
