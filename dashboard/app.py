"""The Dash app: one router callback renders a page from the URL, so the URL is the whole page state.

Controls (time range, alert filters, a click on the heatmap) only rewrite the URL; the router then
rebuilds the page server-side. A link copied from the address bar or sent by an alert therefore opens
exactly the same view.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import Response
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from dashboard import auth, queries
from dashboard.context import Context, ReportRenderer
from dashboard.pages import alerts as alerts_page
from dashboard.pages import feature as feature_page
from dashboard.pages import model as model_page
from dashboard.pages import overview as overview_page
from dashboard.pages import report as report_page
from dashboard.state import PageQuery, format_time, parse_time, query_string
from dashboard.theme import empty_state
from monitor.config import Config
from monitor.errors import DriftscopeError
from monitor.store import actions
from monitor.store.tables import Alert

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
REFRESH_S = 30  # how often an open page checks for new windows or alert changes
# Pages the auto-refresh leaves alone: a dialog may be open, or an expensive report loaded.
NO_AUTO_REFRESH = ("/alerts", "/reports/")


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
        update_title=None,
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,  # page components appear only after the router renders them
        serve_locally=True,
    )
    auth.install(app.server, config.dashboard)
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
    _register_report_route(app, ctx)
    _register_probes(app, ctx)
    _register_callbacks(app, ctx)
    return app


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


def render_page(ctx: Context, pathname: str | None, search: str | None) -> Any:
    """The page component for a URL (also what tests and the benchmark call)."""
    parts = [unquote(p) for p in (pathname or "/").strip("/").split("/") if p]
    query = PageQuery.parse(search)
    match parts:
        case []:
            return overview_page.layout(ctx)
        case ["models", name]:
            return model_page.layout(ctx, name, query)
        case ["models", name, "features", feature]:
            return feature_page.layout(ctx, name, feature, query)
        case ["alerts"]:
            return alerts_page.layout(ctx, query)
        case ["reports", monitor, window]:
            return report_page.layout(ctx, monitor, window)
    return empty_state(
        "Page not found", f"Nothing lives at {pathname}. Start from ", dcc.Link("the overview", href="/"), "."
    )


def _register_report_route(app: dash.Dash, ctx: Context) -> None:
    def report(monitor: str, window_start: str) -> Response:
        window = parse_time(window_start)
        if window is None:
            return Response(f"not a window start: {window_start!r}\n", 404, mimetype="text/plain")
        if ctx.render_report is None:
            return Response("reports are not available in this process\n", 404, mimetype="text/plain")
        try:
            body = ctx.render_report(monitor, window)
        except (DriftscopeError, ValueError, LookupError) as exc:
            text = escape(f"No report for {monitor} at {format_time(window)}: {exc}")
            return Response(f"<p style='font-family:sans-serif;color:#5F6B7A'>{text}</p>", 404, mimetype="text/html")
        return Response(body, 200, mimetype="text/html")

    app.server.add_url_rule(report_page.REPORT_ROUTE, "driftscope_report", report)


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


def _with_params(search: str | None, **changes: str | None) -> str:
    """``search`` with ``changes`` applied (None removes a key)."""
    params = dict(parse_qsl((search or "").lstrip("?")))
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return query_string(**params)


def _register_callbacks(app: dash.Dash, ctx: Context) -> None:
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
    def route(pathname: str | None, search: str | None, _tick: int | None, seen: str | None) -> tuple[Any, ...]:
        with queries.read_only(ctx.engine) as conn:
            version = queries.data_version(conn)
            if dash.ctx.triggered_id == "refresh" and (
                version == seen or (pathname or "/").startswith(NO_AUTO_REFRESH)
            ):
                raise PreventUpdate
            firing = sum(1 for a in queries.open_alerts(conn) if a.state == "firing")
        page = render_page(ctx, pathname, search)
        user = auth.current_user()
        return page, str(firing) if firing else "", f"signed in as {user}" if user else "", version

    @app.callback(
        Output("overview-table", "dashGridOptions"),
        Input("overview-search", "value"),
        State("overview-table", "dashGridOptions"),
        prevent_initial_call=True,
    )
    def search_models(text: str | None, options: dict[str, Any] | None) -> dict[str, Any]:
        return {**(options or {}), "quickFilterText": text or ""}

    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input("range-apply", "n_clicks"),
        Input("range-from", "n_submit"),
        Input("range-to", "n_submit"),
        State("range-from", "value"),
        State("range-to", "value"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def pick_absolute(
        _apply: int | None, _from: int | None, _to: int | None, start: str | None, end: str | None, search: str | None
    ) -> str:
        # Inserting the fields "triggers" with None: only a click or Enter applies the range.
        if not dash.ctx.triggered[0]["value"]:
            return no_update
        first, last = parse_time(start), parse_time(end)
        if first is None or last is None or first >= last:
            return no_update
        return _with_params(search, range=None, **{"from": format_time(first), "to": format_time(last)})

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Output("url", "search", allow_duplicate=True),
        Input("model-timeline", "clickData"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def open_feature(click: dict[str, Any] | None, pathname: str | None, search: str | None) -> tuple[str, str]:
        point = (click or {}).get("points", [{}])[0]
        window, feature = point.get("customdata"), point.get("y")
        if not window or not isinstance(window, str) or not isinstance(feature, str) or not pathname:
            return no_update, no_update
        params = PageQuery.parse(search)
        model = pathname.rstrip("/").split("/")[-1]
        keep = {"range": params.preset, "from": params.start, "to": params.end}
        return f"/models/{model}/features/{feature}", query_string(**keep, window=window)

    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input("feature-drift", "clickData"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def pick_window(click: dict[str, Any] | None, search: str | None) -> str:
        point = (click or {}).get("points", [{}])[0]
        window = point.get("customdata")
        return _with_params(search, window=window) if isinstance(window, str) else no_update

    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input("alerts-model", "value"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def filter_alerts(model: str | None, search: str | None) -> str:
        new = _with_params(search, model=model or None)
        return new if new != (search or "") else no_update

    @app.callback(
        Output("action-modal", "is_open"),
        Output("action-target", "data"),
        Output("action-title", "children"),
        Output("silence-duration-row", "style"),
        Output("action-error", "children"),
        Output("action-comment", "value"),
        Input({"type": "ack-open", "alert": ALL}, "n_clicks"),
        Input({"type": "silence-open", "alert": ALL}, "n_clicks"),
        Input("action-cancel", "n_clicks"),
        prevent_initial_call=True,
    )
    def open_action(
        ack_clicks: list[int | None], silence_clicks: list[int | None], _cancel: int | None
    ) -> tuple[Any, ...]:
        trigger = dash.ctx.triggered_id
        if trigger == "action-cancel":
            return False, None, no_update, no_update, "", no_update
        # A button rendered into the page also "triggers" with n_clicks None: only a real click opens the modal.
        if not isinstance(trigger, dict) or not dash.ctx.triggered[0]["value"]:
            return (no_update,) * 6
        action = "ack" if trigger["type"] == "ack-open" else "silence"
        title = (
            f"Acknowledge alert #{trigger['alert']}" if action == "ack" else f"Silence alert #{trigger['alert']}'s rule"
        )
        hidden = {"display": "none"} if action == "ack" else {}
        return True, {"action": action, "alert": trigger["alert"]}, title, hidden, "", ""  # a fresh comment each time

    author_state = [] if ctx.login else [State("action-author", "value")]

    @app.callback(
        Output("alerts-list", "children"),
        Output("action-modal", "is_open", allow_duplicate=True),
        Output("action-error", "children", allow_duplicate=True),
        Output("action-toast", "children"),
        Output("action-toast", "is_open"),
        Input("action-confirm", "n_clicks"),
        State("action-target", "data"),
        State("action-comment", "value"),
        State("silence-duration", "value"),
        State("url", "search"),
        *author_state,
        prevent_initial_call=True,
    )
    def confirm_action(
        _n: int | None,
        target: dict[str, Any] | None,
        comment: str | None,
        duration: str | None,
        search: str | None,
        author: str | None = None,
    ) -> tuple[Any, ...]:
        if not target:
            return (no_update,) * 5
        user = auth.current_user() or (author or "").strip()
        if not user:
            return no_update, True, "Enter your name: acknowledgements and silences are signed.", no_update, no_update
        try:
            message = _perform(ctx, target, user, (comment or "").strip(), duration or "4h")
        except DriftscopeError as exc:
            return no_update, True, str(exc), no_update, no_update
        query = PageQuery.parse(search)
        state = query.state if query.state in alerts_page.STATE_FILTERS else "open"
        return alerts_page.alerts_body(ctx, state, query.model), False, "", message, True


def _perform(ctx: Context, target: dict[str, Any], user: str, comment: str, duration: str) -> str:
    alert_id = int(target["alert"])
    now = datetime.now(UTC)
    if target["action"] == "ack":
        actions.acknowledge(ctx.engine, alert_id, user, comment, now=now)
        log.info("alert %s acknowledged by %s", alert_id, user)
        return f"Alert #{alert_id} acknowledged by {user}."
    with queries.read_only(ctx.engine) as conn:
        alert = next(iter(queries.alerts(conn, where=(Alert.id == alert_id,), limit=1)), None)
    if alert is None:
        raise actions.ActionError(f"silence: alert {alert_id} does not exist")
    matchers = alerts_page.silence_matchers(alert)
    ends = now + alerts_page.SILENCE_DURATIONS.get(duration, alerts_page.SILENCE_DURATIONS["4h"])
    actions.create_silence(ctx.engine, matchers, now, ends, user, comment)
    log.info("silence %s until %s by %s", matchers, ends.isoformat(), user)
    return f"Silenced {', '.join(f'{k}={v}' for k, v in matchers.items())} until {ends:%b %d %H:%M} UTC."
