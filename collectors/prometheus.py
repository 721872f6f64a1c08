"""Prometheus → store: each configured PromQL query of a model, as metric series and points.

One :class:`PrometheusCollector` per ``models.M.metrics.NAME`` (checkpoint key
``prometheus:M:NAME``), so a broken query never holds back the others. Each call to
:meth:`PrometheusCollector.collect` evaluates ``query_range`` from the checkpoint up to
``now - safety_lag`` on a grid of ``step`` multiples since the epoch, so every run, every backfill
and every worker hits the same timestamps. Long ranges are split so that no request asks for more
than ``max_points_per_request`` points per series (Prometheus refuses more than 11,000).

Each chunk is one transaction: its points are upserted on ``(series_id, ts)`` and the checkpoint
moves to the chunk's end in the same commit, so a crash or a Prometheus outage between chunks
neither loses nor doubles a point; the next call resumes at the first missing step.

The source's ``username``/``password`` (basic auth) or ``bearer_token`` go with every request, so
the URL needs no ``user:password@``; a 401 or 403 is a non-transient error that says which settings
to check. HTTP failures are translated here into :class:`~monitor.errors.SourceError`: connection errors,
timeouts, 408, 429 and 5xx are ``transient`` and retried (:mod:`monitor.retry`); Prometheus's own
query errors (400 ``bad_data``, 422 ``execution``) are not, and carry the query's config path.
NaN samples (e.g. ``histogram_quantile`` over no data) are not stored: a gap in the chart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import CursorResult, Engine, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from collectors.base import CollectResult
from monitor.config import Config, MetricQuery, PrometheusSource
from monitor.errors import SourceError, StoreError
from monitor.metrics import process as metrics
from monitor.retry import Backoff, call, is_transient_status
from monitor.store.engine import transaction
from monitor.store.queries import upsert_insert
from monitor.store.tables import Checkpoint, MetricPoint, MetricSeries, Model

log = logging.getLogger(__name__)

Labels = dict[str, str]
Progress = Callable[[int, int], None]  # (points evaluated so far, points in the whole range)


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a ``query_range`` answer: its labels and ``(epoch ms, value)`` points."""

    labels: Labels
    points: list[tuple[int, float]]


# --- the time grid ------------------------------------------------------------------------------


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware time")
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def plan_chunks(start_ms: int, end_ms: int, step_ms: int, max_points: int) -> Iterator[tuple[int, int]]:
    """Split ``[start, end]`` (both on the step grid) into ranges of at most ``max_points`` steps.

    >>> list(plan_chunks(0, 9_000, 1_000, 4))
    [(0, 3000), (4000, 7000), (8000, 9000)]
    """
    if step_ms <= 0 or max_points <= 0:
        raise ValueError("step and max_points must be positive")
    chunk = start_ms
    while chunk <= end_ms:
        chunk_end = min(chunk + (max_points - 1) * step_ms, end_ms)
        yield chunk, chunk_end
        chunk = chunk_end + step_ms


def labels_hash(labels: Labels) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def metric_path(model: str, metric: str) -> str:
    """The config key of a query, the way errors name it."""
    return f"models.{model}.metrics.{metric}"


# --- HTTP boundary ------------------------------------------------------------------------------


class _BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def _auth(source: PrometheusSource) -> httpx.Auth | None:
    if source.bearer_token is not None:
        return _BearerAuth(source.bearer_token.get_secret_value())
    if source.username is not None:
        return httpx.BasicAuth(source.username, source.password.get_secret_value() if source.password else "")
    return None  # httpx still sends a user:password@ of the URL as basic auth


