"""Version comparison page: two versions of a model side by side (docs/versions.md, Comparing two versions).

``/models/<model>/compare?candidate=2.1&baseline=2.0[&from=…&to=…]``. For each version: its rows in the range
(rows naming no version count for the version deployed to all traffic at their time), each feature's drift
and the realized and estimated performance over time from the version's own scores (``segment_score`` per
``model_version``, each scored against the version's own reference under ``reference: {version: current}``),
its references with their approval, and its deployments; above them the canary gate's verdict on the two
(:func:`monitor.runs.canary.run_canary`, the same as ``driftscope canary``).

The range: ``from``/``to`` when given, else from the candidate's newest deployment until now (the canary
gate's default), else the monitor's last seven days of windows; a range longer than the canary gate's
:data:`~monitor.runs.canary.MAX_CANARY_SPAN` is shortened to that span ending at its end (:func:`clamp`), and
the page says so. Versions, feature names and reasons are
data: they reach the page as text children (React escapes them), into the chart through Plotly's escaped
text, into links percent-encoded (:func:`dashboard.state.compare_url`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html
from dash.development.base_component import Component

from dashboard import queries
from dashboard.context import Context
from dashboard.figures import METRIC_COLOURS, _base_layout, _below_modebar, _text, empty_figure
from dashboard.pages.base import Page
from dashboard.queries import ModelInfo
from dashboard.state import Location, TimeRange, compare_url, model_url
from dashboard.theme import empty_state, kpi, page_header, severity_badge, time_text
from dashboard.versions import safe_link, traffic_text
from monitor.errors import DriftscopeError
from monitor.runs.canary import MAX_CANARY_SPAN, CanaryVerdict, run_canary
from monitor.store.deployments import DeploymentRow, VersionRows, deployments, versions_seen
from monitor.store.references import ReferenceRow, uploaded_references

VERDICT_TONE = {"promote": "ok", "worse": "critical", "not enough data": "warning"}
DASH = {0: "solid", 1: "dot"}  # candidate, baseline
DEFAULT_SPAN = timedelta(days=7)


@dataclass(frozen=True)
class Side:
    """What the page shows of one version."""

    version: str
    rows: int
    tagged: int  # rows that named the version themselves
    deployments: list[DeploymentRow]
    references: list[ReferenceRow]


@dataclass(frozen=True)
class CompareData:
    model: ModelInfo | None
    known: tuple[str, ...]  # every model's name, read only when ``model`` is unknown
    versions: list[VersionRows] = field(default_factory=list)  # rows per version in the range
    range: TimeRange | None = None
    monitor: str | None = None
    sides: tuple[Side, Side] | None = None  # candidate, baseline; None until both are chosen
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)  # queries.version_scores
    verdict: CanaryVerdict | None = None
    verdict_error: str | None = None
    asked_start: datetime | None = None  # the range's start before :func:`clamp` shortened it; None: not shortened


def clamp(tr: TimeRange) -> TimeRange:
    """``tr`` shortened to the last :data:`MAX_CANARY_SPAN` ending at its end: the URL's ``from``/``to`` are
    anyone's, and the canary gate loads every row of both versions in the range on each render."""
    if tr.length <= MAX_CANARY_SPAN:
        return tr
    return TimeRange(tr.end - MAX_CANARY_SPAN, tr.end)


def _range(ctx: Context, location: Location, model_id: int, extent: queries.Extent, candidate: str | None) -> TimeRange:
    q = location.query
    if q.start and q.end and q.start < q.end:
        return TimeRange(q.start, q.end)
    now = ctx.now()
    if candidate is not None:
        with queries.read_only(ctx.engine) as conn:
            mine = [d for d in deployments(conn, model_id, until=now) if d.version == candidate]
        if mine:
            # Until the data's end when the data stopped before now: the page frames what there is to compare.
            data_end = None if extent.last is None else extent.last + extent.window
            end = min(now, data_end) if data_end is not None and data_end > mine[0].deployed_at else now
            return TimeRange(mine[0].deployed_at, end)
    if extent.last is None:
        return TimeRange(now - DEFAULT_SPAN, now)
    end = extent.last + extent.window
    return TimeRange(max(end - DEFAULT_SPAN, extent.first or end - DEFAULT_SPAN), end)


