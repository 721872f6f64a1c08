"""Read queries on the store for the read API, ``driftscope status`` and the numbers the dashboard shares with them.

Plain values out (frozen dataclasses), no pandas: the API serialises them and the CLI prints them, and
the core stays light. Every function takes an open :class:`~sqlalchemy.Connection` and writes nothing.

A model's health is one function, :func:`model_health`, so the API's ``/v1/models/{model}/health`` and
``driftscope status`` can never disagree: the worst severity of its firing alerts, ``ok`` when none
fires, ``no data`` before its first computed window. Its numbers are those of the dashboard: the
model's primary monitor (:func:`model_monitors`) gives the window, drift and performance, as on the
model page and the overview's first row of the model, and the rows of 24 h are its stored predictions
(:func:`predictions_24h`, the overview's "Rows, 24 h").

Score pages are keyset-paginated on ``(window_start, id)`` (see :func:`scores_page`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import ColumnElement, Connection, Row, Select, and_, case, func, or_, select
from sqlalchemy.orm import aliased

from monitor.config import parse_time
from monitor.methods import SEQUENTIAL_METHODS
from monitor.store.reliability import EstimatePoint, Unreliable, unreliable_marks
from monitor.store.tables import Alert, Model, Prediction, Reference, RejectedRecord, Run, Score, Silence

# Drift scores of these "features" describe the model's output, not its inputs.
OUTPUT_COLUMNS = ("prediction", "score", "label")
COMPUTED_STATUSES = ("succeeded", "insufficient_data")
PERFORMANCE_KINDS = ("performance", "estimated_performance")
SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}
# Exit codes of a gate (driftscope status): healthy, alerting, no data.
EXIT_HEALTHY, EXIT_ALERTING, EXIT_NO_DATA = 0, 1, 2


class CursorError(ValueError):
    """A pagination cursor that this server did not hand out."""


# --- models and health --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelRow:
    id: int
    name: str
    task: str
    features: dict[str, str]


@dataclass(frozen=True, slots=True)
class FiringAlert:
    id: int
    rule: str
    severity: str
    since: datetime
    acknowledged: bool


@dataclass(frozen=True, slots=True)
class Health:
    """What a deployment gate needs to know about one model, read in one go."""

    model: str
    state: str  # critical | warning | info (worst firing alert) | ok | no data
    firing: tuple[FiringAlert, ...]
    pending_alerts: int
    monitor: str | None = None  # the primary monitor: the window, drift and performance below are its
    latest_window: datetime | None = None
    latest_window_end: datetime | None = None
    age_seconds: float | None = None  # from the end of the latest computed window to now
    drifting_features: tuple[str, ...] = ()  # inputs breached in the latest window
    share_drifted: float | None = None
    performance: dict[str, float] = field(default_factory=dict)  # newest realized value per metric
    estimated_performance: dict[str, float] = field(default_factory=dict)
    # metric → why its newest estimate is not to be trusted (see monitor.store.reliability); trusted ones are absent
    estimate_unreliable: dict[str, Unreliable] = field(default_factory=dict)
    rows_24h: int = 0  # predictions stored in the 24 h up to the end of the model's newest window

    @property
    def exit_code(self) -> int:
        if self.firing:
            return EXIT_ALERTING
        return EXIT_NO_DATA if self.latest_window is None else EXIT_HEALTHY


def health_document(health: Health) -> dict[str, Any]:
    """A model's health as JSON values, times in UTC with ``Z``.

    The one serialisation behind ``GET /v1/models/{model}/health`` and ``driftscope status --format json``,
    so that a script reading either gets the same text.
    """
    return to_jsonable_python({**asdict(health), "exit_code": health.exit_code})


@dataclass(frozen=True, slots=True)
class MonitorExtent:
    """Where one monitor's computed windows lie; ``window`` is the length of its newest run's window."""

    name: str
    first: datetime
    last: datetime
    window: timedelta


def models(conn: Connection, allowed: Collection[str] | None = None) -> list[ModelRow]:
    """Models in the store (removed from the config or not), by name; only ``allowed`` ones when given."""
    stmt = select(Model.id, Model.name, Model.task, Model.feature_schema).order_by(Model.name)
    if allowed is not None:
        stmt = stmt.where(Model.name.in_(tuple(allowed)))
    return [ModelRow(r.id, r.name, r.task, dict(r.feature_schema or {})) for r in conn.execute(stmt)]


def model_by_name(conn: Connection, name: str) -> ModelRow | None:
    found = models(conn, (name,))
    return found[0] if found else None


def _alert_model(model: str) -> ColumnElement[bool]:
    return Alert.labels["model"].as_string() == model


def model_monitors(conn: Connection, model_id: int) -> list[MonitorExtent]:
    """The model's monitors that computed a window, primary first: the shortest window (the freshest
    view), then by name. Read from the runs, so a monitor removed from the config keeps its history."""
    computed = and_(Run.model_id == model_id, Run.status.in_(COMPUTED_STATUSES))
    spans = conn.execute(
        select(Run.monitor, func.min(Run.window_start), func.max(Run.window_start))
        .where(computed)
        .group_by(Run.monitor)
    ).all()
    out = []
    for name, first, last in spans:
        # Window arithmetic in SQL differs per backend; a model has few monitors, so one small query each.
        start, end = conn.execute(
            select(Run.window_start, Run.window_end).where(computed, Run.monitor == name, Run.window_start == last)
        ).one()
        out.append(MonitorExtent(name, first, last, end - start))
    return sorted(out, key=lambda m: (m.window, m.name))


def predictions_24h(conn: Connection, model_ids: Collection[int] | None = None) -> dict[int, int]:
    """model id → predictions stored in the 24 h before the end of its newest computed window (of every
    model with one, or of ``model_ids``).

    Counted in the prediction table, not summed over runs: every monitor of a model reads the same
    predictions, so the runs of two monitors would count each prediction twice.
    """
    stmt = select(Run.model_id, func.max(Run.window_end)).where(Run.status.in_(COMPUTED_STATUSES))
    if model_ids is not None:
        stmt = stmt.where(Run.model_id.in_(tuple(model_ids)))
    ends = conn.execute(stmt.group_by(Run.model_id)).all()
    # Interval arithmetic in SQL differs per backend; there are few models, so one small query each.
    return {
        model_id: conn.scalar(
            select(func.count()).where(
                Prediction.model_id == model_id,
                Prediction.ts >= last_end - timedelta(days=1),
                Prediction.ts < last_end,
            )
        )
        or 0
        for model_id, last_end in ends
    }


def model_health(conn: Connection, model: ModelRow, now: datetime | None = None) -> Health:
    """``model``'s health now (the API's health route and ``driftscope status`` both call this)."""
    now = now or datetime.now(UTC)
    open_alerts = conn.execute(
        select(
            Alert.id, Alert.rule, Alert.severity, Alert.state, Alert.fired_at, Alert.started_at, Alert.acknowledged_at
        )
        .where(_alert_model(model.name), Alert.state.in_(("pending", "firing")))
        .order_by(Alert.id)
    ).all()
    firing = tuple(
        sorted(
            (
                FiringAlert(a.id, a.rule, a.severity, a.fired_at or a.started_at, a.acknowledged_at is not None)
                for a in open_alerts
                if a.state == "firing"
            ),
            key=lambda a: (-SEVERITY_RANK.get(a.severity, 0), a.id),
        )
    )
    pending = len(open_alerts) - len(firing)
    monitors = model_monitors(conn, model.id)
    if not monitors:
        return Health(model.name, firing[0].severity if firing else "no data", firing, pending)
    # One monitor's view, not a mix: two monitors' shares (p-values and distances) are not comparable.
    primary = monitors[0]
    drifting = conn.scalars(
        select(Score.feature)
        .where(
            Score.model_id == model.id,
            Score.monitor == primary.name,
            Score.kind == "drift",
            Score.window_start == primary.last,
            Score.feature.is_not(None),
            Score.feature.not_in(OUTPUT_COLUMNS),
            Score.breached.is_(True),
            # The window's own test, as the dashboard's drifting-features card; slow drift raises through alerts.
            Score.method.not_in(SEQUENTIAL_METHODS),
        )
        .distinct()
        .order_by(Score.feature)
    ).all()
    heads = _headline_scores(conn, model.id, primary.name)
    latest_end = primary.last + primary.window
    return Health(
        model=model.name,
        state=firing[0].severity if firing else "ok",
        firing=firing,
        pending_alerts=pending,
        monitor=primary.name,
        latest_window=primary.last,
        latest_window_end=latest_end,
        age_seconds=max((now - latest_end).total_seconds(), 0.0),
        drifting_features=tuple(f for f in drifting if f),
        share_drifted=heads.get(("drift", "share_drifted")),
        performance={m: v for (k, m), v in heads.items() if k == "performance"},
        estimated_performance={m: v for (k, m), v in heads.items() if k == "estimated_performance"},
        estimate_unreliable=newest_estimate_marks(conn, model.id, primary.name),
        rows_24h=predictions_24h(conn, (model.id,)).get(model.id, 0),
    )


def _headline_scores(conn: Connection, model_id: int, monitor: str) -> dict[tuple[str, str], float]:
    """The newest value of each of ``monitor``'s model-level performance metrics and of its share of
    drifted features."""
    newest = (
        select(
            Score.kind,
            Score.method,
            Score.value,
            func.row_number()
            .over(partition_by=(Score.kind, Score.method), order_by=(Score.window_start.desc(), Score.id.desc()))
            .label("rank"),
        )
        .where(
            Score.model_id == model_id,
            Score.monitor == monitor,
            Score.feature.is_(None),
            Score.status == "ok",
            Score.value.is_not(None),
            or_(Score.kind.in_(PERFORMANCE_KINDS), and_(Score.kind == "drift", Score.method == "share_drifted")),
        )
        .subquery()
    )
    rows = conn.execute(select(newest.c.kind, newest.c.method, newest.c.value).where(newest.c.rank == 1))
    return {(r.kind, r.method): float(r.value) for r in rows}


# --- whether estimates can be trusted -----------------------------------------------------------
# Derived at read time from the stored scores (monitor.store.reliability): a late label recomputes a
# window's realized score and the next read sees the new mark, with no state of its own to keep in step.

# Labelled windows read per query while looking back for the start of a disagreement.
SEED_PAGE = 200


def _estimate_points_query(model_id: int, monitor: str, method: str, *, labelled: bool = False) -> Select[Any]:
    """Per window, ``method``'s estimate with its interval and (outer-joined, or only those with one when
    ``labelled``) the realized value of the same window, with the rows each is computed on."""
    est, real = aliased(Score), aliased(Score)
    stmt = select(
        est.window_start,
        est.value,
        est.details["ci_lower"].as_float(),
        est.details["ci_upper"].as_float(),
        real.value,
        est.details["n"].as_float(),
        real.details["n"].as_float(),
    ).where(
        est.model_id == model_id,
        est.monitor == monitor,
        est.kind == "estimated_performance",
        est.method == method,
        est.feature.is_(None),
        est.status == "ok",
    )
    same_window = and_(
        real.model_id == est.model_id,
        real.monitor == est.monitor,
        real.window_start == est.window_start,
        real.kind == "performance",
        real.method == est.method,
        real.feature.is_(None),
        real.status == "ok",
        real.value.is_not(None),
    )
    if labelled:
        return stmt.join(real, same_window).where(est.details["ci_lower"].as_float().is_not(None))
    return stmt.outerjoin(real, same_window)


def _point(row: Row[Any]) -> EstimatePoint:
    # window_start, estimate, ci_lower, ci_upper, realized, n, n_realized: _estimate_points_query's columns
    values: tuple[Any, ...] = tuple(row)
    return EstimatePoint(*values)


def carried_mark(conn: Connection, model_id: int, monitor: str, method: str, before: datetime) -> Unreliable | None:
    """The mark the windows before ``before`` leave on ``method``'s estimates: read back through the labelled
    windows to the newest one that agreed (a stretch of disagreement starts after it), a page at a time."""
    seed: list[EstimatePoint] = []
    query = _estimate_points_query(model_id, monitor, method, labelled=True)
    window_start = query.selected_columns[0]
    query = query.order_by(window_start.desc())
    bound = before
    while True:
        page = [_point(r) for r in conn.execute(query.where(window_start < bound).limit(SEED_PAGE)).all()]
        agreed = False
        for point in page:
            if point.comparable:
                seed.append(point)
                if agreed := not point.disagrees():
                    break
        if agreed or len(page) < SEED_PAGE:
            return unreliable_marks(seed[::-1])[-1] if seed else None
        bound = page[-1].window_start


def estimate_marks(
    conn: Connection,
    model_id: int,
    monitor: str,
    method: str,
    since: datetime,
    until: datetime | None = None,
) -> list[tuple[EstimatePoint, Unreliable | None]]:
    """``method``'s estimates of ``monitor`` in the windows from ``since`` through ``until`` (inclusive; to
    the newest without it), oldest first, each with its mark."""
    query = _estimate_points_query(model_id, monitor, method)
    window_start = query.selected_columns[0]
    query = query.where(window_start >= since)
    if until is not None:
        query = query.where(window_start <= until)
    points = [_point(r) for r in conn.execute(query.order_by(window_start)).all()]
    if not points:
        return []
    marks = unreliable_marks(points, carried_mark(conn, model_id, monitor, method, points[0].window_start))
    return list(zip(points, marks, strict=True))


def newest_estimate_marks(conn: Connection, model_id: int, monitor: str) -> dict[str, Unreliable]:
    """metric → why ``monitor``'s newest estimate of it is unreliable; metrics whose newest estimate is
    trusted (or cannot be judged yet) are left out."""
    newest = conn.execute(
        select(Score.method, func.max(Score.window_start))
        .where(
            Score.model_id == model_id,
            Score.monitor == monitor,
            Score.kind == "estimated_performance",
            Score.feature.is_(None),
            Score.status == "ok",
        )
        .group_by(Score.method)
    ).all()
    out = {}
    for method, window_start in newest:
        marked = estimate_marks(conn, model_id, monitor, method, window_start, window_start)
        if marked and (mark := marked[-1][1]) is not None:
            out[method] = mark
    return out


# --- windows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowRow:
    monitor: str
    window_start: datetime
    window_end: datetime
    status: str
    row_count: int | None
    label_count: int | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None
    stale: bool


def windows(
    conn: Connection,
    model_id: int,
    *,
    monitor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> list[WindowRow]:
    """Runs of ``model_id``'s monitors with a window start in [since, until), newest first."""
    stmt = select(Run.__table__).where(Run.model_id == model_id)
    if monitor:
        stmt = stmt.where(Run.monitor == monitor)
    if since:
        stmt = stmt.where(Run.window_start >= since)
    if until:
        stmt = stmt.where(Run.window_start < until)
    if status:
        stmt = stmt.where(Run.status == status)
    rows = conn.execute(stmt.order_by(Run.window_start.desc(), Run.monitor).limit(limit))
    return [
        WindowRow(
            r.monitor, r.window_start, r.window_end, r.status, r.row_count, r.label_count, r.attempts or 0,
            r.started_at, r.finished_at, r.duration_ms, r.error, r.stale_since is not None,
        )
        for r in rows
    ]  # fmt: skip


