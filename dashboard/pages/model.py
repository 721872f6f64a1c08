"""Model page: one shared time axis that answers which model is unhealthy, since when, which features,
data or service, and whether performance is really dropping.

:func:`build` is the server-side work (queries + figure); ``bench/dashboard.py`` times it.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from dash.development.base_component import Component
from sqlalchemy import Engine

from dashboard import figures, queries
from dashboard.context import Context
from dashboard.pages.base import Page
from dashboard.pages.overview import model_health
from dashboard.queries import AlertRow, ModelInfo
from dashboard.segments import worst_card
from dashboard.state import (
    Location,
    PageQuery,
    TimeRange,
    alerts_url,
    bucket_for,
    compare_url,
    feature_url,
    model_url,
    query_string,
    report_url,
)
from dashboard.theme import (
    duration_text,
    empty_state,
    kpi,
    monitor_picker,
    page_header,
    range_picker,
    severity_badge,
    time_text,
)
from dashboard.versions import deployments_card, versions_card
from monitor.store.deployments import DeploymentRow, VersionRows, deployments, versions_seen
from monitor.store.segments import SegmentRank, worst_segments

RECENT_BUCKETS = 3  # "now" on the model page means the last few buckets of the range
SERVICE_FACTOR = 1.5  # a service metric this far above its median over the range counts as abnormal
SHOWN_FEATURES = 5  # drifting features named on the card; the rest are "… and N more" (names in a tooltip)
ERROR_CHARS = 300  # of a failed run's error on its banner; `driftscope runs list` prints it whole


@dataclass(frozen=True)
class ModelPage:
    model: ModelInfo
    range: TimeRange
    timeline: figures.Timeline  # the selected monitor's scores, and the alerts that concern it
    breached: pd.DataFrame
    monitor: str
    monitors: tuple[str, ...]  # primary first
    alerts: list[AlertRow]  # every alert of the model in the range, whichever its monitor
    open_now: list[AlertRow]  # pending and firing now, whatever the range: the model's health
    computation: queries.Computation | None  # the monitor's newest window: when performance was computed
    focus: Focus  # what the drifting-features and data-or-service cards describe
    # "Where is it worst": the window's ranked segments (the selected window, else the newest with segments)
    worst: tuple[datetime | None, list[SegmentRank]] = (None, [])
    deployments: list[DeploymentRow] = field(default_factory=list)  # in the range, newest first
    versions: list[VersionRows] = field(default_factory=list)  # rows per version in the range


@dataclass(frozen=True)
class Focus:
    """The windows the cards describe: the selected window (an alert's link opens a past one), else the
    last few buckets of the range. ``breached`` is :func:`queries.breached_features` window-exact over
    ``[start, end)`` (or wider: only its ``last_breach`` from ``start`` on counts)."""

    start: datetime
    end: datetime
    breached: pd.DataFrame
    selected: bool

    def covers(self, buckets: pd.Series, bucket: timedelta) -> pd.Series:
        """Which chart buckets overlap the focus."""
        return (buckets < self.end) & (buckets + bucket > self.start)

    def label(self) -> str:
        """ "in the window 03:15–03:16" for a selected window, else "in the latest windows"."""
        if not self.selected:
            return "in the latest windows"
        end = f"{self.end:%H:%M}" if self.end.date() == self.start.date() else f"{self.end:%b %d %H:%M}"
        return f"in the window {self.start:%b %d %H:%M}–{end} UTC"


def build(engine: Engine, model: ModelInfo, query: PageQuery) -> ModelPage | None:
    """All the data of the model page for ``query.monitor`` (default: the primary monitor), aggregated
    in SQL; None when no window was computed yet.

    The two big aggregations (the drift matrix and the quality series, each a scan of a model's scores
    over the range) run on their own connections in parallel with the small ones: the database has
    more than one core even when this process is busy rendering.
    """
    with queries.read_only(engine) as conn:
        extent = queries.model_extent(conn, model.id, query.monitor)
    if extent.last is None or extent.monitor is None:
        return None
    monitor = extent.monitor
    tr = query.time_range(extent.first, extent.last, extent.window)
    bucket = bucket_for(tr.length, extent.window)
    args = (model.id, monitor, tr.start, tr.end, bucket)

    def read(fn: Callable[..., Any], *fn_args: Any) -> Any:
        with queries.read_only(engine) as conn:
            return fn(conn, *fn_args)

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="model-page") as pool:
        matrix = pool.submit(read, queries.drift_matrix, *args)
        quality = pool.submit(read, queries.quality_series, *args)
        with queries.read_only(engine) as conn:
            share = queries.dataset_drift_series(conn, *args)
            performance = queries.performance_series(conn, *args)
            coverage = queries.label_coverage(conn, *args)
            computation = queries.newest_computation(conn, model.id, monitor)
            metrics = queries.metric_series(conn, model.id, tr.start, tr.end, bucket)  # the model's service
            alerts = queries.model_alerts(conn, model.name, tr.start, tr.end)
            open_now = queries.alerts(conn, states=("pending", "firing"), model=model.name)
            worst = worst_segments(conn, monitor, query.window)
            deployed = deployments(conn, model.id, since=tr.start, until=tr.end)
            versions = versions_seen(conn, model.id, tr.start, tr.end)
            # A bucket of the chart may merge windows: the cards read the selected window's own breaches.
            focus = (
                Focus(
                    query.window,
                    query.window + extent.window,
                    queries.breached_features(
                        queries.drift_matrix(
                            conn, model.id, monitor, query.window, query.window + extent.window, extent.window
                        )
                    ),
                    selected=True,
                )
                if query.window
                else None
            )
        timeline = figures.Timeline(
            share=share,
            matrix=matrix.result(),
            performance=performance,
            coverage=coverage,
            quality=quality.result(),
            metrics=metrics,
            alerts=[a for a in alerts if a.concerns(monitor)],
            start=tr.start,
            end=tr.end,
            bucket=bucket,
            window=extent.window,
            selected=query.window,
            deployments=deployed,
        )
    breached = queries.breached_features(timeline.matrix)
    focus = focus or Focus(tr.end - RECENT_BUCKETS * bucket, tr.end, breached, selected=False)
    return ModelPage(
        model,
        tr,
        timeline,
        breached,
        monitor,
        extent.monitors,
        alerts,
        open_now=open_now,
        computation=computation,
        focus=focus,
        worst=worst,
        deployments=deployed,
        versions=versions,
    )


def _since(alerts: list[AlertRow]) -> datetime | None:
    firing = [a.breach_start for a in alerts if a.state == "firing"]
    return min(firing) if firing else None


def _drifting(page: ModelPage) -> pd.DataFrame:
    """Input features breached in the focus, with when their drift began."""
    b = page.focus.breached
    inputs = b[~b["feature"].isin(queries.OUTPUT_COLUMNS) & b["last_breach"].notna()]
    return inputs[inputs["last_breach"] >= page.focus.start].sort_values(["first_breach", "feature"])


def drift_episode_start(matrix: pd.DataFrame, features: list[str], until: datetime | None = None) -> datetime | None:
    """Start of the drift episode: the earliest bucket from which any of ``features`` has drifted in
    every bucket up to the newest one (or the one holding ``until``); None when none of them drifts in it."""
    cells = matrix[matrix["feature"].isin(features)]
    if until is not None:
        cells = cells[cells["bucket"] <= until]
    starts = []
    for _, feature_cells in cells.groupby("feature"):
        ordered = feature_cells.sort_values("bucket")
        drifted = ordered["breached"].to_numpy() > 0
        if len(drifted) and drifted[-1]:
            calm = np.flatnonzero(~drifted)
            first = calm[-1] + 1 if len(calm) else 0
            starts.append(ordered["bucket"].iloc[first])
    return min(starts).to_pydatetime() if starts else None


def _service_abnormal(metrics: pd.DataFrame, focus: Focus, bucket: timedelta) -> list[str]:
    """Service metrics whose mean over the focus is well above their median over the range."""
    out = []
    for name, frame in metrics.groupby("name", sort=True):
        baseline = frame["value"].median()
        now = frame[focus.covers(frame["bucket"], bucket)]["value"].mean()
        if baseline > 0 and now > SERVICE_FACTOR * baseline:
            out.append(f"{name} {now:.3g} (usually {baseline:.3g})")
    return out


def _verdict(page: ModelPage) -> tuple[str, str, str | None]:
    focus, bucket = page.focus, page.timeline.bucket
    drifting = _drifting(page)
    quality = page.timeline.quality
    in_focus = quality[focus.covers(quality["bucket"], bucket)] if not quality.empty else quality
    quality_breaches = int(in_focus["breaches"].sum()) if not quality.empty else 0
    service = _service_abnormal(page.timeline.metrics, focus, bucket)
    data_issue = not drifting.empty or quality_breaches > 0
    parts = []
    if not drifting.empty:
        parts.append(f"{len(drifting)} input(s) drifting")
    if quality_breaches:
        parts.append(f"{quality_breaches} quality check(s) breached")
    if data_issue and service:
        return "Data and service", "; ".join(parts + service), "critical"
    if data_issue:
        normal = "service metrics normal" if not page.timeline.metrics.empty else "no service metrics configured"
        return "Data", "; ".join([*parts, normal]), "warning"
    if service:
        return "Service", "; ".join(service) + "; inputs stable", "warning"
    return "Neither", "inputs stable, service metrics normal", "ok"


def _performance_kpi(page: ModelPage) -> html.Div:
    perf = page.timeline.performance
    metric = figures.primary_metric(perf)
    if metric is None:
        return kpi("Performance", "—", "no performance scores yet (labels or estimation)")
    rows = perf[perf["method"] == metric]
    parts, tone = [], "ok"
    for kind, label in (("performance", "realized"), ("estimated_performance", "estimated")):
        series = rows[rows["kind"] == kind].dropna(subset=["value"])
        if series.empty:
            continue
        last = series.iloc[-1]
        parts.append(f"{label} {last['value']:.3f} ({time_text(last['bucket'])})")
        low = last["band_lower"]
        if low == low and low is not None and last["value"] < low:
            tone = "critical"
    band = rows.dropna(subset=["band_lower"])
    ref = f"reference {band['band_lower'].iloc[-1]:.2f}–{band['band_upper'].iloc[-1]:.2f}" if not band.empty else ""
    headline = parts[0].split(" (")[0] if parts else "—"
    sub: list[str | Component] = [" · ".join([*parts[1:], ref])]
    if (doubt := _estimate_doubt(rows)) is not None:
        sub.append(html.Div(doubt, id="estimate-unreliable", className="ds-estimate-unreliable"))
        tone = "warning" if tone == "ok" else tone
    return kpi(f"Performance ({metric})", headline, sub if any(sub) else None, tone=tone if parts else None)


def _estimate_doubt(rows: pd.DataFrame) -> str | None:
    """``estimate unreliable since Mar 01 10:00 UTC (realized 0.77 outside 0.90–0.97)`` when labelled
    windows refute the newest estimate of the metric (see monitor.store.reliability), else None."""
    estimated = rows[rows["kind"] == "estimated_performance"].dropna(subset=["value"])
    if estimated.empty or "unreliable" not in estimated:
        return None
    mark = estimated["unreliable"].iloc[-1]
    if mark is None:
        return None
    return f"estimate unreliable since {time_text(mark.since)} ({mark.text()})"


def recompute_caption(computation: queries.Computation | None) -> str:
    """When the newest window's performance was last computed, from how many labels, how many of them
    arrived after the window closed, and whether labels received since wait for a recompute."""
    c = computation
    if c is None or c.computed_at is None:
        return "Performance not computed yet."
    labels = f"{c.labelled or 0:,} of {c.rows or 0:,} predictions labelled"
    if c.coverage is not None:
        labels += f" ({c.coverage:.0%})"
    text = (
        f"Performance last computed {time_text(c.computed_at)} for the newest window ({time_text(c.window_start)}): "
        f"{labels}"
    )
    if c.late_labels:
        text += f", {c.late_labels:,} of them received after the window closed"
    if c.stale_since is not None:
        waiting = f"{c.waiting_labels:,} label(s)" if c.waiting_labels else "late data"
        text += f"; {waiting} received since, recompute pending"
    return text + "."


def _monitor_notes(alerts: list[AlertRow], failed: list[queries.FailedRuns]) -> dict[str, str]:
    """monitor → "N firing · N failed", for the monitor picker."""
    notes: dict[str, list[str]] = {}
    for monitor, n in Counter(a.labels.get("monitor") for a in alerts if a.state == "firing").items():
        if monitor:
            notes.setdefault(monitor, []).append(f"{n} firing")
    for f in failed:
        notes.setdefault(f.monitor, []).append(f"{f.count} failed")
    return {monitor: " · ".join(parts) for monitor, parts in notes.items()}


def failed_banner(failed: queries.FailedRuns) -> dbc.Alert:
    """A monitor's windows that ended failed: the newest one's error and the command that starts them
    again. The error may quote data: it goes in as a string, which Dash renders as text."""
    error = failed.error or "no error recorded"
    if len(error) > ERROR_CHARS:
        error = error[: ERROR_CHARS - 1] + "…"
    monitor = shlex.quote(failed.monitor)
    return dbc.Alert(
        [
            html.Strong(f"{failed.count} window(s) of monitor {failed.monitor} failed"),
            f" — newest: {time_text(failed.window_start)}, after {failed.attempts} attempt(s): ",
            html.Span(error, className="ds-run-error"),
            html.Div(
                [
                    "The worker will not try them again; their scores stay missing (or out of date) until ",
                    html.Code(f"driftscope runs retry --monitor {monitor} --all-failed"),
                    " starts them again (",
                    html.Code(f"driftscope runs list --monitor {monitor} --status failed"),
                    " prints every error whole).",
                ],
                className="small mt-1",
            ),
        ],
        id={"type": "failed-runs", "monitor": failed.monitor},
        color="warning",
        className="mb-2",
    )


def feature_list(names: list[str], href: Callable[[str], str], shown: int = SHOWN_FEATURES) -> list[str | Component]:
    """Links to the first ``shown`` of ``names``, then "… and N more" naming the rest in its tooltip: the
    card's count and the names it gives must agree."""
    out: list[str | Component] = []
    for name in names[:shown]:
        out += [", "] if out else []
        out.append(dcc.Link(name, href=href(name)))
    rest = names[shown:]
    if rest:
        out.append(html.Span(f" … and {len(rest)} more", title=", ".join(rest), className="ds-more"))
    return out


def _kpis(page: ModelPage) -> html.Div:
    # Health is the state now, as in the navbar and the overview: an alert that fired after the end of
    # the range (or before its start and still firing) counts.
    health = model_health(page.open_now, True)
    firing = [a for a in page.open_now if a.state == "firing"]
    since = _since(page.open_now)
    drifting = _drifting(page)
    verdict, why, tone = _verdict(page)
    focus = page.focus
    if focus.selected:
        why += f" ({focus.label()})"
    n_inputs = len([f for f in page.model.features if f not in queries.OUTPUT_COLUMNS]) or len(page.breached)
    episode = drift_episode_start(
        page.timeline.matrix, list(drifting["feature"]), focus.start if focus.selected else None
    )
    feature_links = feature_list(
        list(drifting["feature"]),
        lambda feature: feature_url(page.model.name, feature, tr=page.range, monitor=page.monitor),
    )
    return html.Div(
        [
            kpi(
                "Health",
                severity_badge(health, health.upper()),
                f"{len(firing)} alert(s) firing" if firing else "no alert firing",
                tone=health,
                id="kpi-health",
            ),
            kpi(
                "Unhealthy since",
                time_text(since) if since else "—",
                ", ".join(sorted({a.rule for a in firing})) or "no alert firing now",
                tone=health if since else None,
            ),
            kpi(
                "Drifting features",
                f"{len(drifting)} of {n_inputs}",
                html.Span(
                    [
                        *feature_links,
                        f" {focus.label()}" if focus.selected else "",
                        f" · since {time_text(episode)}" if episode else "",
                    ]
                    if feature_links
                    else f"none {focus.label()}"
                ),
                tone="warning" if len(drifting) else "ok",
                id="kpi-drifting",
            ),
            kpi("Data or service?", verdict, why, tone=tone, id="kpi-verdict"),
            _performance_kpi(page),
        ],
        className="ds-kpis",
    )


@dataclass(frozen=True)
class ModelData:
    model: ModelInfo | None
    known: tuple[str, ...]  # every model's name, read only when ``model`` is unknown
    page: ModelPage | None  # None while no window was computed
    failed: list[queries.FailedRuns]  # every monitor's runs that ended failed


def query(ctx: Context, location: Location) -> ModelData:
    with queries.read_only(ctx.engine) as conn:
        model = queries.model_by_name(conn, location.params["model"])
        if model is None:
            return ModelData(None, tuple(m.name for m in queries.models(conn)), None, [])
        failed = queries.failed_runs(conn, model.id)
    return ModelData(model, (), build(ctx.engine, model, location.query), failed)


def render(location: Location, data: ModelData) -> html.Div:
    name, window, model, page = location.params["model"], location.query.window, data.model, data.page
    if model is None:
        known = ", ".join(data.known) or "none yet"
        return html.Div([page_header(name), empty_state(f"Unknown model {name!r}", f"Known models: {known}.")])
    if page is None:
        return html.Div(
            [
                page_header(name, f"{model.task} model · {len(model.features)} features"),
                *[failed_banner(f) for f in data.failed],
                empty_state(
                    "No windows computed yet",
                    "No predictions have been scored for this model. Point a collector at it (",
                    html.Code(f"models.{name}.source"),
                    " in driftscope.yaml) or push predictions to ",
                    html.Code("POST /v1/predictions"),
                    "; then ",
                    html.Code("driftscope worker"),
                    " computes a window once it closes.",
                ),
            ]
        )
    t = page.timeline
    selected = window or (t.end - t.window)
    links = [
        dcc.Link(
            f"Window report ({time_text(selected)})",
            href=report_url(page.monitor, selected),
            className="btn btn-sm btn-outline-primary",
            id="report-link",
        ),
        dcc.Link("Alerts of this model", href=alerts_url(model=name), className="btn btn-sm btn-outline-secondary"),
    ]
    bucket_note = (
        f"one column per {duration_text(t.window)} window"
        if t.bucket == t.window
        else f"{duration_text(t.window)} windows merged into {duration_text(t.bucket)} buckets (worst value shown)"
    )
    figure = (
        figures.model_timeline(t)
        if not t.matrix.empty or not t.share.empty
        else figures.empty_figure("no scores in this range: pick a wider range")
    )
    return html.Div(
        [
            page_header(
                [html.Span(name), html.Span(f" · {model.task}", className="text-muted fw-normal fs-5")],
                f"{len(model.features)} features · scores of monitor {page.monitor} · {bucket_note} · times in UTC",
                right=html.Div(links, className="d-flex gap-2"),
            ),
            html.Div(
                [
                    monitor_picker(
                        page.monitors,
                        page.monitor,
                        # The range stays; the window does not (the other monitor's windows may differ).
                        lambda m: model_url(name, page.range, monitor=m),
                        _monitor_notes(page.alerts, data.failed),
                    ),
                    range_picker(page.range, model_url(name), {"window": window, "monitor": location.query.monitor}),
                ],
                className="ds-toolbar",
            ),
            # Another monitor's failures are noted on its picker button; one without a computed window has no
            # button, so its banner shows here.
            *[failed_banner(f) for f in data.failed if f.monitor == page.monitor or f.monitor not in page.monitors],
            _kpis(page),
            html.Div(
                dcc.Graph(
                    id="model-timeline",
                    figure=figure,
                    config={"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]},
                ),
                className="ds-card",
            ),
            html.Div(
                recompute_caption(page.computation), id="performance-recomputed", className="small text-muted mt-1"
            ),
            worst_card(*page.worst, feature_href=lambda f: feature_url(name, f, page.worst[0], page.range)),
            deployments_card(page.deployments),
            versions_card(page.versions, lambda c, b: compare_url(name, c, b)),
            dbc.Alert(
                "Tip: click a heatmap cell to open that feature's distributions for that window; "
                "drag to zoom all panels.",
                color="light",
                className="small mt-2 mb-0",
            ),
        ]
    )


def register_callbacks(app: dash.Dash, ctx: Context) -> None:
    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Output("url", "search", allow_duplicate=True),
        Input("model-timeline", "clickData"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def open_feature(click: dict[str, Any] | None, pathname: str | None, search: str | None) -> tuple[Any, Any]:
        """A click on a heatmap cell opens that feature at that window, in the same time range."""
        point = (click or {}).get("points", [{}])[0]
        window, feature = point.get("customdata"), point.get("y")
        if not window or not isinstance(window, str) or not isinstance(feature, str) or not pathname:
            return no_update, no_update
        params = PageQuery.parse(search)
        model = pathname.rstrip("/").split("/")[-1]
        keep = {"range": params.preset, "from": params.start, "to": params.end, "monitor": params.monitor}
        return f"/models/{model}/features/{feature}", query_string(**keep, window=window)


PAGE = Page(path="/models/<model>", query=query, render=render, register_callbacks=register_callbacks)
