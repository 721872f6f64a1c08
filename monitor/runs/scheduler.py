"""The monitor scheduler: every closed window of every monitor computed exactly once.

One :meth:`Scheduler.tick` does three things, each safe to run from several workers at once:

1. **plan** — insert a ``pending`` run for each window that closed (end + lateness ≤ now) since
   the monitor's last run. The unique ``(monitor, window_start)`` constraint makes this
   idempotent: two workers planning the same window insert one row.
2. **mark stale** — labels or predictions *received* after a window's run started (whatever time
   they carry) set ``run.stale_since``: late labels recompute the window's label-dependent scores
   (performance, label coverage, lag and corrections, label drift), late predictions all of them
   (``run.stale_rows``) if the window started within ``recompute_within``. The scan reads what
   arrived since its watermark, kept per monitor in ``scan_watermark``.
3. **run** — claim the oldest due run, compute it, write it; repeat until nothing is due. After
   downtime the backlog is therefore caught up oldest first.

Claims: one ``UPDATE run … WHERE id = (SELECT id … ORDER BY window_start LIMIT 1 FOR UPDATE SKIP
LOCKED) RETURNING …`` statement. On Postgres the row lock makes concurrent workers take different
rows; on SQLite the statement itself holds the single write lock. A claim is a short lease
(``claimed_until = now + worker.run_lease``) that a heartbeat thread renews every third of it while
the run computes, so a lease expires only when its worker died (or lost the store): another worker
then takes the run over within about one lease. Every claim draws a new ``claim_token``; renewals
and the result are written only while the run still carries the claimer's token, so a worker whose
lease was taken over stops renewing and cannot overwrite the new owner's result.

Results are atomic: the run's status and its scores are replaced in one transaction, so readers
see the previous result or the new one, never half of one. Statuses: ``pending`` → ``running``
→ ``succeeded`` | ``insufficient_data`` (with the reason in ``error``) | ``failed`` (an
unexpected error, e.g. a reference dataset that was never uploaded; retried after
``run_lease``).

Attempts: ``attempts`` counts the claims since the window's last result (a run planned, retried or
made stale by late data starts again at 1). A computation, or a recompute, whose
``worker.max_attempts``-th claim fails or is abandoned (its lease expired) ends ``failed`` with
its last error and is not claimed again until ``driftscope runs retry``
(:func:`monitor.store.actions.retry_run`) makes it ``pending``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

import pandas as pd
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from detectors.types import Score
from monitor.config import Config, as_utc
from monitor.metrics.process import count_late_rows_not_recomputed, observe_run
from monitor.runs.evaluation import (
    ALL_PARTS,
    LABEL,
    LABEL_PARTS,
    Baseline,
    Evaluation,
    Part,
    evaluate,
    score_dict,
)
from monitor.runs.pushdown import Aggregate, pushdown_window
from monitor.runs.references import InsufficientReference, References
from monitor.runs.segments import SegmentResult, evaluate_segments, resolve_versions
from monitor.runs.windows import Batch, due_windows, load_window, window_floor, window_origin
from monitor.store.engine import transaction
from monitor.store.queries import sync_models, upsert_insert
from monitor.store.segments import deployments
from monitor.store.tables import CLAIMABLE, Model, Prediction, Run, ScanWatermark, SegmentScore, utcnow
from monitor.store.tables import Score as ScoreRow

log = logging.getLogger(__name__)

# Statuses of a computed window that late data can make stale (claimed again for a recompute).
RECOMPUTED_STATUSES = ("succeeded", "insufficient_data")
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
    token: str  # run.claim_token while this worker holds the run
    recompute: bool  # the window has a result already; late labels or predictions made it stale
    parts: frozenset[Part] = ALL_PARTS  # LABEL_PARTS when only labels arrived late


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
        window_aggregators: Mapping[str, Aggregate] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        # Per push-down model (`mode: pushdown`), how its windows are aggregated at the source.
        self.window_aggregators = dict(window_aggregators or {})
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self._model_ids: dict[str, int] | None = None
        self._references: References | None = None

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
        """Flag computed windows that received labels or predictions after they were computed; returns how many.

        Each monitor's scan reads what was received since its watermark (kept in ``scan_watermark``,
        so a restart does not re-read history) and advances it in the transaction that marks.
        """
        with self.engine.connect() as connection:
            stored = {w.monitor: w for w in connection.execute(select(ScanWatermark)).all()}
        marked = sum(self._scan(name, stored.get(name)) for name in self.config.monitors)
        if marked:
            log.info("late data: %d window(s) marked for recompute", marked)
        return marked

    def _scan(self, name: str, stored: Any) -> int:
        monitor = self.config.monitors[name]
        model_id = self.model_ids[monitor.model]
        with self.engine.connect() as connection:
            if stored is None:
                # First scan of this monitor: nothing received before its first run can be late.
                first = connection.scalar(select(func.min(Run.started_at)).where(Run.monitor == name))
                if first is None:
                    return 0
                labels_from = rows_from = first
            else:
                labels_from, rows_from = stored.labels_until, stored.predictions_until
            labels = _received(connection, model_id, Prediction.label_received_at, labels_from)
            rows = _received(connection, model_id, Prediction.ingested_at, rows_from)
            late_labels = self._late(connection, name, labels, LABEL_STALE_STATUSES)
            late_rows = self._late(connection, name, rows, ROWS_STALE_STATUSES)
        horizon = self.clock() - monitor.recompute_within
        beyond = late_rows[late_rows.index < horizon]
        late_rows = late_rows[late_rows.index >= horizon]
        advanced = {
            "labels_until": max(labels_from, labels.received.max().to_pydatetime()) if len(labels) else labels_from,
            "predictions_until": max(rows_from, rows.received.max().to_pydatetime()) if len(rows) else rows_from,
        }
        with self.engine.begin() as connection:
            if not _advance_watermark(connection, name, stored, advanced):
                return 0  # another worker scanned the same rows: it marks and reports them
            late_labels, late_rows = _unpruned(connection, name, model_id, late_labels, late_rows)
            marked = _mark(connection, name, late_labels, rows=False) + _mark(connection, name, late_rows, rows=True)
        for start, rows in zip(pd.DatetimeIndex(beyond.index).to_pydatetime(), beyond["rows"], strict=True):
            log.warning(
                "late predictions beyond recompute_within: window not recomputed",
                extra={
                    "monitor": name,
                    "window_start": start.isoformat(),
                    "rows": int(rows),
                    "recompute_within": str(monitor.recompute_within),
                },
            )
            count_late_rows_not_recomputed(name, int(rows))
        return marked

    def _late(
        self, connection: Connection, name: str, received: pd.DataFrame, statuses: tuple[str, ...]
    ) -> pd.DataFrame:
        """Per window of ``name`` computed before some of ``received`` arrived: how many rows, and the newest.

        ``received`` has columns ``ts`` and ``received``; the result is indexed by window start
        (``rows``, ``newest``), with only windows whose run (in ``statuses``) started before them.
        """
        empty = pd.DataFrame({"rows": [], "newest": []}, index=pd.DatetimeIndex([], tz="UTC"))
        if received.empty:
            return empty
        monitor = self.config.monitors[name]
        origin = window_origin(monitor.start)
        received = received.assign(start=origin + ((received.ts - origin) // monitor.window) * monitor.window)
        lo, hi = received.start.min().to_pydatetime(), received.start.max().to_pydatetime()
        computed = connection.execute(
            select(Run.window_start, Run.started_at).where(
                Run.monitor == name,
                Run.window_start >= lo,
                Run.window_start <= hi,
                Run.status.in_(statuses),
                Run.started_at.is_not(None),
            )
        ).all()
        if not computed:
            return empty
        runs = pd.DataFrame(
            {
                "start": pd.to_datetime([r.window_start for r in computed], utc=True),
                "started_at": pd.to_datetime([r.started_at for r in computed], utc=True),
            }
        )
        late = received.merge(runs, on="start")
        late = late[late.received > late.started_at]
        return late.groupby("start").agg(rows=("received", "size"), newest=("received", "max"))

    def run_due(self, stop: threading.Event | None = None) -> int:
        """Claim and compute runs, oldest window first, until none is due (or ``stop`` is set)."""
        done = 0
        self.give_up()
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
        ttl = self.config.worker.run_lease
        token = uuid.uuid4().hex
        expired = Run.claimed_until < now
        attempts_left = Run.attempts < self.config.worker.max_attempts
        runnable = or_(
            Run.status == "pending",
            and_(Run.status == "running", expired, attempts_left),
            and_(Run.status == "failed", attempts_left, or_(Run.claimed_until.is_(None), expired)),
            and_(
                Run.status.in_(RECOMPUTED_STATUSES),
                Run.stale_since.is_not(None),
                or_(Run.claimed_until.is_(None), and_(expired, attempts_left)),
            ),
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
                claim_token=token,
                # No lease left over (planned, retried, or computed and now stale): a new computation's first
                # attempt. A lease left over is a failed attempt's back-off or a dead worker's: one more.
                attempts=case((Run.claimed_until.is_(None), 1), else_=Run.attempts + 1),
                started_at=now,
                status=case((Run.status.in_(RECOMPUTED_STATUSES), Run.status), else_="running"),
            )
            .returning(Run.id, Run.monitor, Run.window_start, Run.window_end, Run.attempts, Run.status, Run.stale_rows)
        )
        with self.engine.begin() as connection:
            row = connection.execute(stmt).first()
        if row is None:
            return None
        recompute = row.status in RECOMPUTED_STATUSES
        parts = LABEL_PARTS if recompute and not row.stale_rows else ALL_PARTS
        return Claim(row.id, row.monitor, row.window_start, row.window_end, row.attempts, now, token, recompute, parts)

    def give_up(self) -> int:
        """End ``failed`` the runs whose last allowed attempt was abandoned (its lease expired); returns how many."""
        now = self.clock()
        limit = self.config.worker.max_attempts
        with self.engine.begin() as connection:
            abandoned = connection.execute(
                update(Run)
                .where(
                    Run.monitor.in_(list(self.config.monitors)),
                    Run.status.in_(("running", *RECOMPUTED_STATUSES)),
                    Run.claimed_until < now,
                    Run.attempts >= limit,
                )
                .values(
                    status="failed",
                    claimed_until=None,
                    claim_token=None,
                    finished_at=now,
                    error=f"abandoned after {limit} attempts: the lease of the last one expired (its worker died, "
                    "or lost the store, while computing)",
                )
                .returning(Run.monitor, Run.window_start)
            ).all()
        for run in abandoned:
            log.warning(
                "run abandoned after its last attempt: failed",
                extra={"monitor": run.monitor, "window_start": run.window_start.isoformat(), "attempts": limit},
            )
        return len(abandoned)

    def renew(self, claim: Claim) -> bool:
        """Extend ``claim``'s lease by ``worker.run_lease`` from now; False once the run is no longer ours."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(Run)
                .where(Run.id == claim.run_id, Run.claim_token == claim.token)
                .values(claimed_until=self.clock() + self.config.worker.run_lease)
            )
        return result.rowcount == 1

    @contextmanager
    def _heartbeat(self, claim: Claim) -> Iterator[None]:
        """Renew ``claim``'s lease every third of ``run_lease`` until the block ends."""
        done = threading.Event()
        interval = self.config.worker.run_lease.total_seconds() / 3

        def beat() -> None:
            while not done.wait(interval):
                try:
                    if not self.renew(claim):
                        # Taken over (our lease expired) or already written: the write refuses a lost claim
                        # and says so, so the heartbeat only stops.
                        return
                except Exception:  # the store briefly unreachable: two more beats before the lease runs out
                    log.warning("lease renewal failed", exc_info=True, extra={"run_id": claim.run_id})

        thread = threading.Thread(target=beat, name=f"lease-{claim.run_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    # ---------------------------------------------------------------------------------- compute

    def compute(self, claim: Claim) -> str:
        """Compute one claimed run and write its result, its lease renewed meanwhile; returns the status written."""
        with self._heartbeat(claim):
            return self._compute(claim)

    def _compute(self, claim: Claim) -> str:
        begun = time.perf_counter()
        monitor = self.config.monitors[claim.monitor]
        model = self.config.models[monitor.model]
        rows = labels = None
        segments: list[SegmentResult] = []
        try:
            baseline = self.references.baseline(claim.monitor, claim.window_start)
            classes = baseline.classes if model.task == "multiclass" else None
            if monitor.model in self.window_aggregators:  # push-down: aggregated where the documents are
                aggregate = self.window_aggregators[monitor.model]
                evaluation, rows, _ = pushdown_window(
                    model, monitor, baseline, aggregate, claim.window_start, claim.window_end
                )
                return self._write(claim, evaluation.status, evaluation.scores, evaluation.reason, rows, None, begun)
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
                parts=claim.parts,
                history=self._slow_drift_history(claim),
            )
            arrival = self._arrival_scores(claim)
            if evaluation.status == "succeeded":
                segments = self._segments(claim, baseline, batch)
        except InsufficientReference as exc:
            evaluation, arrival = Evaluation("insufficient_data", [], str(exc)), []
        except Exception as exc:  # a run that cannot be computed is recorded, and the next one goes on
            log.exception(
                "run failed", extra={"monitor": claim.monitor, "window_start": claim.window_start.isoformat()}
            )
            return self._write(claim, "failed", [], f"{type(exc).__name__}: {exc}", rows, labels, begun)
        return self._write(
            claim, evaluation.status, evaluation.scores + arrival, evaluation.reason, rows, labels, begun, segments
        )

    def _write(
        self,
        claim: Claim,
        status: str,
        scores: list[Score],
        reason: str | None,
        rows: int | None,
        labels: int | None,
        begun: float,
        segments: list[SegmentResult] | None = None,
    ) -> str:
        now = self.clock()
        duration_ms = (time.perf_counter() - begun) * 1000
        values: dict[str, Any] = {
            "finished_at": now,
            "duration_ms": duration_ms,
            "error": reason,
            "claimed_until": None,
            "claim_token": None,  # the claim ends with its result: a late heartbeat renews nothing
            # Labels or predictions that arrived after this run read its data keep the window stale.
            "stale_since": case((Run.stale_since > claim.started_at, Run.stale_since), else_=None),
            "stale_rows": case((Run.stale_since > claim.started_at, Run.stale_rows), else_=False),
        }
        final = status == "failed" and claim.attempt >= self.config.worker.max_attempts
        if status == "failed":
            # A lease kept as a back-off before the next attempt; a failed recompute keeps the old scores.
            values.update(
                claimed_until=None if final else now + self.config.worker.run_lease,
                stale_since=Run.stale_since,
                stale_rows=Run.stale_rows,
            )
        if final:
            values["status"] = "failed"  # a recompute too: its old scores stay, stale, until `runs retry`
        elif not (claim.recompute and status == "failed"):
            # A recompute of the label scores alone leaves the rest of the result, and its status, as it was.
            values["status"] = "succeeded" if claim.parts == LABEL_PARTS else status
        if status != "failed":
            values.update(row_count=rows, label_count=labels)
        with transaction(self.engine) as session:
            # An UPDATE without RETURNING gives a CursorResult; Session.execute is typed with the wider Result.
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(Run)
                    .where(Run.id == claim.run_id, Run.claim_token == claim.token)
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
                for table in (ScoreRow, SegmentScore):
                    old = delete(table).where(table.run_id == claim.run_id)
                    if claim.parts == LABEL_PARTS:
                        old = old.where(
                            or_(
                                # a segment's too-few-rows marker is written again with its label scores
                                table.kind.in_(("performance", "labels", "segment")),
                                and_(table.kind == "drift", table.feature == LABEL),
                            )
                        )
                    session.execute(old.execution_options(synchronize_session=False))
                if scores:
                    session.execute(insert(ScoreRow), [self._score_row(claim, s) for s in scores])
                if segments:
                    session.execute(insert(SegmentScore), self._segment_rows(claim, segments))
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

    def _arrival_scores(self, claim: Claim) -> list[Score]:
        """How the window's data arrived: rows received after the window was due (``quality``/``late_rows``)
        and label corrections (``labels``/``label_corrections``), for the parts being computed."""
        monitor = self.config.monitors[claim.monitor]
        due = claim.window_end + monitor.lateness
        with self.engine.connect() as connection:
            late, corrections = connection.execute(
                select(
                    func.coalesce(func.sum(case((Prediction.ingested_at > due, 1), else_=0)), 0),
                    func.coalesce(func.sum(Prediction.label_corrections), 0),
                ).where(
                    Prediction.model_id == self.model_ids[monitor.model],
                    Prediction.ts >= claim.window_start,
                    Prediction.ts < claim.window_end,
                )
            ).one()
        scores = []
        if "features" in claim.parts and monitor.quality.enabled:
            scores.append(Score("quality", "late_rows", float(late), details={"received_after": due.isoformat()}))
        if "labels" in claim.parts:
            scores.append(Score("labels", "label_corrections", float(corrections)))
        return scores

    def _slow_drift_history(self, claim: Claim) -> dict[str, list[float]]:
        """Per feature, the slow-drift inputs of the monitor's windows before ``claim``'s (oldest first, at
        most ``lookback``): the detector's state comes from the store, so a recomputed window gets the same
        score and no worker keeps any. A window not computed yet (another worker holds it) is a gap."""
        monitor = self.config.monitors[claim.monitor]
        settings = monitor.drift.slow_drift
        if settings is None or "features" not in claim.parts:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(ScoreRow.feature, ScoreRow.details)
                .where(
                    ScoreRow.model_id == self.model_ids[monitor.model],
                    ScoreRow.kind == "drift",
                    ScoreRow.window_start >= claim.window_start - settings.lookback * monitor.window,
                    ScoreRow.window_start < claim.window_start,
                    ScoreRow.monitor == claim.monitor,
                    ScoreRow.method == settings.method,
                    ScoreRow.status == "ok",
                )
                .order_by(ScoreRow.window_start)
            ).all()
        history: dict[str, list[float]] = {}
        for feature, details in rows:
            history.setdefault(feature, []).append(float(details["input"]))
        return history

    def _segments(self, claim: Claim, baseline: Baseline, batch: Batch) -> list[SegmentResult]:
        """The window's segments (docs/detectors.md, Segments): per value of each ``segments:`` feature, and per
        version when more than one served in it."""
        monitor = self.config.monitors[claim.monitor]
        model = self.config.models[monitor.model]
        versions = None
        if batch.model_version is not None and batch.ts is not None and batch.n:
            with self.engine.connect() as connection:
                deployed = deployments(connection, self.model_ids[monitor.model], claim.window_end)
            versions = resolve_versions(batch.model_version, batch.ts, deployed)
        return evaluate_segments(
            model,
            monitor,
            baseline,
            batch,
            window_seconds=monitor.window.total_seconds(),
            versions=versions,
            parts=claim.parts,
            version_baseline=(
                partial(self.references.baseline, claim.monitor, claim.window_start)
                if monitor.reference.version is not None
                else None
            ),
        )

    def _segment_rows(self, claim: Claim, segments: list[SegmentResult]) -> list[dict[str, Any]]:
        rows = []
        for segment in segments:
            where = {"segment_by": segment.segment_by, "segment": segment.segment, "rows": segment.rows}
            if segment.status != "succeeded":
                # Too few rows: one row says so, with the count, instead of a noisy score per feature.
                rows.append(
                    {
                        **self._score_row(claim, Score("quality", "rows", None)),
                        **where,
                        "kind": "segment",
                        "status": segment.status,
                        "reason": segment.reason,
                    }
                )
            rows += [{**self._score_row(claim, s), **where} for s in segment.scores]
        return rows

    def _score_row(self, claim: Claim, score: Score) -> dict[str, Any]:
        return {
            "run_id": claim.run_id,
            "monitor": claim.monitor,
            "model_id": self.model_ids[self.config.monitors[claim.monitor].model],
            "window_start": claim.window_start,
            **score_dict(score),
        }


