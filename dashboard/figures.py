"""Plotly figures, built from the frames :mod:`dashboard.queries` returns. Pure: data in, figure out.

The model page is one figure with one shared time axis, so zooming any panel zooms them all and an
alert's shaded span lines up with the drift, performance and service panels under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.queries import OUTPUT_COLUMNS, SEVERITY_CAP, AlertRow
from dashboard.theme import GREY, GRID, HEATMAP_SCALE, INK, MUTED, OKABE_ITO, SEVERITY_COLOURS, duration_text
from monitor.store.deployments import DeploymentRow

FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12, "color": INK}
REALIZED = OKABE_ITO["blue"]
ESTIMATED = OKABE_ITO["reddish_purple"]
UNRELIABLE = OKABE_ITO["vermillion"]  # estimates that labelled windows refute
DEPLOYMENT = OKABE_ITO["bluish_green"]  # a deployment's line and version
VERSION_LABEL_CHARS = 16  # of a version above its deployment's line; whole in the hover
REFERENCE = "rgba(138,148,166,0.18)"
METRIC_COLOURS = [OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"], OKABE_ITO["reddish_purple"]]
HEATMAP_ROW_PX = 15
SMALL_MARGIN = {"l": 56, "r": 16, "t": 36, "b": 40}
MODEBAR_PX = 32  # Plotly's mode bar (toolbar, shown on hover) covers this much of a figure's top right
TITLE_LINE_PX = 22
# The x axis's first label, centred on the plot's left edge, ran into the y axis's lowest label beside that
# edge: "0.00%" over "00:00" on the feature page's quality chart, "0%" over "-3" on its distribution.
X_LABEL_STANDOFF_PX = 8
PREFERRED_METRICS = ("roc_auc", "f1", "accuracy", "rmse", "mae", "r2")


def _base_layout(height: int, **overrides: Any) -> dict[str, Any]:
    return {
        **{
            "height": height,
            "margin": {"l": 130, "r": 24, "t": 28, "b": 36},
            "font": FONT,
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "hovermode": "closest",
            "hoverlabel": {"font": {"size": 12}},
            "showlegend": True,
            "legend": {
                "orientation": "h",
                "y": 1.0,
                "yanchor": "bottom",
                "x": 1,
                "xanchor": "right",
                "font": {"size": 11},
            },
        },
        **overrides,
    }


def _below_modebar(text: str) -> dict[str, Any]:
    """Layout of a chart whose title, left-aligned, sits on the line below the mode bar: a long title (a
    method, a monitor and how to read it) ran under the toolbar in a half-width card."""
    lines = text.count("<br>") + 1
    return {
        "title": {
            "text": text,
            "font": {"size": 13},
            "x": 0,
            "xanchor": "left",
            "y": 1,
            "yref": "paper",
            "yanchor": "bottom",
            "pad": {"b": 6},
        },
        "margin": {**SMALL_MARGIN, "t": MODEBAR_PX + lines * TITLE_LINE_PX + 6},
    }


def empty_figure(message: str, height: int = 240) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**_base_layout(height, showlegend=False))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(
        text=message, showarrow=False, font={"color": MUTED, "size": 14}, x=0.5, y=0.5, xref="paper", yref="paper"
    )
    return fig


def primary_metric(perf: pd.DataFrame) -> str | None:
    """The performance metric the model page plots: the first of PREFERRED_METRICS present, else any."""
    if perf.empty:
        return None
    present = list(dict.fromkeys(perf["method"]))
    return next((m for m in PREFERRED_METRICS if m in present), present[0])


def feature_order(matrix: pd.DataFrame) -> list[str]:
    """Input features, most drifted first (breached windows, then worst severity), then by name."""
    inputs = matrix[~matrix["feature"].isin(OUTPUT_COLUMNS)]
    if inputs.empty:
        return []
    ranked = inputs.groupby("feature").agg(breached=("breached", "sum"), worst=("severity", "max")).reset_index()
    ranked = ranked.sort_values(["breached", "worst", "feature"], ascending=[False, False, True])
    return ranked["feature"].tolist()


@dataclass(frozen=True)
class Timeline:
    """Everything the model page's figure shows, already aggregated per bucket."""

    share: pd.DataFrame
    matrix: pd.DataFrame
    performance: pd.DataFrame
    coverage: pd.DataFrame  # label coverage per bucket (queries.label_coverage)
    quality: pd.DataFrame
    metrics: pd.DataFrame
    alerts: Sequence[AlertRow]
    start: datetime
    end: datetime
    bucket: timedelta
    window: timedelta
    selected: datetime | None = None
    deployments: Sequence[DeploymentRow] = ()  # in the range, newest first (monitor.store.deployments)


