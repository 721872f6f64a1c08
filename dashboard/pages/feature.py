"""Feature page: reference vs window distribution, the drift score over time with its threshold, quality;
all of one monitor (``monitor=``, default the model's primary monitor)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from dashboard import figures, queries
from dashboard.context import Context
from dashboard.pages.base import Page
from dashboard.queries import Extent, ModelInfo, WindowScore
from dashboard.segments import worst_card
from dashboard.state import Location, TimeRange, feature_url, model_url, report_url, with_params
from dashboard.theme import empty_state, kpi, monitor_picker, page_header, range_picker, time_text
from monitor.methods import SEQUENTIAL_METHODS
from monitor.store.segments import SegmentRank, worst_segments

_QUALITY_LABELS = {
    "missing_share": "Missing",
    "type_error_share": "Type errors",
    "out_of_range_share": "Out of reference range",
    "unseen_category_share": "Unseen categories",
}


def _fmt(value: float | None, share: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:.2%}" if share else f"{value:.3g}"


def threshold_text(details: dict[str, Any], threshold: float | None) -> str:
    """The threshold that judged a drift score and its kind: calibrated to the false-alarm budget (how, after
    the value: before it, the value ended a two-line parenthesis), or the test's fixed one."""
    calibrated = details.get("calibrated")
    if isinstance(calibrated, dict) and "alpha" in calibrated:
        return (
            f"calibrated threshold {_fmt(threshold)} (α {calibrated['alpha']:.2g} per window; the reference "
            f"flags {calibrated.get('reference_flags', '?')})"
        )
    return f"fixed threshold {_fmt(threshold)}"


def _drift_kpi(score: WindowScore | None) -> html.Div:
    if score is None:
        return kpi("Drift", "—", "no drift score in this window")
    if score.status != "ok":
        return kpi("Drift", "not tested", score.reason or score.status)
    verdict = "DRIFT" if score.breached else "no drift"
    return kpi(
        f"Drift ({score.method})",
        verdict,
        f"{score.method} = {_fmt(score.value)}, {threshold_text(score.details, score.threshold)}",
        tone="critical" if score.breached else "ok",
        id="kpi-drift",
    )


def _slow_drift_kpi(score: WindowScore | None) -> list[html.Div]:
    """The slow-drift statistic of the window (docs/detectors.md, Slow drift); nothing when not configured."""
    if score is None:
        return []
    if score.status != "ok":
        return [kpi("Slow drift", "—", score.reason or score.status)]
    return [
        kpi(
            f"Slow drift ({score.method})",
            "DRIFT" if score.breached else "no drift",
            f"statistic {_fmt(score.value)} over {score.details.get('windows', '?')} windows, threshold "
            f"{_fmt(score.threshold)}",
            tone="critical" if score.breached else "ok",
            id="kpi-slow-drift",
        )
    ]


def _quality_kpis(scores: list[WindowScore]) -> list[html.Div]:
    out = []
    for score in sorted(
        scores, key=lambda s: list(_QUALITY_LABELS).index(s.method) if s.method in _QUALITY_LABELS else 99
    ):
        label = _QUALITY_LABELS.get(score.method, score.method)
        if score.status != "ok":
            out.append(kpi(label, "—", score.reason or score.status))
            continue
        count = score.details.get("count")
        of = score.details.get("of")
        sub = f"{count} of {of} rows" if count is not None and of is not None else ""
        out.append(
            kpi(
                label,
                _fmt(score.value, share=True),
                f"{sub} · limit {_fmt(score.threshold, share=True)}",
                tone="critical" if score.breached else None,
            )
        )
    return out


@dataclass(frozen=True)
class FeatureData:
    model: ModelInfo
    extent: Extent
    range: TimeRange
    drift: pd.DataFrame
    quality: pd.DataFrame
    window: datetime | None  # the URL's window, else the worst one in the range
    scores: list[WindowScore]  # every score of ``window``
    worst: list[SegmentRank] = field(default_factory=list)  # ``window``'s segments ranked by this feature's drift


def query(ctx: Context, location: Location) -> FeatureData | None:
    """The feature's scores over the range and in one window, of one monitor; None for an unknown model."""
    feature = location.params["feature"]
    with queries.read_only(ctx.engine) as conn:
        model = queries.model_by_name(conn, location.params["model"])
        if model is None:
            return None
        extent = queries.model_extent(conn, model.id, location.query.monitor)
        tr = location.query.time_range(extent.first, extent.last, extent.window)
        monitor = extent.monitor or ""  # no monitor yet: every read below is empty
        drift = queries.feature_scores(conn, model.id, monitor, feature, tr.start, tr.end, ("drift",))
        quality = queries.feature_scores(conn, model.id, monitor, feature, tr.start, tr.end, ("quality",))
        window = location.query.window or queries.worst_window(conn, model.id, monitor, feature, tr.start, tr.end)
        scores = queries.feature_window(conn, model.id, monitor, feature, window) if window else []
        worst = worst_segments(conn, monitor, window, feature=feature)[1] if window else []
    return FeatureData(model, extent, tr, drift, quality, window, scores, worst)