# Labels change what a computed window says; predictions also change a window that had too few rows.
LABEL_STALE_STATUSES = ("succeeded", "running")
ROWS_STALE_STATUSES = ("succeeded", "running", "insufficient_data")


def _received(connection: Connection, model_id: int, column: Any, after: datetime) -> pd.DataFrame:
    """``ts`` and reception time (``received``) of the model's rows received after ``after``: an index range scan."""
    found = connection.execute(
        select(Prediction.ts, column).where(Prediction.model_id == model_id, column > after)
    ).all()
    return pd.DataFrame(
        {
            "ts": pd.to_datetime([r[0] for r in found], utc=True),
            "received": pd.to_datetime([r[1] for r in found], utc=True),
        }
    )


def _advance_watermark(connection: Connection, monitor: str, stored: Any, values: dict[str, datetime]) -> bool:
    """Move ``monitor``'s watermark from what this scan read to ``values``; False if another scan moved it first."""
    now = utcnow()
    if stored is None:
        insert_ = upsert_insert(connection.dialect.name)(ScanWatermark)
        statement = insert_.values(monitor=monitor, updated_at=now, **values).on_conflict_do_nothing(
            index_elements=["monitor"]
        )
    else:
        statement = (
            update(ScanWatermark)
            .where(
                ScanWatermark.monitor == monitor,
                ScanWatermark.labels_until == stored.labels_until,
                ScanWatermark.predictions_until == stored.predictions_until,
            )
            .values(updated_at=now, **values)
        )
    # RETURNING, not rowcount: the rowcount of this INSERT … ON CONFLICT DO NOTHING was not 1 on psycopg.
    return connection.execute(statement.returning(ScanWatermark.monitor)).first() is not None