def share_axis(values: Any, intervals: int) -> dict[str, Any]:
    """Range, ticks and format of a y axis of shares, from 0 to just above the largest value in
    ``intervals`` equal steps. The format has as many decimals as the step needs: a fixed ``.0%`` under
    Plotly's own ticks labelled 0, 0.5 % and 1 % all "0%"."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    top = min(float(finite.max()), 1.0) if finite.size and finite.max() > 0 else 0.01  # a flat zero gets a scale
    step = next(m * 10.0**e for e in range(-6, 1) for m in (1, 2, 5) if m * 10.0**e * intervals >= top * (1 - 1e-9))
    decimals = max(0, int(np.ceil(-np.log10(step * 100) - 1e-9)))
    return {"range": [0, min(step * intervals, 1.0)], "tick0": 0, "dtick": step, "tickformat": f".{decimals}%"}


def _mid(frame: pd.DataFrame, bucket: timedelta) -> pd.Series:
    return frame["bucket"] + pd.Timedelta(bucket) / 2


def _heatmap_text(cells: pd.DataFrame, start: pd.Series, bucket: timedelta, window: timedelta) -> pd.Series:
    """Hover text per cell; ``start`` is each cell's formatted bucket start."""
    if bucket == window:
        verdict = np.where(cells["breached"] > 0, "drift", "no drift")
        return (
            "<b>"
            + cells["feature"]
            + "</b> · "
            + start
            + " UTC<br>"
            + cells["method"]
            + " = "
            + cells["value"].map("{:.3g}".format)
            + " (threshold "
            + cells["threshold"].map("{:.3g}".format)
            + ")<br>"
            + verdict
            + " · click for the feature page"
        )
    return (
        "<b>"
        + cells["feature"]
        + "</b> · "
        + start
        + f" UTC + {duration_text(bucket)}<br>"
        + "drifted in "
        + cells["breached"].astype(int).astype(str)
        + " of "
        + cells["windows"].astype(int).astype(str)
        + " windows · worst "
        + cells["severity"].map("{:.2f}".format)
        + "× threshold<br>click for the feature page"
    )