def query(ctx: Context, location: Location) -> CompareData:
    name, q = location.params["model"], location.query
    with queries.read_only(ctx.engine) as conn:
        model = queries.model_by_name(conn, name)
        if model is None:
            return CompareData(None, tuple(m.name for m in queries.models(conn)))
        extent = queries.model_extent(conn, model.id)  # its primary monitor, as on the model page
    monitor = extent.monitor
    asked = _range(ctx, location, model.id, extent, q.candidate)
    tr = clamp(asked)
    asked_start = asked.start if tr != asked else None
    with queries.read_only(ctx.engine) as conn:
        seen = versions_seen(conn, model.id, tr.start, tr.end)
        if not q.candidate or not q.baseline:
            return CompareData(model, (), seen, tr, monitor, asked_start=asked_start)
        pair = (q.candidate, q.baseline)
        deployed = deployments(conn, model.id)
        counts = {v.version: v for v in seen}
        sides = tuple(
            Side(
                version,
                counts[version].rows if version in counts else 0,
                counts[version].tagged if version in counts else 0,
                [d for d in deployed if d.version == version],
                uploaded_references(conn, model.id, version),
            )
            for version in pair
        )
        scores = (
            queries.version_scores(conn, model.id, monitor, pair, tr.start, tr.end)
            if monitor is not None
            else pd.DataFrame()
        )
    verdict, error = None, None
    try:
        verdict = run_canary(ctx.engine, ctx.config, name, *pair, since=tr.start, now=tr.end)
    except (DriftscopeError, ValueError) as exc:
        error = f"Not judged: {exc}"
    return CompareData(model, (), seen, tr, monitor, (sides[0], sides[1]), scores, verdict, error, asked_start)


# ------------------------------------------------------------------------------------- rendering


def _picker(model: str, seen: list[VersionRows], data: CompareData, location: Location) -> html.Div:
    """Each version seen in the range, with links making it the candidate or the baseline."""
    q = location.query
    named = [v for v in seen if v.version is not None]
    if not named:
        return html.Div(
            "No predictions in this range carry a version, and no full deployment covers them: "
            "send model_version with predictions or record deployments with `driftscope deploy record`.",
            className="small text-muted",
        )
    body = []
    for v in named:
        version = str(v.version)
        body.append(
            html.Tr(
                [
                    html.Td(html.Span(version, className="font-monospace")),
                    html.Td(f"{v.rows:,}", className="text-end"),
                    html.Td(
                        dcc.Link("as candidate", href=compare_url(model, version, q.baseline, data.range)),
                        className="text-end",
                    ),
                    html.Td(
                        dcc.Link("as baseline", href=compare_url(model, q.candidate, version, data.range)),
                        className="text-end",
                    ),
                ]
            )
        )
    return html.Div(
        [
            html.H6("Versions in this range", className="mb-1"),
            html.Table(
                [
                    html.Thead(
                        html.Tr([html.Th("Version"), html.Th("Rows", className="text-end"), html.Th(), html.Th()])
                    ),
                    html.Tbody(body),
                ],
                className="table table-sm mb-0",
                id="compare-versions",
            ),
        ],
        className="ds-card mt-3",
    )


def _shortened(data: CompareData) -> html.Div | None:
    """Says that the asked range was longer than the page compares, and how long it was."""
    if data.asked_start is None or data.range is None:
        return None
    return html.Div(
        f"Range shortened to the last {MAX_CANARY_SPAN.days} days before {time_text(data.range.end)}, the longest "
        f"the canary gate compares (asked: {(data.range.end - data.asked_start).days:,} days).",
        className="small text-warning-emphasis mt-2",
        id="compare-range-shortened",
    )


def _verdict(data: CompareData) -> html.Div:
    if data.verdict is None:
        return html.Div(
            [html.H6("Canary gate", className="mb-1"), html.Div(data.verdict_error or "", className="small")],
            className="ds-card mt-3",
            id="compare-verdict",
        )
    v = data.verdict
    reasons = list(v.reasons) or ["no check found the candidate worse"]
    return html.Div(
        [
            html.Div(
                [
                    html.H6("Canary gate", className="mb-0 me-2"),
                    severity_badge(VERDICT_TONE[v.verdict], v.verdict, id="compare-verdict-badge"),
                    html.Span(
                        f" {time_text(v.start)} – {time_text(v.end)} · "
                        f"same as `driftscope canary` (exit {v.exit_code})",
                        className="small text-muted ms-2",
                    ),
                ],
                className="d-flex align-items-center mb-1",
            ),
            html.Ul([html.Li(r) for r in reasons], className="small mb-1"),
            html.Details(
                [html.Summary("notes", className="small text-muted"), html.Ul([html.Li(n) for n in v.notes])],
                className="small",
            )
            if v.notes
            else None,
        ],
        className="ds-card mt-3",
        id="compare-verdict",
    )


