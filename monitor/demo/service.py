"""A demo "model service" that logs its predictions to Elasticsearch, as real services do.

It stands in for a team's loan-approval service in the docker-compose stack: it scores
simulated applicants (the demo's :class:`~monitor.demo.traffic.LoanTraffic`), writes one log document
per prediction into an Elasticsearch index, and exposes its own request metrics for Prometheus.
Driftscope never talks to it: the Elasticsearch collector finds the documents, exactly as it
would for a production service. The documents look like this (``deploy/driftscope.yaml`` maps
these paths to the model's fields)::

    {"@timestamp": "2026-11-25T08:00:00.123+00:00", "request_id": "app-...", "model": "loan-approval",
     "input": {"income": 61000.0, "purpose": "car", ...}, "output": {"label": "1", "proba": 0.81},
     "latency_ms": 41.7}

With a label index, the outcome of each loan (did the applicant repay?) is logged there
``label_delay`` after its prediction, as ``{"@timestamp": ..., "request_id": ..., "outcome": "1"}``:
ground truth that arrives late, as it does in production.

Timeline, anchored at the service's start ``t0``: on first start (empty index) it backfills
``history`` of traffic before ``t0``, so the first windows are computed at once; from
``t0 + drift_after`` the population drifts, reaching full drift after ``ramp``. A negative
``drift_after`` puts the start of the drift inside the backfilled history.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from elasticsearch import ApiError, Elasticsearch, TransportError, helpers
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from monitor.demo.traffic import MODEL, Applicant, LoanTraffic, timestamps_between
from monitor.errors import SourceError

log = logging.getLogger(__name__)

SLICE = timedelta(minutes=1)  # backfill and catch-up write at most this much traffic per bulk request


@dataclass(frozen=True, slots=True)
class Timeline:
    """When the simulated population drifts, relative to the service's start ``t0``."""

    t0: datetime
    drift_after: timedelta = timedelta(minutes=10)
    ramp: timedelta = timedelta(minutes=2)

    def drift(self, ts: datetime) -> float:
        """0 before ``t0 + drift_after``, then a linear ramp to 1 over ``ramp``."""
        start = self.t0 + self.drift_after
        if ts < start:
            return 0.0
        if self.ramp <= timedelta(0):
            return 1.0
        return min(1.0, (ts - start) / self.ramp)


def label_document(applicant: Applicant, at: datetime) -> dict[str, Any]:
    """The document logged in the label index when the outcome of ``applicant`` becomes known at ``at``."""
    return {"@timestamp": at.isoformat(), "request_id": applicant.id, "outcome": str(applicant.label)}


def log_document(applicant: Applicant, latency_ms: float) -> dict[str, Any]:
    """The document the service logs for one prediction (the shape deploy/driftscope.yaml maps)."""
    return {
        "@timestamp": applicant.timestamp.isoformat(),
        "request_id": applicant.id,
        "model": MODEL,
        "input": applicant.features,
        "output": {"label": "1" if applicant.score >= 0.5 else "0", "proba": applicant.score},
        "latency_ms": round(latency_ms, 2),
    }


