"""Overview: every model in one sortable, searchable table — is it healthy, since when, what is off.

One row per monitor of a model (a model without windows yet has one row): every number of a row comes
from the monitor it names, so the drift share is the one an alert on that monitor reports. "Rows, 24 h"
is the model's, counted in the stored predictions, the same on each of its rows.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from dashboard import queries
from dashboard.context import Context
from dashboard.pages.base import Page
from dashboard.queries import AlertRow
from dashboard.state import Location, alerts_url, model_url
from dashboard.theme import SEVERITY_COLOURS, SEVERITY_RANK, empty_state, kpi, page_header

_PERF_ORDER = ("roc_auc", "f1", "accuracy", "rmse", "mae", "r2")
# The word is in the cell too; colour only repeats it (AG Grid evaluates these conditions in the browser).
_HEALTH_STYLES = [
    {
        "condition": f"params.value === '{health}'",
        "style": {
            "backgroundColor": colour,
            "color": "#1F2933" if health == "warning" else "white",
            "fontWeight": 600,
            "textAlign": "center",
        },
    }
    for health, colour in SEVERITY_COLOURS.items()
]


def model_health(model_alerts: list[AlertRow], has_data: bool) -> str:
    """critical / warning / info from the worst firing alert; ok when none fires; "no data" without windows."""
    firing = [a.severity for a in model_alerts if a.state == "firing"]
    if firing:
        return max(firing, key=lambda s: SEVERITY_RANK.get(s, 0))
    return "ok" if has_data else "no data"


def _fmt_perf(row: dict[str, Any], kind: str) -> tuple[str, str]:
    """("roc_auc 0.731 ↓ below ref", "reference band 0.83–0.89") for the newest value of the first known metric."""
    for metric in _PERF_ORDER:
        value = row.get(f"{kind}:{metric}")
        if value is None or value != value:  # absent or NaN
            continue
        low, high = row.get(f"{kind}:{metric}:band_lower"), row.get(f"{kind}:{metric}:band_upper")
        has_band = low is not None and high is not None and low == low and high == high
        flag = (" ↓" if value < low else " ↑" if value > high else "") if has_band else ""
        where = ("below" if value < low else "above" if value > high else "within") if has_band else ""
        return f"{metric} {value:.3f}{flag}", f"{where} the reference band {low:.2f}–{high:.2f}" if has_band else ""
    return "—", ""


def _short_time(value: Any) -> str:
    return value.strftime("%b %d %H:%M") if value is not None else "—"


def query(ctx: Context, location: Location) -> list[dict[str, Any]]:
    """One table row per (model, monitor), the models worst health first, each model's monitors
    together (primary first). Health is the model's (from all its open alerts, as on the model page and
    in the navbar), the same on each of its rows; the firing alerts are the row's monitor's."""
    with queries.read_only(ctx.engine) as conn:
        models = queries.models(conn)
        monitors = {m.id: [e.name for e in queries.model_monitors(conn, m.id)] for m in models}
        frame = queries.overview(conn)
        open_alerts = queries.open_alerts(conn)
    by_model: dict[str, list[AlertRow]] = defaultdict(list)
    for alert in open_alerts:
        by_model[alert.model or ""].append(alert)
    stats: dict[tuple[int, str | None], dict[str, Any]] = {
        (int(r["model_id"]), str(r["monitor"])): {str(k): v for k, v in r.items()} for r in frame.to_dict("records")
    }
    out: list[dict[str, Any]] = []
    for model in models:
        model_alerts = by_model.get(model.name, [])
        whole = model_health(model_alerts, bool(monitors[model.id]))
        for order, monitor in enumerate(monitors[model.id] or [None]):
            stat = stats.get((model.id, monitor), {})
            alerts = [a for a in model_alerts if a.concerns(monitor)]
            firing = [a for a in alerts if a.state == "firing"]
            share = stat.get("share_drifted")
            since = min((a.breach_start for a in firing), default=None)
            realized, estimated = _fmt_perf(stat, "performance"), _fmt_perf(stat, "estimated_performance")
            out.append(
                {
                    "model": f"[{model.name}]({model_url(model.name, monitor=monitor)})",
                    "name": model.name,
                    "monitor": monitor or "—",
                    "order": order,
                    "health": whole,
                    "rank": SEVERITY_RANK.get(whole, 0),
                    "model_firing": sum(1 for a in model_alerts if a.state == "firing"),
                    "since": _short_time(since) if since else "",
                    "last_window": _short_time(stat.get("last_window")) if stat else "no windows yet",
                    "drifted": f"{share:.0%}" if share is not None and share == share else "—",
                    "performance": realized[0],
                    "performance_band": realized[1],
                    "estimated": estimated[0],
                    "estimated_band": estimated[1],
                    "volume": f"{int(stat['predictions_24h']):,}" if stat else "0",
                    "alerts": ", ".join(sorted({a.rule for a in firing})) or ("pending" if alerts else ""),
                }
            )
    out.sort(key=lambda r: (-r["rank"], r["name"], r["order"]))
    return out


def render(location: Location, data: list[dict[str, Any]]) -> html.Div:
    if not data:
        return html.Div(
            [
                page_header("Models"),
                empty_state(
                    "No models yet",
                    "Add a model under ",
                    html.Code("models:"),
                    " in driftscope.yaml and start ",
                    html.Code("driftscope worker"),
                    ", or run ",
                    html.Code("driftscope demo"),
                    " to see a live example.",
                ),
            ]
        )
    health = {r["name"]: r["health"] for r in data}
    counts = {h: sum(1 for v in health.values() if v == h) for h in ("critical", "warning", "ok", "no data")}
    firing = sum({r["name"]: r["model_firing"] for r in data}.values())
    summary = html.Div(
        [
            kpi(
                "Models",
                str(len(health)),
                f"{counts['no data']} without data" if counts["no data"] else "all reporting",
            ),
            kpi(
                "Critical",
                str(counts["critical"]),
                "models with a critical alert firing",
                tone="critical" if counts["critical"] else None,
            ),
            kpi(
                "Warning",
                str(counts["warning"]),
                "models with a warning firing",
                tone="warning" if counts["warning"] else None,
            ),
            kpi("Healthy", str(counts["ok"]), "no alert firing", tone="ok" if counts["ok"] else None),
            kpi("Firing alerts", dcc.Link(str(firing), href=alerts_url("firing")), "open the alerts page"),
        ],
        className="ds-kpis",
    )
    columns = [
        {"headerName": "Model", "field": "model", "cellRenderer": "markdown", "flex": 1.1},
        {
            "headerName": "Monitor",
            "field": "monitor",
            "flex": 1.5,
            "headerTooltip": "every number of the row comes from this monitor",
        },
        {"headerName": "Health", "field": "health", "cellStyle": {"styleConditions": _HEALTH_STYLES}, "flex": 0.8},
        {"headerName": "Since (UTC)", "field": "since", "flex": 1, "headerTooltip": "first firing alert"},
        {"headerName": "Firing alerts", "field": "alerts", "flex": 1.4, "tooltipField": "alerts"},
        {
            "headerName": "Drifted",
            "field": "drifted",
            "flex": 0.7,
            "headerTooltip": "share of drifted features in the monitor's last window",
        },
        {"headerName": "Realized perf.", "field": "performance", "flex": 1.3, "tooltipField": "performance_band"},
        {"headerName": "Estimated perf.", "field": "estimated", "flex": 1.3, "tooltipField": "estimated_band"},
        {
            "headerName": "Rows, 24 h",
            "field": "volume",
            "flex": 0.8,
            "headerTooltip": "predictions stored for the model in the 24 h up to its newest window",
        },
        {"headerName": "Last window (UTC)", "field": "last_window", "flex": 1},
    ]
    table = dag.AgGrid(
        id="overview-table",
        rowData=data,
        columnDefs=columns,
        defaultColDef={"sortable": True, "resizable": True},
        dashGridOptions={"domLayout": "autoHeight", "quickFilterText": ""},
    )
    search = dbc.Input(
        id="overview-search",
        placeholder="Search models and alerts…",
        size="sm",
        type="search",
        className="ds-search",
        debounce=False,
    )
    return html.Div(
        [
            page_header(
                "Models",
                "Health comes from firing alerts; click a model for its drift, performance and service timeline.",
            ),
            summary,
            html.Div([search, table], className="ds-card"),
        ]
    )


def register_callbacks(app: dash.Dash, ctx: Context) -> None:
    @app.callback(
        Output("overview-table", "dashGridOptions"),
        Input("overview-search", "value"),
        State("overview-table", "dashGridOptions"),
        prevent_initial_call=True,
    )
    def search_models(text: str | None, options: dict[str, Any] | None) -> dict[str, Any]:
        return {**(options or {}), "quickFilterText": text or ""}


PAGE = Page(path="/", query=query, render=render, register_callbacks=register_callbacks)