# --- scores -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreFilter:
    model_id: int
    monitor: str | None = None
    kind: str | None = None
    feature: str | None = None
    method: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> list[ColumnElement[bool]]:
        clauses = [Score.model_id == self.model_id]
        for column, value in (
            (Score.monitor, self.monitor),
            (Score.kind, self.kind),
            (Score.feature, self.feature),
            (Score.method, self.method),
        ):
            if value is not None:
                clauses.append(column == value)
        if self.since:
            clauses.append(Score.window_start >= self.since)
        if self.until:
            clauses.append(Score.window_start < self.until)
        return clauses


@dataclass(frozen=True, slots=True)
class ScoreRow:
    id: int
    monitor: str
    window_start: datetime
    kind: str
    feature: str | None
    method: str
    value: float | None
    threshold: float | None
    breached: bool | None
    status: str
    reason: str | None
    # Estimated metrics only: whether the estimate is marked unreliable in this window (None for others).
    estimate_unreliable: bool | None = None


SCORE_FIELDS = tuple(ScoreRow.__slots__)
SCORE_COLUMNS = SCORE_FIELDS[:-1]  # those stored in the score table


def encode_cursor(window_start: datetime, score_id: int) -> str:
    raw = f"{window_start.astimezone(UTC).isoformat()}|{score_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, score_id = raw.partition("|")
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("no offset")
        return parsed.astimezone(UTC), int(score_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise CursorError(f"invalid cursor {cursor[:100]!r}: pass next_cursor of the previous page as is") from None


def scores_page(
    conn: Connection, where: ScoreFilter, *, after: str | None = None, limit: int = 1000
) -> tuple[list[ScoreRow], str | None]:
    """Up to ``limit`` scores in (window_start, id) order after cursor ``after``, and the next page's cursor.

    Keyset, not offset: a page starts strictly after the last row of the previous one, so rows that
    workers insert meanwhile never shift a page (no row is repeated or skipped, as with OFFSET). New
    windows sort after the cursor and are read by a later page. A page ends on a window boundary when it
    holds more than one window, so a window recomputed between two pages (its scores deleted and
    written again with new ids) is never read half old and half new.
    """
    stmt = select(*(getattr(Score, c) for c in SCORE_COLUMNS)).where(*where.where())
    if after is not None:
        window_start, score_id = decode_cursor(after)
        stmt = stmt.where(
            or_(Score.window_start > window_start, and_(Score.window_start == window_start, Score.id > score_id))
        )
    # .all() fetches in one call; iterating the result would fetch row by row (a third of a 5,000-row page's time).
    rows = [ScoreRow(*r) for r in conn.execute(stmt.order_by(Score.window_start, Score.id).limit(limit + 1)).all()]
    if len(rows) <= limit:
        return _mark_estimates(conn, where.model_id, rows), None
    rows = rows[:limit]
    if rows[-1].window_start == rows[limit - 1].window_start and rows[0].window_start != rows[-1].window_start:
        # The next row (rows[limit] before the cut) may share the last window: end the page before that window.
        last = rows[-1].window_start
        rows = [r for r in rows if r.window_start != last]
    return _mark_estimates(conn, where.model_id, rows), encode_cursor(rows[-1].window_start, rows[-1].id)


def _mark_estimates(conn: Connection, model_id: int, rows: list[ScoreRow]) -> list[ScoreRow]:
    """``rows`` with ``estimate_unreliable`` set on the model-level estimates (one read per metric and monitor)."""
    spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for r in rows:
        if r.kind == "estimated_performance" and r.feature is None and r.status == "ok":
            first, last = spans.get((r.monitor, r.method), (r.window_start, r.window_start))
            spans[r.monitor, r.method] = (min(first, r.window_start), max(last, r.window_start))
    if not spans:
        return rows
    marked = {
        (monitor, method, point.window_start): mark is not None
        for (monitor, method), (first, last) in spans.items()
        for point, mark in estimate_marks(conn, model_id, monitor, method, first, last)
    }
    return [
        replace(r, estimate_unreliable=marked.get((r.monitor, r.method, r.window_start)))
        if r.kind == "estimated_performance"
        else r
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Matrix:
    """Windows × features of one score kind: ``values[i][j]`` is feature j in window i (None if absent)."""

    windows: list[datetime]
    features: list[str]
    values: list[list[float | None]]
    breached: list[list[bool | None]]


def score_matrix(conn: Connection, where: ScoreFilter, max_windows: int = 5000) -> Matrix:
    """The newest ``max_windows`` windows of the filtered per-feature scores, one cell per (window, feature).

    Several scores in a cell (monitors or methods not filtered out) keep the largest value; the cell is
    breached when any of them is.
    """
    clauses = [*where.where(), Score.feature.is_not(None), Score.status == "ok"]
    oldest = conn.scalar(
        select(func.min(select(Score.window_start).where(*clauses).distinct()
                        .order_by(Score.window_start.desc()).limit(max_windows).subquery().c.window_start))
    )  # fmt: skip
    if oldest is None:
        return Matrix([], [], [], [])
    rows = conn.execute(
        select(
            Score.window_start,
            Score.feature,
            func.max(Score.value),
            func.max(case((Score.breached.is_(True), 1), (Score.breached.is_(False), 0))),
        )
        .where(*clauses, Score.window_start >= oldest)
        .group_by(Score.window_start, Score.feature)
    ).all()
    window_list = sorted({r[0] for r in rows})
    features = sorted({r[1] for r in rows})
    w_index = {w: i for i, w in enumerate(window_list)}
    f_index = {f: j for j, f in enumerate(features)}
    values: list[list[float | None]] = [[None] * len(features) for _ in window_list]
    breached: list[list[bool | None]] = [[None] * len(features) for _ in window_list]
    for window_start, feature, value, was_breached in rows:
        i, j = w_index[window_start], f_index[feature]
        values[i][j] = value
        breached[i][j] = None if was_breached is None else bool(was_breached)
    return Matrix(window_list, features, values, breached)


# --- alerts and silences ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    rule: str
    model: str | None
    severity: str
    state: str
    labels: dict[str, str]
    annotations: dict[str, Any]
    value: float | None
    window_start: datetime | None
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    ack_comment: str | None

    def concerns(self, monitor: str | None) -> bool:
        """Whether the alert belongs on ``monitor``'s view: it is that monitor's, or no monitor's (a
        rule over the model's metrics); None (a model without monitors) takes every alert."""
        return monitor is None or self.labels.get("monitor") in (None, monitor)

    @property
    def breach_start(self) -> datetime:
        """Start of the first window of the breach (data time, from the alert engine's ``since``
        annotation), else when the alert fired: a backfill fires late for old windows."""
        since = self.annotations.get("since")
        if isinstance(since, str):
            with suppress(ValueError):
                return parse_time(since)
        return self.fired_at or self.started_at

    @property
    def breach_end(self) -> datetime | None:
        """The window that resolved it (data time), None while open."""
        if self.state != "resolved":
            return None
        return self.window_start or self.resolved_at


def alerts(
    conn: Connection,
    *,
    states: Sequence[str] = (),
    model: str | None = None,
    severity: str | None = None,
    rule: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    allowed: Collection[str] | None = None,
    limit: int = 500,
) -> list[AlertRow]:
    """Alerts newest first; ``since``/``until`` keep those open at some time in [since, until).

    ``allowed`` (a key's models) keeps only alerts whose ``model`` label is one of them.
    """
    model_label = Alert.labels["model"].as_string()
    stmt = select(Alert.__table__)
    if states:
        stmt = stmt.where(Alert.state.in_(tuple(states)))
    if model:
        stmt = stmt.where(model_label == model)
    if allowed is not None:
        stmt = stmt.where(model_label.in_(tuple(allowed)))
    if severity:
        stmt = stmt.where(Alert.severity == severity)
    if rule:
        stmt = stmt.where(Alert.rule == rule)
    if since:
        stmt = stmt.where(or_(Alert.resolved_at.is_(None), Alert.resolved_at >= since))
    if until:
        stmt = stmt.where(Alert.started_at < until)
    return [_alert_row(a) for a in conn.execute(stmt.order_by(Alert.started_at.desc(), Alert.id.desc()).limit(limit))]


def alert_by_id(conn: Connection, alert_id: int) -> AlertRow | None:
    found = conn.execute(select(Alert.__table__).where(Alert.id == alert_id)).one_or_none()
    return None if found is None else _alert_row(found)


def _alert_row(a: Row[Any]) -> AlertRow:
    labels = dict(a.labels or {})
    return AlertRow(
        a.id, a.rule, labels.get("model"), a.severity, a.state, labels, dict(a.annotations or {}), a.value,
        a.window_start, a.started_at, a.fired_at, a.resolved_at, a.acknowledged_by, a.acknowledged_at, a.ack_comment,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SilenceRow:
    id: int
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def silences(conn: Connection, *, active_at: datetime | None = None, limit: int = 500) -> list[SilenceRow]:
    """Silences, those ending last first; only the ones in force at ``active_at`` when given."""
    stmt = select(Silence.__table__)
    if active_at is not None:
        stmt = stmt.where(Silence.starts_at <= active_at, Silence.ends_at > active_at)
    return [
        _silence_row(s) for s in conn.execute(stmt.order_by(Silence.ends_at.desc(), Silence.id.desc()).limit(limit))
    ]


def silence_by_id(conn: Connection, silence_id: int) -> SilenceRow | None:
    found = conn.execute(select(Silence.__table__).where(Silence.id == silence_id)).one_or_none()
    return None if found is None else _silence_row(found)


def _silence_row(s: Row[Any]) -> SilenceRow:
    return SilenceRow(s.id, dict(s.matchers or {}), s.starts_at, s.ends_at, s.created_by, s.comment, s.created_at)


# --- rejected records and references ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RejectedRow:
    id: int
    received_at: datetime
    source: str
    record_ref: str | None
    field: str | None
    reason: str
    payload: str | None


def rejected(
    conn: Connection,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 500,
) -> list[RejectedRow]:
    """Rejected records of ``model`` received in [since, until), newest first, with ids below ``before_id``.

    Ids only grow, so paging down by id never repeats or skips a record while more are rejected.
    """
    stmt = select(RejectedRecord.__table__).where(RejectedRecord.model == model)
    if since:
        stmt = stmt.where(RejectedRecord.received_at >= since)
    if until:
        stmt = stmt.where(RejectedRecord.received_at < until)
    if before_id is not None:
        stmt = stmt.where(RejectedRecord.id < before_id)
    return [
        RejectedRow(r.id, r.received_at, r.source, r.record_ref, r.field, r.reason, r.payload)
        for r in conn.execute(stmt.order_by(RejectedRecord.id.desc()).limit(limit))
    ]


@dataclass(frozen=True, slots=True)
class ReferenceRow:
    name: str
    kind: str
    spec: dict[str, Any]
    row_count: int | None
    profile_key: str | None
    created_at: datetime
    profiled_at: datetime | None


def references(conn: Connection, model_id: int) -> list[ReferenceRow]:
    """The model's reference rows: uploaded datasets and the profiles cached per monitor."""
    stmt = select(
        Reference.name, Reference.kind, Reference.spec, Reference.row_count, Reference.profile_key,
        Reference.created_at, Reference.profiled_at,
    ).where(Reference.model_id == model_id).order_by(Reference.name)  # fmt: skip
    return [
        ReferenceRow(r.name, r.kind, dict(r.spec or {}), r.row_count, r.profile_key, r.created_at, r.profiled_at)
        for r in conn.execute(stmt)
    ]
