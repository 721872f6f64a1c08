"""Driftscope's own Prometheus metrics (prometheus-client), served at ``/metrics``.

Two kinds of values, kept apart on purpose:

* **What only the working process knows** — records ingested, detector run durations, collector
  errors — are ordinary module-level prometheus-client metrics (counters, a histogram), plus the
  collector status that :func:`record_collection` keeps for the worker that ran the collector.
* **Facts of the store** — the current drift score per model/feature/method, the share of drifted
  features, performance, the last window computed, alerts firing, notifications pending/failed —
  are read from the store at scrape time by :class:`StoreCollector` (a handful of indexed queries,
  cached for a few seconds). Every process, every uvicorn worker and every replica therefore
  exposes the same numbers, whichever of them Prometheus happens to scrape.

Several processes: the worker serves its own port (:func:`start_metrics_server`); the API mounts
:func:`metrics_asgi_app`. Under ``uvicorn --workers N``, set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before starting; the process-local counters and histogram are then summed over
the workers by prometheus-client's multiprocess mode, while the store-backed gauges need no
aggregation. See docs/metrics.md.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector as PromCollector
from sqlalchemy import Engine, and_, func, select
from sqlalchemy.exc import SQLAlchemyError

from monitor.metrics.process import COLLECTOR_STATUS
from monitor.store.tables import Alert, Model, Notification, Run, Score

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SEVERITIES = ("info", "warning", "critical")

# --- store-backed metrics -----------------------------------------------------------------------


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class StoreCollector(PromCollector):
    """Gauges read from the store at scrape time, cached for ``cache_seconds``.

    "Current" means the newest succeeded run of each monitor; performance comes from the newest
    window that has a performance score, because labels arrive late and the newest window usually
    has none yet. A store that cannot be read gives ``driftscope_store_up 0`` and no other store
    gauges, instead of failing the whole scrape.
    """

    def __init__(self, engine: Engine, cache_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: list[Metric] | None = None
        self._cached_at = 0.0

    def describe(self) -> Iterable[Metric]:
        return []  # no store query at registration time

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached_at >= self.cache_seconds:
                self._cached = self._read()
                self._cached_at = now
            cached = self._cached
        yield from cached

    def _read(self) -> list[Metric]:
        up = _gauge("driftscope_store_up", "1 when the last read of the store for these metrics succeeded.", [])
        try:
            families = self._read_store()
        except SQLAlchemyError:
            log.exception("reading the store for /metrics failed")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    def _read_store(self) -> list[Metric]:
        with self.engine.connect() as connection:
            names = dict(connection.execute(select(Model.id, Model.name)).all())
            latest_runs = _latest_runs(connection)
            scores = _scores_of_runs(connection, [run.id for run in latest_runs])
            scores += _latest_performance(connection, list(names))
            firing = dict(
                connection.execute(
                    select(Alert.severity, func.count()).where(Alert.state == "firing").group_by(Alert.severity)
                ).all()
            )
            outbox = connection.execute(
                select(Notification.channel, Notification.status, func.count())
                .where(Notification.status.in_(("pending", "sending", "failed")))
                .group_by(Notification.channel, Notification.status)
            ).all()

        def model(model_id: int) -> str:
            return names.get(model_id, str(model_id))

        last_window = _gauge(
            "driftscope_last_window_end_timestamp_seconds",
            "End of the newest window with a succeeded run (Unix time).",
            ["model", "monitor"],
        )
        for run in latest_runs:
            last_window.add_metric([model(run.model_id), run.monitor], run.window_end.timestamp())
        return [*_score_families(scores, model), last_window, _alerts_family(firing), *_outbox_families(outbox)]


_SCORE_COLUMNS = (
    Score.model_id,
    Score.monitor,
    Score.kind,
    Score.feature,
    Score.method,
    Score.value,
    Score.threshold,
    Score.breached,
)


def _latest_runs(connection: Any) -> list[Any]:
    """The newest succeeded run of each monitor (the run table has one row per window: small)."""
    latest = (
        select(Run.monitor, func.max(Run.window_start).label("window_start"))
        .where(Run.status == "succeeded")
        .group_by(Run.monitor)
        .subquery()
    )
    return list(
        connection.execute(
            select(Run.id, Run.monitor, Run.model_id, Run.window_end).join(
                latest, and_(Run.monitor == latest.c.monitor, Run.window_start == latest.c.window_start)
            )
        ).all()
    )


def _scores_of_runs(connection: Any, run_ids: list[int]) -> list[Any]:
    return list(
        connection.execute(
            select(*_SCORE_COLUMNS).where(
                Score.run_id.in_(run_ids), Score.kind != "performance", Score.value.is_not(None)
            )
        ).all()
    )


def _latest_performance(connection: Any, model_ids: list[int]) -> list[Any]:
    """Performance scores of each monitor's newest window that has any."""
    # model_id IN (...) lets the (model_id, kind, window_start) index find the performance rows
    # without reading the (far more numerous) drift scores.
    where = (Score.model_id.in_(model_ids), Score.kind == "performance", Score.value.is_not(None))
    newest = (
        select(Score.monitor, func.max(Score.window_start).label("window_start"))
        .where(*where)
        .group_by(Score.monitor)
        .subquery()
    )
    return list(
        connection.execute(
            select(*_SCORE_COLUMNS)
            .join(newest, and_(Score.monitor == newest.c.monitor, Score.window_start == newest.c.window_start))
            .where(*where)
        ).all()
    )


