"""Alerts page: open and resolved alerts grouped by rule and model; acknowledge and silence from here.

Acting takes the operator role (:data:`dashboard.auth.ACT_ON_ALERTS`): a viewer's page has no buttons
and no dialog, and the callback that acts checks the role again, whatever the request claims.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash.development.base_component import Component
from werkzeug.exceptions import BadRequest

from dashboard import auth, queries
from dashboard.context import Context
from dashboard.pages.base import Page
from dashboard.queries import AlertRow, SilenceRow
from dashboard.state import Location, PageQuery, alerts_url, model_url, with_params
from dashboard.theme import SEVERITY_RANK, empty_state, page_header, severity_badge, time_text
from monitor.config import Role
from monitor.errors import DriftscopeError
from monitor.store import actions

log = logging.getLogger(__name__)

STATE_FILTERS = {
    "open": ("pending", "firing"),
    "firing": ("firing",),
    "resolved": ("resolved",),
    "all": (),
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


def _alert_item(alert: AlertRow, can_act: bool) -> html.Div:
    monitor = alert.labels.get("monitor")
    # Two monitors of a model alert under the same rule with the same summary: the monitor tells them apart.
    when = f"monitor {monitor} · " if monitor else ""
    when += f"fired {time_text(alert.fired_at)}" if alert.fired_at else f"pending since {time_text(alert.started_at)}"
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
    if can_act and alert.state != "resolved":
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
                href=model_url(alert.model, window=alert.window_start, monitor=monitor),
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


@dataclass(frozen=True)
class AlertsBody:
    """What an action on this page changes: the alerts under the filter and the active silences."""

    alerts: list[AlertRow]
    silences: list[SilenceRow]


def _query_body(ctx: Context, state: str, model: str | None) -> AlertsBody:
    with queries.read_only(ctx.engine) as conn:
        rows = queries.alerts(conn, states=STATE_FILTERS.get(state, STATE_FILTERS["open"]), model=model)
        active = queries.active_silences(conn, ctx.now())
    return AlertsBody(rows, active)


def _render_body(body: AlertsBody, can_act: bool) -> html.Div:
    return html.Div([_silences(body.silences), _alert_groups(body.alerts, can_act)])


def _alert_groups(rows: list[AlertRow], can_act: bool) -> html.Div:
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
        title: list[Component] = [severity_badge(worst), html.Span(rule, className="ms-2 fw-semibold")]
        if model_name:
            title += [html.Span(" · ", className="text-muted"), dcc.Link(model_name, href=model_url(model_name))]
        title.append(
            html.Span(f" · {open_count} open, {len(items) - open_count} resolved", className="text-muted small")
        )
        cards.append(
            html.Div(
                [html.Div(title, className="ds-group-title"), *[_alert_item(a, can_act) for a in items]],
                className="ds-card ds-group",
            )
        )
    return html.Div(cards)


def _silences(active: list[SilenceRow]) -> html.Div | None:
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


def _action_modal(login: bool) -> dbc.Modal:
    author = (
        html.Div("You act as the logged-in user.", className="small text-muted mb-2")
        if login
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


@dataclass(frozen=True)
class AlertsData:
    models: list[str]  # the models that have alerts, for the filter
    body: AlertsBody
    login: bool  # the author of an action is the logged-in user, not a name typed into the dialog
    role: Role  # of the user asking: without ACT_ON_ALERTS, no buttons and no dialog


def _state_filter(url: PageQuery) -> str:
    return url.state if url.state in STATE_FILTERS else "open"


def query(ctx: Context, location: Location) -> AlertsData:
    with queries.read_only(ctx.engine) as conn:
        models = queries.alert_model_names(conn)
    body = _query_body(ctx, _state_filter(location.query), location.query.model)
    return AlertsData(models, body, ctx.login, auth.current_role(ctx.config.dashboard))


def render(location: Location, data: AlertsData) -> html.Div:
    model, state = location.query.model, _state_filter(location.query)
    can_act = auth.allows(data.role, auth.ACT_ON_ALERTS)
    filters = html.Div(
        [
            html.Div(
                [
                    dcc.Link(
                        name,
                        href=alerts_url(name, model),
                        className="btn btn-outline-secondary" + (" active" if name == state else ""),
                    )
                    for name in STATE_FILTERS
                ],
                className="btn-group btn-group-sm",
                id="alerts-state",
            ),
            dcc.Dropdown(
                id="alerts-model",
                options=data.models,
                value=model,
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
                "Grouped by rule and model; acknowledging tells the team you are on it, a silence mutes notifications."
                if can_act
                else f"Grouped by rule and model. Your role is {data.role}: acknowledging and silencing take "
                f"{auth.ACT_ON_ALERTS}.",
            ),
            filters,
            html.Div(_render_body(data.body, can_act), id="alerts-list"),
            *([dcc.Store(id="action-target"), _action_modal(data.login)] if can_act else []),
        ]
    )


def register_callbacks(app: dash.Dash, ctx: Context) -> None:
    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input("alerts-model", "value"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def filter_alerts(model: str | None, search: str | None) -> Any:
        new = with_params(search, model=model or None)
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
        role = auth.current_role(ctx.config.dashboard)
        if not auth.allows(role, auth.ACT_ON_ALERTS):
            # Only a forged request or a page older than a role change gets here: the page has no buttons.
            log.warning("refused an alert action by %s: role %s", auth.current_user(), role)
            refusal = f"Your role is {role}: acknowledging and silencing take {auth.ACT_ON_ALERTS}."
            return no_update, True, refusal, no_update, no_update
        if not target:
            return (no_update,) * 5
        action, alert_id = action_target(target)
        user = auth.current_user() or (author or "").strip()
        if not user:
            return no_update, True, "Enter your name: acknowledgements and silences are signed.", no_update, no_update
        try:
            message = _perform(ctx, action, alert_id, user, (comment or "").strip(), duration or "4h")
        except DriftscopeError as exc:
            return no_update, True, str(exc), no_update, no_update
        url = PageQuery.parse(search)
        body = _query_body(ctx, _state_filter(url), url.model)
        return _render_body(body, can_act=True), False, "", message, True


def action_target(target: object) -> tuple[str, int]:
    """``(action, alert id)`` of the dialog's ``action-target``. It comes back from the browser, so any
    other shape is a forged or corrupted request: a 400 that says what was expected, not a 500."""
    if isinstance(target, dict) and target.get("action") in ("ack", "silence") and type(target.get("alert")) is int:
        return target["action"], target["alert"]
    raise BadRequest(
        'action-target must be {"action": "ack" or "silence", "alert": <alert id>}: reload the page and try again.'
    )


def _perform(ctx: Context, action: str, alert_id: int, user: str, comment: str, duration: str) -> str:
    now = datetime.now(UTC)
    if action == "ack":
        actions.acknowledge(ctx.engine, alert_id, user, comment, now=now)
        log.info("alert %s acknowledged by %s", alert_id, user)
        return f"Alert #{alert_id} acknowledged by {user}."
    with queries.read_only(ctx.engine) as conn:
        alert = queries.alert_by_id(conn, alert_id)
    if alert is None:
        raise actions.ActionError(f"silence: alert {alert_id} does not exist")
    matchers = silence_matchers(alert)
    ends = now + SILENCE_DURATIONS.get(duration, SILENCE_DURATIONS["4h"])
    actions.create_silence(ctx.engine, matchers, now, ends, user, comment)
    log.info("silence %s until %s by %s", matchers, ends.isoformat(), user)
    return f"Silenced {', '.join(f'{k}={v}' for k, v in matchers.items())} until {ends:%b %d %H:%M} UTC."


# Auto-refresh would re-render an open acknowledge/silence dialog away.
PAGE = Page(path="/alerts", query=query, render=render, register_callbacks=register_callbacks, auto_refresh=False)
