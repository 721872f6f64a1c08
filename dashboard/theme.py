"""One look for every page: the Okabe–Ito palette (safe for the common colour-vision deficiencies),
severity badges that carry a word as well as a colour, and the small building blocks pages share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from dash.development.base_component import ComponentType

from dashboard.state import (
    RANGE_PRESETS,
    TimeRange,
    format_input_time,
    format_time,
    parse_time,
    query_string,
    with_params,
)

# Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
GREY = "#8A94A6"
INK = "#1F2933"
MUTED = "#5F6B7A"
GRID = "#E6EAF0"

SEVERITY_COLOURS = {
    "ok": OKABE_ITO["bluish_green"],
    "info": OKABE_ITO["blue"],
    "warning": OKABE_ITO["orange"],
    "critical": OKABE_ITO["vermillion"],
    "no data": GREY,
}
# Text on the badge: dark on the light orange, white on the rest (contrast ≥ 4.5:1).
_BADGE_TEXT = {"warning": INK}
SEVERITY_RANK = {"no data": 0, "ok": 1, "info": 2, "warning": 3, "critical": 4}

# Heatmap: blues below the threshold, orange → vermillion past it (severity 0..2, threshold at 1).
HEATMAP_SCALE = [
    [0.0, "#F7F9FC"],
    [0.499, "#BCD7EC"],
    [0.5, "#F6C66B"],
    [0.75, OKABE_ITO["orange"]],
    [1.0, OKABE_ITO["vermillion"]],
]


def severity_badge(severity: str, text: str | None = None, **kwargs: object) -> html.Span:
    colour = SEVERITY_COLOURS.get(severity, GREY)
    return html.Span(
        text or severity,
        className="ds-badge",
        style={"backgroundColor": colour, "color": _BADGE_TEXT.get(severity, "#FFFFFF")},
        **kwargs,  # type: ignore[arg-type]
    )


def empty_state(title: str, *lines: str | html.Code | dcc.Link | html.A) -> html.Div:
    """A box that says what is missing and what to do about it."""
    return html.Div(
        [html.H5(title, className="mb-2"), html.P(list(lines), className="mb-0 text-muted")],
        className="ds-empty",
    )


def kpi(
    label: str, value: ComponentType, sub: ComponentType = None, tone: str | None = None, **kwargs: object
) -> html.Div:
    colour = SEVERITY_COLOURS.get(tone) if tone else None
    return html.Div(
        [
            html.Div(label, className="ds-kpi-label"),
            html.Div(value, className="ds-kpi-value", style={"color": colour} if colour else None),
            html.Div(sub or "", className="ds-kpi-sub"),
        ],
        className="ds-kpi",
        style={"borderTopColor": colour or GRID},
        **kwargs,  # type: ignore[arg-type]
    )


def time_text(value: datetime | None) -> str:
    return value.strftime("%b %d %H:%M UTC") if value else "—"


def duration_text(value: timedelta) -> str:
    """``1 min``, ``5 min``, ``1 h``, ``12 h``, ``1 d``: the largest unit that divides it."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def range_picker(tr: TimeRange, path: str, keep: dict[str, str | datetime | None]) -> html.Div:
    """Preset links (plain URLs: nothing but the address changes) and an absolute from/to (UTC) applied
    with Enter or the Apply button; ``keep`` holds the other URL params to carry over (e.g. the window)."""
    presets = [
        dcc.Link(
            label,
            href=path + query_string(range=label, **keep),
            className="btn btn-outline-secondary" + (" active" if tr.preset == label else ""),
            id=f"range-{label}",
        )
        for label in RANGE_PRESETS
    ]
    return html.Div(
        [
            html.Div(presets, className="btn-group btn-group-sm ds-range", role="group"),
            dbc.InputGroup(
                [
                    dbc.Input(id="range-from", value=format_input_time(tr.start), size="sm"),
                    dbc.InputGroupText("→"),
                    dbc.Input(id="range-to", value=format_input_time(tr.end), size="sm"),
                    dbc.InputGroupText("UTC"),
                    dbc.Button("Apply", id="range-apply", size="sm", color="secondary", outline=True),
                ],
                size="sm",
                className="ds-range-abs",
            ),
        ],
        className="ds-range-picker",
    )


def monitor_picker(
    monitors: Sequence[str], selected: str | None, href: Callable[[str], str], note: dict[str, str]
) -> html.Div:
    """One link per monitor of the model (``href(monitor)``), the selected one active; ``note`` adds a
    word to a monitor's button (e.g. its firing alerts), so trouble on another monitor is not hidden."""
    options = [
        dcc.Link(
            [name, html.Span(f" · {note[name]}", className="ds-monitor-note") if name in note else None],
            href=href(name),
            className="btn btn-outline-secondary" + (" active" if name == selected else ""),
        )
        for name in monitors
    ]
    return html.Div(
        [html.Span("Monitor", className="ds-monitor-label"), html.Div(options, className="btn-group btn-group-sm")],
        id="monitor-picker",
        className="ds-monitor-picker",
        title="Scores on this page come from this monitor only",
    )


def register_range_picker(app: dash.Dash) -> None:
    """The absolute range of :func:`range_picker` goes into the URL (once per app: every page with a
    picker uses the same element ids)."""

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
    ) -> Any:
        # Inserting the fields "triggers" with None: only a click or Enter applies the range.
        if not dash.ctx.triggered[0]["value"]:
            return no_update
        first, last = parse_time(start), parse_time(end)
        if first is None or last is None or first >= last:
            return no_update
        return with_params(search, range=None, **{"from": format_time(first), "to": format_time(last)})


def page_header(title: ComponentType, subtitle: ComponentType = None, right: ComponentType = None) -> html.Div:
    return html.Div(
        [
            html.Div([html.H3(title, className="mb-0"), html.Div(subtitle, className="text-muted small")]),
            html.Div(right),
        ],
        className="ds-page-header",
    )
