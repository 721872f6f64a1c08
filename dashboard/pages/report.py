"""Window report page: Evidently's HTML report for one (monitor, window), embedded in an iframe.

The HTML comes from the ``render_report`` callable the entry point injects into ``create_app`` and is
served by a plain Flask route (``/_report/<monitor>/<window_start>``), so the report's own scripts and
styles stay isolated from the dashboard's and the dashboard never imports the detectors.

The report inlines the window's data in a ``<script>`` (category values, labels, class names: whatever
the model's callers sent), and Evidently does not escape ``</script>`` in it. So the report is served
sandboxed (:data:`REPORT_HEADERS`) and framed with ``sandbox`` (:data:`REPORT_SANDBOX`): its scripts run,
to draw, but in an opaque origin that can neither read the dashboard nor act as its logged-in user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from urllib.parse import quote

import dash
from dash import dcc, html
from dash.development.base_component import Component
from flask import Response

from dashboard import queries
from dashboard.context import Context
from dashboard.pages.base import Page
from dashboard.state import Location, format_time, model_url, parse_time
from dashboard.theme import empty_state, page_header, time_text
from monitor.errors import DriftscopeError

REPORT_ROUTE = "/_report/<monitor>/<window_start>"
# Scripts may run, never as the dashboard's origin: no allow-same-origin, which would undo the sandbox.
REPORT_SANDBOX = "allow-scripts"
# Also when the report is opened on its own ("Open in a new tab"), where no iframe attribute applies.
# The report is self-contained: it loads nothing, so everything but its inline code and data is refused.
REPORT_HEADERS = {
    "Content-Security-Policy": f"sandbox {REPORT_SANDBOX}; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",  # the dashboard frames it; the app-wide DENY would not let it
}


def report_src(monitor: str, window_start: datetime) -> str:
    return f"/_report/{quote(monitor, safe='')}/{format_time(window_start)}"


@dataclass(frozen=True)
class ReportData:
    model: str | None  # the monitor's model, for the link back
    available: bool  # this process can render reports


def query(ctx: Context, location: Location) -> ReportData:
    with queries.read_only(ctx.engine) as conn:
        model = queries.model_of_monitor(conn, location.params["monitor"])
    return ReportData(model, ctx.render_report is not None)


def render(location: Location, data: ReportData) -> html.Div:
    monitor, window_text, model = location.params["monitor"], location.params["window"], data.model
    window = parse_time(window_text)
    links: list[Component] = [dcc.Link("All models", href="/", className="btn btn-sm btn-outline-secondary")]
    if model:
        back = dcc.Link(
            f"← {model}", href=model_url(model, window=window), className="btn btn-sm btn-outline-secondary"
        )
        links.insert(0, back)
    if window and data.available:
        raw = html.A(
            "Open in a new tab",
            href=report_src(monitor, window),
            target="_blank",
            className="btn btn-sm btn-outline-primary",
        )
        links.insert(0, raw)
    header = page_header(
        f"Window report · {monitor}",
        f"Evidently's report of the window starting {time_text(window)} against the monitor's reference"
        if window
        else None,
        right=html.Div(links, className="d-flex gap-2"),
    )
    if window is None:
        return html.Div(
            [
                header,
                empty_state(
                    "Not a window start",
                    f"{window_text!r} is not a time; links look like ",
                    html.Code("/reports/churn-hourly/2026-11-24T13:00:00Z"),
                    ".",
                ),
            ]
        )
    if not data.available:
        return html.Div(
            [
                header,
                empty_state(
                    "Reports are not available in this process",
                    "The Evidently report is rendered by the dashboard started with ",
                    html.Code("driftscope dashboard"),
                    " (or ",
                    html.Code("driftscope up"),
                    "), which has the detectors.",
                ),
            ]
        )
    return html.Div(
        [
            header,
            html.Iframe(
                src=report_src(monitor, window), sandbox=REPORT_SANDBOX, id="report-frame", className="ds-report-frame"
            ),
        ]
    )


def register_callbacks(app: dash.Dash, ctx: Context) -> None:
    """Not a Dash callback: the plain Flask route the iframe loads the report from."""

    def report(monitor: str, window_start: str) -> Response:
        response = _report(monitor, window_start)
        response.headers.update(REPORT_HEADERS)
        return response

    def _report(monitor: str, window_start: str) -> Response:
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

    app.server.add_url_rule(REPORT_ROUTE, "driftscope_report", report)


# Auto-refresh would reload the embedded report, which is expensive to render.
PAGE = Page(
    path="/reports/<monitor>/<window>",
    query=query,
    render=render,
    register_callbacks=register_callbacks,
    auto_refresh=False,
)
