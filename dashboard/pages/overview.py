"""Overview: every model in one sortable, searchable table — is it healthy, since when, what is off."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from dash import dash_table, dcc, html

from dashboard import queries
from dashboard.context import Context
from dashboard.queries import AlertRow
from dashboard.state import alerts_url, model_url
from dashboard.theme import SEVERITY_COLOURS, SEVERITY_RANK, empty_state, kpi, page_header, time_text

_PERF_ORDER = ("roc_auc", "f1", "accuracy", "rmse", "mae", "r2")


def model_health(model_alerts: list[AlertRow], has_data: bool) -> str:
    """critical / warning / info from the worst firing alert; ok when none fires; "no data" without windows."""
    firing = [a.severity for a in model_alerts if a.state == "firing"]
    if firing:
        return max(firing, key=lambda s: SEVERITY_RANK.get(s, 0))
    return "ok" if has_data else "no data"


def _fmt_perf(row: dict[str, Any], kind: str) -> str:
    for metric in _PERF_ORDER:
        value = row.get(f"{kind}:{metric}")
        if value is not None and value == value:  # not NaN
            low, high = row.get(f"{kind}:{metric}:band_lower"), row.get(f"{kind}:{metric}:band_upper")
            band = f" (ref {low:.2f}–{high:.2f})" if low == low and high == high and low is not None else ""
            return f"{metric} {value:.3f}{band}"
    return "—"


def rows(ctx: Context) -> list[dict[str, Any]]:
    """One table row per model, worst health first."""
    with ctx.engine.connect() as conn:
        models = queries.models(conn)
        frame = queries.overview(conn)
        open_alerts = queries.open_alerts(conn)
    by_model: dict[str, list[AlertRow]] = defaultdict(list)
    for alert in open_alerts:
        by_model[alert.model or ""].append(alert)
    stats = {int(r["model_id"]): r for r in frame.to_dict("records")}
    out = []
    for model in models:
        stat = stats.get(model.id, {})
        alerts = by_model.get(model.name, [])
        firing = [a for a in alerts if a.state == "firing"]
        health = model_health(alerts, bool(stat))
        share = stat.get("share_drifted")
        since = min((a.fired_at or a.started_at for a in firing), default=None)
        out.append(
            {
                "model": f"[{model.name}]({model_url(model.name)})",
                "name": model.name,
                "health": health,
                "rank": SEVERITY_RANK.get(health, 0),
                "since": time_text(since) if since else "",
                "task": model.task,
                "last_window": time_text(stat.get("last_window")) if stat else "no windows yet",
                "drifted": f"{share:.0%}" if share is not None and share == share else "—",
                "performance": _fmt_perf(stat, "performance"),
                "estimated": _fmt_perf(stat, "estimated_performance"),
                "volume": f"{int(stat['volume_24h']):,}" if stat else "0",
                "alerts": ", ".join(sorted({a.rule for a in firing})) or ("pending" if alerts else ""),
                "n_firing": len(firing),
            }
        )
    out.sort(key=lambda r: (-r["rank"], r["name"]))
    return out


def layout(ctx: Context) -> html.Div:
    data = rows(ctx)
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
    counts = {h: sum(1 for r in data if r["health"] == h) for h in ("critical", "warning", "ok", "no data")}
    firing = sum(r["n_firing"] for r in data)
    summary = html.Div(
        [
            kpi(
                "Models", str(len(data)), f"{counts['no data']} without data" if counts["no data"] else "all reporting"
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
        {"name": "Model", "id": "model", "presentation": "markdown"},
        {"name": "Health", "id": "health"},
        {"name": "Unhealthy since", "id": "since"},
        {"name": "Firing alerts", "id": "alerts"},
        {"name": "Drifted features", "id": "drifted"},
        {"name": "Performance (realized)", "id": "performance"},
        {"name": "Performance (estimated)", "id": "estimated"},
        {"name": "Rows, last 24 h", "id": "volume"},
        {"name": "Last window", "id": "last_window"},
        {"name": "Task", "id": "task"},
    ]
    health_styles: list[dict[str, Any]] = [
        {
            "if": {"filter_query": f'{{health}} = "{health}"', "column_id": "health"},
            "backgroundColor": colour,
            "color": "#1F2933" if health == "warning" else "white",
            "fontWeight": 600,
        }
        for health, colour in SEVERITY_COLOURS.items()
    ]
    table = dash_table.DataTable(
        id="overview-table",
        data=data,
        columns=columns,
        sort_action="native",
        filter_action="native",
        filter_options={"case": "insensitive", "placeholder_text": "filter…"},
        markdown_options={"link_target": "_self"},
        style_as_list_view=True,
        style_header={"fontWeight": 600, "backgroundColor": "#F4F6F9", "borderBottom": "1px solid #D5DCE4"},
        style_cell={
            "fontFamily": "inherit",
            "fontSize": 13,
            "padding": "8px 10px",
            "textAlign": "left",
            "whiteSpace": "normal",
            "height": "auto",
        },
        style_filter={"backgroundColor": "#FBFCFD"},
        style_data_conditional=health_styles,
        style_cell_conditional=[{"if": {"column_id": "health"}, "width": "90px", "textAlign": "center"}],
    )
    return html.Div(
        [
            page_header(
                "Models",
                "Health comes from firing alerts; click a model for its drift, performance and service timeline.",
            ),
            summary,
            html.Div(table, className="ds-card"),
        ]
    )
