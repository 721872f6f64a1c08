"""The "Where is it worst" card of the model and feature pages: a window's segments ranked by how far they
moved (monitor/store/segments.py has the rule).

Segment names are data: they reach the page only as text children (React escapes them) and never a URL;
a long one is cut, whole in its tooltip.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dash import dcc, html

from dashboard.theme import time_text
from monitor.store.segments import SegmentRank

SHOWN = 8  # segments on the card, worst first
NAME_CHARS = 60


def _name(rank: SegmentRank) -> html.Span:
    text = rank.label
    shown = text if len(text) <= NAME_CHARS else text[: NAME_CHARS - 1] + "…"
    return html.Span(shown, title=text, className="font-monospace")


def _worst(rank: SegmentRank, feature_href: Callable[[str], str] | None) -> html.Span | str:
    if rank.severity is None:
        return rank.reason or "nothing that can breach"
    value = f"{rank.worst_value:.3g}" if rank.worst_value is not None else "—"
    threshold = f"{rank.worst_threshold:.3g}" if rank.worst_threshold is not None else "—"
    what = f"{rank.worst_method} {value} (threshold {threshold})"
    name = rank.worst_feature or ""
    if rank.worst_kind == "drift" and feature_href is not None:
        return html.Span([dcc.Link(name, href=feature_href(name)), f" drift: {what}"])
    if rank.worst_kind == "drift":
        return f"{name} drift: {what}"
    return f"estimated {what}" if rank.worst_kind == "estimated_performance" else what


def worst_card(
    window: datetime | None,
    ranked: list[SegmentRank],
    *,
    feature: str | None = None,
    feature_href: Callable[[str], str] | None = None,
) -> html.Div | None:
    """The card, or None when the window has no segment scores (no ``segments:``, one version)."""
    if window is None or not ranked:
        return None
    scope = f"{feature}'s drift" if feature else "drift and performance"
    rows = [
        html.Tr(
            [
                html.Td(_name(r)),
                html.Td(f"{r.rows:,}", className="text-end"),
                html.Td(f"{r.severity:.2f}×" if r.severity is not None else "—", className="text-end"),
                html.Td(str(r.breached), className="text-end"),
                html.Td(_worst(r, feature_href)),
            ],
            className="ds-segment-breached" if r.severity is not None and r.severity >= 1 else None,
        )
        for r in ranked[:SHOWN]
    ]
    more = len(ranked) - SHOWN
    return html.Div(
        [
            html.H6("Where is it worst", className="mb-1"),
            html.Div(
                f"Segments of the window {time_text(window)}, ranked by how far their {scope} moved: 1.00× is at "
                "the threshold." + (f" {more} more segment(s) not shown." if more > 0 else ""),
                className="small text-muted mb-2",
            ),
            html.Table(
                [
                    html.Thead(
                        html.Tr(
                            [
                                html.Th("Segment"),
                                html.Th("Rows", className="text-end"),
                                html.Th("Moved", className="text-end"),
                                html.Th("Breached", className="text-end"),
                                html.Th("Worst score"),
                            ]
                        )
                    ),
                    html.Tbody(rows),
                ],
                className="table table-sm mb-0",
            ),
        ],
        id="worst-segments",
        className="ds-card mt-3",
    )
