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
  The cut-off is moved down to a window boundary of every monitor, so a window is deleted whole,
  never left half for a late label's recompute. ``pending_label`` and ``rejected_record`` rows
  received longer ago than the same retention go too.
- ``run`` and ``score``: runs whose window ended longer ago than ``retention.scores``, with their
  scores, when computed (succeeded or insufficient data), not stale and not held by a worker; the
  newest run of each monitor stays (the scheduler plans from it).
- ``alert`` and ``notification``: alerts of the model resolved longer ago than
  ``retention.alerts``, with their delivered or failed notifications; an alert with a notification
  still to send stays, and so does the newest notification of each group (its timing is read there).
- ``idempotent_request``: processed ``Idempotency-Key`` s older than :data:`IDEMPOTENCY_KEEP`
  (clients retry within minutes; a replay after that writes nothing new: ingestion is idempotent).

:func:`due` counts what would go; :func:`prune` deletes it. Both take the time as ``now``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, exists, func, not_, select, text

from monitor.config import Config, MonitorConfig, Retention, as_utc
from monitor.store.engine import transaction
from monitor.store.queries import sync_models
from monitor.store.tables import (
    CLAIMABLE,
    Alert,
    IdempotentRequest,
    Notification,
    PendingLabel,
    Prediction,
    RejectedRecord,
    Run,
    Score,
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


@dataclass(frozen=True, slots=True)
class Target:
    """One kind of row of one model (or of the whole store, ``model`` None) that retention deletes."""

    model: str | None
    table: str
    # The rows of ``table`` that may go, decided on the connection of the statement that deletes them (None: none).
    condition: Callable[[Connection], Any]
    id_column: Any
    order_column: Any


def targets(config: Config, ids: dict[str, int], now: datetime, models: list[str] | None = None) -> list[Target]:
    """What retention deletes, in the order it deletes it (scores before their runs, notifications before alerts).

    ``ids`` maps model names to their store ids; ``models`` None is every model, and the store-wide tables.
    """
    out: list[Target] = []
    for name in list(config.models) if models is None else models:
        retention, model_id = config.models[name].retention, ids[name]
        if retention.predictions is not None:
            cutoff = now - retention.predictions
            waiting = and_(PendingLabel.model_id == model_id, PendingLabel.label_received_at < cutoff)
            rejected = and_(RejectedRecord.model == name, RejectedRecord.received_at < cutoff)
            out += [
                Target(name, "prediction", _predictions(config, name, model_id, now, cutoff), Prediction.id,
                       Prediction.ts),
                Target(name, "pending_label", _always(waiting), PendingLabel.id, PendingLabel.label_received_at),
                Target(name, "rejected_record", _always(rejected), RejectedRecord.id, RejectedRecord.received_at),
            ]  # fmt: skip
        if retention.scores is not None:
            expired = _expired_runs(model_id, now - retention.scores)
            out += [
                Target(name, "score", _always(Score.run_id.in_(select(Run.id).where(expired))), Score.id, Score.id),
                # Scores first, in batches of their own, so deleting a run cascades to none of them.
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
    return targets(config, sync_models(engine, config), now, models)


def _batches(engine: Engine, target: Target, batch: int) -> Iterator[int]:
    table = target.id_column.table
    while True:
        with transaction(engine) as session:
            connection = session.connection()
            condition = target.condition(connection)
            if condition is None:
                return
            chosen = select(target.id_column).where(condition).order_by(target.order_column).limit(batch)
            count = connection.execute(delete(table).where(target.id_column.in_(chosen))).rowcount
        if not count:
            return
        yield count


# --------------------------------------------------------------------------------------- predictions


def _predictions(
    config: Config, model: str, model_id: int, now: datetime, cutoff: datetime
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
            *(not_(and_(p.ts >= start, p.ts < end)) for start, end in ranges),
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