class PrometheusAPI:
    """The two calls Driftscope makes, with Prometheus's failures translated into :class:`SourceError`.

    ``client`` is injected (tests script outages with ``httpx.MockTransport`` or event hooks); by
    default one is created lazily with the source's timeout.
    """

    def __init__(self, source: PrometheusSource, client: httpx.Client | None = None) -> None:
        self.base_url = source.url.rstrip("/")
        self._timeout = source.timeout.total_seconds()
        self._auth = _auth(source)
        self._client = client
        self._owns_client = client is None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout)
        return self._client

    def close(self) -> None:
        """Close the client if this object created it (an injected one belongs to the caller)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def query(self, expr: str, where: str) -> Any:
        """Instant query (``/api/v1/query``); ``where`` names the query in errors."""
        return self._get("/api/v1/query", {"query": expr}, where)

    def query_range(self, expr: str, start_ms: int, end_ms: int, step_ms: int, where: str) -> list[Series]:
        data = self._get(
            "/api/v1/query_range",
            {"query": expr, "start": start_ms / 1000, "end": end_ms / 1000, "step": step_ms / 1000},
            where,
        )
        if data.get("resultType") != "matrix":
            raise SourceError(
                f"{where}: query returned a {data.get('resultType')}, expected a range vector (matrix)",
                transient=False,
            )
        return [
            Series(
                labels=dict(item["metric"]),
                points=[(round(float(ts) * 1000), float(value)) for ts, value in item["values"]],
            )
            for item in data["result"]
        ]

    def _get(self, path: str, params: dict[str, Any], where: str) -> Any:
        url = self.base_url + path
        try:
            response = self.client.get(url, params=params, auth=self._auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.TimeoutException as exc:
            raise SourceError(f"{where}: Prometheus at {self.base_url} timed out: {exc}", transient=True) from exc
        except httpx.TransportError as exc:
            raise SourceError(f"{where}: Prometheus at {self.base_url} unreachable: {exc}", transient=True) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict) and body.get("status") == "success":
            for warning in body.get("warnings") or ():
                log.warning("prometheus warning", extra={"query": where, "warning": warning})
            return body["data"]
        if response.status_code in (401, 403):
            raise SourceError(
                f"{where}: Prometheus at {self.base_url} refused access (HTTP {response.status_code}): "
                "check the source's username and password, or its bearer_token",
                transient=False,
            )
        # Prometheus answers 400 bad_data / 422 execution for the query's own fault, 503 while
        # starting or shutting down, 5xx for server trouble; a proxy in front may add 429/502/504.
        transient = is_transient_status(response.status_code)
        if isinstance(body, dict) and "error" in body:
            reason = f"{body.get('errorType', 'error')}: {body['error']}"
        else:
            reason = f"HTTP {response.status_code}: {response.text[:200]}"
        raise SourceError(f"{where}: Prometheus rejected the query ({reason})", transient=transient)


# --- the collector ------------------------------------------------------------------------------


class PrometheusCollector:
    """Collects one named query of one model; implements :class:`collectors.base.Collector`."""

    def __init__(
        self,
        engine: Engine,
        model: str,
        metric: str,
        query: MetricQuery,
        source: PrometheusSource,
        *,
        client: httpx.Client | None = None,
        retry: Backoff = Backoff(),
        initial_lookback: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.model = model
        self.metric = metric
        self.query = query.query
        self.source = source
        self.step_ms = round((query.step or source.step).total_seconds() * 1000)
        self.api = PrometheusAPI(source, client)
        self.retry = retry
        self.initial_lookback = initial_lookback
        self.clock = clock
        self.where = metric_path(model, metric)

    @property
    def interval(self) -> timedelta:
        return self.source.interval

    @property
    def name(self) -> str:
        return f"prometheus:{self.model}:{self.metric}"

    def close(self) -> None:
        self.api.close()

    def collect(self, until: datetime | None = None) -> CollectResult:
        """Evaluate the query from the checkpoint (or ``initial_lookback`` ago) up to ``until``.

        ``until`` defaults to ``now - safety_lag``; it is rounded down to the step grid.
        """
        end_ms = self._floor(to_ms(until or self.clock() - self.source.safety_lag))
        position = self.position()
        if position is None:
            start_ms = self._ceil(end_ms - round(self.initial_lookback.total_seconds() * 1000))
        else:  # the next grid point, also when the step was changed in the config since
            start_ms = self._floor(to_ms(position)) + self.step_ms
        return self._collect_range(start_ms, end_ms, None)

    def backfill(self, start: datetime, end: datetime, progress: Progress | None = None) -> CollectResult:
        """(Re)collect ``[start, end]``; idempotent. The checkpoint only moves forward, and only
        when the range joins it without a gap."""
        return self._collect_range(self._ceil(to_ms(start)), self._floor(to_ms(end)), progress)

    def position(self) -> datetime | None:
        """The last step timestamp stored, from the checkpoint."""
        with self.engine.connect() as connection:
            stored = connection.execute(
                select(Checkpoint.position).where(Checkpoint.collector == self.name)
            ).scalar_one_or_none()
        return datetime.fromisoformat(stored["ts"]) if stored else None

    def _floor(self, ms: int) -> int:
        return ms - ms % self.step_ms

    def _ceil(self, ms: int) -> int:
        return -(-ms // self.step_ms) * self.step_ms

    def _collect_range(self, start_ms: int, end_ms: int, progress: Progress | None) -> CollectResult:
        stored = 0
        total = max(0, (end_ms - start_ms) // self.step_ms + 1)
        try:
            model_id = self._model_id()
            for chunk_start, chunk_end in plan_chunks(
                start_ms, end_ms, self.step_ms, self.source.max_points_per_request
            ):
                series = self._query_with_retry(chunk_start, chunk_end)
                stored += self._store_chunk(model_id, series, chunk_start, chunk_end)
                if progress is not None:
                    progress((chunk_end - start_ms) // self.step_ms + 1, total)
        except SourceError as exc:
            metrics.record_collection_error(self.name, transient=exc.transient)
            raise
        position = self.position()
        result = CollectResult(
            collector=self.name,
            stored=stored,
            rejected=0,
            position=position,
            caught_up=position is not None and to_ms(position) >= end_ms,
        )
        metrics.record_collection(result.collector, result.position)
        log.info(
            "prometheus collected",
            extra={"collector": self.name, "points": stored, "position": position and position.isoformat()},
        )
        return result

    def _query_with_retry(self, start_ms: int, end_ms: int) -> list[Series]:
        def warn(attempt: int, wait: float, exc: BaseException) -> None:
            log.warning(
                "prometheus unavailable, retrying",
                extra={"query": self.where, "attempt": attempt, "retry_in_s": wait, "error": str(exc)},
            )

        return call(
            lambda: self.api.query_range(self.query, start_ms, end_ms, self.step_ms, self.where),
            self.retry,
            on_retry=warn,
        )

    def _model_id(self) -> int:
        with self.engine.connect() as connection:
            model_id = connection.execute(select(Model.id).where(Model.name == self.model)).scalar_one_or_none()
        if model_id is None:
            raise StoreError(f"model {self.model!r} is not in the store yet (the worker adds configured models)")
        return model_id

    def _store_chunk(self, model_id: int, series: list[Series], start_ms: int, end_ms: int) -> int:
        rows = []
        with transaction(self.engine) as session:
            for item in series:
                series_id = _series_id(session, model_id, self.metric, self.query, item.labels)
                rows += [
                    {"series_id": series_id, "ts": from_ms(ts), "value": value}
                    for ts, value in item.points
                    if not math.isnan(value)
                ]
            if rows:
                _upsert_points(session, rows)
            self._advance_checkpoint(session, start_ms, end_ms)
        return len(rows)

    def _advance_checkpoint(self, session: Session, start_ms: int, end_ms: int) -> None:
        position = {"ts": from_ms(end_ms).isoformat()}
        # Insert-or-lock, so two workers collecting the same query at once never fail on the key.
        # An INSERT without RETURNING gives a CursorResult; Session.execute is typed with the wider Result.
        created = cast(
            CursorResult[Any],
            session.execute(
                _insert_for(session)(Checkpoint.__table__)
                .values(collector=self.name, position=position)
                .on_conflict_do_nothing(index_elements=["collector"])
            ),
        )
        if created.rowcount == 1:
            return
        row = session.get(Checkpoint, self.name, with_for_update=True, populate_existing=True)
        assert row is not None  # it conflicted, so it exists; checkpoints are never deleted
        current = to_ms(datetime.fromisoformat(row.position["ts"]))
        if start_ms <= current + self.step_ms and end_ms > current:
            row.position = position


def _insert_for(session: Session) -> Any:
    return upsert_insert(session.get_bind().dialect.name)


# One statement per chunk: psycopg would otherwise send one INSERT per row (executemany), or parse
# a statement with thousands of placeholders (multi-row VALUES); three arrays cost neither.
_UPSERT_POINTS_POSTGRES = text(
    """
    INSERT INTO metric_point (series_id, ts, value)
    SELECT * FROM unnest(CAST(:series_id AS integer[]), CAST(:ts AS timestamptz[]), CAST(:value AS float8[]))
    ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value
    """
)


def _upsert_points(session: Session, rows: list[dict[str, Any]]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _UPSERT_POINTS_POSTGRES, {key: [row[key] for row in rows] for key in ("series_id", "ts", "value")}
        )
        return
    # SQLite's executemany runs in C: already fast. Core, not the ORM's per-row bookkeeping.
    statement = sqlite.insert(MetricPoint.__table__)
    upsert = statement.on_conflict_do_update(
        index_elements=["series_id", "ts"], set_={"value": statement.excluded.value}
    )
    session.execute(upsert, rows)


def _series_id(session: Session, model_id: int, name: str, query: str, labels: Labels) -> int:
    digest = labels_hash(labels)
    insert = _insert_for(session)
    session.execute(
        insert(MetricSeries)
        .values(model_id=model_id, name=name, query=query, labels=labels, labels_hash=digest)
        # The query text follows the config if it was edited.
        .on_conflict_do_update(index_elements=["model_id", "name", "labels_hash"], set_={"query": query})
    )
    return session.execute(
        select(MetricSeries.id).where(
            MetricSeries.model_id == model_id, MetricSeries.name == name, MetricSeries.labels_hash == digest
        )
    ).scalar_one()


# --- wiring -------------------------------------------------------------------------------------


def build_prometheus_collectors(
    config: Config, engine: Engine, model: str | None = None, client: httpx.Client | None = None
) -> list[PrometheusCollector]:
    """One collector per configured ``models.M.metrics.NAME`` (only model ``model`` if given)."""
    collectors = []
    for model_name, spec in config.models.items():
        if model is not None and model_name != model:
            continue
        for metric, query in spec.metrics.items():
            source = config.sources[query.source]
            assert isinstance(source, PrometheusSource)  # config validation checked the kind
            collectors.append(PrometheusCollector(engine, model_name, metric, query, source, client=client))
    return collectors


def check_queries(config: Config, client: httpx.Client | None = None) -> list[tuple[str, str]]:
    """Dry-run every configured query with an instant ``/api/v1/query``; ``(key path, message)`` per problem.

    An unreachable Prometheus is reported once, at ``sources.NAME.url``.
    """
    errors: list[tuple[str, str]] = []
    unreachable: set[str] = set()
    apis: dict[str, PrometheusAPI] = {}
    try:
        for model_name, spec in config.models.items():
            for metric, query in spec.metrics.items():
                if query.source in unreachable:
                    continue
                source = config.sources[query.source]
                assert isinstance(source, PrometheusSource)
                api = apis.setdefault(query.source, PrometheusAPI(source, client))
                path = f"{metric_path(model_name, metric)}.query"
                try:
                    api.query(query.query, path)
                except SourceError as exc:
                    if isinstance(exc.__cause__, httpx.TransportError):
                        unreachable.add(query.source)
                        errors.append((f"sources.{query.source}.url", f"Prometheus at {api.base_url} unreachable"))
                    else:
                        errors.append((path, str(exc).removeprefix(f"{path}: ")))
    finally:
        for api in apis.values():
            api.close()
    return errors