class _Panels:
    """A figure of stacked panels sharing one time axis, built as the plain dict ``dcc.Graph`` takes.

    Plotly's object model validates every property on assignment; for a 90-day page that cost about a
    second, so the model page's figure is assembled as data and sent as is. Panel ``n`` (1-based) uses
    axes ``x{n}``/``y{n}`` (``x``/``y`` for the first), every x axis matching the first.
    """

    GAP_PX = 34
    # The top margin holds one line (the first panel's title and legend, the deployments' version labels,
    # the alert markers' tips) below the mode bar: at 28 px the toolbar covered a deployment of the last
    # hours, and an alert, at the right end of a default range.
    MARGIN: ClassVar[dict[str, int]] = {"l": 130, "r": 24, "t": MODEBAR_PX + TITLE_LINE_PX, "b": 36}

    def __init__(self, panels: Sequence[tuple[str, int]]) -> None:
        heights = [h for _, h in panels]
        total = sum(heights) + self.GAP_PX * (len(panels) - 1)
        self.count = len(panels)
        self.data: list[dict[str, Any]] = []
        self.shapes: list[dict[str, Any]] = []
        self.layout: dict[str, Any] = _base_layout(total + self.MARGIN["t"] + self.MARGIN["b"] + 52, margin=self.MARGIN)
        self.tops: list[float] = []
        annotations = []
        offset = 0.0
        for n, (title, height) in enumerate(panels, start=1):
            top = 1 - offset / total
            bottom = max(top - height / total, 0.0)  # the last panel's bottom may round below 0, which plotly refuses
            offset += height + self.GAP_PX
            self.tops.append(top)
            self.layout[f"xaxis{self._suffix(n)}"] = {
                "anchor": f"y{self._suffix(n)}",
                "domain": [0, 1],
                "showticklabels": n == len(panels),
                **({} if n == 1 else {"matches": "x"}),
            }
            self.layout[f"yaxis{self._suffix(n)}"] = {"anchor": f"x{self._suffix(n)}", "domain": [bottom, top]}
            annotations.append(
                {
                    "text": title,
                    "x": 0,
                    "xref": "paper",
                    "xanchor": "left",
                    "y": top,
                    "yref": "paper",
                    "yanchor": "bottom",
                    "showarrow": False,
                    "font": {"size": 12, "color": MUTED},
                }
            )
        self.layout["annotations"] = annotations

    @staticmethod
    def _suffix(n: int) -> str:
        return "" if n == 1 else str(n)

    def add(self, row: int, trace: dict[str, Any]) -> None:
        suffix = self._suffix(row)
        self.data.append({**trace, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "legend": f"legend{suffix}"})
        if trace.get("showlegend", True):
            # One legend per panel, at the right end of its title line, instead of one crowded legend on top.
            self.layout[f"legend{suffix}"] = {
                "orientation": "h",
                "x": 1,
                "xanchor": "right",
                "y": self.tops[row - 1],
                "yanchor": "bottom",
                "font": {"size": 11},
                "bgcolor": "rgba(255,255,255,0)",
            }

    def domain(self, row: int) -> list[float]:
        return self.layout[f"yaxis{self._suffix(row)}"]["domain"]

    def yaxis(self, row: int, **props: Any) -> None:
        self.layout[f"yaxis{self._suffix(row)}"].update(props)

    def hline(self, row: int, y: float, line: dict[str, Any]) -> None:
        suffix = self._suffix(row)
        self.shapes.append(
            {
                "type": "line",
                "xref": f"x{suffix} domain",
                "x0": 0,
                "x1": 1,
                "yref": f"y{suffix}",
                "y0": y,
                "y1": y,
                "line": line,
            }
        )

    def span(self, x0: Any, x1: Any, **props: Any) -> None:
        """A shape over every panel (x in data, y over the whole plot area)."""
        self.shapes.append({"xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1, **props})

    def figure(self, start: datetime, end: datetime) -> dict[str, Any]:
        axis = {
            "range": [start, end],
            "showgrid": True,
            "gridcolor": GRID,
            "zeroline": False,
            "showspikes": True,
            "spikemode": "across",
            "spikethickness": 1,
            "spikecolor": GREY,
            "spikedash": "solid",
        }
        for n in range(1, self.count + 1):
            self.layout[f"xaxis{self._suffix(n)}"].update(axis)
            y = self.layout[f"yaxis{self._suffix(n)}"]
            y.setdefault("showgrid", True)
            y.update(gridcolor=GRID, zeroline=False, tickfont={"size": 11})
        return {"data": self.data, "layout": {**self.layout, "shapes": self.shapes}}


def model_timeline(t: Timeline) -> dict[str, Any]:
    """Share drifted · feature × window heatmap · output drift · performance · label coverage · volume ·
    quality · metrics,
    as a plotly figure dict."""
    features = feature_order(t.matrix)
    metric_names = list(dict.fromkeys(t.metrics["name"])) if not t.metrics.empty else []
    metric = primary_metric(t.performance)
    fig = _Panels(
        [
            ("Share of drifted features", 80),
            (
                "Drift per feature × window — severity relative to threshold (click a cell)",
                max(120, HEATMAP_ROW_PX * len(features)),
            ),
            ("Prediction & score drift (severity; 1 = threshold)", 80),
            (f"Performance — {metric or 'no labels yet'}: realized vs estimated, reference band", 140),
            ("Label coverage — share of predictions labelled when performance was last computed", 50),
            ("Volume — rows per window vs expected", 80),
            ("Data quality — worst feature", 90),
            *[(f"Service — {name}", 70) for name in metric_names],
        ]
    )
    _share_panel(fig, t, row=1)
    _heatmap_panel(fig, t, features, row=2)
    _output_panel(fig, t, row=3)
    _performance_panel(fig, t, metric, row=4)
    _coverage_panel(fig, t, row=5)
    _volume_panel(fig, t, row=6)
    _quality_panel(fig, t, row=7)
    for i, name in enumerate(metric_names):
        _metric_panel(fig, t, name, METRIC_COLOURS[i % len(METRIC_COLOURS)], row=8 + i)
    _alert_spans(fig, t)
    _deployment_lines(fig, t)
    if t.selected is not None:
        mid = t.selected + t.window / 2
        fig.span(mid, mid, type="line", line={"color": INK, "width": 1.5, "dash": "dot"})
    return fig.figure(t.start, t.end)


def _hover(text: str) -> str:
    return text + "<br>%{x|%b %d %H:%M} UTC<extra></extra>"


def _share_panel(fig: _Panels, t: Timeline, row: int) -> None:
    s = t.share
    if s.empty:
        return
    colours = np.where(s["drifted_windows"] > 0, OKABE_ITO["vermillion"], OKABE_ITO["orange"])
    fig.add(
        row,
        {
            "type": "bar",
            "x": _mid(s, t.bucket),
            "y": s["share"],
            "marker": {"color": colours, "line": {"width": 0}},
            "width": t.bucket.total_seconds() * 1000 * 0.9,
            "name": "share drifted",
            "showlegend": False,
            "hovertemplate": _hover("%{y:.0%} of features drifted"),
        },
    )
    fig.yaxis(row, range=[0, 1], tickformat=".0%", nticks=3)


def _heatmap_panel(fig: _Panels, t: Timeline, features: list[str], row: int) -> None:
    cells = t.matrix[t.matrix["feature"].isin(features)].copy()
    if cells.empty:
        return
    columns = pd.DatetimeIndex(sorted(cells["bucket"].unique()))
    # Format each column once (strftime per cell cost a fifth of a second on a 90-day page).
    labels = dict(zip(columns, columns.strftime("%b %d %H:%M"), strict=True))
    cells["text"] = _heatmap_text(cells, cells["bucket"].map(labels), t.bucket, t.window)

    def grid(values: str) -> pd.DataFrame:
        return cells.pivot(index="feature", columns="bucket", values=values).reindex(index=features, columns=columns)

    severity = grid("severity").to_numpy(dtype=float)
    # What a click sends to the feature page: the bucket's start, where the cell has data.
    keys = np.where(np.isnan(severity), "", np.asarray(columns.strftime("%Y-%m-%dT%H:%M:%SZ"))[np.newaxis, :])

    fig.add(
        row,
        {
            "type": "heatmap",
            "x": pd.DatetimeIndex(columns) + pd.Timedelta(t.bucket) / 2,
            "y": features,
            "z": severity,
            "text": grid("text").fillna("").to_numpy(),
            "customdata": keys,
            "hovertemplate": "%{text}<extra></extra>",
            "zmin": 0,
            "zmax": SEVERITY_CAP,
            "colorscale": HEATMAP_SCALE,
            "xgap": 1,
            "ygap": 1,
            "colorbar": {
                "title": {"text": "× threshold", "side": "right", "font": {"size": 11}},
                "thickness": 10,
                # Beside the heatmap's own panel, not the whole figure.
                "len": fig.domain(row)[1] - fig.domain(row)[0],
                "lenmode": "fraction",
                "y": fig.domain(row)[1],
                "yanchor": "top",
                "tickvals": [0, 1, 2],
                "ticktext": ["0", "1", "≥2"],
                "x": 1.0,
                "xpad": 4,
            },
            "name": "drift",
            "showlegend": False,
        },
    )
    fig.yaxis(row, autorange="reversed", showgrid=False)


def _output_panel(fig: _Panels, t: Timeline, row: int) -> None:
    outputs = t.matrix[t.matrix["feature"].isin(OUTPUT_COLUMNS)]
    colours = {"score": OKABE_ITO["vermillion"], "prediction": OKABE_ITO["blue"], "label": OKABE_ITO["bluish_green"]}
    for column, frame in outputs.groupby("feature", sort=True):
        fig.add(
            row,
            {
                "type": "scatter",
                "x": _mid(frame, t.bucket),
                "y": frame["severity"],
                "mode": "lines",
                "line": {"width": 1.5, "color": colours[str(column)]},
                "name": f"{column} drift",
                "hovertemplate": _hover(f"{column}: %{{y:.2f}}× threshold"),
            },
        )
    fig.hline(row, 1, {"color": GREY, "width": 1, "dash": "dash"})
    fig.yaxis(row, range=[0, SEVERITY_CAP * 1.05], nticks=3)


def _band(fig: _Panels, row: int, x: pd.Series, low: pd.Series, high: pd.Series, fill: str, name: str) -> None:
    fig.add(
        row,
        {
            "type": "scatter",
            "x": x,
            "y": high,
            "mode": "lines",
            "line": {"width": 0},
            "showlegend": False,
            "hoverinfo": "skip",
            "legendgroup": name,
        },
    )
    fig.add(
        row,
        {
            "type": "scatter",
            "x": x,
            "y": low,
            "mode": "lines",
            "line": {"width": 0},
            "fill": "tonexty",
            "fillcolor": fill,
            "name": name,
            "legendgroup": name,
            "hoverinfo": "skip",
        },
    )


def _performance_panel(fig: _Panels, t: Timeline, metric: str | None, row: int) -> None:
    if metric is None:
        return
    perf = t.performance[t.performance["method"] == metric]
    band = perf.dropna(subset=["band_lower", "band_upper"])
    if not band.empty:
        _band(fig, row, _mid(band, t.bucket), band["band_lower"], band["band_upper"], REFERENCE, "reference band")
    styles = {
        "performance": ("realized", REALIZED, "solid", "rgba(0,114,178,0.15)"),
        "estimated_performance": ("estimated", ESTIMATED, "dash", "rgba(204,121,167,0.15)"),
    }
    for kind, (label, colour, dash, fill) in styles.items():
        series = perf[perf["kind"] == kind]
        if series.empty:
            continue
        ci = series.dropna(subset=["ci_lower", "ci_upper"])
        if not ci.empty:
            _band(fig, row, _mid(ci, t.bucket), ci["ci_lower"], ci["ci_upper"], fill, f"{label} 95% CI")
        fig.add(
            row,
            {
                "type": "scatter",
                "x": _mid(series, t.bucket),
                "y": series["value"],
                "mode": "lines",
                "line": {"color": colour, "width": 2, "dash": dash},
                "name": label,
                "hovertemplate": _hover(f"{label} {metric} %{{y:.3f}}"),
            },
        )
    _unreliable_points(fig, t, perf[perf["kind"] == "estimated_performance"], metric, row)
    fig.yaxis(row, nticks=4)


def _unreliable_points(fig: _Panels, t: Timeline, estimated: pd.DataFrame, metric: str, row: int) -> None:
    """Hollow vermillion rings on the estimates that labelled windows refute (monitor.store.reliability),
    with why in the hover: the realized value that fell outside the interval."""
    if "unreliable" not in estimated:
        return
    marked = estimated[estimated["unreliable"].notna()]
    if marked.empty:
        return
    fig.add(
        row,
        {
            "type": "scatter",
            "x": _mid(marked, t.bucket),
            "y": marked["value"],
            "mode": "markers",
            "marker": {"symbol": "circle-open", "size": 9, "color": UNRELIABLE, "line": {"width": 2}},
            "name": "estimate unreliable",
            "text": [f"since {m.since:%b %d %H:%M} UTC: {m.text()}" for m in marked["unreliable"]],
            "hovertemplate": _hover(f"estimate unreliable: {metric} %{{y:.3f}}<br>%{{text}}"),
        },
    )


def coverage_text(frame: pd.DataFrame, bucket: timedelta, window: timedelta) -> list[str]:
    """Hover text per bucket of :func:`dashboard.queries.label_coverage`: how many predictions were
    labelled when performance was last computed, when that was, and whether late data awaits a recompute."""
    texts = []
    # Records, not itertuples: the stubs type a named tuple's fields as any scalar (bytes too).
    for row in frame.to_dict("records"):
        labelled, rows = int(row["labelled"] or 0), int(row["rows"] or 0)
        share = f" ({row['coverage']:.0%})" if pd.notna(row["coverage"]) else ""
        one = bucket == window
        text = f"labels {labelled:,} of {rows:,}{share}" + ("" if one else f" over {int(row['windows'])} windows")
        if pd.notna(row["computed_at"]):
            newest = "" if one else " (newest window)"
            text += f"<br>performance computed {row['computed_at']:%b %d %H:%M} UTC{newest}"
        if row["stale"]:
            text += (
                "<br>late data received since: recompute pending"
                if one
                else f"<br>{int(row['stale'])} window(s) await a recompute (late data)"
            )
        texts.append(text)
    return texts


def _coverage_panel(fig: _Panels, t: Timeline, row: int) -> None:
    c = t.coverage.dropna(subset=["coverage"]) if not t.coverage.empty else t.coverage
    if c.empty:
        return
    colours = np.where(c["stale"] > 0, OKABE_ITO["orange"], OKABE_ITO["bluish_green"])
    fig.add(
        row,
        {
            "type": "bar",
            "x": _mid(c, t.bucket),
            "y": c["coverage"],
            "marker": {"color": colours, "line": {"width": 0}},
            "width": t.bucket.total_seconds() * 1000 * 0.9,
            "name": "label coverage",
            "showlegend": False,
            "text": coverage_text(c, t.bucket, t.window),
            "textposition": "none",
            "hovertemplate": _hover("%{text}"),
        },
    )
    fig.yaxis(row, range=[0, 1], tickformat=".0%", nticks=3)


def _volume_panel(fig: _Panels, t: Timeline, row: int) -> None:
    q = t.quality.dropna(subset=["rows"]) if not t.quality.empty else t.quality
    if q.empty:
        return
    x = _mid(q, t.bucket)
    fig.add(
        row,
        {
            "type": "bar",
            "x": x,
            "y": q["rows"],
            "marker": {"color": "#C9D3DF", "line": {"width": 0}},
            "name": "rows",
            "width": t.bucket.total_seconds() * 1000 * 0.9,
            "hovertemplate": _hover("%{y:,.0f} rows"),
        },
    )
    if q["expected_rows"].notna().any():
        fig.add(
            row,
            {
                "type": "scatter",
                "x": x,
                "y": q["expected_rows"],
                "mode": "lines",
                "line": {"color": INK, "width": 1, "dash": "dot"},
                "name": "expected",
                "hovertemplate": "expected %{y:,.0f}<extra></extra>",
            },
        )
    fig.yaxis(row, nticks=3, rangemode="tozero")


def _quality_panel(fig: _Panels, t: Timeline, row: int) -> None:
    q = t.quality
    if q.empty:
        return
    x = _mid(q, t.bucket)
    series = [
        ("worst_missing", "missing", OKABE_ITO["vermillion"]),
        ("worst_out_of_range", "out of range", OKABE_ITO["orange"]),
        ("worst_unseen", "unseen categories", OKABE_ITO["blue"]),
        ("worst_type_error", "type errors", OKABE_ITO["black"]),
    ]
    for column, label, colour in series:
        if q[column].notna().any():
            fig.add(
                row,
                {
                    "type": "scatter",
                    "x": x,
                    "y": q[column],
                    "mode": "lines",
                    "line": {"color": colour, "width": 1.4},
                    "name": label,
                    "hovertemplate": _hover(f"worst {label}: %{{y:.1%}}"),
                },
            )
    fig.yaxis(row, **share_axis(q[[column for column, _, _ in series]], intervals=2))


def _metric_panel(fig: _Panels, t: Timeline, name: str, colour: str, row: int) -> None:
    for _, frame in t.metrics[t.metrics["name"] == name].groupby("series_id", sort=True):
        labels = frame["labels"].iloc[0] or {}
        label = name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else "")
        fig.add(
            row,
            {
                "type": "scatter",
                "x": _mid(frame, t.bucket),
                "y": frame["value"],
                "mode": "lines",
                "line": {"color": colour, "width": 1.5},
                "name": label,
                "showlegend": False,
                "hovertemplate": _hover(f"{label} %{{y:.4g}}"),
            },
        )
    fig.yaxis(row, nticks=3, rangemode="tozero")


def _alert_spans(fig: _Panels, t: Timeline) -> None:
    """Shade each alert's firing span over every panel, with a marker on top that names it (in its hover)."""
    xs, texts, colours = [], [], []
    for alert in t.alerts:
        begin = alert.breach_start
        if begin >= t.end or (alert.breach_end is not None and alert.breach_end < t.start):
            continue
        finish = alert.breach_end or t.end
        colour = SEVERITY_COLOURS.get(alert.severity, GREY)
        fig.span(
            max(begin, t.start),
            min(finish, t.end),
            type="rect",
            fillcolor=colour,
            opacity=0.07,
            line={"width": 0},
            layer="below",
        )
        fig.span(begin, begin, type="line", line={"color": colour, "width": 1.2, "dash": "dot"})
        xs.append(max(begin, t.start))
        state = alert.state + (f", acknowledged by {alert.acknowledged_by}" if alert.acknowledged_by else "")
        # Data in the hover is escaped: a summary names versions and who deployed them (alerts.message).
        texts.append(
            f"<b>{_text(alert.rule)}</b> ({_text(alert.severity)}, {_text(state)})"
            f"<br>{_text(str(alert.annotations.get('summary', '')))}"
            f"<br>breach since the window of {begin:%b %d %H:%M} UTC"
            + (f", resolved by the window of {alert.breach_end:%b %d %H:%M} UTC" if alert.breach_end else "")
        )
        colours.append(colour)
    if xs:
        # On the first panel's top edge (its range is 0 to 1): Plotly does not draw a point outside its axis
        # range, cliponaxis or not, and the markers once at 1.02 never showed. No legend entry: it sat on
        # the version labels of deployments, and the hover names each alert.
        fig.add(
            1,
            {
                "type": "scatter",
                "x": xs,
                "y": [1] * len(xs),
                "mode": "markers",
                "marker": {"symbol": "triangle-down", "size": 11, "color": colours},
                "text": texts,
                "hovertemplate": "%{text}<extra></extra>",
                "name": "alerts",
                "showlegend": False,
                "cliponaxis": False,
            },
        )


def _text(value: str) -> str:
    """``value`` as literal text in Plotly's pseudo-HTML (hover and marker text): tags become entities."""
    return escape(value, quote=False)


def _deployment_lines(fig: _Panels, t: Timeline) -> None:
    """A vertical line over every panel at each deployment, its version on top, and who, what and when in
    the version's hover. Labels are annotations on the paper: a trace's point above its axis range is not
    drawn. Every value is data, escaped, as Plotly reads tags (``<a href>`` too) in text and hover text."""
    for d in sorted(t.deployments, key=lambda d: d.deployed_at):
        if not t.start <= d.deployed_at <= t.end:
            continue
        fig.span(d.deployed_at, d.deployed_at, type="line", line={"color": DEPLOYMENT, "width": 1.5})
        version = d.version if len(d.version) <= VERSION_LABEL_CHARS else d.version[: VERSION_LABEL_CHARS - 1] + "…"
        fig.layout["annotations"].append(
            {
                "x": d.deployed_at,
                "xref": "x",
                "y": 1,
                "yref": "paper",
                "yanchor": "bottom",
                "text": _text(version),
                "hovertext": (
                    f"<b>deployed {_text(d.version)}</b> ({'all traffic' if d.full else f'{d.traffic:.0%} canary'})"
                    + (f"<br>commit {_text(d.commit)}" if d.commit else "")
                    + f"<br>{d.deployed_at:%b %d %H:%M} UTC by {_text(d.deployed_by)}"
                ),
                "showarrow": False,
                "font": {"size": 11, "color": DEPLOYMENT},
                "bgcolor": "white",
                "borderpad": 1,
            }
        )


# --- feature page -------------------------------------------------------------------------------


def distribution(histogram: dict[str, Any], feature: str, window_start: datetime) -> go.Figure:
    """Reference vs window distribution from a drift score's ``details["histogram"]`` (shares)."""
    fig = go.Figure()
    when = f"window {window_start:%b %d %H:%M} UTC"
    if "edges" in histogram:
        edges = np.asarray(histogram["edges"], dtype=float)
        centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        for key, label, colour in (("reference", "reference", GREY), ("current", when, OKABE_ITO["vermillion"])):
            fig.add_trace(
                go.Bar(
                    x=centres,
                    y=histogram[key],
                    width=widths,
                    name=label,
                    marker={"color": colour, "line": {"width": 0}},
                    opacity=0.55,
                    hovertemplate="%{x:.4g}: %{y:.1%}<extra>" + label + "</extra>",
                )
            )
        fig.update_layout(barmode="overlay")
    else:
        for key, label, colour in (("reference", "reference", GREY), ("current", when, OKABE_ITO["vermillion"])):
            fig.add_trace(
                go.Bar(
                    x=histogram["categories"],
                    y=histogram[key],
                    name=label,
                    marker={"color": colour},
                    hovertemplate="%{x}: %{y:.1%}<extra>" + label + "</extra>",
                )
            )
        fig.update_layout(barmode="group")
    fig.update_layout(
        **_base_layout(330, margin=SMALL_MARGIN),
        title={"text": f"{feature}: share of rows", "font": {"size": 13}, "x": 0, "xanchor": "left"},
    )
    fig.update_yaxes(tickformat=".0%", gridcolor=GRID, zeroline=False)
    fig.update_xaxes(gridcolor=GRID, ticklabelstandoff=X_LABEL_STANDOFF_PX)
    return fig


def feature_drift(
    scores: pd.DataFrame, monitor: str, start: datetime, end: datetime, selected: datetime | None
) -> go.Figure:
    """The feature's drift score per window of one monitor with its threshold; p-values on a log axis
    (small = drift).

    One line, of the newest method: a p-value and a distance share no axis, so windows scored with
    another method (the config changed) are left out and the title says so.
    """
    ok = scores[scores["status"] == "ok"]
    if ok.empty:
        return empty_figure("no drift scores for this feature in the selected range", 300)
    method = ok["method"].iloc[-1]
    others = sorted(set(ok["method"]) - {method})
    ok = ok[ok["method"] == method]
    p_value_like = bool(((ok["breached"]) == (ok["value"] < ok["threshold"])).all())
    colours = np.where(ok["breached"].fillna(False).astype(bool), OKABE_ITO["vermillion"], OKABE_ITO["blue"])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ok["window_start"],
            y=ok["value"],
            mode="lines+markers",
            line={"color": "#9FB3C8", "width": 1},
            marker={"color": colours, "size": 5},
            name=f"{method}",
            customdata=ok["window_start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            hovertemplate="%{x|%b %d %H:%M} UTC<br>"
            + method
            + " = %{y:.3g}<br>click to inspect this window<extra></extra>",
        )
    )
    thresholds = ok["threshold"].dropna()
    if not thresholds.empty:
        fig.add_hline(
            y=float(thresholds.iloc[-1]),
            line={"color": OKABE_ITO["vermillion"], "dash": "dash", "width": 1},
            annotation_text="threshold",
            annotation_position="top left",
            annotation_font={"size": 11, "color": MUTED},
        )
    if selected is not None:
        fig.add_vline(x=selected, line={"color": INK, "width": 1.5, "dash": "dot"})
    fig.update_layout(
        **_base_layout(
            330,
            showlegend=False,
            **_below_modebar(
                f"{method} over time · {monitor}"
                + (" (p-value: lower means drift)" if p_value_like else " (higher means drift)")
                + (f"<br><sup>windows scored with {', '.join(others)} not shown</sup>" if others else "")
            ),
        ),
    )
    fig.update_xaxes(range=[start, end], gridcolor=GRID, ticklabelstandoff=X_LABEL_STANDOFF_PX)
    fig.update_yaxes(
        type="log" if p_value_like else "linear",
        gridcolor=GRID,
        zeroline=False,
        exponentformat="power" if p_value_like else "none",
    )
    return fig


