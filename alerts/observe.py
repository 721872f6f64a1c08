"""What a rule looks at: its series and their newest observations, read from the store.

A series is what one alert follows: for a score selector, one (monitor, feature, method); for a metric,
one Prometheus series; for staleness, one model. Its labels identify the alert (and route, group and
silence it); the fingerprint is a hash of them.

Only the newest ``for`` observations of each series are read (a window function, on SQLite and
Postgres alike), so evaluation needs no cursor of its own and a restarted worker picks up where the
store stands. The ranking only looks at each monitor's last ``2 * for + 2`` windows (metric points: the
last day), an index range, so a pass costs about the same after months of history as after a day
(``bench/alerts_evaluate.py``; ranking a 90-day history of 110k scores took 0.58 s per pass).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, or_, select
from sqlalchemy.orm import Session

from alerts.rules import CompiledRule, Observation, Selector
from monitor.config import Config
from monitor.methods import SEQUENTIAL_METHODS
from monitor.store.tables import MetricPoint, MetricSeries, Model, Prediction, Run, Score

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_WINDOW = timedelta(hours=1)
METRIC_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Scope:
    """What one evaluation pass knows about the store before it reads any rule's series."""

    now: datetime
    model_ids: Mapping[str, int]  # every model row, name → id
    configured: list[str]  # models in the config (staleness looks at these)
    newest_window: Mapping[tuple[str, int], datetime]  # (monitor, model id) → start of its newest run
    windows: Mapping[str, timedelta]  # monitor → window length from the config

    @classmethod
    def read(cls, session: Session, config: Config, now: datetime) -> Scope:
        model_ids = {name: id_ for name, id_ in session.execute(select(Model.name, Model.id))}
        newest = {
            (monitor, model_id): start
            for monitor, model_id, start in session.execute(
                select(Run.monitor, Run.model_id, func.max(Run.window_start)).group_by(Run.monitor, Run.model_id)
            )
        }
        windows = {name: monitor.window for name, monitor in config.monitors.items()}
        return cls(now, model_ids, list(config.models), newest, windows)

    def score_bounds(
        self, rule: CompiledRule, kind: str, newest_window: Mapping[tuple[str, int], datetime] | None = None
    ) -> ColumnElement[bool]:
        """Per monitor, only its last ``2 * for + 2`` windows (counted back from ``newest_window``, by
        default each monitor's newest run): enough for ``for`` observations with a few windows lacking
        data, without ranking a monitor's whole history on every pass. Each term is (model, kind, window
        start ≥ bound), the prefix of the score index, so it is an index range."""
        span = 2 * rule.rule.for_ + 2
        bounds = [
            and_(
                Score.model_id == model_id,
                Score.kind == kind,
                Score.window_start >= newest - span * self.windows.get(monitor, DEFAULT_WINDOW),
                Score.monitor == monitor,
            )
            for (monitor, model_id), newest in (self.newest_window if newest_window is None else newest_window).items()
            if rule.rule.monitors is None or monitor in rule.rule.monitors
        ]
        return or_(*bounds) if bounds else false()


@dataclass(frozen=True, slots=True)
class Series:
    labels: Mapping[str, str]
    observations: list[Observation]  # newest first
    context: Mapping[str, Any] = field(default_factory=dict)  # monitor, model, feature, run_id ... for messages

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


def fingerprint(labels: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(labels.items()), separators=(",", ":")).encode()).hexdigest()


def _base_labels(rule: CompiledRule, model: str) -> dict[str, str]:
    return {"rule": rule.name, "model": model, "severity": rule.rule.severity}


def _field_value(selector: Selector, value: float | None, threshold: float | None, details: Mapping[str, Any]) -> Any:
    if selector.field in ("value", "breached"):
        return value
    if selector.field == "p_value":
        # A detector marks whether its value is a p-value; a distance is never read as one.
        return value if details.get("p_value", True) else None
    if selector.field == "threshold":
        return threshold
    extra = details.get(selector.field)
    return float(extra) if isinstance(extra, int | float) and not isinstance(extra, bool) else None


