"""Incremental collector of prediction logs (and late labels) from Elasticsearch.

Each :meth:`ElasticsearchCollector.collect` reads ``[watermark − overlap, now − safety_lag)`` on the
cursor field — the ingest-time field when the index has one (``event.ingested``, set by an ingest
pipeline), otherwise the event timestamp — through a fresh point in time (PIT) with ``search_after``,
sorted on the cursor (the PIT adds its ``_shard_doc`` tie-breaker). Only the fields the model needs
are fetched (``_source`` filtering); the documents go through :mod:`monitor.ingest`, whose upsert is
idempotent, so re-reading the overlap costs time but never doubles a row.

Why the overlap: a document becomes searchable after the collector may have passed its cursor
value (refresh interval, ingest lag, a backfill). Every page is stored in one transaction with the
checkpoint that covers it, so a crash at any point loses nothing and doubles nothing. The watermark
never moves past a page that reported shard failures: that page may be missing documents, and it
never moves backwards: the re-read of the overlap lies behind it, and a kill during that re-read
leaves it where it was.

Misses are never silent: each cycle counts, in its own PIT, the documents behind the part of the
index already settled (before ``watermark − overlap``); if that count grew since the last cycle,
documents arrived later than the overlap allows. They are counted in
``driftscope_collector_late_documents_total`` and logged; raise ``overlap`` (or use an ingest-time
cursor) when it moves.

If the server refuses point-in-time (older or compatible servers), the collector falls back to
plain ``search_after`` sorted on the cursor and the model's id field (which must then be a keyword).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import orjson
from elasticsearch import ApiError, Elasticsearch, OrjsonSerializer, TransportError
from prometheus_client import Counter
from sqlalchemy import Engine

from collectors.base import CollectResult
from monitor.config import Config, ElasticsearchSource, ModelConfig
from monitor.errors import SourceError, redact
from monitor.ingest import (
    IngestResult,
    UnknownModelError,
    ingest_labels,
    ingest_predictions,
)
from monitor.ingest.writer import read_checkpoint, write_checkpoint
from monitor.retry import Backoff, call, is_transient_status
from monitor.store.engine import transaction
from monitor.store.tables import utcnow

log = logging.getLogger(__name__)

LATE_DOCUMENTS = Counter(
    "driftscope_collector_late_documents",
    "Documents that became searchable after the collector's overlap had passed them (not collected).",
    ["model", "kind"],
)

Kind = Literal["prediction", "label"]
T = TypeVar("T")

PIT_KEEP_ALIVE = "2m"
# What a page needs from a search response; the rest (_score, _index of every hit, ...) is not sent.
PAGE_FIELDS = ["hits.hits._id", "hits.hits._index", "hits.hits._source", "hits.hits.sort", "_shards"]
Progress = Callable[[int, int | None], None]  # (documents read so far, total or None)


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _from_millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


class ElasticsearchCollector:
    """Reads one model's prediction index (``kind="prediction"``) or label index (``kind="label"``).

    ``client`` and ``clock`` are injectable (a shared client; a simulated "now" in tests). Nothing
    connects before the first :meth:`collect` or :meth:`backfill`.
    """

    def __init__(
        self,
        engine: Engine,
        config: Config,
        model_name: str,
        *,
        kind: Kind = "prediction",
        client: Elasticsearch | None = None,
        clock: Callable[[], datetime] = utcnow,
        retry: Backoff = Backoff(attempts=6),
    ) -> None:
        model = config.models.get(model_name)
        if model is None:
            raise UnknownModelError(model_name, list(config.models))
        source = config.sources.get(model.source or "")
        if not isinstance(source, ElasticsearchSource):
            raise SourceError(f"model {model_name!r} has no elasticsearch source", transient=False)
        if kind == "label" and model.label_index is None:
            raise SourceError(f"model {model_name!r} has no label_index", transient=False)
        self.engine, self.config, self.model_name, self.kind = engine, config, model_name, kind
        self.model: ModelConfig = model
        self.source: ElasticsearchSource = source
        self.index = source.index if kind == "prediction" else str(model.label_index)
        self.cursor_field = source.ingest_time_field or model.fields.timestamp
        self.clock, self.retry = clock, retry
        self._client = client
        self._pit_supported = True

    @property
    def interval(self) -> timedelta:
        return self.source.interval

    @property
    def name(self) -> str:
        return f"elasticsearch:{self.model_name}" + (":labels" if self.kind == "label" else "")

    @property
    def client(self) -> Elasticsearch:
        if self._client is None:
            source = self.source
            self._client = Elasticsearch(
                source.url,
                basic_auth=(source.username, source.password.get_secret_value())
                if source.username and source.password
                else None,
                api_key=source.api_key.get_secret_value() if source.api_key else None,
                verify_certs=source.verify_certs,
                request_timeout=source.timeout.total_seconds(),
                max_retries=0,  # retries are ours: with backoff and a log line
                # Decoding pages is the collector's biggest CPU cost after validation; orjson halves it.
                serializers={"application/json": OrjsonSerializer()},
            )
        return self._client

    # --- what to read --------------------------------------------------------------------------

    def source_fields(self) -> list[str]:
        """The ``_source`` includes: only the paths the model's field map and features need."""
        fields = self.model.fields
        if self.kind == "label":
            paths = [fields.id, str(fields.label), fields.timestamp]
        else:
            prefix = f"{fields.features}." if fields.features else ""
            paths = [fields.id, fields.timestamp, fields.prediction]
            paths += [p for p in (fields.score, fields.label, fields.model_version) if p]
            paths += [prefix + name for name in self.model.features]
        return list(dict.fromkeys([*paths, self.cursor_field]))  # the event timestamp is always among them

    def _query(self, cursor: str, lower: int | None, upper: int) -> dict[str, Any]:
        bounds: dict[str, Any] = {"lt": upper, "format": "epoch_millis"}
        if lower is not None:
            bounds["gte"] = lower
        return {"range": {cursor: bounds}}

    def _sort(self, cursor: str) -> list[Any]:
        sort: list[Any] = [{cursor: {"order": "asc"}}]
        if not self._pit_supported:
            sort.append({self.model.fields.id: {"order": "asc"}})
        return sort

    # --- calls with retries --------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return fn()
            except (TransportError, ApiError) as exc:  # TransportError: connection refused, timeout, TLS
                transient = not isinstance(exc, ApiError) or is_transient_status(exc.status_code)
                raise SourceError(f"elasticsearch {what} on {self.index!r} failed: {exc}", transient=transient) from exc

        def warn(number: int, wait: float, exc: BaseException) -> None:
            log.warning(
                "elasticsearch %s failed (attempt %d/%s), retrying in %.1fs: %s",
                what,
                number,
                self.retry.attempts,
                wait,
                type(exc.__cause__).__name__,
                extra={"collector": self.name},
            )

        try:
            return call(attempt, self.retry, on_retry=warn)
        except SourceError as exc:
            if not exc.transient:
                raise
            raise SourceError(
                f"elasticsearch at {self.source.url} unavailable for {what} after {self.retry.attempts} attempts: "
                f"{exc.__cause__}",
                transient=True,
            ) from exc.__cause__

    @contextmanager
    def _snapshot(self) -> Iterator[dict[str, Any]]:
        """Search arguments for one consistent view: a fresh PIT, or the index when PIT is refused."""
        pit_id = None
        if self._pit_supported:
            try:
                pit_id = self._call(
                    "open point in time",
                    lambda: self.client.open_point_in_time(index=self.index, keep_alive=PIT_KEEP_ALIVE)["id"],
                )
            except SourceError as exc:
                cause = exc.__cause__
                if exc.transient or not isinstance(cause, ApiError) or cause.error == "index_not_found_exception":
                    raise
                log.warning(
                    "point in time refused by %s (%s); falling back to search_after without it",
                    redact(self.source.url),  # any handler may format it, not only ours
                    cause.error,
                    extra={"collector": self.name},
                )
                self._pit_supported = False
        try:
            yield {"pit": {"id": pit_id, "keep_alive": PIT_KEEP_ALIVE}} if pit_id else {"index": self.index}
        finally:
            if pit_id:
                with contextlib.suppress(TransportError, ApiError):
                    self.client.close_point_in_time(id=pit_id)  # else it expires after keep_alive

    def _count(self, snapshot: Mapping[str, Any], cursor: str, lower: int | None, upper: int) -> int:
        response = self._call(
            "count",
            lambda: self.client.search(
                **snapshot, size=0, track_total_hits=True, query=self._query(cursor, lower, upper)
            ),
        )
        return int(response["hits"]["total"]["value"])

    # --- push-down: aggregations instead of documents ---------------------------------------------

    def aggregate(self, start: datetime, end: datetime, aggs: Mapping[str, Any]) -> dict[str, Any]:
        """Run ``aggs`` over the documents of event time ``[start, end)``: the response's ``aggregations``
        with ``total`` (exact document count) and ``bytes`` (size of the response body); no document is read.

        Shard failures are an error (transient: the window is retried): counts from part of the index
        would be a wrong window, not a smaller one.
        """
        timestamp = self.model.fields.timestamp
        response = self._call(
            "aggregate",
            lambda: self.client.search(
                index=self.index,
                size=0,
                track_total_hits=True,
                query=self._query(timestamp, _millis(start), _millis(end)),
                aggs=dict(aggs),
                filter_path=["hits.total", "aggregations", "_shards"],
            ),
        )
        failed = int(response.get("_shards", {}).get("failed", 0) or 0)
        if failed:
            raise SourceError(
                f"elasticsearch aggregation on {self.index!r} reported {failed} failed shard(s)", transient=True
            )
        body = response.body if hasattr(response, "body") else response
        return {
            "total": int(body["hits"]["total"]["value"]),
            "aggregations": body.get("aggregations", {}),
            "bytes": len(orjson.dumps(body)),
        }

    # --- reading -------------------------------------------------------------------------------

    def _store(self, hits: list[dict[str, Any]], key: str, position: dict[str, Any]) -> IngestResult:
        records = [hit.get("_source", {}) for hit in hits]
        refs = [f"{hit.get('_index', self.index)}/{hit['_id']}" for hit in hits]
        write = ingest_predictions if self.kind == "prediction" else ingest_labels
        return write(
            self.engine,
            self.config,
            self.model_name,
            records,
            "elasticsearch",
            refs=refs,
            checkpoint=(key, position),
        )

    def _read(
        self,
        snapshot: Mapping[str, Any],
        key: str,
        cursor: str,
        lower: int | None,
        upper: int,
        position: dict[str, Any],
        progress: Progress | None,
        total: int | None,
    ) -> tuple[int, int, bool]:
        """Read ``[lower, upper)`` page by page, each page stored with checkpoint ``key`` advanced to it.

        Returns (stored, rejected, complete); ``complete`` is False when a page reported shard failures.
        The next page is fetched while the current one is stored (Elasticsearch works while we write),
        which keeps the collector close to the raw read speed of the index.
        """
        stored = rejected = read = 0
        size = self.source.page_size
        includes = self.source_fields()

        def fetch(after: list[Any] | None) -> Any:
            return self._call(
                "search",
                lambda: self.client.search(
                    **snapshot,
                    size=size,
                    sort=self._sort(cursor),
                    search_after=after,
                    source_includes=includes,
                    query=self._query(cursor, lower, upper),
                    track_total_hits=False,
                    filter_path=PAGE_FIELDS,
                ),
            )

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"prefetch-{self.name}") as prefetch:
            upcoming = prefetch.submit(fetch, None)
            while True:
                response = upcoming.result()
                hits = response.get("hits", {}).get("hits", [])  # filter_path drops an empty list
                failed = int(response.get("_shards", {}).get("failed", 0) or 0)
                if not hits and not failed:
                    return stored, rejected, True
                if failed:
                    # Store what came back (idempotent) but keep the watermark: the failed shards'
                    # documents in this range must be read again next cycle.
                    log.warning(
                        "elasticsearch search on %r reported %d failed shard(s); watermark held at %s",
                        self.index,
                        failed,
                        position.get("watermark"),
                        extra={"collector": self.name},
                    )
                    if hits:
                        result = self._store(hits, key, position)
                        stored, rejected = stored + result.accepted, rejected + len(result.rejected)
                    return stored, rejected, False
                more = len(hits) == size
                if more:
                    upcoming = prefetch.submit(fetch, hits[-1]["sort"])
                # The re-read of the overlap starts behind the saved watermark: its pages must not pull
                # the watermark back (a kill during the re-read would keep what they wrote). Paging
                # itself follows search_after in memory, never the checkpoint.
                last = int(hits[-1]["sort"][0])
                saved = position.get("watermark")
                position = {**position, "watermark": last if saved is None else max(int(saved), last)}
                result = self._store(hits, key, position)
                stored, rejected, read = stored + result.accepted, rejected + len(result.rejected), read + len(hits)
                if progress is not None:
                    progress(read, total)
                if not more:
                    return stored, rejected, True

    def collect(self, until: datetime | None = None, progress: Progress | None = None) -> CollectResult:
        """One incremental cycle: read what is new since the checkpoint, up to ``until`` or now − safety lag."""
        upper_time = until or self.clock() - self.source.safety_lag
        upper = _millis(upper_time)
        overlap = int(self.source.overlap.total_seconds() * 1000)
        position = read_checkpoint(self.engine, self.name) or {}
        watermark: int | None = position.get("watermark")
        lower = None if watermark is None else watermark - overlap
        with self._snapshot() as snapshot:
            settled_before = position.get("settled_before")
            if settled_before is not None:
                late = self._count(snapshot, self.cursor_field, None, settled_before) - int(
                    position.get("settled_count", 0)
                )
                if late > 0:
                    LATE_DOCUMENTS.labels(self.model_name, self.kind).inc(late)
                    log.warning(
                        "%d document(s) in %r arrived after the collector's overlap (%s) had passed them and were "
                        "not collected; raise sources.%s.overlap or set an ingest_time_field",
                        late,
                        self.index,
                        self.source.overlap,
                        self.model.source,
                        extra={"collector": self.name, "model": self.model_name},
                    )
            if lower is not None and lower >= upper:
                return CollectResult(self.name, 0, 0, _from_millis(watermark or upper), True)
            stored, rejected, complete = self._read(
                snapshot, self.name, self.cursor_field, lower, upper, position, progress, None
            )
            if complete:
                # The whole range up to `upper` is read: the watermark moves there even through quiet
                # periods, and what lies before the next lower bound is "settled" and counted.
                final = max(upper, watermark or upper)
                settled = final - overlap
                position = {
                    "watermark": final,
                    "settled_before": settled,
                    "settled_count": self._count(snapshot, self.cursor_field, None, settled),
                }
                with transaction(self.engine) as session:
                    write_checkpoint(session, self.name, position)
        position = read_checkpoint(self.engine, self.name) or {}
        mark = position.get("watermark")
        return CollectResult(self.name, stored, rejected, _from_millis(mark) if mark else None, complete)

    def backfill(self, start: datetime, end: datetime, progress: Progress | None = None) -> CollectResult:
        """Read ``[start, end)`` of *event* time once, resumable: its own checkpoint remembers how far it got.

        Event time, not the ingest-time cursor: a backfill is about when predictions were made, and
        documents indexed before an ingest pipeline existed have no ingest time at all.
        """
        timestamp = self.model.fields.timestamp
        # Keyed by the start only: a rerun (without --to, so with a later end) resumes where the
        # last one stopped and reads on to the new end instead of starting over.
        key = f"{self.name}:backfill:{_millis(start)}"
        position = read_checkpoint(self.engine, key) or {}
        lower = int(position.get("watermark", _millis(start)))
        upper = _millis(end)
        with self._snapshot() as snapshot:
            total = self._count(snapshot, timestamp, lower, upper)
            stored, rejected, complete = self._read(snapshot, key, timestamp, lower, upper, position, progress, total)
            if complete:
                with transaction(self.engine) as session:
                    write_checkpoint(session, key, {"watermark": upper, "done": True})
        return CollectResult(key, stored, rejected, end if complete else None, complete)


def build_elasticsearch_collectors(config: Config, engine: Engine) -> list[ElasticsearchCollector]:
    """One collector per copy-mode model with an Elasticsearch source, plus one for its label index if it has one."""
    collectors: list[ElasticsearchCollector] = []
    for name, model in config.models.items():
        if model.source is None or not isinstance(config.sources.get(model.source), ElasticsearchSource):
            continue
        if model.mode == "pushdown":
            continue  # nothing is copied: its windows are aggregated where the documents are
        collectors.append(ElasticsearchCollector(engine, config, name))
        if model.label_index:
            collectors.append(ElasticsearchCollector(engine, config, name, kind="label"))
    return collectors


def build_window_aggregators(config: Config, engine: Engine) -> dict[str, Callable[..., dict[str, Any]]]:
    """Per push-down model, :meth:`ElasticsearchCollector.aggregate` of a collector that never collects."""
    return {
        name: ElasticsearchCollector(engine, config, name).aggregate
        for name, model in config.models.items()
        if model.mode == "pushdown"
    }
