"""Retention: deleting what each model's ``retention:`` lets go, and never what the monitors still need.

Each model's rows go in small batches (:data:`BATCH_ROWS` per ``DELETE``, one short transaction
each, oldest first), so ingestion and the worker's runs go on meanwhile and autovacuum keeps up.
What each batch may delete is decided again inside its own transaction (on SQLite under the write
lock, so nothing is planned or marked between the decision and the delete):

- ``prediction``: older than ``retention.predictions``, except rows a monitor of the model may
  still read — its reference range; the ``previous_windows`` span before its newest window; a
  window not computed yet (a pending, running, failed or stale run, with its previous windows) or
  not even planned (after its newest window); anything within ``recompute_within`` of now. A
  monitor without a run keeps all of its model's rows (its first window is anchored on the oldest).
  The cut-off is moved down to a window boundary of every monitor, so a window is deleted whole.
  Each batch raises ``model.pruned_before`` to the newest ``ts`` it deleted, under a lock on the
  model's row that the scheduler's stale scan also takes: a late label for a window retention
  reached (even half-way through a pass) never recomputes it from what is left.
  ``pending_label`` and ``rejected_record`` rows received longer ago than the same retention go too.
- Postgres: a weekly partition of ``prediction`` (:mod:`monitor.store.partitions`) that lies
  wholly before every one of its models' cut-off and holds no kept range is dropped whole instead
  (when every model is pruned): its keys are freed in batches first, then the decision is taken
  again and the partition dropped in one short transaction. A model without a predictions
  retention, or not in the config, keeps every partition holding its rows.
- ``metric_point``: Prometheus samples of the model's series older than ``retention.metrics``.
- ``run``, ``score`` and ``segment_score``: runs whose window ended longer ago than
  ``retention.scores``, with their scores and segment scores, when computed (succeeded or
  insufficient data), not stale and not held by a worker; the newest run of each monitor stays
  (the scheduler plans from it).
- ``alert`` and ``notification``: alerts of the model resolved longer ago than
  ``retention.alerts``, with their delivered or failed notifications; an alert with a notification
  still to send stays, and so does the newest notification of each group (its timing is read there).
- ``idempotent_request``: processed ``Idempotency-Key`` s older than :data:`IDEMPOTENCY_KEEP`
  (clients retry within minutes; a replay after that writes nothing new: ingestion is idempotent).

:func:`due` counts what would go; :func:`prune` deletes it. Both take the time as ``now``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, exists, func, not_, or_, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Tuple

from monitor.config import Config, MonitorConfig, Retention, as_utc
from monitor.store import partitions
from monitor.store.engine import transaction
from monitor.store.partitions import Partition
from monitor.store.queries import sync_models
from monitor.store.tables import (
    CLAIMABLE,
    Alert,
    Base,
    IdempotentRequest,
    MetricPoint,
    MetricSeries,
    Model,
    Notification,
    PendingLabel,
    Prediction,
    RejectedRecord,
    Run,
    Score,
    SegmentScore,
)

BATCH_ROWS = 5000
IDEMPOTENCY_KEEP = timedelta(days=1)
# How often the worker prunes.
INTERVAL = timedelta(hours=1)
KEEP_FOREVER = Retention()
# Windows to compute before the cut-off, each kept as its own range; past this many the cut-off moves down to the
# next one instead, so a statement stays small whatever a backlog of failed windows looks like.
_MAX_KEPT_RANGES = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ALIGN_ROUNDS = 100
_US = timedelta(microseconds=1)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """One kind of row of one model (or of the whole store, ``model`` None) that retention deletes."""

    model: str | None
    table: str
    # The rows of ``table`` that may go, decided on the connection of the statement that deletes them (None: none).
    condition: Callable[[Connection], Any]
    # A column, or a tuple of columns, naming each row.
    id_column: Any
    order_column: Any
    # Predictions: the model whose pruned_before each batch raises (locked before the batch decides).
    watermark: int | None = None
    # A weekly partition of prediction dropped whole (``table`` is its name; condition and columns unused).
    partition: Partition | None = None


def targets(
    config: Config,
    ids: dict[str, int],
    now: datetime,
    models: list[str] | None = None,
    dropped: list[Partition] = [],  # noqa: B006 (never mutated)
) -> list[Target]:
    """What retention deletes, in the order it deletes it (partitions dropped whole first, scores before their
    runs, notifications before alerts).

    ``ids`` maps model names to their store ids; ``models`` None is every model, and the store-wide tables;
    ``dropped`` are the partitions of ``prediction`` to drop (see :func:`droppable`), which batches then skip.
    """
    out: list[Target] = [
        Target(None, p.name, _always(None), Prediction.id, Prediction.ts, partition=p) for p in dropped
    ]
    skipped = [(p.start, p.end) for p in dropped]
    for name in list(config.models) if models is None else models:
        retention, model_id = config.models[name].retention, ids[name]
        if retention.predictions is not None:
            cutoff = now - retention.predictions
            waiting = and_(PendingLabel.model_id == model_id, PendingLabel.label_received_at < cutoff)
            rejected = and_(RejectedRecord.model == name, RejectedRecord.received_at < cutoff)
            out += [
                Target(name, "prediction", _predictions(config, name, model_id, now, cutoff, skipped), Prediction.id,
                       Prediction.ts, watermark=model_id),
                Target(name, "pending_label", _always(waiting), PendingLabel.id, PendingLabel.label_received_at),
                Target(name, "rejected_record", _always(rejected), RejectedRecord.id, RejectedRecord.received_at),
            ]  # fmt: skip
        if retention.scores is not None:
            expired = _expired_runs(model_id, now - retention.scores)
            runs = select(Run.id).where(expired)
            out += [
                Target(name, "score", _always(Score.run_id.in_(runs)), Score.id, Score.id),
                Target(name, "segment_score", _always(SegmentScore.run_id.in_(runs)), SegmentScore.id, SegmentScore.id),
                # Scores and segment scores first, in batches of their own, so deleting a run cascades to none.
                Target(name, "run", _always(expired), Run.id, Run.window_start),
            ]
        if retention.alerts is not None:
            alerts = _resolved_alerts(name, now - retention.alerts)
            newest_of_group = select(func.max(Notification.id)).where(Notification.group_key.is_not(None))
            sent = and_(
                Notification.alert_id.in_(alerts),
                Notification.status.in_(("delivered", "failed")),
                Notification.id.not_in(newest_of_group.group_by(Notification.group_key)),
            )
            out += [
                Target(name, "notification", _always(sent), Notification.id, Notification.id),
                Target(name, "alert", _always(Alert.id.in_(alerts)), Alert.id, Alert.id),
            ]
        if retention.metrics is not None:
            series = select(MetricSeries.id).where(MetricSeries.model_id == model_id)
            old = and_(MetricPoint.series_id.in_(series), MetricPoint.ts < now - retention.metrics)
            key = tuple_(MetricPoint.series_id, MetricPoint.ts)
            out.append(Target(name, "metric_point", _always(old), key, MetricPoint.ts))
    if models is None:
        old = IdempotentRequest.created_at < now - IDEMPOTENCY_KEEP
        out.append(
            Target(None, "idempotent_request", _always(old), IdempotentRequest.key, IdempotentRequest.created_at)
        )
    return out


def _always(condition: Any) -> Callable[[Connection], Any]:
    """A condition that does not depend on what the store holds at the moment of the batch."""
    return lambda _connection: condition


def due(engine: Engine, config: Config, now: datetime, models: list[str] | None = None) -> list[tuple[Target, int]]:
    """Each target with the number of rows :func:`prune` would delete now (a dry run)."""
    counts = []
    for target in _bound(engine, config, now, models):
        with engine.connect() as connection:
            if target.partition is not None:
                counts.append((target, partitions.row_count(connection, target.partition)))
                continue
            condition = target.condition(connection)
            count = 0 if condition is None else connection.scalar(select(func.count()).where(condition))
        counts.append((target, int(count or 0)))
    return counts


def prune(
    engine: Engine,
    config: Config,
    now: datetime,
    models: list[str] | None = None,
    *,
    batch: int = BATCH_ROWS,
    progress: Callable[[Target, int], None] | None = None,
    stop: threading.Event | None = None,
) -> list[tuple[Target, int]]:
    """Delete every target's due rows, ``batch`` rows per transaction; returns each target with its count.

    ``progress(target, n)`` is called after each batch with the rows it deleted; ``stop`` ends the
    pass between two batches (the worker's shutdown).
    """
    done = []
    for target in _bound(engine, config, now, models):
        deleted = 0
        if target.partition is not None:
            deleted = _drop(engine, config, target.partition, now, batch)
            if progress is not None:
                progress(target, deleted)
            done.append((target, deleted))
            if stop is not None and stop.is_set():
                break
            continue
        for count in _batches(engine, target, batch):
            deleted += count
            if progress is not None:
                progress(target, count)
            if stop is not None and stop.is_set():
                break
        done.append((target, deleted))
        if stop is not None and stop.is_set():
            break
    return done


def _bound(engine: Engine, config: Config, now: datetime, models: list[str] | None) -> list[Target]:
    ids = sync_models(engine, config)
    dropped: list[Partition] = []
    if models is None:
        with engine.connect() as connection:
            if partitions.is_partitioned(connection):
                dropped = droppable(connection, config, ids, now, partitions.partitions(connection))
    return targets(config, ids, now, models, dropped)


def _batches(engine: Engine, target: Target, batch: int) -> Iterator[int]:
    table = Base.metadata.tables[target.table]
    while True:
        with transaction(engine) as session:
            connection = session.connection()
            if target.watermark is not None:
                _lock_model(connection, target.watermark)
            condition = target.condition(connection)
            if condition is None:
                return
            named = target.id_column.clauses if isinstance(target.id_column, Tuple) else [target.id_column]
            chosen = select(*named).where(condition).order_by(target.order_column).limit(batch)
            statement = delete(table).where(target.id_column.in_(chosen))
            if target.watermark is None:
                count = connection.execute(statement).rowcount
            else:
                deleted = connection.execute(statement.returning(Prediction.ts)).scalars().all()
                count = len(deleted)
                if deleted:
                    _raise_pruned_before(connection, target.watermark, max(deleted))
        if not count:
            return
        yield count


def _lock_model(connection: Connection, model_id: int) -> None:
    """Lock the model's row: the stale scan reads pruned_before under a share lock, so a batch decides and deletes
    either before a late label marks a window (and sees the mark) or after (and the scan sees the new floor)."""
    # FOR NO KEY UPDATE: ingestion's foreign key checks (FOR KEY SHARE) go on meanwhile.
    connection.execute(select(Model.id).where(Model.id == model_id).with_for_update(key_share=True))


def _raise_pruned_before(connection: Connection, model_id: int, newest: datetime) -> None:
    connection.execute(
        update(Model)
        .where(Model.id == model_id, or_(Model.pruned_before.is_(None), Model.pruned_before < newest))
        .values(pruned_before=newest)
    )


# ---------------------------------------------------------------------------------- partitions


def droppable(
    connection: Connection, config: Config, ids: dict[str, int], now: datetime, candidates: list[Partition]
) -> list[Partition]:
    """The partitions among ``candidates`` that every model holding rows in them lets go whole."""
    limits: dict[int, tuple[datetime, list[tuple[datetime, datetime]]] | None] = {}
    for name, model in config.models.items():
        if model.retention.predictions is not None:
            monitors = {m: spec for m, spec in config.monitors.items() if spec.model == name}
            limits[ids[name]] = _kept_predictions(connection, monitors, now, now - model.retention.predictions)
    stored = connection.scalars(select(Model.id)).all()
    out = []
    for partition in candidates:
        if partition.end > now:
            continue
        holders = _holders(connection, partition, stored)
        if all(_lets_go(limits.get(model_id), partition) for model_id in holders):
            out.append(partition)
    return out


def _holders(connection: Connection, partition: Partition, models: Any) -> list[int]:
    """The models with rows in ``partition`` (one index probe each)."""
    probe = text(f"SELECT EXISTS (SELECT 1 FROM {partition.name} WHERE model_id = :model_id)")
    return [model_id for model_id in models if connection.scalar(probe, {"model_id": model_id})]


def _lets_go(limit: tuple[datetime, list[tuple[datetime, datetime]]] | None, partition: Partition) -> bool:
    if limit is None:
        return False
    before, kept = limit
    return partition.end <= before and not any(start < partition.end and partition.start < end for start, end in kept)


def _drop(engine: Engine, config: Config, partition: Partition, now: datetime, batch: int) -> int:
    """Free the partition's keys in batches, then drop it if it may still go; returns the rows dropped."""
    with engine.connect() as connection:
        rows = partitions.row_count(connection, partition)
    bounds = {"start": partition.start, "end": partition.end, "batch": batch}
    free = text(f"DELETE FROM {partitions.KEY_TABLE} WHERE ctid IN (SELECT ctid FROM {partitions.KEY_TABLE} "
                "WHERE ts >= :start AND ts < :end LIMIT :batch)")  # fmt: skip
    while True:
        with engine.begin() as connection:
            if not connection.execute(free, bounds).rowcount:
                break
    try:
        with engine.begin() as connection:
            # The table first, as ingestion and partition creation take it before model (no deadlock); every
            # statement waits meanwhile, so at most partitions.LOCK_TIMEOUT.
            connection.execute(text(f"SET LOCAL lock_timeout = '{partitions.LOCK_TIMEOUT}'"))
            connection.execute(text("LOCK TABLE prediction IN ACCESS EXCLUSIVE MODE"))
            ids = {name: i for name, i in connection.execute(select(Model.name, Model.id)).all()}
            holders = _holders(connection, partition, list(ids.values()))
            for model_id in sorted(holders):
                _lock_model(connection, model_id)
            if droppable(connection, config, ids, now, [partition]) != [partition]:
                raise _Kept
            for model_id in holders:
                _raise_pruned_before(connection, model_id, partition.end - _US)
            partitions.drop(connection, partition)
    except _Kept:
        rows = 0
    except DBAPIError as exc:  # the lock on prediction not had within partitions.LOCK_TIMEOUT
        log.warning("retention: partition %s not dropped: %s", partition.name, str(exc.orig).strip().splitlines()[0])
        rows = 0
    if rows == 0:  # kept after all: its rows get their keys back (a re-sent record may have taken one meanwhile)
        with engine.begin() as connection:
            connection.execute(
                text(f"INSERT INTO {partitions.KEY_TABLE} (model_id, prediction_id, ts) "
                     f"SELECT model_id, prediction_id, ts FROM {partition.name} ON CONFLICT DO NOTHING")
            )  # fmt: skip
    return rows


class _Kept(Exception):
    """The partition became needed between the plan and the drop."""


# --------------------------------------------------------------------------------------- predictions


def _predictions(
    config: Config, model: str, model_id: int, now: datetime, cutoff: datetime, skipped: list[tuple[datetime, datetime]]
) -> Callable[[Connection], Any]:
    monitors = {name: m for name, m in config.monitors.items() if m.model == model}

    def condition(connection: Connection) -> Any:
        kept = _kept_predictions(connection, monitors, now, cutoff)
        if kept is None:
            return None
        before, ranges = kept
        p = Prediction
        return and_(
            p.model_id == model_id,
            p.ts < before,
            # Kept ranges, and the partitions dropped whole in this pass.
            *(not_(and_(p.ts >= start, p.ts < end)) for start, end in [*ranges, *skipped]),
        )

    return condition


def _kept_predictions(
    connection: Connection, monitors: dict[str, MonitorConfig], now: datetime, cutoff: datetime
) -> tuple[datetime, list[tuple[datetime, datetime]]] | None:
    """The time before which rows may go and the ranges before it that stay; None if every row stays."""
    before = cutoff
    ranges: list[tuple[datetime, datetime]] = []
    for name, monitor in monitors.items():
        newest = connection.execute(
            select(func.max(Run.window_start), func.max(Run.window_end)).where(Run.monitor == name)
        ).one()
        if newest[0] is None:
            return None
        lookback = monitor.window * (monitor.reference.previous_windows or 0)
        before = min(before, newest[0] - lookback, newest[1], now - monitor.recompute_within)
        if monitor.reference.range is not None:
            ranges.append(monitor.reference.range)
        open_windows = connection.execute(
            select(Run.window_start, Run.window_end)
            .where(text(f"({CLAIMABLE})"), Run.monitor == name, Run.window_start < cutoff)
            .order_by(Run.window_start)
        ).all()
        ranges += [(start - lookback, end) for start, end in open_windows]
    grids = [(m.window, _EPOCH if m.start is None else as_utc(m.start)) for m in monitors.values()]
    before = _aligned(before, grids, down=True)
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted((_aligned(s, grids, down=True), _aligned(e, grids, down=False)) for s, e in ranges):
        if start >= before:
            break
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    if len(merged) > _MAX_KEPT_RANGES:
        before, merged = merged[_MAX_KEPT_RANGES][0], merged[:_MAX_KEPT_RANGES]
    return before, merged


def _aligned(moment: datetime, grids: list[tuple[timedelta, datetime]], *, down: bool) -> datetime:
    """``moment`` moved to the nearest instant that is a window boundary of every grid, downwards or upwards.

    Grids may share no boundary (hourly windows from :30 beside hourly ones from :00): the search then
    stops after a few rounds where it stands, further down (or up), which only keeps more rows.
    """
    for _ in range(_ALIGN_ROUNDS):
        moved = moment
        for size, origin in grids:
            steps = (moved - origin) / size
            whole = (moved - origin) // size
            moved = origin + (whole if down or steps == whole else whole + 1) * size
        if moved == moment:
            break
        moment = moved
    return moment


# -------------------------------------------------------------------------------------------- scores


def _expired_runs(model_id: int, ended_before: datetime) -> Any:
    """Runs of a model whose scores may go: computed, not stale, not held, ended in time, not their monitor's newest."""
    newest = select(Run.monitor, func.max(Run.window_start).label("start")).group_by(Run.monitor).subquery()
    return and_(
        Run.model_id == model_id,
        Run.window_end < ended_before,
        Run.status.in_(("succeeded", "insufficient_data")),
        Run.stale_since.is_(None),
        Run.claimed_until.is_(None),
        ~exists().where(newest.c.monitor == Run.monitor, newest.c.start == Run.window_start),
    )


# -------------------------------------------------------------------------------------------- alerts


def _resolved_alerts(model: str, resolved_before: datetime) -> Any:
    unsent = exists().where(Notification.alert_id == Alert.id, Notification.status.in_(("pending", "sending")))
    return select(Alert.id).where(
        Alert.state == "resolved",
        Alert.resolved_at < resolved_before,
        Alert.labels["model"].as_string() == model,
        ~unsent,
    )