def _drift_table(scores: pd.DataFrame, side: Side, other: Side) -> html.Table | html.Div:
    """Each feature's drift for ``side`` next to ``other``'s: the newest window's score and how many windows
    breached in the range."""
    drift = scores[(scores["kind"] == "drift") & scores["feature"].notna()] if not scores.empty else scores
    if drift.empty:
        return html.Div("No per-version drift scores in this range.", className="small text-muted")
    body = []
    for feature in sorted(drift["feature"].unique()):
        cells: list[Component] = [html.Td(html.Span(str(feature), className="font-monospace"))]
        for version in (side.version, other.version):
            own = drift[(drift["feature"] == feature) & (drift["version"] == version)]
            if own.empty:
                cells += [html.Td("—", className="text-end"), html.Td("—", className="text-end")]
                continue
            last = own.iloc[-1]
            value = "" if pd.isna(last["value"]) else f"{last['value']:.3g}"
            breached = sum(b is True for b in own["breached"])
            tone = "text-danger fw-semibold" if bool(last["breached"]) else ""
            cells += [
                html.Td(f"{value} ({last['method']})", className=f"text-end {tone}"),
                html.Td(f"{breached} of {len(own)}", className="text-end"),
            ]
        body.append(html.Tr(cells))
    head = html.Tr(
        [
            html.Th("Feature"),
            html.Th(f"{side.version}: newest", className="text-end"),
            html.Th("windows breached", className="text-end"),
            html.Th(f"{other.version}: newest", className="text-end"),
            html.Th("windows breached", className="text-end"),
        ]
    )
    return html.Table([html.Thead(head), html.Tbody(body)], className="table table-sm mb-0", id="compare-drift")


def performance_figure(scores: pd.DataFrame, versions: tuple[str, str]) -> go.Figure:
    """Realized (solid markers) and estimated (open markers) performance per window of each version: the
    candidate's lines solid, the baseline's dotted, one colour per metric."""
    perf = scores[scores["kind"].isin(("performance", "estimated_performance"))] if not scores.empty else scores
    perf = perf[perf["value"].notna()] if not perf.empty else perf
    if perf.empty:
        return empty_figure("no per-version performance in this range (labels or estimates needed)", height=260)
    fig = go.Figure()
    metrics = sorted(perf["method"].unique())
    for m_index, metric in enumerate(metrics):
        colour = METRIC_COLOURS[m_index % len(METRIC_COLOURS)]
        for v_index, version in enumerate(versions):
            for kind, label, symbol in (
                ("performance", "realized", "circle"),
                ("estimated_performance", "estimated", "circle-open"),
            ):
                rows = perf[(perf["method"] == metric) & (perf["version"] == version) & (perf["kind"] == kind)]
                if rows.empty:
                    continue
                name = _text(f"{version} · {metric} ({label})")
                fig.add_trace(
                    go.Scatter(
                        x=rows["window_start"],
                        y=rows["value"],
                        mode="lines+markers",
                        name=name,
                        line={"color": colour, "dash": DASH[v_index] if kind == "performance" else "dash"},
                        marker={"symbol": symbol, "size": 7},
                        hovertemplate="%{x|%b %d %H:%M} UTC: %{y:.4g}<extra>" + name + "</extra>",
                    )
                )
    title = (
        f"Performance per window: {_text(versions[0])} solid, {_text(versions[1])} dotted; "
        "estimates dashed with open markers"
    )
    fig.update_layout(**_base_layout(320, **_below_modebar(title)))
    # The scored windows, not the whole range: a range running to now would squeeze them into its first pixels.
    fig.update_xaxes(gridcolor="#E6EAF0")
    fig.update_yaxes(gridcolor="#E6EAF0", zeroline=False)
    return fig


def _deployments(side: Side) -> Component:
    if not side.deployments:
        return html.Div("No deployment recorded.", className="small text-muted")
    items = []
    for d in side.deployments[:5]:
        href = safe_link(d.url)
        run = html.A(" pipeline run", href=href, target="_blank", rel="noopener noreferrer") if href else None
        items.append(html.Li([f"{time_text(d.deployed_at)} · {traffic_text(d.traffic)} · by {d.deployed_by}", run]))
    return html.Ul(items, className="small mb-0")


