"""Window report page: Evidently's HTML report for one (monitor, window), embedded in an iframe.

The HTML comes from the ``render_report`` callable the entry point injects into ``create_app`` and is
served by a plain Flask route (``/_report/<monitor>/<window_start>``), so the report's own scripts and
styles stay isolated from the dashboard's and the dashboard never imports the detectors.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from dash import dcc, html

from dashboard import queries
from dashboard.context import Context
from dashboard.state import format_time, model_url, parse_time
from dashboard.theme import empty_state, page_header, time_text

REPORT_ROUTE = "/_report/<monitor>/<window_start>"


def report_src(monitor: str, window_start: datetime) -> str:
    return f"/_report/{quote(monitor, safe='')}/{format_time(window_start)}"


def layout(ctx: Context, monitor: str, window_text: str) -> html.Div:
    window = parse_time(window_text)
    with queries.read_only(ctx.engine) as conn:
        model = queries.model_of_monitor(conn, monitor)
    links: list[object] = [dcc.Link("All models", href="/", className="btn btn-sm btn-outline-secondary")]
    if model:
        back = dcc.Link(
            f"← {model}", href=model_url(model, window=window), className="btn btn-sm btn-outline-secondary"
        )
        links.insert(0, back)
    if window and ctx.render_report:
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
    if ctx.render_report is None:
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
            html.Iframe(src=report_src(monitor, window), id="report-frame", className="ds-report-frame"),
        ]
    )
