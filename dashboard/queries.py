"""Read-only queries behind the dashboard, aggregated in SQL.

Every chart reads at most one row per (bucket, series): windows are merged into buckets by the database
(:func:`_bucket`), so a model page over 90 days of hourly windows × 50 features moves a few thousand
rows, not a few hundred thousand. Functions take an open :class:`~sqlalchemy.Connection` so one page
build uses one connection; none of them writes.

Portability: the same SQL runs on Postgres and SQLite. The only dialect switch is how a timestamp
becomes epoch seconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    and_,
    case,
    cast,
    false,
    func,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.sql.expression import literal

# Shared with the read API, so the dashboard and /v1 give the same numbers (issue 18).
from monitor.methods import SEQUENTIAL_METHODS
from monitor.store.reads import COMPUTED_STATUSES, carried_mark, model_monitors, predictions_24h, silences
from monitor.store.reads import OUTPUT_COLUMNS as OUTPUT_COLUMNS

# The alert and silence rows of the read API, so the dashboard and /v1 list the same alerts.
from monitor.store.reads import AlertRow as AlertRow
from monitor.store.reads import SilenceRow as SilenceRow
from monitor.store.reads import alert_by_id as alert_by_id
from monitor.store.reads import alerts as alerts
from monitor.store.reliability import EstimatePoint, unreliable_marks
from monitor.store.segments import VERSION
from monitor.store.tables import (
    Alert,
    MetricPoint,
    MetricSeries,
    Model,
    Prediction,
    Run,
    Score,
    SegmentScore,
    UtcDateTime,
)

# Colour scale of the heatmap runs from 0 to this; 1 is the threshold.
SEVERITY_CAP = 2.0
WORK_MEM = "64MB"


@dataclass(frozen=True)
class ModelInfo:
    id: int
    name: str
    task: str
    features: dict[str, str]


@dataclass(frozen=True)
class Extent:
    """What a model page shows: the selected monitor's computed windows (``monitor`` None and no windows
    before any run), and every monitor of the model, primary first."""

    first: datetime | None
    last: datetime | None
    window: timedelta
    monitor: str | None
    monitors: tuple[str, ...]


# --- helpers ------------------------------------------------------------------------------------


def _epoch(conn: Connection, column: Any) -> ColumnElement[int]:
    if conn.dialect.name == "sqlite":
        # UtcDateTime stores naive UTC text on SQLite; strftime('%s') reads it as UTC.
        return cast(func.strftime("%s", column), Integer)
    return cast(func.extract("epoch", column), BigInteger)


def _bucket(conn: Connection, column: Any, bucket: timedelta) -> ColumnElement[int]:
    """Epoch seconds of the bucket holding ``column`` (integer division on both backends)."""
    seconds = int(bucket.total_seconds())
    return (_epoch(conn, column) // literal(seconds, BigInteger)) * literal(seconds, BigInteger)


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection for one page build: a read-only transaction, and on Postgres enough sort/hash
    memory that a 90-day page aggregates in memory instead of spilling to disk."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
        try:
            yield conn
        finally:
            conn.rollback()


def _frame(conn: Connection, stmt: Any, time_columns: Sequence[str] = ("bucket",)) -> pd.DataFrame:
    result = conn.execute(stmt)
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    for column in time_columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column].astype("int64"), unit="s", utc=True)
    return frame


def severity_expression() -> ColumnElement[float]:
    """How far a drift score is past its threshold: 1 at the threshold, capped at :data:`SEVERITY_CAP`.

    A distance is bad above its threshold (severity = value / threshold), a p-value below it
    (threshold / value). Which of the two a row is follows from the Score contract — ``breached`` says
    whether the value crossed the threshold in the bad direction — so the direction is read from the
    row's own columns instead of from its JSON details, which would cost a detoast per row on Postgres.
    """
    value, threshold = Score.value, Score.threshold
    p_value_like = or_(
        and_(Score.breached.is_(True), value < threshold), and_(Score.breached.is_(False), value > threshold)
    )
    cap = literal(SEVERITY_CAP)
    return case(
        (or_(value.is_(None), threshold.is_(None), threshold <= 0), None),
        (p_value_like, case((value * cap <= threshold, cap), else_=threshold / value)),
        (value >= threshold * cap, cap),
        else_=value / threshold,
    )


# --- models -------------------------------------------------------------------------------------


def models(conn: Connection) -> list[ModelInfo]:
    rows = conn.execute(select(Model.id, Model.name, Model.task, Model.feature_schema).order_by(Model.name))
    return [ModelInfo(r.id, r.name, r.task, dict(r.feature_schema or {})) for r in rows]


def model_by_name(conn: Connection, name: str) -> ModelInfo | None:
    row = conn.execute(
        select(Model.id, Model.name, Model.task, Model.feature_schema).where(Model.name == name)
    ).one_or_none()
    return None if row is None else ModelInfo(row.id, row.name, row.task, dict(row.feature_schema or {}))


def model_of_monitor(conn: Connection, monitor: str) -> str | None:
    """The model a monitor's runs belong to (None before its first run)."""
    return conn.scalar(select(Model.name).join(Run, Run.model_id == Model.id).where(Run.monitor == monitor).limit(1))