def _references(side: Side, model: str) -> Component:
    if not side.references:
        return html.Div(
            [
                "No reference uploaded: ",
                html.Code(
                    f"driftscope reference upload --model {shlex.quote(model)} "
                    f"--version {shlex.quote(side.version)} FILE"
                ),
            ],
            className="small text-muted",
        )
    return html.Ul(
        [
            html.Li(
                f"{r.name} · {r.rows or 0:,} rows · {r.approval}" + (f" by {r.approved_by}" if r.approved_by else "")
            )
            for r in side.references[:5]
        ],
        className="small mb-0",
    )


def _side(side: Side, role: str, model: str, scores: pd.DataFrame) -> html.Div:
    own = scores[scores["version"] == side.version] if not scores.empty else scores
    windows = own["window_start"].nunique() if not own.empty else 0
    short = own[own["kind"] == "segment"] if not own.empty else own
    notes = [str(r) for r in short["reason"].dropna().unique()][:3] if not short.empty else []
    return html.Div(
        [
            html.Div(role, className="ds-kpi-label"),
            html.H4(side.version, className="font-monospace mb-2 text-break"),
            html.Div(
                [
                    kpi("Rows", f"{side.rows:,}", f"{side.tagged:,} named the version"),
                    kpi("Windows scored", f"{windows:,}", "per-version scores"),
                ],
                className="d-flex gap-2 mb-2",
            ),
            *[html.Div(n, className="small text-warning-emphasis mb-1 ds-compare-note") for n in notes],
            html.H6("References", className="mt-2 mb-1"),
            _references(side, model),
            html.H6("Deployments", className="mt-2 mb-1"),
            _deployments(side),
        ],
        className="ds-card",
        id=f"compare-{role.lower()}",
    )


def render(location: Location, data: CompareData) -> html.Div:
    name = location.params["model"]
    if data.model is None:
        known = ", ".join(data.known) or "none yet"
        return html.Div([page_header(name), empty_state(f"Unknown model {name!r}", f"Known models: {known}.")])
    tr = data.range
    assert tr is not None
    back = dcc.Link(f"← {name}", href=model_url(name), className="btn btn-sm btn-outline-secondary")
    picker = _picker(name, data.versions, data, location)
    if data.sides is None:
        return html.Div(
            [
                page_header(f"Compare versions · {name}", f"{time_text(tr.start)} – {time_text(tr.end)}", right=back),
                _shortened(data),
                empty_state(
                    "Pick two versions",
                    "Choose a candidate and a baseline below, or open ",
                    html.Code(f"/models/{name}/compare?candidate=2.1&baseline=2.0"),
                    ".",
                ),
                picker,
            ]
        )
    candidate, baseline = data.sides
    swap = dcc.Link(
        "swap",
        href=compare_url(name, baseline.version, candidate.version, tr),
        className="btn btn-sm btn-outline-secondary",
    )
    return html.Div(
        [
            page_header(
                [
                    html.Span(candidate.version, className="font-monospace"),
                    " vs ",
                    html.Span(baseline.version, className="font-monospace"),
                ],
                f"{name} · {time_text(tr.start)} – {time_text(tr.end)} · "
                f"scores of monitor {data.monitor or '—'} · times in UTC",
                right=html.Div([swap, back], className="d-flex gap-2"),
            ),
            _shortened(data),
            _verdict(data),
            html.Div(
                [_side(candidate, "Candidate", name, data.scores), _side(baseline, "Baseline", name, data.scores)],
                className="mt-3",
                style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "12px"},
            ),
            html.Div(
                [
                    html.H6("Drift per feature", className="mb-1"),
                    html.Div(
                        "Each version's windows against its own version's reference (reference: {version: current}), "
                        "else the monitor's reference; value of the newest window, and how many windows breached.",
                        className="small text-muted mb-2",
                    ),
                    _drift_table(data.scores, candidate, baseline),
                ],
                className="ds-card mt-3",
            ),
            html.Div(
                dcc.Graph(
                    id="compare-performance",
                    figure=performance_figure(data.scores, (candidate.version, baseline.version)),
                    config={"displaylogo": False},
                ),
                className="ds-card mt-3",
            ),
            picker,
        ]
    )


def register_callbacks(app: dash.Dash, ctx: Context) -> None:
    """No controls: every choice on the page is a link."""


# The canary gate reads both versions' rows: not every auto-refresh tick.
PAGE = Page(
    path="/models/<model>/compare",
    query=query,
    render=render,
    register_callbacks=register_callbacks,
    auto_refresh=False,
)