def _covered(rule: CompiledRule) -> ColumnElement[bool] | None:
    """Runs labelled enough for ``rule`` (its ``min_label_coverage``), None when it asks for no coverage."""
    minimum = rule.rule.min_label_coverage
    if minimum is None:
        return None
    return and_(Run.row_count > 0, Run.label_count >= literal(minimum) * Run.row_count)


def _newest_covered(session: Session, covered: ColumnElement[bool]) -> dict[tuple[str, int], datetime]:
    """(monitor, model id) → start of its newest run labelled enough: a rule with a minimum coverage
    counts its windows back from there, so a firing alert stays observed while labels are days behind."""
    return {
        (monitor, model_id): start
        for monitor, model_id, start in session.execute(
            select(Run.monitor, Run.model_id, func.max(Run.window_start))
            .where(covered)
            .group_by(Run.monitor, Run.model_id)
        )
    }


def _score_query(
    rule: CompiledRule, scope: Scope, covered: tuple[ColumnElement[bool], Mapping[tuple[str, int], datetime]] | None
) -> Select[Any]:
    """The newest ``for`` scores of each series; with ``covered`` (the coverage condition on runs and
    each monitor's newest covered window), only windows labelled enough are ranked: the others are not
    seen, so they neither count towards ``for`` nor break a streak nor resolve."""
    selector = rule.selector
    model_ids = scope.model_ids
    newest_first = func.row_number().over(
        partition_by=(Score.monitor, Score.feature, Score.method),
        order_by=(Score.window_start.desc(), Score.id.desc()),
    )
    inner = select(
        Score.id,
        Score.run_id,
        Score.monitor,
        Score.model_id,
        Score.window_start,
        Score.feature,
        Score.method,
        Score.value,
        Score.threshold,
        Score.breached,
        Score.details,
        newest_first.label("rn"),
    ).where(
        Score.kind == selector.score_kind,
        Score.status == "ok",
        Score.value.is_not(None),
        scope.score_bounds(rule, str(selector.score_kind), None if covered is None else covered[1]),
    )
    if covered is not None:
        inner = inner.join(Run, Run.id == Score.run_id).where(covered[0])
    if selector.method is None:
        # A slow-drift statistic (CUSUM) is on another scale than the window's own test: a rule
        # names it (drift.cusum.breached) to read it.
        inner = inner.where(Score.feature.is_not(None), Score.method.not_in(SEQUENTIAL_METHODS))
    else:
        inner = inner.where(Score.method == selector.method)
    if rule.rule.monitors is not None:
        inner = inner.where(Score.monitor.in_(rule.rule.monitors))
    if rule.rule.models is not None:
        inner = inner.where(Score.model_id.in_([model_ids[m] for m in rule.rule.models if m in model_ids]))
    sub = inner.subquery()
    return (
        select(sub, Run.window_end, Run.row_count)
        .join(Run, Run.id == sub.c.run_id)
        .where(sub.c.rn <= rule.rule.for_)
        .order_by(sub.c.monitor, sub.c.feature, sub.c.method, sub.c.rn)
    )


def _score_series(session: Session, rule: CompiledRule, scope: Scope) -> list[Series]:
    names = {id_: name for name, id_ in scope.model_ids.items()}
    selector = rule.selector
    found: dict[str, Series] = {}
    condition = _covered(rule)
    covered = None if condition is None else (condition, _newest_covered(session, condition))
    for row in session.execute(_score_query(rule, scope, covered)):
        details = row.details or {}
        labels = _base_labels(rule, names.get(row.model_id, str(row.model_id)))
        labels["monitor"] = row.monitor
        if row.feature is not None:
            labels["feature"] = row.feature
        if selector.method is None:
            labels["method"] = row.method
        labels.update(rule.rule.labels)
        key = fingerprint(labels)
        series = found.get(key)
        if series is None:
            context = {
                "model": labels["model"],
                "monitor": row.monitor,
                "feature": row.feature,
                "method": row.method,
                "run_id": row.run_id,
                "model_id": row.model_id,
                "row_count": row.row_count,
                "details": details,
            }
            series = found[key] = Series(labels, [], context)
        series.observations.append(
            Observation(
                value=_field_value(selector, row.value, row.threshold, details),
                window_start=row.window_start,
                window_end=row.window_end,
                threshold=row.threshold,
                breached=row.breached,
                details=details,
            )
        )
    return list(found.values())