def model_extent(conn: Connection, model_id: int, monitor: str | None = None) -> Extent:
    """The extent of ``monitor``, or of the model's primary monitor when it is None or not one of the
    model's monitors (a stale link)."""
    monitors = model_monitors(conn, model_id)
    names = tuple(m.name for m in monitors)
    chosen = next((m for m in monitors if m.name == monitor), monitors[0] if monitors else None)
    if chosen is None:
        return Extent(None, None, timedelta(hours=1), None, names)
    return Extent(chosen.first, chosen.last, chosen.window, chosen.name, names)


# --- overview -----------------------------------------------------------------------------------


def overview(conn: Connection) -> pd.DataFrame:
    """One row per monitor that computed a window: its last window and newest headline scores, and its
    model's stored predictions in the 24 h up to the model's newest computed window.

    Columns: model_id, monitor, last_window, predictions_24h, share_drifted, plus one ``<kind>:<metric>``
    column per (realized or estimated) performance metric with its newest value and ``…:band_lower/upper``.
    Every score column comes from the row's monitor alone: the share is the one an alert on it reports.
    """
    rows = conn.execute(
        select(Run.model_id, Run.monitor, func.max(Run.window_start).label("last_window"))
        .where(Run.status.in_(COMPUTED_STATUSES))
        .group_by(Run.model_id, Run.monitor)
    ).all()
    frame = pd.DataFrame(rows, columns=["model_id", "monitor", "last_window"])
    if frame.empty:
        return pd.DataFrame(columns=["model_id", "monitor", "last_window", "predictions_24h", "share_drifted"])
    predictions = predictions_24h(conn)
    frame["predictions_24h"] = [predictions.get(model_id, 0) for model_id in frame["model_id"]]
    newest = (
        select(
            Score.model_id,
            Score.monitor,
            Score.kind,
            Score.method,
            Score.value,
            Score.details["band_lower"].as_float().label("band_lower"),
            Score.details["band_upper"].as_float().label("band_upper"),
            func.row_number()
            .over(
                partition_by=(Score.model_id, Score.monitor, Score.kind, Score.method),
                order_by=Score.window_start.desc(),
            )
            .label("rank"),
        )
        .where(
            Score.feature.is_(None),
            Score.status == "ok",
            or_(
                Score.kind.in_(("performance", "estimated_performance")),
                and_(Score.kind == "drift", Score.method == "share_drifted"),
            ),
        )
        .subquery()
    )
    heads = _frame(conn, select(newest).where(newest.c.rank == 1), time_columns=())
    frame["share_drifted"] = None
    for row in heads.itertuples():
        match = (frame["model_id"] == row.model_id) & (frame["monitor"] == row.monitor)
        if row.method == "share_drifted":
            frame.loc[match, "share_drifted"] = row.value
            continue
        key = f"{row.kind}:{row.method}"
        frame.loc[match, key] = row.value
        frame.loc[match, f"{key}:band_lower"] = row.band_lower
        frame.loc[match, f"{key}:band_upper"] = row.band_upper
    return frame


