"""The monitor scheduler: every closed window of every monitor computed exactly once.

One :meth:`Scheduler.tick` does three things, each safe to run from several workers at once:

1. **plan** — insert a ``pending`` run for each window that closed (end + lateness ≤ now) since
   the monitor's last run. The unique ``(monitor, window_start)`` constraint makes this
   idempotent: two workers planning the same window insert one row.
2. **mark stale** — labels that arrived after a window's data was read (``label_ts`` later than
   the run's ``started_at``) set ``run.stale_since``; the window's label-dependent scores
   (performance, label coverage and lag, label drift) are then recomputed.
3. **run** — claim the oldest due run, compute it, write it; repeat until nothing is due. After
   downtime the backlog is therefore caught up oldest first.

Claims: one ``UPDATE run … WHERE id = (SELECT id … ORDER BY window_start LIMIT 1 FOR UPDATE SKIP
LOCKED) RETURNING …`` statement. On Postgres the row lock makes concurrent workers take different
rows; on SQLite the statement itself holds the single write lock. A claim is a lease
(``claimed_until = now + worker.claim_ttl``): a worker that dies leaves it to expire, and then
another worker takes the run over. ``attempts`` is incremented by every claim and serves as the
claim's token: the result is written only if ``claimed_by`` and ``attempts`` are still the
claimer's, so a worker whose lease was taken over cannot overwrite the new owner's result.

Results are atomic: the run's status and its scores are replaced in one transaction, so readers
see the previous result or the new one, never half of one. Statuses: ``pending`` → ``running``
→ ``succeeded`` | ``insufficient_data`` (with the reason in ``error``) | ``failed`` (an
unexpected error, e.g. a reference dataset that was never uploaded; retried after
``claim_ttl``, at most :data:`MAX_ATTEMPTS` claims).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import CursorResult, Engine, and_, bindparam, case, delete, func, insert, or_, select, text, update

from detectors.types import Score
from monitor.config import Config, as_utc
from monitor.metrics.process import observe_run
from monitor.runs.evaluation import ALL_PARTS, LABEL, LABEL_PARTS, Evaluation, evaluate, score_dict
from monitor.runs.references import InsufficientReference, References
from monitor.runs.windows import due_windows, load_window, window_floor, window_origin
from monitor.store.engine import transaction
from monitor.store.queries import sync_models, upsert_insert
from monitor.store.tables import CLAIMABLE, Prediction, Run, utcnow
from monitor.store.tables import Score as ScoreRow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# Rows per INSERT when a long downtime leaves many windows to plan.
_PLAN_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Claim:
    """A run this worker holds the lease of."""

    run_id: int
    monitor: str
    window_start: datetime
    window_end: datetime
    attempt: int
    started_at: datetime
    recompute: bool  # labels arrived late: only the label-dependent scores are recomputed


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Scheduler:
    """Plans, claims, computes and writes the runs of every monitor in ``config``.

    Construction does no I/O; the store is first touched by :meth:`tick`. ``clock`` gives the
    current UTC time (tests pass a fixed one).
    """

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.engine = engine
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self._model_ids: dict[str, int] | None = None
        self._references: References | None = None
        self._label_watermarks: dict[str, datetime] = {}

    # -------------------------------------------------------------------------------- plumbing

    @property
    def model_ids(self) -> dict[str, int]:
        if self._model_ids is None:
            self._model_ids = sync_models(self.engine, self.config)
        return self._model_ids

    @property
    def references(self) -> References:
        if self._references is None:
            self._references = References(self.config, self.engine, self.model_ids)
        return self._references

    # ------------------------------------------------------------------------------------ tick

    def tick(self, stop: threading.Event | None = None) -> int:
        """Plan, mark stale windows and compute everything due; returns the number of runs computed."""
        self.references.refresh()
        self.plan()
        self.mark_stale()
        return self.run_due(stop)

    def plan(self) -> int:
        """Create a pending run for every window that closed since each monitor's last run."""
        now = self.clock()
        planned = 0
        for name, monitor in self.config.monitors.items():
            model_id = self.model_ids[monitor.model]
            with self.engine.connect() as connection:
                last = connection.execute(select(func.max(Run.window_start)).where(Run.monitor == name)).scalar()
                if last is not None:
                    first = last + monitor.window
                elif monitor.start is not None:
                    first = as_utc(monitor.start)
                else:
                    oldest = connection.execute(
                        select(func.min(Prediction.ts)).where(Prediction.model_id == model_id)
                    ).scalar()
                    if oldest is None:
                        continue  # no data yet: nothing to anchor the first window on
                    first = window_floor(oldest, monitor.window)
            starts = due_windows(first, monitor.window, monitor.lateness, now)
            for i in range(0, len(starts), _PLAN_CHUNK):
                rows = [
                    {
                        "monitor": name,
                        "model_id": model_id,
                        "window_start": s,
                        "window_end": s + monitor.window,
                        "status": "pending",
                        "attempts": 0,
                    }
                    for s in starts[i : i + _PLAN_CHUNK]
                ]
                with transaction(self.engine) as session:
                    stmt = upsert_insert(session.get_bind().dialect.name)(Run).values(rows)
                    session.execute(stmt.on_conflict_do_nothing(index_elements=["monitor", "window_start"]))
            planned += len(starts)
        return planned

    def mark_stale(self) -> int:
        """Flag computed windows that received labels after their data was read; returns how many."""
        marked = 0
        by_model: dict[str, list[str]] = {}
        for name, monitor in self.config.monitors.items():
            by_model.setdefault(monitor.model, []).append(name)
        for model, monitors in by_model.items():
            model_id = self.model_ids[model]
            with self.engine.connect() as connection:
                watermark = (
                    self._label_watermarks.get(model)
                    or connection.execute(
                        select(func.min(Run.started_at)).where(Run.monitor.in_(monitors), Run.status == "succeeded")
                    ).scalar()
                )
                if watermark is None:
                    continue
                rows = connection.execute(
                    select(Prediction.ts, Prediction.label_ts).where(
                        Prediction.model_id == model_id, Prediction.label_ts > watermark
                    )
                ).all()
            # Later ticks only read labels newer than what this one saw.
            self._label_watermarks[model] = max((r[1] for r in rows if r[1] is not None), default=watermark)
            if not rows:
                continue
            ts = pd.to_datetime([r[0] for r in rows], utc=True)
            label_ts = pd.Series([r[1] for r in rows])
            updates = []
            for name in monitors:
                monitor = self.config.monitors[name]
                origin = window_origin(monitor.start)
                starts = origin + ((ts - origin) // monitor.window) * monitor.window
                latest = label_ts.groupby(np.asarray(starts)).max()
                updates += [
                    {"m": name, "ws": start.to_pydatetime(), "lt": label.to_pydatetime()}
                    for start, label in zip(pd.to_datetime(latest.index, utc=True), latest, strict=True)
                ]
            with self.engine.begin() as connection:  # Core executemany: one UPDATE per window
                result = connection.execute(
                    update(Run)
                    .where(
                        Run.monitor == bindparam("m"),
                        Run.window_start == bindparam("ws", type_=Run.window_start.type),
                        or_(Run.status == "succeeded", Run.status == "running"),  # no IN: executemany
                        Run.started_at < bindparam("lt", type_=Run.started_at.type),
                        or_(Run.stale_since.is_(None), Run.stale_since < bindparam("lt", type_=Run.started_at.type)),
                    )
                    .values(stale_since=bindparam("lt", type_=Run.stale_since.type)),
                    updates,
                )
                marked += max(result.rowcount, 0)
        if marked:
            log.info("late labels: %d window(s) marked for recompute", marked)
        return marked

    def run_due(self, stop: threading.Event | None = None) -> int:
        """Claim and compute runs, oldest window first, until none is due (or ``stop`` is set)."""
        done = 0
        while stop is None or not stop.is_set():
            claim = self.claim()
            if claim is None:
                break
            self.compute(claim)
            done += 1
        return done

    # ----------------------------------------------------------------------------------- claims

    def claim(self) -> Claim | None:
        """Lease the oldest runnable run of this config's monitors, or ``None``."""
        now = self.clock()
        ttl = self.config.worker.claim_ttl
        lease_free = or_(Run.claimed_until.is_(None), Run.claimed_until < now)
        runnable = or_(
            Run.status == "pending",
            and_(Run.status == "running", Run.claimed_until < now),
            and_(Run.status == "failed", Run.attempts < MAX_ATTEMPTS, lease_free),
            and_(Run.status == "succeeded", Run.stale_since.is_not(None), lease_free),
        )
        oldest = (
            select(Run.id)
            .where(text(f"({CLAIMABLE})"), Run.monitor.in_(list(self.config.monitors)), runnable)
            .order_by(Run.window_start, Run.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(Run)
            .where(Run.id == oldest)
            .values(
                claimed_by=self.worker_id,
                claimed_until=now + ttl,
                attempts=Run.attempts + 1,
                started_at=now,
                status=case((Run.status == "succeeded", "succeeded"), else_="running"),
            )
            .returning(Run.id, Run.monitor, Run.window_start, Run.window_end, Run.attempts, Run.status)
        )
        with self.engine.begin() as connection:
            row = connection.execute(stmt).first()
        if row is None:
            return None
        return Claim(
            row.id, row.monitor, row.window_start, row.window_end, row.attempts, now, row.status == "succeeded"
        )

    # ---------------------------------------------------------------------------------- compute

    def compute(self, claim: Claim) -> str:
        """Compute one claimed run and write its result; returns the status written."""
        begun = time.perf_counter()
        monitor = self.config.monitors[claim.monitor]
        model = self.config.models[monitor.model]
        rows = labels = None
        try:
            baseline = self.references.baseline(claim.monitor, claim.window_start)
            classes = baseline.classes if model.task == "multiclass" else None
            with self.engine.connect() as connection:
                batch = load_window(
                    connection,
                    self.model_ids[monitor.model],
                    model.features,
                    claim.window_start,
                    claim.window_end,
                    score_classes=classes,
                )
            rows, labels = batch.n, batch.label_count
            evaluation = evaluate(
                model,
                monitor,
                baseline,
                batch,
                window_seconds=monitor.window.total_seconds(),
                parts=LABEL_PARTS if claim.recompute else ALL_PARTS,
            )
        except InsufficientReference as exc:
            evaluation = Evaluation("insufficient_data", [], str(exc))
        except Exception as exc:  # a run that cannot be computed is recorded, and the next one goes on
            log.exception(
                "run failed", extra={"monitor": claim.monitor, "window_start": claim.window_start.isoformat()}
            )
            return self._write(claim, "failed", [], f"{type(exc).__name__}: {exc}", rows, labels, begun)
        return self._write(claim, evaluation.status, evaluation.scores, evaluation.reason, rows, labels, begun)

    def _write(
        self,
        claim: Claim,
        status: str,
        scores: list[Score],
        reason: str | None,
        rows: int | None,
        labels: int | None,
        begun: float,
    ) -> str:
        now = self.clock()
        duration_ms = (time.perf_counter() - begun) * 1000
        values: dict[str, Any] = {
            "finished_at": now,
            "duration_ms": duration_ms,
            "error": reason,
            "claimed_until": None,
            # Labels that arrived after this run read its data keep the window stale.
            "stale_since": case((Run.stale_since > claim.started_at, Run.stale_since), else_=None),
        }
        if status == "failed":
            # Keep the lease as a back-off before the retry; a failed recompute keeps the old scores.
            values.update(claimed_until=now + self.config.worker.claim_ttl, stale_since=Run.stale_since)
        if not (claim.recompute and status == "failed"):
            values["status"] = "succeeded" if claim.recompute else status
        if status != "failed":
            values.update(row_count=rows, label_count=labels)
        with transaction(self.engine) as session:
            # An UPDATE without RETURNING gives a CursorResult; Session.execute is typed with the wider Result.
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(Run)
                    .where(Run.id == claim.run_id, Run.claimed_by == self.worker_id, Run.attempts == claim.attempt)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                ),
            )
            if result.rowcount != 1:
                log.warning(
                    "run lost its claim (lease expired and another worker took it over); result discarded",
                    extra={"monitor": claim.monitor, "window_start": claim.window_start.isoformat()},
                )
                return "lost"  # nothing else was written in this transaction
            if status != "failed":
                old = delete(ScoreRow).where(ScoreRow.run_id == claim.run_id)
                if claim.recompute:
                    old = old.where(
                        or_(
                            ScoreRow.kind.in_(("performance", "labels")),
                            and_(ScoreRow.kind == "drift", ScoreRow.feature == LABEL),
                        )
                    )
                session.execute(old.execution_options(synchronize_session=False))
                if scores:
                    session.execute(insert(ScoreRow), [self._score_row(claim, s) for s in scores])
        observe_run(claim.monitor, status, duration_ms / 1000)
        log.info(
            "run finished",
            extra={
                "monitor": claim.monitor,
                "window_start": claim.window_start.isoformat(),
                "status": status,
                "recompute": claim.recompute,
                "attempt": claim.attempt,
                "rows": rows,
                "scores": len(scores),
                "duration_ms": round(duration_ms, 1),
                "worker": self.worker_id,
                "reason": reason,
            },
        )
        return status

    def _score_row(self, claim: Claim, score: Score) -> dict[str, Any]:
        return {
            "run_id": claim.run_id,
            "monitor": claim.monitor,
            "model_id": self.model_ids[self.config.monitors[claim.monitor].model],
            "window_start": claim.window_start,
            **score_dict(score),
        }
