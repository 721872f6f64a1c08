"""URL state, figures and page building without a browser."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest
from sqlalchemy import Engine

from dashboard import figures
from dashboard.app import render_page
from dashboard.context import Context
from dashboard.pages import model as model_page
from dashboard.queries import AlertRow
from dashboard.state import PageQuery, TimeRange, bucket_for, feature_url, model_url, parse_time, report_url
from dashboard.theme import duration_text
from monitor.config import Config
from monitor.store.deployments import DeploymentRow
from monitor.store.engine import make_engine, upgrade
from tests.seed import SeedInfo, seed_store

T0 = datetime(2026, 11, 18, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, SeedInfo]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('figs') / 'store.db'}")
    upgrade(engine)
    return engine, seed_store(engine)


def test_urls_round_trip_the_page_state() -> None:
    window = datetime(2026, 11, 24, 13, tzinfo=UTC)
    url = model_url("churn", figures_range(), window)
    path, _, search = url.partition("?")
    assert path == "/models/churn"
    query = PageQuery.parse(search)
    assert (query.start, query.end, query.window) == (T0, T0 + timedelta(days=7), window)
    assert feature_url("churn", "monthly charges", window).startswith(
        "/models/churn/features/monthly%20charges?window="
    )
    assert report_url("churn-hourly", window) == "/reports/churn-hourly/2026-11-24T13:00:00Z"
    assert parse_time("2026-11-24 13:00") == window  # what the range fields show
    assert parse_time("2026-11-24T14:00:00+01:00") == window
    assert parse_time("yesterday") is None
    assert PageQuery.parse("?range=bogus&window=nope") == PageQuery()
    # Alert messages percent-encode the window (alerts.message.deep_link).
    assert PageQuery.parse("?window=2026-11-24T13%3A00%3A00Z").window == window


def figures_range() -> TimeRange:
    return TimeRange(T0, T0 + timedelta(days=7))


def test_duration_text() -> None:
    assert [duration_text(timedelta(seconds=s)) for s in (60, 300, 3600, 43200, 86400, 90, 5400)] == [
        "1 min",
        "5 min",
        "1 h",
        "12 h",
        "1 d",
        "90 s",
        "90 min",
    ]


def test_time_range_defaults() -> None:
    first, last = T0, T0 + timedelta(days=30) - HOUR
    end = last + HOUR
    assert PageQuery().time_range(first, last, HOUR).start == end - timedelta(days=7)
    assert PageQuery(preset="24h").time_range(first, last, HOUR).start == end - timedelta(days=1)
    short = PageQuery().time_range(T0, T0 + timedelta(hours=3), HOUR)
    assert (short.start, short.preset) == (T0, "all")  # less history than a week: show it all
    window = T0 + timedelta(days=10)
    framed = PageQuery(window=window).time_range(first, last, HOUR)
    assert framed.start < window < framed.end and framed.length < timedelta(days=7)  # framed, not a week


@pytest.mark.parametrize(
    ("length", "window", "bucket"),
    [
        (timedelta(days=7), HOUR, HOUR),
        (timedelta(days=90), HOUR, timedelta(hours=12)),
        (timedelta(days=30), HOUR, timedelta(hours=3)),
        (timedelta(hours=3), timedelta(minutes=1), timedelta(minutes=1)),
        (timedelta(days=7), timedelta(minutes=1), HOUR),
    ],
)
def test_bucket_keeps_charts_readable(length: timedelta, window: timedelta, bucket: timedelta) -> None:
    got = bucket_for(length, window)
    assert got == bucket
    assert got % window == timedelta(0)


def test_model_timeline_figure(seeded: tuple[Engine, SeedInfo]) -> None:
    engine, info = seeded
    query = PageQuery(start=info.churn.first_window, end=info.churn.last_window + HOUR)
    with engine.connect() as conn:
        model = model_page.queries.model_by_name(conn, "churn")
    page = model_page.build(engine, model, query)
    assert page is not None
    fig = go.Figure(figures.model_timeline(page.timeline))  # the dict is a valid plotly figure
    heatmap = next(trace for trace in fig.data if trace.type == "heatmap")
    z = pd.DataFrame(heatmap.z, index=list(heatmap.y))
    assert z.shape == (len(info.churn.features), 24 * 7)
    # Most drifted features first; all of them drift in the last window.
    assert set(heatmap.y[: len(info.drifting_features)]) == set(info.drifting_features)
    assert (z.iloc[: len(info.drifting_features), -1] >= 1).all()
    assert heatmap.customdata[0][-1] == "2026-11-24T23:00:00Z"  # what a click sends to the feature page
    assert heatmap.xaxis == "x2" and heatmap.yaxis == "y2"  # the e2e test clicks subplot x2y2
    names = {trace.name for trace in fig.data}
    assert {"realized", "estimated", "reference band", "score drift", "alerts"} <= names
    titles = [a.text for a in fig.layout.annotations]
    assert any("Service — p99_latency_seconds" in t for t in titles)
    alert_marker = next(trace for trace in fig.data if trace.name == "alerts")
    # The primary monitor's page: its firing alert and its resolved one; the feature-drift alert is the
    # rolling monitor's, and only that monitor's page shows it.
    assert len(alert_marker.x) == 2
    rolling = model_page.build(engine, model, replace(query, monitor=info.churn.rolling_monitor))
    assert rolling is not None and rolling.monitor == info.churn.rolling_monitor
    assert {a.rule for a in rolling.timeline.alerts} == {"feature drift"}
    layout = fig.layout.to_plotly_json()
    assert {layout[name].get("matches") for name in layout if name.startswith("xaxis") and name != "xaxis"} == {"x"}


def test_drift_episode_start() -> None:
    buckets = pd.to_datetime([T0 + i * HOUR for i in range(6)], utc=True)
    matrix = pd.DataFrame(
        {
            "bucket": list(buckets) * 2,
            "feature": ["a"] * 6 + ["b"] * 6,
            # a drifted early, calmed down, drifts again from bucket 3; b drifts from bucket 4
            "breached": [*[1, 1, 0, 1, 1, 1], *[0, 0, 0, 0, 2, 1]],
        }
    )
    assert model_page.drift_episode_start(matrix, ["a", "b"]) == T0 + 3 * HOUR
    assert model_page.drift_episode_start(matrix, ["b"]) == T0 + 4 * HOUR
    calm = matrix.assign(breached=[1, 1, 1, 1, 1, 0] * 2)
    assert model_page.drift_episode_start(calm, ["a", "b"]) is None


def test_feature_figures() -> None:
    numeric = {"edges": [0, 1, 2, 3], "reference": [0.2, 0.5, 0.3], "current": [0.1, 0.3, 0.6]}
    fig = figures.distribution(numeric, "x", T0)
    assert [t.type for t in fig.data] == ["bar", "bar"] and list(fig.data[1].y) == [0.1, 0.3, 0.6]
    assert list(fig.data[0].x) == [0.5, 1.5, 2.5]
    categorical = {"categories": ["a", "b"], "reference": [0.7, 0.3], "current": [0.4, 0.6]}
    assert list(figures.distribution(categorical, "c", T0).data[0].x) == ["a", "b"]
    scores = pd.DataFrame(
        {
            "window_start": pd.to_datetime([T0, T0 + HOUR], utc=True),
            "method": "ks",
            "value": [0.4, 0.001],
            "threshold": 0.05,
            "breached": [False, True],
            "status": "ok",
        }
    )
    drift = figures.feature_drift(scores, "m-hourly", T0, T0 + 2 * HOUR, None)
    assert drift.layout.yaxis.type == "log"  # p-values: small means drift
    assert "m-hourly" in drift.layout.title.text
    distances = scores.assign(method="wasserstein", value=[0.05, 0.3], threshold=0.1)
    assert figures.feature_drift(distances, "m", T0, T0 + 2 * HOUR, None).layout.yaxis.type == "linear"
    # A method change (config edited) never joins a p-value and a distance in one line.
    mixed = pd.concat([scores.iloc[:1], distances.iloc[1:]], ignore_index=True)
    fig = figures.feature_drift(mixed, "m", T0, T0 + 2 * HOUR, None)
    assert [list(t.y) for t in fig.data] == [[0.3]] and fig.layout.yaxis.type == "linear"
    assert "ks not shown" in fig.layout.title.text


def test_feature_drift_title_clears_the_modebar() -> None:
    """The drift chart's title ("… (higher means drift)") ran under Plotly's toolbar at the top right of
    its half-width card: it sits left-aligned on the line below it, a second line included."""
    scores = pd.DataFrame(
        {
            "window_start": [T0, T0 + HOUR],
            "method": ["ks", "wasserstein"],
            "value": [0.4, 0.3],
            "threshold": [0.05, 0.1],
            "breached": [False, True],
            "status": "ok",
        }
    )
    for fig in (
        figures.feature_drift(scores.iloc[1:], "churn-hourly", T0, T0 + 2 * HOUR, None),
        figures.feature_drift(scores, "churn-hourly", T0, T0 + 2 * HOUR, None),  # "ks not shown" below
    ):
        title = fig.layout.title
        assert (title.x, title.xanchor) == (0, "left")
        # Anchored on the plot's top edge: whatever is above the title lines is free for the toolbar.
        assert (title.y, title.yref, title.yanchor) == (1, "paper", "bottom")
        lines = title.text.count("<br>") + 1
        assert fig.layout.margin.t - title.pad.b - lines * figures.TITLE_LINE_PX >= figures.MODEBAR_PX


def test_pages_render_and_empty_states(seeded: tuple[Engine, SeedInfo]) -> None:
    engine, info = seeded
    ctx = Context(Config(), engine)
    text = lambda component: str(component.to_plotly_json())  # noqa: E731
    assert "critical" in text(render_page(ctx, "/", ""))
    assert "model-timeline" in text(render_page(ctx, "/models/churn", "?range=24h"))
    assert "No windows computed yet" in text(render_page(ctx, f"/models/{info.empty_model}", ""))
    assert "Unknown model" in text(render_page(ctx, "/models/nope", ""))
    feature = text(render_page(ctx, "/models/churn/features/contract", "?window=2026-11-24T20:00:00Z"))
    assert "feature-distribution" in feature and "DRIFT" in feature
    assert "Acknowledge" in text(render_page(ctx, "/alerts", ""))
    assert "Reports are not available" in text(render_page(ctx, "/reports/churn-hourly/2026-11-24T20:00:00Z", ""))
    assert "Page not found" in text(render_page(ctx, "/nowhere/at/all/really", ""))
    empty = Context(Config(), _empty_engine())
    assert "No models yet" in text(render_page(empty, "/", ""))


def _empty_engine() -> Engine:
    engine = make_engine("sqlite://")
    upgrade(engine)
    return engine


def test_coverage_panel_and_recompute_caption(seeded: tuple[Engine, SeedInfo]) -> None:
    """The coverage bars sit on the performance panel's time axis; their hover says how many labels the
    performance score was computed from, when, and whether a recompute is pending."""
    engine, info = seeded
    query = PageQuery(start=info.churn.first_window, end=info.churn.last_window + HOUR)
    with engine.connect() as conn:
        model = model_page.queries.model_by_name(conn, "churn")
    page = model_page.build(engine, model, query)
    assert page is not None
    fig = go.Figure(figures.model_timeline(page.timeline))
    bars = next(trace for trace in fig.data if trace.name == "label coverage")
    assert bars.yaxis == "y5" and len(bars.y) == 24 * 7
    assert set(bars.y) == {0.0, 1.0}  # the seeded windows are fully labelled, the newest not yet
    assert "labels 0 of" in bars.text[-1] and "(100%)" in bars.text[0]
    assert "performance computed" in bars.text[0]
    assert page.computation is not None and page.computation.window_start == info.churn.last_window
    assert model_page.recompute_caption(page.computation).startswith("Performance last computed Nov 25 00:05 UTC")

    frame = pd.DataFrame(
        {
            "bucket": pd.to_datetime([T0, T0 + 6 * HOUR], utc=True),
            "windows": [6, 6],
            "rows": [1000, 600],
            "labelled": [812, 0],
            "coverage": [0.812, 0.0],
            "computed_at": pd.to_datetime([T0 + timedelta(days=2), T0 + 13 * HOUR], utc=True),
            "stale": [2, 0],
        }
    )
    one = figures.coverage_text(frame.assign(windows=1), HOUR, HOUR)
    assert one[0] == (
        "labels 812 of 1,000 (81%)<br>performance computed Nov 20 00:00 UTC"
        "<br>late data received since: recompute pending"
    )
    merged = figures.coverage_text(frame, 6 * HOUR, HOUR)
    assert merged[0].startswith("labels 812 of 1,000 (81%) over 6 windows<br>performance computed Nov 20 00:00 UTC")
    assert merged[0].endswith("2 window(s) await a recompute (late data)")
    assert "recompute" not in merged[1]

    computation = model_page.queries.Computation(
        T0, T0 + HOUR, 1000, 812, T0 + timedelta(days=2), T0 + timedelta(days=3), late_labels=312, waiting_labels=40
    )
    assert model_page.recompute_caption(computation) == (
        "Performance last computed Nov 20 00:00 UTC for the newest window (Nov 18 00:00 UTC): 812 of 1,000 "
        "predictions labelled (81%), 312 of them received after the window closed; 40 label(s) received since, "
        "recompute pending."
    )
    assert model_page.recompute_caption(None) == "Performance not computed yet."


def _tick_labels(axis: dict[str, Any]) -> list[str]:
    """The labels Plotly draws for a linear axis with tick0 and dtick (d3's ".N%" formats as Python's does)."""
    top, step = axis["range"][1], axis["dtick"]
    return [format(k * step, axis["tickformat"]) for k in range(round(top / step) + 1)]


@pytest.mark.parametrize("worst", [0.0, 0.0004, 0.0012, 0.004, 0.03, 0.4, 1.0])
def test_share_axes_label_each_tick_distinctly(worst: float) -> None:
    """Issue 18: "0%" twice on the model page, "0.1%" three times on the feature page (a fixed format
    coarser than the tick spacing)."""
    ts = pd.date_range(T0, periods=3, freq="h")
    scores = pd.DataFrame(
        {"window_start": ts, "method": "missing_share", "value": [0.0, worst / 2, worst], "status": "ok"}
    )
    feature_axis = figures.feature_quality(scores, "m", T0, T0 + 3 * HOUR).to_dict()["layout"]["yaxis"]
    quality = pd.DataFrame(
        {
            "bucket": ts,
            "worst_missing": [0.0, worst / 2, worst],
            **{c: [None] * 3 for c in ("worst_out_of_range", "worst_unseen", "worst_type_error")},
            "rows": [None] * 3,
        }
    )
    empty = pd.DataFrame()
    timeline = figures.Timeline(
        share=empty,
        matrix=pd.DataFrame(columns=["feature", "bucket", "severity", "breached"]),
        performance=pd.DataFrame(columns=["method", "kind"]),
        coverage=empty,
        quality=quality,
        metrics=empty,
        alerts=[],
        start=T0,
        end=T0 + 3 * HOUR,
        bucket=HOUR,
        window=HOUR,
    )
    model_axis = figures.model_timeline(timeline)["layout"]["yaxis7"]  # "Data quality — worst feature"
    for axis in (dict(feature_axis), dict(model_axis)):
        labels = _tick_labels(axis)
        assert len(labels) == len(set(labels)) >= 3, labels
        assert axis["range"][1] >= worst


def test_alert_markers_lie_inside_their_axis_range() -> None:
    """Plotly does not draw a point outside its axis range, even with cliponaxis off: the markers were at
    y=1.02 on the first panel, whose range is 0 to 1, and never showed. Their hover text escapes data."""
    alert = AlertRow(
        id=1,
        rule="drift <b>share</b>",
        model="m",
        severity="critical",
        state="firing",
        labels={},
        annotations={"summary": "60% drifted, after 2.1 <a href='https://evil.example'>notes</a> deployed"},
        value=0.6,
        window_start=T0 + HOUR,
        started_at=T0 + HOUR,
        fired_at=T0 + HOUR,
        resolved_at=None,
        acknowledged_by="<i>eve</i>",
        acknowledged_at=T0 + 2 * HOUR,
        ack_comment=None,
    )
    fig = figures.model_timeline(_small_timeline(alerts=[alert]))
    go.Figure(fig)  # a valid plotly figure
    marker = next(trace for trace in fig["data"] if trace["name"] == "alerts")
    assert marker["yaxis"] == "y"  # the first panel
    low, high = fig["layout"]["yaxis"]["range"]
    assert marker["y"] and all(low <= y <= high for y in marker["y"])
    assert marker["x"] == [T0 + HOUR]
    # Plotly reads tags in hover text (<a href> included): the alert's data stays text.
    hover = marker["text"][0]
    assert hover.startswith("<b>drift &lt;b&gt;share&lt;/b&gt;</b> (critical, firing, acknowledged by &lt;i&gt;eve")
    assert "after 2.1 &lt;a href='https://evil.example'&gt;notes&lt;/a&gt; deployed" in hover
    resolved = replace(alert, state="resolved", window_start=T0 + 2 * HOUR, resolved_at=T0 + 3 * HOUR)
    fig = figures.model_timeline(_small_timeline(alerts=[resolved]))
    hover = next(trace for trace in fig["data"] if trace["name"] == "alerts")["text"][0]
    assert hover.endswith("breach since the window of Nov 18 01:00 UTC, resolved by the window of Nov 18 02:00 UTC")


def _small_timeline(**fields: Any) -> figures.Timeline:
    """Three hourly buckets with a share of drifted features and nothing else, plus ``fields``."""
    share = pd.DataFrame(
        {"bucket": pd.date_range(T0, periods=3, freq="h"), "share": [0.0, 0.1, 0.2], "drifted_windows": [0, 0, 1]}
    )
    empty = pd.DataFrame()
    defaults: dict[str, Any] = {"alerts": [], "start": T0, "end": T0 + 3 * HOUR, "bucket": HOUR, "window": HOUR}
    return figures.Timeline(
        share=share,
        matrix=pd.DataFrame(columns=["feature", "bucket", "severity", "breached"]),
        performance=pd.DataFrame(columns=["method", "kind"]),
        coverage=empty,
        quality=empty,
        metrics=empty,
        **{**defaults, **fields},
    )


def test_timeline_top_line_clears_the_modebar() -> None:
    """A deployment's version label sits on the plot's top edge; at the right end of the range (a deployment
    of the last hours) Plotly's toolbar covered it: the top margin holds one line below the toolbar."""
    deployment = DeploymentRow(
        id=1,
        model="m",
        version="2.1",
        deployed_at=T0 + 3 * HOUR,
        traffic=None,
        commit=None,
        url=None,
        deployed_by="ana",
        note=None,
        created_at=T0,
    )
    fig = figures.model_timeline(_small_timeline(deployments=[deployment]))
    label = next(a for a in fig["layout"]["annotations"] if a["text"] == "2.1")
    assert (label["y"], label["yref"], label["yanchor"]) == (1, "paper", "bottom")
    assert label["font"]["size"] < figures.TITLE_LINE_PX
    assert fig["layout"]["margin"]["t"] - figures.TITLE_LINE_PX >= figures.MODEBAR_PX