def _score_families(scores: list[Any], model: Callable[[int], str]) -> list[Metric]:
    score_labels = ["model", "monitor", "feature", "method"]
    drift = _gauge("driftscope_drift_score", "Drift score of a column in the latest window.", score_labels)
    threshold = _gauge("driftscope_drift_threshold", "Threshold of that drift score.", score_labels)
    detected = _gauge("driftscope_drift_detected", "1 when that column drifted, else 0.", score_labels)
    share = _gauge(
        "driftscope_drift_share_drifted", "Share of drifted columns in the latest window.", ["model", "monitor"]
    )
    quality = _gauge(
        "driftscope_data_quality",
        "Data-quality check value in the latest window.",
        ["model", "monitor", "feature", "check"],
    )
    performance = _gauge(
        "driftscope_performance", "Performance metric of the newest window with labels.", ["model", "monitor", "metric"]
    )
    estimated = _gauge(
        "driftscope_estimated_performance",
        "Label-free performance estimate in the latest window.",
        ["model", "monitor", "metric"],
    )
    seen: set[tuple[str, ...]] = set()

    def add(family: GaugeMetricFamily, labels: list[str], value: float) -> None:
        # Prometheus rejects a whole scrape with a duplicated series: keep the first, never emit two.
        key = (family.name, *labels)
        if key not in seen:
            seen.add(key)
            family.add_metric(labels, value)

    for score in scores:
        name = model(score.model_id)
        if score.kind == "drift" and score.feature is not None:
            labels = [name, score.monitor, score.feature, score.method]
            add(drift, labels, score.value)
            if score.threshold is not None:
                add(threshold, labels, score.threshold)
            if score.breached is not None:
                add(detected, labels, float(score.breached))
        elif score.kind == "drift" and score.method == "share_drifted":
            add(share, [name, score.monitor], score.value)
        elif score.kind == "quality":
            add(quality, [name, score.monitor, score.feature or "", score.method], score.value)
        elif score.kind == "performance":
            add(performance, [name, score.monitor, score.method], score.value)
        elif score.kind == "estimated_performance":
            add(estimated, [name, score.monitor, score.method], score.value)
    return [drift, threshold, detected, share, quality, performance, estimated]


def _alerts_family(firing: dict[str, int]) -> Metric:
    alerts = _gauge("driftscope_alerts_firing", "Alerts currently firing, by severity.", ["severity"])
    # Every severity is always present, so "== 0" and absence never mean different things.
    for severity in (*SEVERITIES, *sorted(set(firing) - set(SEVERITIES))):
        alerts.add_metric([severity], firing.get(severity, 0))
    return alerts


def _outbox_families(outbox: Sequence[tuple[str, str, int]]) -> list[Metric]:
    pending = _gauge(
        "driftscope_notifications_pending", "Notifications waiting for (re)delivery, by channel.", ["channel"]
    )
    failed = _gauge("driftscope_notifications_failed", "Notifications that gave up, by channel.", ["channel"])
    counts: dict[tuple[str, bool], int] = {}
    for channel, status, count in outbox:
        key = (channel, status == "failed")
        counts[key] = counts.get(key, 0) + count
    for (channel, gave_up), count in sorted(counts.items()):
        (failed if gave_up else pending).add_metric([channel], count)
    return [pending, failed]


# --- serving ------------------------------------------------------------------------------------


class _DefaultRegistry(PromCollector):
    """prometheus-client's default registry (our counters, process and platform metrics) as one collector."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def use_multiprocess_dir() -> str:
    """Before starting several server processes behind one port (``uvicorn --workers N``): point
    ``PROMETHEUS_MULTIPROC_DIR`` at a fresh empty directory, removed at exit, unless it is set
    already (then its owner empties it at each restart). Returns the directory.

    The worker processes inherit the variable, so their counters go to files that every
    ``/metrics`` request adds up (see :func:`build_registry`).
    """
    if existing := os.environ.get(MULTIPROC_ENV):
        return existing
    directory = tempfile.mkdtemp(prefix="driftscope-metrics-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = directory
    return directory


def build_registry(engine: Engine, cache_seconds: float = 5.0) -> CollectorRegistry:
    """Everything ``/metrics`` shows: process-local metrics (summed over processes in multiprocess
    mode), this process's collector status and the store-backed gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistry())
    registry.register(COLLECTOR_STATUS)
    registry.register(StoreCollector(engine, cache_seconds))
    return registry


class MetricsApp:
    """ASGI app answering every HTTP request with the registry's exposition (text or OpenMetrics,
    as the Accept header asks). The store is read in a worker thread, never on the event loop.

    An object rather than a function, so Starlette/FastAPI treat it as an ASGI app both in
    ``app.add_route("/metrics", ...)`` (no redirect to ``/metrics/``) and in ``app.mount(...)``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1")
        encoder, content_type = choose_encoder(accept)
        body = await anyio.to_thread.run_sync(encoder, self.registry)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def metrics_asgi_app(engine: Engine, cache_seconds: float = 5.0) -> MetricsApp:
    """``/metrics`` for the API: ``app.add_route("/metrics", metrics_asgi_app(engine), include_in_schema=False)``."""
    return MetricsApp(build_registry(engine, cache_seconds))


@dataclass
class MetricsServer:
    """The worker's ``/metrics`` HTTP server, running in a daemon thread."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def start_metrics_server(
    engine: Engine, port: int, host: str = "127.0.0.1", cache_seconds: float = 5.0
) -> MetricsServer:
    """Serve ``/metrics`` for the worker on ``host:port`` (port 0 picks a free one); call ``.stop()`` at shutdown."""
    server, thread = start_http_server(port, addr=host, registry=build_registry(engine, cache_seconds))
    return MetricsServer(host, server.server_port, server, thread)
