"""Alerts page: open and resolved alerts grouped by rule and model; acknowledge and silence from here."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import queries
from dashboard.context import Context
from dashboard.queries import AlertRow
from dashboard.state import PageQuery, alerts_url, model_url
from dashboard.theme import SEVERITY_RANK, empty_state, page_header, severity_badge, time_text

STATE_FILTERS = {
    "open": ("pending", "firing"),
    "firing": ("firing",),
    "resolved": ("resolved",),
    "all": None,
}
SILENCE_DURATIONS = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
}


def silence_matchers(alert: AlertRow) -> dict[str, str]:
    """A silence from the alerts page mutes this rule for this model (the alert's grouping)."""
    matchers = {"rule": alert.rule}
    if alert.model:
        matchers["model"] = alert.model
    return matchers


def _alert_item(alert: AlertRow) -> html.Div:
    when = f"fired {time_text(alert.fired_at)}" if alert.fired_at else f"pending since {time_text(alert.started_at)}"
    when += f" · breach since the window of {time_text(alert.breach_start)}"
    if alert.resolved_at:
        when += f" · resolved {time_text(alert.resolved_at)}"
    ack = (
        html.Div(
            [
                html.Strong(f"Acknowledged by {alert.acknowledged_by}"),
                f" · {time_text(alert.acknowledged_at)}",
                html.Span(f" — “{alert.ack_comment}”" if alert.ack_comment else ""),
            ],
            className="small ds-ack",
        )
        if alert.acknowledged_by
        else None
    )
    actions = []
    if alert.state != "resolved":
        if not alert.acknowledged_by:
            actions.append(
                dbc.Button(
                    "Acknowledge", id={"type": "ack-open", "alert": alert.id}, size="sm", color="primary", outline=True
                )
            )
        actions.append(
            dbc.Button(
                "Silence…", id={"type": "silence-open", "alert": alert.id}, size="sm", color="secondary", outline=True
            )
        )
    if alert.model:
        actions.append(
            dcc.Link(
                "View on timeline",
                href=model_url(alert.model, window=alert.window_start),
                className="btn btn-sm btn-link",
            )
        )
    value = f" · value {alert.value:.3g}" if alert.value is not None else ""
    return html.Div(
        [
            html.Div(
                [
                    severity_badge(alert.severity if alert.state != "resolved" else "ok", alert.state),
                    html.Span(alert.annotations.get("summary") or alert.rule, className="ms-2 fw-semibold"),
                ]
            ),
            html.Div(f"#{alert.id} · {when}{value}", className="small text-muted"),
            ack,
            html.Div(actions, className="d-flex gap-2 mt-1"),
        ],
        className="ds-alert-item",
        id=f"alert-{alert.id}",
    )


def alerts_body(ctx: Context, state: str, model: str | None) -> html.Div:
    """Active silences and the alert groups: what an action on this page changes."""
    return html.Div([_silences(ctx), alert_groups(ctx, state, model)])


def alert_groups(ctx: Context, state: str, model: str | None) -> html.Div:
    with queries.read_only(ctx.engine) as conn:
        rows = queries.alerts(conn, states=STATE_FILTERS.get(state, STATE_FILTERS["open"]), model=model)
    if not rows:
        return empty_state(
            "No alerts here",
            "Nothing matches this filter. Alerts come from the rules under ",
            html.Code("alerts.rules"),
            " in driftscope.yaml, evaluated by ",
            html.Code("driftscope worker"),
            " after each window.",
        )
    groups: dict[tuple[str, str], list[AlertRow]] = defaultdict(list)
    for row in rows:
        groups[(row.rule, row.model or "")].append(row)
    ordered = sorted(
        groups.items(),
        key=lambda kv: (
            -max(SEVERITY_RANK.get(a.severity, 0) for a in kv[1] if a.state != "resolved")
            if any(a.state != "resolved" for a in kv[1])
            else 0,
            kv[0],
        ),
    )
    cards = []
    for (rule, model_name), items in ordered:
        worst = max(items, key=lambda a: SEVERITY_RANK.get(a.severity, 0)).severity
        open_count = sum(1 for a in items if a.state != "resolved")
        title = [severity_badge(worst), html.Span(rule, className="ms-2 fw-semibold")]
        if model_name:
            title += [html.Span(" · ", className="text-muted"), dcc.Link(model_name, href=model_url(model_name))]
        title.append(
            html.Span(f" · {open_count} open, {len(items) - open_count} resolved", className="text-muted small")
        )
        cards.append(
            html.Div(
                [html.Div(title, className="ds-group-title"), *[_alert_item(a) for a in items]],
                className="ds-card ds-group",
            )
        )
    return html.Div(cards)


def _silences(ctx: Context) -> html.Div | None:
    with queries.read_only(ctx.engine) as conn:
        active = queries.active_silences(conn, ctx.now())
    if not active:
        return None
    items = [
        html.Li(
            [
                html.Code(", ".join(f"{k}={v}" for k, v in s.matchers.items())),
                f" until {time_text(s.ends_at)} by {s.created_by} — {s.comment}",
            ]
        )
        for s in active
    ]
    return html.Div(
        [html.H6("Active silences", className="mb-2"), html.Ul(items, className="mb-0 small")],
        className="ds-card mb-3",
        id="silences",
    )


def action_modal(ctx: Context) -> dbc.Modal:
    author = (
        html.Div("You act as the logged-in user.", className="small text-muted mb-2")
        if ctx.login
        else dbc.Input(id="action-author", placeholder="your name (required)", className="mb-2", persistence=True)
    )
    return dbc.Modal(
        [
            dbc.ModalHeader(dbc.ModalTitle(id="action-title")),
            dbc.ModalBody(
                [
                    author,
                    dbc.Textarea(id="action-comment", placeholder="comment (required to silence)", className="mb-2"),
                    html.Div(
                        dbc.Select(
                            id="silence-duration",
                            value="4h",
                            options=[{"label": f"silence for {k}", "value": k} for k in SILENCE_DURATIONS],
                        ),
                        id="silence-duration-row",
                    ),
                    html.Div(id="action-error", className="text-danger small mt-2"),
                ]
            ),
            dbc.ModalFooter(
                [
                    dbc.Button("Cancel", id="action-cancel", color="secondary", outline=True),
                    dbc.Button("Confirm", id="action-confirm", color="primary"),
                ]
            ),
        ],
        id="action-modal",
        is_open=False,
    )


def layout(ctx: Context, query: PageQuery) -> html.Div:
    state = query.state if query.state in STATE_FILTERS else "open"
    with queries.read_only(ctx.engine) as conn:
        models = queries.alert_model_names(conn)
    filters = html.Div(
        [
            html.Div(
                [
                    dcc.Link(
                        name,
                        href=alerts_url(name, query.model),
                        className="btn btn-outline-secondary" + (" active" if name == state else ""),
                    )
                    for name in STATE_FILTERS
                ],
                className="btn-group btn-group-sm",
                id="alerts-state",
            ),
            dcc.Dropdown(
                id="alerts-model",
                options=models,
                value=query.model,
                placeholder="all models",
                clearable=True,
                style={"minWidth": "220px"},
            ),
        ],
        className="ds-toolbar",
    )
    return html.Div(
        [
            page_header(
                "Alerts",
                "Grouped by rule and model; acknowledging tells the team you are on it, a silence mutes notifications.",
            ),
            filters,
            html.Div(alerts_body(ctx, state, query.model), id="alerts-list"),
            dcc.Store(id="action-target"),
            action_modal(ctx),
        ]
    )