def _metric_series(session: Session, rule: CompiledRule, scope: Scope) -> list[Series]:
    model_ids = scope.model_ids
    names = {id_: name for name, id_ in model_ids.items()}
    newest_first = func.row_number().over(partition_by=MetricPoint.series_id, order_by=MetricPoint.ts.desc())
    # Points of the last day only: a series silent for longer is no longer observed (a staleness rule says so).
    points = (
        select(MetricPoint.series_id, MetricPoint.ts, MetricPoint.value, newest_first.label("rn"))
        .where(MetricPoint.ts >= scope.now - METRIC_LOOKBACK)
        .subquery()
    )
    query = (
        select(MetricSeries.id, MetricSeries.model_id, MetricSeries.labels, points.c.ts, points.c.value)
        .join(points, points.c.series_id == MetricSeries.id)
        .where(MetricSeries.name == rule.selector.method, points.c.rn <= rule.rule.for_)
        .order_by(MetricSeries.id, points.c.rn)
    )
    if rule.rule.models is not None:
        query = query.where(MetricSeries.model_id.in_([model_ids[m] for m in rule.rule.models if m in model_ids]))
    found: dict[int, Series] = {}
    for row in session.execute(query):
        series = found.get(row.id)
        if series is None:
            # Prometheus labels first, ours on top: a series label can never rename the rule or model.
            labels = {k: str(v) for k, v in (row.labels or {}).items() if _LABEL_NAME.match(k)}
            labels.update(_base_labels(rule, names.get(row.model_id, str(row.model_id))))
            labels["metric"] = str(rule.selector.method)
            labels.update(rule.rule.labels)
            context = {"model": labels["model"], "metric": rule.selector.method, "series_labels": row.labels}
            series = found[row.id] = Series(labels, [], context)
        series.observations.append(Observation(value=row.value, window_start=row.ts))
    return list(found.values())


def _staleness_series(session: Session, rule: CompiledRule, scope: Scope) -> list[Series]:
    model_ids, now = scope.model_ids, scope.now
    wanted = [m for m in (rule.rule.models or scope.configured) if m in model_ids]
    if not wanted:
        return []
    ids = [model_ids[m] for m in wanted]
    newest = dict(
        session.execute(
            select(Prediction.model_id, func.max(Prediction.ts))
            .where(Prediction.model_id.in_(ids))
            .group_by(Prediction.model_id)
        ).all()
    )
    created = dict(session.execute(select(Model.id, Model.created_at).where(Model.id.in_(ids))).all())
    result = []
    for name in wanted:
        id_ = model_ids[name]
        last = newest.get(id_)
        since = last if last is not None else created[id_]
        since = since if since.tzinfo else since.replace(tzinfo=now.tzinfo)
        minutes = max((now - since) / timedelta(minutes=1), 0.0)
        labels = _base_labels(rule, name)
        labels.update(rule.rule.labels)
        context = {"model": name, "last_prediction": last.isoformat() if last else None}
        result.append(Series(labels, [Observation(value=minutes, window_start=since)], context))
    return result


def observe(session: Session, rule: CompiledRule, scope: Scope) -> list[Series]:
    """Every series of ``rule`` with its newest observations (newest first)."""
    if rule.selector.score_kind is not None:
        return _score_series(session, rule, scope)
    if rule.selector.source == "metric":
        return _metric_series(session, rule, scope)
    return _staleness_series(session, rule, scope)
