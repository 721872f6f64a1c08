"""Metrics only the working process knows — records ingested, detector run durations, collector
errors and status — as ordinary prometheus-client metrics in the default registry.

The core (ingestion, scheduler) and the collectors update them; :mod:`monitor.metrics.exporter`
serves them beside the store-backed gauges.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector

RECORDS_INGESTED = Counter(
    "driftscope_records_ingested",
    "Prediction and label records received, by model, source (api, sdk, elasticsearch, demo) and outcome.",
    ["model", "source", "kind", "outcome"],  # kind: prediction | label; outcome: accepted | rejected
)

DETECTOR_RUN_DURATION = Histogram(
    "driftscope_detector_run_duration_seconds",
    "Wall time of one detector run (one monitor, one window), by monitor and final status.",
    ["monitor", "status"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

COLLECTOR_ERRORS = Counter(
    "driftscope_collector_errors",
    "Collector calls that failed after their retries, by collector and whether a retry may help.",
    ["collector", "transient"],
)

LATE_ROWS_NOT_RECOMPUTED = Counter(
    "driftscope_late_rows_not_recomputed",
    "Predictions received after their window was computed, for windows older than the monitor's "
    "recompute_within: counted (and logged) but the window is not recomputed.",
    ["monitor"],
)


@dataclass(frozen=True, slots=True)
class _CollectorStatus:
    position: datetime | None
    last_success: float  # epoch seconds


class CollectorStatusCollector(PromCollector):
    """Lag and last success of each collector this process ran; the lag is computed at scrape time,
    so it keeps growing when a collector stops succeeding."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._status: dict[str, _CollectorStatus] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def record(self, collector: str, position: datetime | None) -> None:
        with self._lock:
            self._status[collector] = _CollectorStatus(position, self._clock())

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "driftscope_collector_lag_seconds",
            "Seconds between now and the newest source time the collector has stored.",
            labels=["collector"],
        )
        success = GaugeMetricFamily(
            "driftscope_collector_last_success_timestamp_seconds",
            "When the collector last finished a call without error (Unix time).",
            labels=["collector"],
        )
        now = self._clock()
        with self._lock:
            status = dict(self._status)
        for name, item in sorted(status.items()):
            success.add_metric([name], item.last_success)
            if item.position is not None:
                lag.add_metric([name], max(0.0, now - item.position.timestamp()))
        yield lag
        yield success


COLLECTOR_STATUS = CollectorStatusCollector()


def record_collection(collector: str, position: datetime | None) -> None:
    """Call after every successful ``Collector.collect`` with its ``CollectResult.collector`` and
    ``.position``: updates lag and last success."""
    COLLECTOR_STATUS.record(collector, position)


def record_collection_error(collector: str, *, transient: bool) -> None:
    """Call when a collector call fails (after its own retries)."""
    COLLECTOR_ERRORS.labels(collector=collector, transient=str(transient).lower()).inc()


def observe_run(monitor: str, status: str, seconds: float) -> None:
    """Call once per finished detector run (the scheduler)."""
    DETECTOR_RUN_DURATION.labels(monitor=monitor, status=status).observe(seconds)


def count_late_rows_not_recomputed(monitor: str, rows: int) -> None:
    """Call when late predictions fall in a window beyond ``recompute_within`` (the scheduler's stale scan)."""
    LATE_ROWS_NOT_RECOMPUTED.labels(monitor=monitor).inc(rows)
