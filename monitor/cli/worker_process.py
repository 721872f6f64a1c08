"""The worker process: collectors, monitors, alerts and /metrics on one APScheduler.

Jobs (APScheduler 3 ``BackgroundScheduler``, one thread each, never two instances of a job at
once; a late job is coalesced into one run rather than queued):

- ``collect:<name>`` per collector (:func:`collectors.build_collectors`), on its source's
  ``interval``: read what is new from Elasticsearch / Prometheus into the store;
- ``monitors`` every ``worker.tick``: :meth:`monitor.runs.scheduler.Scheduler.tick` — plan closed
  windows, flag late labels, compute everything due, oldest first;
- ``alerts`` every ``worker.tick``: evaluate the alert rules on the newest scores, then deliver
  the due notifications from the outbox (with retries and back-off);
- ``retention`` hourly, when a model has a ``retention:``: :func:`monitor.store.retention.prune`
  deletes what it lets go, a few thousand rows per transaction;
- ``/metrics`` on ``worker.metrics_port`` (prometheus-client's HTTP server thread).

Several workers may share one Postgres store: the store's claims decide who computes which
window (see :mod:`monitor.runs.scheduler`), nothing else coordinates them.

In-process use (``driftscope up``, ``driftscope demo``)::

    worker = Worker(config, engine)
    worker.start()        # returns at once; jobs run in background threads
    ...
    worker.shutdown()     # finishes the run in progress, stops every job

``driftscope worker`` calls :meth:`Worker.run_forever`, which does the same and waits for
SIGTERM or Ctrl-C in between. The class lives apart from that command (monitor/cli/worker.py)
because every ``driftscope worker --help`` imports the command's module, and this one loads
APScheduler, SQLAlchemy, the detectors, the alerts and the collectors.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from alerts.engine import evaluate as evaluate_alerts
from alerts.outbox import deliver_due
from alerts.rules import compile_rules
from collectors import build_collectors
from collectors.elasticsearch import build_window_aggregators
from monitor.config import Config
from monitor.errors import DriftscopeError
from monitor.metrics.exporter import MetricsServer, start_metrics_server
from monitor.runs.scheduler import Scheduler
from monitor.store import partitions, retention
from monitor.store.queries import sync_models
from monitor.store.tables import utcnow

log = logging.getLogger(__name__)


class _SkippedTickFilter(logging.Filter):
    """Drop APScheduler's warning that a tick was skipped because the previous one still runs.

    A catch-up after downtime runs for many ticks by design (``max_instances=1``); a warning
    every tick would only bury real problems.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_SKIPPED_TICKS = _SkippedTickFilter()


class Worker:
    """One worker: a :class:`~monitor.runs.scheduler.Scheduler` plus the other periodic jobs.

    ``worker.metrics_port: null`` in the config disables the /metrics server (0 picks a free
    port). Construction does no I/O.
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
        self.clock = clock
        aggregators = build_window_aggregators(config, engine)  # push-down models: windows aggregated at the source
        self.scheduler = Scheduler(config, engine, worker_id=worker_id, clock=clock, window_aggregators=aggregators)
        self.metrics_server: MetricsServer | None = None
        self._stop = threading.Event()
        self._jobs = BackgroundScheduler(timezone=UTC)

    @property
    def worker_id(self) -> str:
        return self.scheduler.worker_id

    def start(self) -> None:
        """Start the jobs in background threads (the first tick runs at once) and return.

        Raises :class:`alerts.RuleError` before starting anything if an alert rule could never fire.
        """
        compile_rules(self.config)
        tick = self.config.worker.tick.total_seconds()
        now = datetime.now(UTC)
        self._stop.clear()
        settings = self.config.worker
        if settings.metrics_port is not None:
            try:
                self.metrics_server = start_metrics_server(self.engine, settings.metrics_port, settings.metrics_host)
            except OSError as exc:  # e.g. a second worker on the same host with the same port
                raise DriftscopeError(
                    f"worker.metrics_port {settings.metrics_port}: cannot serve /metrics ({exc}); "
                    "give each worker on a host its own port, or null to disable"
                ) from exc
        # Collectors store rows of configured models: their model rows must exist before the first collect.
        sync_models(self.engine, self.config)
        for collector in build_collectors(self.config, self.engine):
            self._add_job(f"collect:{collector.name}", collector.collect, collector.interval.total_seconds(), now)
        self._add_job("monitors", self._monitors, tick, now)
        if any(model.retention != retention.KEEP_FOREVER for model in self.config.models.values()):
            self._add_job("retention", self._retention, retention.INTERVAL.total_seconds(), now)
        if self.engine.dialect.name == "postgresql":
            self._add_job("partitions", self._partitions, retention.INTERVAL.total_seconds(), now)
        if self.config.alerts.rules or self.config.alerts.channels:
            self._add_job("alerts", self._alerts, tick, now)
        logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_TICKS)
        self._jobs.start()
        log.info(
            "worker started",
            extra={
                "worker": self.worker_id,
                "monitors": len(self.config.monitors),
                "tick_seconds": tick,
                "metrics": None if self.metrics_server is None else self.metrics_server.url,
            },
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop every job; the run being computed is finished and written first (``wait=True``)."""
        self._stop.set()
        if self._jobs.running:
            self._jobs.shutdown(wait=wait)
        logging.getLogger("apscheduler.scheduler").removeFilter(_SKIPPED_TICKS)
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        log.info("worker stopped", extra={"worker": self.worker_id})

    def run_forever(self) -> None:
        """:meth:`start`, then block until SIGTERM or SIGINT, then :meth:`shutdown`."""
        stop = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("worker received %s, shutting down", signal.Signals(signum).name)
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            stop.wait()
        finally:
            self.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # ------------------------------------------------------------------------------------- jobs

    def _add_job(self, name: str, func: Callable[[], Any], seconds: float, first: datetime) -> None:
        self._jobs.add_job(
            self._guarded(name, func),
            "interval",
            seconds=seconds,
            id=name,
            name=name,
            next_run_time=first,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    def _guarded(self, name: str, func: Callable[[], Any]) -> Callable[[], None]:
        # One failing job (the store briefly unreachable, a notifier bug) is logged and retried on
        # its next interval; it never stops the other jobs or the process.
        def job() -> None:
            fields = {"worker": self.worker_id, "job": name}
            try:
                func()
            except DriftscopeError as exc:  # an expected failure (source down, store not migrated): its message
                log.warning("worker job %s failed: %s", name, exc, extra=fields)
            except Exception:  # a bug: the traceback
                log.exception("worker job %s failed", name, extra=fields)

        return job

    def _monitors(self) -> None:
        self.scheduler.tick(self._stop)

    def _retention(self) -> None:
        pruned = retention.prune(self.engine, self.config, self.clock(), stop=self._stop)
        for target, count in pruned:
            if count:
                log.info("retention: %d %s row(s) deleted", count, target.table, extra={"model": target.model})

    def _partitions(self) -> None:
        for partition in partitions.ensure(self.engine, self.clock()):
            log.info("partition %s created", partition.name, extra={"worker": self.worker_id})

    def _alerts(self) -> None:
        evaluate_alerts(self.engine, self.config, self.clock())
        deliver_due(self.engine, self.config, self.clock())