def _unpruned(
    connection: Connection, monitor: str, model_id: int, labels: pd.DataFrame, rows: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``labels`` and ``rows`` without the windows retention may have deleted rows of (``model.pruned_before``).

    Recomputing such a window would replace its scores with those of what is left. The model's row
    is read under a share lock, which a retention batch's lock waits for (and the other way round).
    """
    floor = connection.scalar(select(Model.pruned_before).where(Model.id == model_id).with_for_update(read=True))
    if floor is None:
        return labels, rows
    for late in (labels, rows):
        for start in pd.DatetimeIndex(late.index[late.index <= floor]).to_pydatetime():
            log.warning(
                "late data for a window retention deleted rows of: window not recomputed",
                extra={"monitor": monitor, "window_start": start.isoformat(), "pruned_before": floor.isoformat()},
            )
    return labels[labels.index > floor], rows[rows.index > floor]


def _mark(connection: Connection, monitor: str, late: pd.DataFrame, *, rows: bool) -> int:
    """Set ``stale_since`` (the newest late arrival) on the runs of ``late``'s windows, ``stale_rows`` too for
    late predictions; runs (re)started since are left alone. One UPDATE per window (Core executemany)."""
    if late.empty:
        return 0
    newest = bindparam("newest", type_=Run.stale_since.type)
    statuses = ROWS_STALE_STATUSES if rows else LABEL_STALE_STATUSES
    later = or_(Run.stale_since.is_(None), Run.stale_since < newest)
    needs = or_(later, Run.stale_rows.is_(False)) if rows else later
    values: dict[str, Any] = {"stale_since": case((later, newest), else_=Run.stale_since)}
    if rows:
        values["stale_rows"] = True
    result = connection.execute(
        update(Run)
        .where(
            Run.monitor == monitor,
            Run.window_start == bindparam("ws", type_=Run.window_start.type),
            # no IN with executemany on every driver: one OR per status
            or_(*(Run.status == status for status in statuses)),
            Run.started_at < newest,
            needs,
        )
        .values(**values),
        [
            {"ws": start, "newest": at}
            for start, at in zip(
                pd.DatetimeIndex(late.index).to_pydatetime(),
                pd.DatetimeIndex(late["newest"]).to_pydatetime(),
                strict=True,
            )
        ],
    )
    return max(result.rowcount, 0)
