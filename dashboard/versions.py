"""The model page's "Deployments" and "Versions" cards (docs/versions.md).

Versions, commits, names and notes are data: they reach the page only as text children (React escapes
them). A pipeline URL becomes a link only when it is http(s) — the store refuses anything else, and this
checks again, so a row written around the checks still cannot put ``javascript:`` in an ``href`` — and
opens in a new tab with ``rel="noopener noreferrer"``.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from dash import dcc, html

from dashboard.theme import time_text
from monitor.store.deployments import DeploymentRow, VersionRows

SHOWN = 10  # deployments on the card, newest first
TEXT_CHARS = 40  # of a commit or a version in a cell; whole in its tooltip


def traffic_text(share: float | None) -> str:
    return "all traffic" if share is None or share >= 1 else f"{share * 100:g} % canary"


def safe_link(url: str | None) -> str | None:
    """``url`` if it may be an ``href`` (absolute http or https), else None."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _cut(text: str) -> html.Span:
    shown = text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"
    return html.Span(shown, title=text, className="font-monospace")


def _run(url: str | None) -> html.A | str:
    href = safe_link(url)
    if href is None:
        return ""
    return html.A("pipeline run", href=href, target="_blank", rel="noopener noreferrer", className="ds-deploy-run")


def deployments_card(rows: list[DeploymentRow]) -> html.Div | None:
    """The model's deployments in the page's range, newest first; None when there are none."""
    if not rows:
        return None
    body = [
        html.Tr(
            [
                html.Td(_cut(d.version)),
                html.Td(time_text(d.deployed_at)),
                html.Td(traffic_text(d.traffic)),
                html.Td(_cut(d.commit) if d.commit else ""),
                html.Td(d.deployed_by),
                html.Td(_run(d.url)),
                html.Td(d.note or "", className="small text-muted"),
            ]
        )
        for d in rows[:SHOWN]
    ]
    more = len(rows) - SHOWN
    return html.Div(
        [
            html.H6("Deployments", className="mb-1"),
            html.Div(
                "Versions deployed in this range (`driftscope deploy record`), drawn as vertical lines on the charts."
                + (f" {more} older one(s) not shown: `driftscope deploy list`." if more > 0 else ""),
                className="small text-muted mb-2",
            ),
            html.Table(
                [
                    html.Thead(
                        html.Tr([html.Th(h) for h in ("Version", "Deployed", "Traffic", "Commit", "By", "Run", "Note")])
                    ),
                    html.Tbody(body),
                ],
                className="table table-sm mb-0",
            ),
        ],
        id="deployments",
        className="ds-card mt-3",
    )


def _compare(version: str | None, seen: list[VersionRows], href: Callable[[str, str], str] | None) -> html.Td:
    """A link comparing ``version`` with the version that served the most other rows (the comparison page)."""
    other = next((v.version for v in seen if v.version is not None and v.version != version), None)
    if href is None or version is None or other is None:
        return html.Td("")
    shown = other if len(other) <= TEXT_CHARS else other[: TEXT_CHARS - 1] + "…"
    return html.Td(dcc.Link(f"compare with {shown}", href=href(version, other), className="ds-compare-link"))


def versions_card(seen: list[VersionRows], compare_href: Callable[[str, str], str] | None = None) -> html.Div | None:
    """Rows per version in the range; None when no row names a version and no deployment was recorded.
    ``compare_href(candidate, baseline)``: the comparison page's URL, linked from each version."""
    if not seen or all(v.version is None for v in seen):
        return None
    total = sum(v.rows for v in seen) or 1
    body = [
        html.Tr(
            [
                html.Td(_cut(v.version) if v.version is not None else html.Span("no version", className="text-muted")),
                html.Td(f"{v.rows:,}", className="text-end"),
                html.Td(f"{v.rows / total:.1%}", className="text-end"),
                html.Td(f"{v.rows - v.tagged:,}", className="text-end text-muted"),
                _compare(v.version, seen, compare_href),
            ]
        )
        for v in seen
    ]
    return html.Div(
        [
            html.H6("Versions", className="mb-1"),
            html.Div(
                "Predictions per model version in this range. Rows that named no version count for the version "
                "deployed (to all traffic) at their time: the last column.",
                className="small text-muted mb-2",
            ),
            html.Table(
                [
                    html.Thead(
                        html.Tr(
                            [
                                html.Th("Version"),
                                html.Th("Rows", className="text-end"),
                                html.Th("Share", className="text-end"),
                                html.Th("Without a version", className="text-end"),
                                html.Th(""),
                            ]
                        )
                    ),
                    html.Tbody(body),
                ],
                className="table table-sm mb-0",
            ),
        ],
        id="versions",
        className="ds-card mt-3",
    )