class ModelService:
    """Simulates requests at ``rate`` per second and logs each prediction to ``index``."""

    def __init__(
        self,
        client: Elasticsearch,
        index: str,
        timeline: Timeline,
        rate: float = 5.0,
        seed: int = 7,
        registry: CollectorRegistry | None = None,
        label_index: str | None = None,
        label_delay: timedelta = timedelta(seconds=30),
    ) -> None:
        self.client = client
        self.index = index
        self.label_index = label_index
        self.label_delay = label_delay
        self._awaiting_outcome: list[Applicant] = []
        self.timeline = timeline
        self.rate = rate
        self.traffic = LoanTraffic(seed)
        self._rng = np.random.default_rng(seed + 1)
        self._position = timeline.t0
        self._stop = threading.Event()
        registry = registry if registry is not None else CollectorRegistry()
        self.registry = registry
        self._predictions = Counter(
            "loan_model_predictions", "Predictions served by the demo model.", ["decision"], registry=registry
        )
        self._latency = Histogram(
            "loan_model_latency_seconds",
            "Time to score one request.",
            buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0),
            registry=registry,
        )

    def backfill(self, history: timedelta) -> int:
        """Write ``history`` of traffic before ``t0`` unless the index already holds documents."""
        if self._count() > 0:
            log.info("index already holds documents; no backfill", extra={"index": self.index})
            return 0
        written = self._write_between(self.timeline.t0 - history, self.timeline.t0)
        # Make the history searchable at once rather than at the next periodic refresh.
        try:
            self.client.indices.refresh(index=",".join(filter(None, [self.index, self.label_index])))
        except (ApiError, TransportError) as exc:
            raise SourceError(f"cannot refresh {self.index}: {exc}", transient=True) from exc
        return written

    def write_until(self, until: datetime) -> int:
        """Serve (simulate) every request from the last position up to ``until``."""
        written = self._write_between(self._position, until)
        self._position = max(self._position, until)
        return written

    def run(self, tick: float = 1.0) -> None:
        """Keep serving live traffic until :meth:`stop`; Elasticsearch outages are logged and retried."""
        while not self._stop.wait(tick):
            try:
                self.write_until(datetime.now(UTC))
            except SourceError as exc:
                log.warning("could not log predictions; retrying", extra={"index": self.index, "error": str(exc)})

    def stop(self) -> None:
        self._stop.set()

    def _slices(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        while start < end:
            stop = min(end, start + SLICE)
            yield start, stop
            start = stop

    def _write_between(self, start: datetime, end: datetime) -> int:
        written = 0
        for lo, hi in self._slices(start, end):
            times = timestamps_between(lo, hi, self.rate, self._rng)
            drift = np.array([self.timeline.drift(t) for t in times])
            applicants = self.traffic.applicants(times, drift)
            # Service latency grows with drift: the new partner channel calls a slower scoring path.
            latencies = self._rng.lognormal(np.log(0.04 + 0.05 * drift), 0.3) if len(drift) else np.array([])
            documents = [log_document(a, 1000 * float(s)) for a, s in zip(applicants, latencies, strict=True)]
            self._bulk(self.index, documents)
            for applicant, seconds in zip(applicants, latencies, strict=True):
                self._predictions.labels("approve" if applicant.score >= 0.5 else "decline").inc()
                self._latency.observe(float(seconds))
            written += len(documents)
            if self.label_index is not None:
                self._awaiting_outcome.extend(applicants)
                self._log_outcomes(until=hi)
        return written

    def _log_outcomes(self, until: datetime) -> None:
        """Log the outcomes that became known by ``until`` (``label_delay`` after their predictions)."""
        due = [a for a in self._awaiting_outcome if a.timestamp + self.label_delay <= until]
        if due and self.label_index is not None:
            self._bulk(self.label_index, [label_document(a, a.timestamp + self.label_delay) for a in due])
            self._awaiting_outcome = [a for a in self._awaiting_outcome if a.timestamp + self.label_delay > until]

    def _bulk(self, index: str, documents: list[dict[str, Any]]) -> None:
        if not documents:
            return
        # The request id is the document id: a retried bulk request overwrites instead of doubling.
        actions = ({"_index": index, "_id": d["request_id"], "_source": d} for d in documents)
        try:
            helpers.bulk(self.client, actions, chunk_size=2000)
        except (ApiError, TransportError, helpers.BulkIndexError) as exc:
            raise SourceError(f"bulk write to {index} failed: {exc}", transient=True) from exc
        log.debug("logged documents", extra={"index": index, "documents": len(documents)})

    def _count(self) -> int:
        try:
            response = self.client.options(ignore_status=404).count(index=self.index)
        except (ApiError, TransportError) as exc:
            raise SourceError(f"cannot count documents in {self.index}: {exc}", transient=True) from exc
        return int(response.body.get("count", 0))


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> None:
    """Expose the service's Prometheus metrics on ``host:port`` from a daemon thread."""
    start_http_server(port, addr=host, registry=registry)
