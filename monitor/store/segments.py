"""Per-segment scores in the store: the deployments that name a row's version, reading the scores back, and
ranking the segments of a window by how far they moved.

A monitor with ``segments:`` scores each window once more per segment (``segment_score``, written by the
scheduler beside the window's ``score`` rows; per-version scores are segments with ``segment_by`` =
``model_version``). The dashboard, the alert messages and the read API read them through
:func:`worst_segments`, so all three rank alike.

**The ranking rule** (:func:`rank_segments`, docs/detectors.md, Segments): each score that can breach is
put on one scale, its *severity*, where 1.0 is exactly at its threshold and more is worse:

- a drift distance: ``value / threshold``;
- a drift p-value: ``log10(p) / log10(threshold)`` (a p-value of 0.0001 against 0.05 is 3.07);
- a (realized or estimated) performance metric with its reference band: how far it fell from the band's
  middle, in half-widths of the band — 1.0 at the band's edge, 0 at its middle, negative when better.

A segment's severity is the largest of its scores' (``worst`` names that score); segments rank by
severity, then by rows (a large segment matters more), then by name. Dataset-level drift (the share of
drifted features) is left out: it is a count, not a distance. A segment whose rows fell below
``segment_min_rows`` has no severity and ranks last, with its row count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, func, select

from monitor.store.tables import Deployment, SegmentScore

# segment_by of per-version segments; a row whose version is unknown is in no version's segment.
VERSION = "model_version"
# Scores a segment is ranked on.
RANKED_KINDS = ("drift", "performance", "estimated_performance")
_P_FLOOR = 1e-300


class ScoreLike(Protocol):
    """What the ranking reads of a score: a stored ``segment_score`` row or a detector's ``Score``."""

    @property
    def kind(self) -> str: ...
    @property
    def feature(self) -> str | None: ...
    @property
    def method(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def breached(self) -> bool | None: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


def _rankable(score: ScoreLike) -> bool:
    # Dataset-level drift (share_drifted, count_drifted) is a count, not a distance.
    return score.kind in RANKED_KINDS and not (score.kind == "drift" and score.feature is None)


def severity(score: ScoreLike) -> float | None:
    """How far ``score`` moved on the ranking scale (1.0 = at its threshold), or ``None`` if it cannot breach."""
    value, threshold = score.value, score.threshold
    if score.status != "ok" or value is None or threshold is None or not _rankable(score):
        return None
    if not (math.isfinite(value) and math.isfinite(threshold)):
        return None
    if score.kind == "drift":
        if score.details.get("p_value"):
            if not 0 < threshold < 1:
                return None
            return math.log10(max(value, _P_FLOOR)) / math.log10(threshold)
        return value / threshold if threshold > 0 else None
    lower, upper = score.details.get("band_lower"), score.details.get("band_upper")
    if lower is None or upper is None or not upper > lower:
        return None
    middle, half = (lower + upper) / 2, (upper - lower) / 2
    # The threshold is the band's upper edge for an error metric (lower is better), else its lower edge.
    worse = value - middle if threshold == upper and threshold != lower else middle - value
    return worse / half


@dataclass(frozen=True, slots=True)
class SegmentRank:
    """One segment of one window, as ranked: its worst score and how many of its scores breached."""

    segment_by: str
    segment: str
    rows: int
    severity: float | None  # None: insufficient data (or nothing that can breach)
    worst_kind: str | None = None
    worst_feature: str | None = None  # the feature (drift) or metric (performance) of the worst score
    worst_method: str | None = None
    worst_value: float | None = None
    worst_threshold: float | None = None
    breached: int = 0
    status: str = "ok"
    reason: str | None = None

    @property
    def label(self) -> str:
        """``channel = web``: what a person reads (escape it wherever it goes: it is data)."""
        return f"{self.segment_by} = {self.segment}"


@dataclass(frozen=True, slots=True)
class SegmentScoreRow:
    """One stored ``segment_score`` row (plain values)."""

    segment_by: str
    segment: str
    rows: int
    kind: str
    feature: str | None
    method: str
    value: float | None
    threshold: float | None
    breached: bool | None
    status: str
    reason: str | None
    details: Mapping[str, Any]


def rank_segments(scores: Iterable[tuple[str, str, int, ScoreLike]]) -> list[SegmentRank]:
    """Segments ranked worst first by the rule in this module's docstring.

    ``scores`` are ``(segment_by, segment, rows, score)``; a segment with a score of status
    ``insufficient_data`` and kind ``segment`` (its rows below the minimum) ranks last with that reason.
    """
    groups: dict[tuple[str, str], list[tuple[int, ScoreLike]]] = {}
    for segment_by, segment, rows, score in scores:
        groups.setdefault((segment_by, segment), []).append((rows, score))
    ranked = []
    for (segment_by, segment), members in groups.items():
        rows = max(r for r, _ in members)
        marker = next((s for _, s in members if s.kind == "segment" and s.status != "ok"), None)
        if marker is not None:
            ranked.append(SegmentRank(segment_by, segment, rows, None, status=marker.status, reason=marker.reason))
            continue
        worst: tuple[float, ScoreLike] | None = None
        breached = 0
        for _, s in members:
            breached += bool(s.breached) and _rankable(s)
            level = severity(s)
            if level is not None and (worst is None or level > worst[0]):
                worst = (level, s)
        if worst is None:
            ranked.append(SegmentRank(segment_by, segment, rows, None, breached=breached))
            continue
        level, s = worst
        feature = s.feature if s.kind == "drift" else s.method
        ranked.append(
            SegmentRank(segment_by, segment, rows, level, s.kind, feature, s.method, s.value, s.threshold, breached)
        )
    return sorted(ranked, key=_rank_key)


def _rank_key(rank: SegmentRank) -> tuple[bool, float, int, str, str]:
    return (rank.severity is None, -(rank.severity or 0.0), -rank.rows, rank.segment_by, rank.segment)


# --- reads ---------------------------------------------------------------------------------------


def deployments(conn: Connection, model_id: int, until: datetime) -> list[tuple[datetime, str, float | None]]:
    """``(deployed_at, version, traffic)`` of the model's deployments at or before ``until``, oldest first."""
    rows = conn.execute(
        select(Deployment.deployed_at, Deployment.version, Deployment.traffic)
        .where(Deployment.model_id == model_id, Deployment.deployed_at <= until)
        .order_by(Deployment.deployed_at, Deployment.id)
    ).all()
    return [(r.deployed_at, r.version, r.traffic) for r in rows]


def segment_window(conn: Connection, monitor: str, window_start: datetime | None = None) -> datetime | None:
    """The window whose segments are shown: ``window_start`` if it has segment scores, else (no window
    given) the newest window that has."""
    query = select(func.max(SegmentScore.window_start)).where(SegmentScore.monitor == monitor)
    if window_start is not None:
        query = query.where(SegmentScore.window_start == window_start)
    found: datetime | None = conn.execute(query).scalar()
    return found


def segment_scores(conn: Connection, monitor: str, window_start: datetime) -> list[SegmentScoreRow]:
    """Every segment score of ``monitor``'s window at ``window_start``."""
    s = SegmentScore
    rows = conn.execute(
        select(
            s.segment_by,
            s.segment,
            s.rows,
            s.kind,
            s.feature,
            s.method,
            s.value,
            s.threshold,
            s.breached,
            s.status,
            s.reason,
            s.details,
        )
        .where(s.monitor == monitor, s.window_start == window_start)
        .order_by(s.id)
    ).all()
    return [SegmentScoreRow(**row._mapping) for row in rows]


def worst_segments(
    conn: Connection,
    monitor: str,
    window_start: datetime | None = None,
    *,
    feature: str | None = None,
    limit: int | None = None,
) -> tuple[datetime | None, list[SegmentRank]]:
    """The ranked segments of one window of ``monitor`` (the newest with segments when none is given), worst
    first, and that window; ``feature`` ranks on that feature's drift alone (the feature page)."""
    start = segment_window(conn, monitor, window_start)
    if start is None:
        return None, []
    rows = [
        r
        for r in segment_scores(conn, monitor, start)
        if feature is None or r.feature == feature or (r.kind == "segment" and r.status != "ok")
    ]
    ranked = rank_segments((r.segment_by, r.segment, r.rows, r) for r in rows)
    return start, ranked if limit is None else ranked[:limit]