def data_version(conn: Connection) -> str:
    """Changes whenever a window is computed or an alert changes: the auto-refresh re-renders only then."""
    runs = conn.execute(select(func.max(Run.finished_at), func.count(Run.finished_at))).one()
    alert_rows = conn.execute(
        select(
            func.max(Alert.id), func.max(Alert.fired_at), func.max(Alert.resolved_at), func.max(Alert.acknowledged_at)
        )
    ).one()
    return repr((*runs, *alert_rows))


def open_alerts(conn: Connection) -> list[AlertRow]:
    """Pending and firing alerts, newest first."""
    return alerts(conn, states=("pending", "firing"))


# --- model page ---------------------------------------------------------------------------------


def _in_range(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def dataset_drift_series(
    conn: Connection, model_id: int, monitor: str, start: datetime, end: datetime, bucket: timedelta
) -> pd.DataFrame:
    """bucket, share (mean share of drifted features), windows, drifted_windows (dataset drift breached)."""
    b = _bucket(conn, Score.window_start, bucket).label("bucket")
    stmt = (
        select(
            b,
            func.avg(Score.value).label("share"),
            func.count().label("windows"),
            func.sum(case((Score.breached.is_(True), 1), else_=0)).label("drifted_windows"),
        )
        .where(
            Score.model_id == model_id,
            Score.monitor == monitor,
            Score.kind == "drift",
            _in_range(Score.window_start, start, end),
            Score.feature.is_(None),
            Score.method == "share_drifted",
            Score.status == "ok",
        )
        .group_by(b)
        .order_by(b)
    )
    return _frame(conn, stmt)


def drift_matrix(
    conn: Connection, model_id: int, monitor: str, start: datetime, end: datetime, bucket: timedelta
) -> pd.DataFrame:
    """bucket, feature, severity (worst in bucket), breached (windows), windows, value/threshold/method,
    first_breach/last_breach (window starts, NaT without a breach).

    value, threshold and method are exact when a bucket is one window; for wider buckets they are the
    largest value and threshold and one of the methods, and the hover text says so.
    """
    b = _bucket(conn, Score.window_start, bucket).label("bucket")
    stmt = (
        select(
            b,
            Score.feature,
            func.max(severity_expression()).label("severity"),
            func.sum(case((Score.breached.is_(True), 1), else_=0)).label("breached"),
            func.count().label("windows"),
            func.max(Score.value).label("value"),
            func.max(Score.threshold).label("threshold"),
            func.min(Score.method).label("method"),
            # type_coerce: min/max over a CASE would lose the column type (and its UTC handling) on SQLite.
            type_coerce(func.min(case((Score.breached.is_(True), Score.window_start))), UtcDateTime()).label(
                "first_breach"
            ),
            type_coerce(func.max(case((Score.breached.is_(True), Score.window_start))), UtcDateTime()).label(
                "last_breach"
            ),
        )
        .where(
            Score.model_id == model_id,
            Score.monitor == monitor,
            Score.kind == "drift",
            _in_range(Score.window_start, start, end),
            Score.feature.is_not(None),
            Score.status == "ok",
            # One score per feature and window: a slow-drift score beside it would count the window twice.
            Score.method.not_in(SEQUENTIAL_METHODS),
        )
        .group_by(b, Score.feature)
        .order_by(b)
    )
    frame = _frame(conn, stmt)
    for column in ("first_breach", "last_breach"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def performance_series(
    conn: Connection, model_id: int, monitor: str, start: datetime, end: datetime, bucket: timedelta
) -> pd.DataFrame:
    """bucket, kind (performance | estimated_performance), method, value, ci_lower, ci_upper, band_lower/upper,
    n (rows scored; labelled rows of a realized value) and ``unreliable``: on estimated rows, why the
    estimate is not to be trusted (a :class:`~monitor.store.reliability.Unreliable`) or None; else None."""
    b = _bucket(conn, Score.window_start, bucket).label("bucket")
    details = Score.details
    stmt = (
        select(
            b,
            Score.kind,
            Score.method,
            func.avg(Score.value).label("value"),
            func.avg(details["ci_lower"].as_float()).label("ci_lower"),
            func.avg(details["ci_upper"].as_float()).label("ci_upper"),
            func.max(details["band_lower"].as_float()).label("band_lower"),
            func.max(details["band_upper"].as_float()).label("band_upper"),
            func.avg(details["n"].as_float()).label("n"),
        )
        .where(
            Score.model_id == model_id,
            Score.monitor == monitor,
            Score.kind.in_(("performance", "estimated_performance")),
            _in_range(Score.window_start, start, end),
            Score.feature.is_(None),
            Score.status == "ok",
        )
        .group_by(b, Score.kind, Score.method)
        .order_by(b)
    )
    frame = _frame(conn, stmt)
    frame["unreliable"] = None
    for method in frame.loc[frame["kind"] == "estimated_performance", "method"].unique():
        _mark_estimates(conn, frame, model_id, monitor, str(method), start)
    return frame


def _mark_estimates(
    conn: Connection, frame: pd.DataFrame, model_id: int, monitor: str, method: str, start: datetime
) -> None:
    """Set ``unreliable`` on ``method``'s estimated rows: each bucket's mean estimate, interval and realized
    value judged as one window (exact when a bucket is one window), from the mark the windows before
    ``start`` left (see monitor.store.reliability)."""
    rows = frame[frame["method"] == method]
    estimated = rows[rows["kind"] == "estimated_performance"]
    realized = rows[rows["kind"] == "performance"].set_index("bucket")

    def number(value: Any) -> float | None:
        return None if value is None or pd.isna(value) else float(value)

    points = [
        EstimatePoint(
            bucket,
            number(value),
            number(lo),
            number(hi),
            number(realized["value"].get(bucket)),
            number(n),
            number(realized["n"].get(bucket)),
        )
        for bucket, value, lo, hi, n in zip(
            estimated["bucket"],
            estimated["value"],
            estimated["ci_lower"],
            estimated["ci_upper"],
            estimated["n"],
            strict=True,
        )
    ]
    marks = unreliable_marks(points, carried_mark(conn, model_id, monitor, method, start))
    frame.loc[estimated.index, "unreliable"] = pd.Series(marks, index=estimated.index, dtype=object)


def label_coverage(
    conn: Connection, model_id: int, monitor: str, start: datetime, end: datetime, bucket: timedelta
) -> pd.DataFrame:
    """bucket, windows, rows, labelled, coverage (labelled / rows), computed_at (the bucket's newest
    computation), stale (windows whose late labels or predictions wait for a recompute).

    Read from the runs, one row per window: the counts are those the performance score was last computed
    from, so coverage grows as late labels arrive and their windows are recomputed.
    """
    b = _bucket(conn, Run.window_start, bucket).label("bucket")
    stmt = (
        select(
            b,
            func.count().label("windows"),
            func.sum(Run.row_count).label("rows"),
            func.sum(Run.label_count).label("labelled"),
            # type_coerce: max() would lose the column type (and its UTC handling) on SQLite.
            type_coerce(func.max(Run.finished_at), UtcDateTime()).label("computed_at"),
            func.sum(case((Run.stale_since.is_not(None), 1), else_=0)).label("stale"),
        )
        .where(
            Run.model_id == model_id,
            Run.monitor == monitor,
            Run.status.in_(COMPUTED_STATUSES),
            _in_range(Run.window_start, start, end),
        )
        .group_by(b)
        .order_by(b)
    )
    frame = _frame(conn, stmt)
    frame["computed_at"] = pd.to_datetime(frame["computed_at"], utc=True)
    rows = pd.to_numeric(frame["rows"])
    frame["coverage"] = pd.to_numeric(frame["labelled"]) / rows.where(rows > 0)
    return frame


@dataclass(frozen=True)
class Computation:
    """When a window's scores were last computed, from how many labels, and what arrived since.

    ``late_labels``: labels of the window received after it closed that this computation read (what a
    recompute added); ``waiting_labels``: received after it started, for the recompute ``stale_since``
    asks for.
    """

    window_start: datetime
    window_end: datetime
    rows: int | None
    labelled: int | None
    computed_at: datetime | None
    stale_since: datetime | None
    late_labels: int
    waiting_labels: int

    @property
    def coverage(self) -> float | None:
        return self.labelled / self.rows if self.rows and self.labelled is not None else None


def newest_computation(conn: Connection, model_id: int, monitor: str) -> Computation | None:
    """The :class:`Computation` of ``monitor``'s newest computed window (None before any)."""
    run = conn.execute(
        select(
            Run.window_start,
            Run.window_end,
            Run.row_count,
            Run.label_count,
            Run.started_at,
            Run.finished_at,
            Run.stale_since,
        )
        .where(Run.model_id == model_id, Run.monitor == monitor, Run.status.in_(COMPUTED_STATUSES))
        .order_by(Run.window_start.desc())
        .limit(1)
    ).one_or_none()
    if run is None:
        return None
    received = Prediction.label_received_at
    if run.started_at is None:  # computed before runs recorded their start: it read every label
        read_by_run, after_run = true(), false()
    else:
        read_by_run, after_run = received <= run.started_at, received > run.started_at
    # One window's predictions, by the (model_id, ts) index.
    late, waiting = conn.execute(
        select(
            func.sum(case((and_(received >= run.window_end, read_by_run), 1), else_=0)),
            func.sum(case((after_run, 1), else_=0)),
        ).where(
            Prediction.model_id == model_id,
            _in_range(Prediction.ts, run.window_start, run.window_end),
            received.is_not(None),
        )
    ).one()
    return Computation(
        run.window_start,
        run.window_end,
        run.row_count,
        run.label_count,
        run.finished_at,
        run.stale_since,
        int(late or 0),
        int(waiting or 0),
    )


def quality_series(
    conn: Connection, model_id: int, monitor: str, start: datetime, end: datetime, bucket: timedelta
) -> pd.DataFrame:
    """bucket, worst_missing, worst_out_of_range, worst_unseen, worst_type_error (max over features),
    breaches (quality checks breached), rows and expected_rows (volume)."""
    b = _bucket(conn, Score.window_start, bucket).label("bucket")
    in_range = (
        Score.model_id == model_id,
        Score.monitor == monitor,
        Score.kind == "quality",
        _in_range(Score.window_start, start, end),
        Score.status == "ok",
    )

    def worst(method: str, label: str) -> Any:
        return func.max(case((Score.method == method, Score.value))).label(label)

    # Shares and breaches read only indexed columns (an index-only scan on Postgres); the volume's
    # expected count lives in details, so it is a second query over the few volume rows.
    shares = _frame(
        conn,
        select(
            b,
            worst("missing_share", "worst_missing"),
            worst("out_of_range_share", "worst_out_of_range"),
            worst("unseen_category_share", "worst_unseen"),
            worst("type_error_share", "worst_type_error"),
            func.sum(case((Score.breached.is_(True), 1), else_=0)).label("breaches"),
        )
        .where(*in_range)
        .group_by(b)
        .order_by(b),
    )
    volume = _frame(
        conn,
        select(
            b,
            func.sum(Score.value).label("rows"),
            func.sum(Score.details["expected"].as_float()).label("expected_rows"),
        )
        .where(*in_range, Score.method == "volume")
        .group_by(b),
    )
    return shares.merge(volume, on="bucket", how="left")


def metric_series(conn: Connection, model_id: int, start: datetime, end: datetime, bucket: timedelta) -> pd.DataFrame:
    """bucket, series_id, name, labels, value (mean over the bucket) of the model's Prometheus series."""
    b = _bucket(conn, MetricPoint.ts, bucket).label("bucket")
    points = (
        select(MetricPoint.series_id, b, func.avg(MetricPoint.value).label("value"))
        .join(MetricSeries, MetricSeries.id == MetricPoint.series_id)
        .where(MetricSeries.model_id == model_id, _in_range(MetricPoint.ts, start, end))
        .group_by(MetricPoint.series_id, b)
        .subquery()
    )
    stmt = (
        select(points.c.bucket, points.c.series_id, MetricSeries.name, MetricSeries.labels, points.c.value)
        .join(MetricSeries, MetricSeries.id == points.c.series_id)
        .order_by(MetricSeries.name, points.c.series_id, points.c.bucket)
    )
    return _frame(conn, stmt)


def model_alerts(conn: Connection, model: str, start: datetime, end: datetime) -> list[AlertRow]:
    """Alerts of ``model`` that were open at some point in [start, end)."""
    return alerts(conn, model=model, since=start, until=end, limit=1000)


def breached_features(matrix: pd.DataFrame) -> pd.DataFrame:
    """feature, breached (windows), windows, first_breach, last_breach — which inputs drift and since when —
    from :func:`drift_matrix` (window-exact at any bucket size, so no second scan of the drift scores)."""
    return (
        matrix.groupby("feature")
        .agg(
            breached=("breached", "sum"),
            windows=("windows", "sum"),
            first_breach=("first_breach", "min"),
            last_breach=("last_breach", "max"),
        )
        .reset_index()
    )


@dataclass(frozen=True)
class FailedRuns:
    """A monitor's runs that ended ``failed`` (out of attempts: the worker will not try them again), and
    the newest one's window, attempts and last error. ``error`` is whatever the failure said, data
    included: text to show escaped, never markup."""

    monitor: str
    count: int
    window_start: datetime
    attempts: int
    error: str | None


def failed_runs(conn: Connection, model_id: int, monitor: str | None = None) -> list[FailedRuns]:
    """:class:`FailedRuns` of each of ``model_id``'s monitors with such runs (of ``monitor`` only if
    given), by monitor name; whatever their window, since each waits for ``driftscope runs retry``.

    A failed run that still holds a lease is backing off before its next attempt, not ended.
    """
    ended = and_(Run.model_id == model_id, Run.status == "failed", Run.claimed_until.is_(None))
    if monitor is not None:
        ended = and_(ended, Run.monitor == monitor)
    ranked = (
        select(
            Run.monitor,
            Run.window_start,
            Run.attempts,
            Run.error,
            func.count().over(partition_by=Run.monitor).label("runs"),
            func.row_number()
            .over(partition_by=Run.monitor, order_by=(Run.window_start.desc(), Run.id.desc()))
            .label("rank"),
        )
        .where(ended)
        .subquery()
    )
    rows = conn.execute(
        select(ranked.c.monitor, ranked.c.runs, ranked.c.window_start, ranked.c.attempts, ranked.c.error)
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.monitor)
    )
    return [FailedRuns(r.monitor, r.runs, r.window_start, r.attempts or 0, r.error) for r in rows]


# --- feature page -------------------------------------------------------------------------------


def feature_scores(
    conn: Connection,
    model_id: int,
    monitor: str,
    feature: str,
    start: datetime,
    end: datetime,
    kinds: Sequence[str],
) -> pd.DataFrame:
    """window_start, monitor, kind, method, value, threshold, breached, status, reason of one feature
    in one monitor."""
    stmt = (
        select(
            Score.window_start,
            Score.monitor,
            Score.kind,
            Score.method,
            Score.value,
            Score.threshold,
            Score.breached,
            Score.status,
            Score.reason,
        )
        .where(
            Score.model_id == model_id,
            Score.monitor == monitor,
            Score.kind.in_(tuple(kinds)),
            Score.feature == feature,
            _in_range(Score.window_start, start, end),
            Score.method.not_in(SEQUENTIAL_METHODS),  # the drift chart plots the window's own test
        )
        .order_by(Score.window_start)
    )
    result = conn.execute(stmt)
    return pd.DataFrame(result.all(), columns=list(result.keys()))


@dataclass(frozen=True)
class WindowScore:
    monitor: str
    kind: str
    method: str
    value: float | None
    threshold: float | None
    breached: bool | None
    status: str
    reason: str | None
    details: dict[str, Any]


def feature_window(
    conn: Connection, model_id: int, monitor: str, feature: str, window_start: datetime
) -> list[WindowScore]:
    """Every score (with details, e.g. the drift histograms) of one feature in one window of one monitor."""
    rows = conn.execute(
        select(
            Score.monitor,
            Score.kind,
            Score.method,
            Score.value,
            Score.threshold,
            Score.breached,
            Score.status,
            Score.reason,
            Score.details,
        ).where(
            Score.model_id == model_id,
            Score.monitor == monitor,
            Score.feature == feature,
            Score.window_start == window_start,
        )
    )
    return [WindowScore(*row) for row in rows]


def worst_window(
    conn: Connection, model_id: int, monitor: str, feature: str, start: datetime, end: datetime
) -> datetime | None:
    """The window of ``feature`` with the highest drift severity in [start, end) of ``monitor``, else the
    newest one."""
    severity = severity_expression()
    return conn.scalar(
        select(Score.window_start)
        .where(
            Score.model_id == model_id,
            Score.monitor == monitor,
            Score.kind == "drift",
            Score.feature == feature,
            _in_range(Score.window_start, start, end),
            Score.status == "ok",
            Score.method.not_in(SEQUENTIAL_METHODS),
        )
        .order_by(severity.desc().nulls_last(), Score.window_start.desc())
        .limit(1)
    )


# --- alerts -------------------------------------------------------------------------------------


def active_silences(conn: Connection, now: datetime) -> list[SilenceRow]:
    """Silences in force at ``now``, the soonest to lift first."""
    return silences(conn, active_at=now)[::-1]


def alert_model_names(conn: Connection) -> list[str]:
    """Models that have alerts, for the alerts page filter."""
    names = conn.scalars(select(Alert.labels["model"].as_string()).distinct())
    return sorted(n for n in names if n)


# --- version comparison ------------------------------------------------------------------------


def version_scores(
    conn: Connection, model_id: int, monitor: str, versions: Sequence[str], start: datetime, end: datetime
) -> pd.DataFrame:
    """Each version's own scores (``segment_score`` with ``segment_by`` = model_version) of ``monitor``'s
    windows in ``[start, end)``: drift per feature and (realized or estimated) performance, plus the
    too-few-rows markers; columns version, window_start, rows, kind, feature, method, value, threshold,
    breached, status, reason."""
    s = SegmentScore
    query = (
        select(
            s.segment.label("version"),
            s.window_start,
            s.rows,
            s.kind,
            s.feature,
            s.method,
            s.value,
            s.threshold,
            s.breached,
            s.status,
            s.reason,
        )
        .where(
            s.model_id == model_id,
            s.monitor == monitor,
            s.segment_by == VERSION,
            s.segment.in_(list(versions)),
            s.window_start >= start,
            s.window_start < end,
            s.kind.in_(("drift", "performance", "estimated_performance", "segment")),
        )
        .order_by(s.window_start)
    )
    columns = ["version", "window_start", "rows", "kind", "feature", "method", "value", "threshold", "breached"]
    return pd.DataFrame(conn.execute(query).all(), columns=[*columns, "status", "reason"])