def render(location: Location, data: FeatureData | None) -> html.Div:
    model_name, feature, asked = location.params["model"], location.params["feature"], location.query.window
    if data is None:
        return html.Div(
            [
                page_header(feature),
                empty_state(f"Unknown model {model_name!r}", "Go back to ", dcc.Link("the overview", href="/"), "."),
            ]
        )
    model, extent, tr, window, scores = data.model, data.extent, data.range, data.window, data.scores
    drift, quality = data.drift, data.quality
    kind = model.features.get(feature, "model output" if feature in queries.OUTPUT_COLUMNS else "unknown")
    asked_monitor = location.query.monitor
    back = dcc.Link(
        f"← {model_name}", href=model_url(model_name, tr, window, monitor=asked_monitor), className="ds-back"
    )
    header = page_header(
        [back, html.Span(f" / {feature}")],
        f"{kind} · scores of monitor {extent.monitor or '—'} · window {time_text(window)} · times in UTC",
        right=html.Div(
            [
                dcc.Link(
                    "Window report",
                    href=report_url(extent.monitor, window),
                    className="btn btn-sm btn-outline-primary",
                )
                if window and scores and extent.monitor
                else None,
            ],
            className="d-flex gap-2",
        ),
    )
    picker = monitor_picker(
        extent.monitors, extent.monitor, lambda m: feature_url(model_name, feature, tr=tr, monitor=m), {}
    )
    keep = {"window": asked, "monitor": asked_monitor}
    if drift.empty and quality.empty:
        return html.Div(
            [
                header,
                html.Div([picker, range_picker(tr, feature_url(model_name, feature), keep)], className="ds-toolbar"),
                empty_state(
                    f"No scores for {feature!r} in this range",
                    "Pick a wider range, or check that the feature is listed under ",
                    html.Code(f"models.{model_name}.features"),
                    " in driftscope.yaml.",
                ),
            ]
        )
    drift_score = next((s for s in scores if s.kind == "drift" and s.method not in SEQUENTIAL_METHODS), None)
    slow_score = next((s for s in scores if s.kind == "drift" and s.method in SEQUENTIAL_METHODS), None)
    histogram = (drift_score.details.get("histogram") if drift_score else None) or {}
    distribution = (
        figures.distribution(histogram, feature, window)
        if histogram and window
        else figures.empty_figure("no histogram stored for this window (not enough data to test)", 330)
    )
    step = extent.window
    nav = html.Div(
        [
            dcc.Link(
                "← previous window",
                href=feature_url(model_name, feature, window - step, tr, monitor=asked_monitor),
                className="btn btn-sm btn-outline-secondary",
            )
            if window
            else None,
            dcc.Link(
                "next window →",
                href=feature_url(model_name, feature, window + step, tr, monitor=asked_monitor),
                className="btn btn-sm btn-outline-secondary",
            )
            if window and extent.last and window < extent.last
            else None,
        ],
        className="d-flex gap-2",
    )
    return html.Div(
        [
            header,
            html.Div(
                [picker, range_picker(tr, feature_url(model_name, feature), keep), nav],
                className="ds-toolbar",
            ),
            html.Div(
                [
                    _drift_kpi(drift_score),
                    *_slow_drift_kpi(slow_score),
                    *_quality_kpis([s for s in scores if s.kind == "quality"]),
                ],
                className="ds-kpis",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        html.Div(
                            dcc.Graph(id="feature-distribution", figure=distribution, config={"displaylogo": False}),
                            className="ds-card",
                        ),
                        lg=6,
                    ),
                    dbc.Col(
                        html.Div(
                            dcc.Graph(
                                id="feature-drift",
                                figure=figures.feature_drift(drift, extent.monitor or "", tr.start, tr.end, window),
                                config={"displaylogo": False},
                            ),
                            className="ds-card",
                        ),
                        lg=6,
                    ),
                ],
                className="g-3",
            ),
            html.Div(
                dcc.Graph(
                    id="feature-quality",
                    figure=figures.feature_quality(quality, extent.monitor or "", tr.start, tr.end),
                    config={"displaylogo": False},
                ),
                className="ds-card mt-3",
            ),
            worst_card(window, data.worst, feature=feature),
            dbc.Alert(
                "Tip: click a point of the drift chart to inspect that window.",
                color="light",
                className="small mt-2 mb-0",
            ),
        ]
    )


def register_callbacks(app: dash.Dash, ctx: Context) -> None:
    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input("feature-drift", "clickData"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def pick_window(click: dict[str, Any] | None, search: str | None) -> Any:
        """A click on a point of the drift chart shows that window."""
        point = (click or {}).get("points", [{}])[0]
        window = point.get("customdata")
        return with_params(search, window=window) if isinstance(window, str) else no_update


PAGE = Page(
    path="/models/<model>/features/<feature>", query=query, render=render, register_callbacks=register_callbacks
)