def feature_quality(scores: pd.DataFrame, monitor: str, start: datetime, end: datetime) -> go.Figure:
    """The feature's data-quality shares per window of one monitor, a line per check."""
    ok = scores[scores["status"] == "ok"]
    if ok.empty:
        return empty_figure("no data-quality scores for this feature in the selected range", 220)
    fig = go.Figure()
    colours = {
        "missing_share": OKABE_ITO["vermillion"],
        "out_of_range_share": OKABE_ITO["orange"],
        "unseen_category_share": OKABE_ITO["blue"],
        "type_error_share": OKABE_ITO["black"],
    }
    for method, frame in ok.groupby("method", sort=True):
        fig.add_trace(
            go.Scatter(
                x=frame["window_start"],
                y=frame["value"],
                mode="lines",
                name=str(method).replace("_", " "),
                line={"color": colours.get(str(method), GREY), "width": 1.4},
                hovertemplate="%{x|%b %d %H:%M} UTC<br>%{y:.2%}<extra>" + str(method) + "</extra>",
            )
        )
    fig.update_layout(
        **_base_layout(220, margin=SMALL_MARGIN),
        title={"text": f"Data quality over time · {monitor}", "font": {"size": 13}, "x": 0, "xanchor": "left"},
    )
    fig.update_xaxes(range=[start, end], gridcolor=GRID, ticklabelstandoff=X_LABEL_STANDOFF_PX)
    fig.update_yaxes(**share_axis(ok["value"], intervals=4), gridcolor=GRID, zeroline=False)
    return fig
