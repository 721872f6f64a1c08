"""Python SDK: log predictions and labels from a serving process without slowing it down.

>>> client = Client("http://127.0.0.1:8000", api_key="dsk_...")          # doctest: +SKIP
>>> client.log_prediction("churn", "req-1", {"tenure": 12, "plan": "pro"}, 1, score=0.83)  # doctest: +SKIP

``log_prediction`` / ``log_label`` only append to an in-memory buffer (a few microseconds; they never
block on the network and never raise). A background thread sends the buffer in batches to the push
API, each batch with its own ``Idempotency-Key`` so a retry after a lost response is stored once, and
retries transient failures (connection errors, timeouts, 408/429/5xx) with exponential backoff for as
long as it takes (:mod:`monitor.retry`, the one module of the project this one imports); anything
else is counted in :attr:`Client.failed` and logged. The buffer is bounded: when the API is down long
enough to fill it, the *oldest* records are dropped and counted in :attr:`Client.dropped` (logged at
most once a minute). The buffer is flushed at interpreter exit.

With ``elasticsearch=`` (an ``elasticsearch.Elasticsearch`` client) and ``index=``, records are also
(or, without ``url``, only) written to Elasticsearch in the canonical shape, with the prediction id
as document ``_id``; the collector reads them with this model config::

    fields: {id: id, timestamp: timestamp, prediction: prediction, score: score, label: label, features: features}

(``model_version`` is read from the path of the same name by default.)
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx
import orjson

from monitor.retry import Backoff, call, is_transient, is_transient_status

if TYPE_CHECKING:
    import pandas as pd
    from elasticsearch import Elasticsearch

log = logging.getLogger(__name__)

USER_AGENT = "driftscope-sdk/1"
DROP_LOG_INTERVAL = 60.0

Kind = Literal["prediction", "label"]


class _SendError(Exception):
    """A batch did not reach a destination; ``transient`` tells whether a retry may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def _dumps(record: dict[str, Any]) -> bytes:
    # numpy scalars and arrays are common in model code; serialised here, in the caller's thread,
    # so a record that cannot be JSON is counted at once instead of failing a whole batch later.
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def _timestamp(value: datetime | float | str | None) -> str | float:
    if value is None:
        return datetime.now(UTC).isoformat()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


def _rejections(response: httpx.Response) -> list[dict[str, Any]] | None:
    """The records an ingest answer lists as rejected: a 200 (some were) or a 422 (all were); else None."""
    if response.status_code not in (200, 422):
        return None
    try:
        body = response.json()
    except ValueError:  # a 422 from something in between (a proxy) is not an ingest answer
        return None
    rejected = body.get("rejected") if isinstance(body, dict) else None
    return rejected if isinstance(rejected, list) else None


class ReadError(Exception):
    """A read the API refused for good (4xx) or that kept failing (5xx, network) past the retries."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.status, self.transient = status, transient


Moment = datetime | str | None


def _param(value: Moment) -> str | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


class Client:
    """Buffered, batching, retrying client of the push API (and/or an Elasticsearch index), and of the read API.

    Reads (:meth:`health`, :meth:`scores`, :meth:`alerts`, :meth:`rejected_records`; ``rejected`` is the
    sender's count) are synchronous: they retry
    transient failures like the sender (408/429/5xx, network; ``read_attempts`` tries) and raise
    :class:`ReadError` otherwise.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        max_buffer: int = 100_000,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
        elasticsearch: Any | None = None,
        index: str | None = None,
        label_index: str | None = None,
        read_attempts: int = 5,
        model_version: str | None = None,
    ) -> None:
        if url is None and elasticsearch is None:
            raise ValueError("give the API url, an elasticsearch client, or both")
        if elasticsearch is not None and index is None:
            raise ValueError("the Elasticsearch sink needs index= (and label_index= for labels)")
        self.url, self.api_key = url, api_key
        # The version this process serves, sent with every prediction unless a call names another.
        self.model_version = model_version
        self.batch_size, self.flush_interval, self.timeout = batch_size, flush_interval, timeout
        self.retry = Backoff(attempts=None, base=0.1, cap=max_backoff)  # until delivered, or close() gives up
        self.elasticsearch, self.index, self.label_index = elasticsearch, index, label_index
        self.read_retry = Backoff(attempts=read_attempts, base=0.2, cap=max_backoff)
        # Records wait as JSON bytes, not dicts: bytes are invisible to the garbage collector, so a
        # full buffer does not make the serving process's GC pauses longer (dicts made them ~40 ms).
        self._buffer: deque[tuple[Kind, str, bytes]] = deque(maxlen=max_buffer)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self._deadline = 0.0
        self._thread: threading.Thread | None = None
        self._dropped = self._dropped_logged = 0
        self._last_drop_log = 0.0
        self.sent = 0  # records acknowledged by every destination
        self.rejected = 0  # records the API refused as invalid (they are in its rejected records)
        self.failed = 0  # not JSON-serialisable, refused for good (4xx), or unsent when close() timed out

    @property
    def dropped(self) -> int:
        """Records dropped because the buffer was full (oldest first)."""
        return self._dropped

    @property
    def pending(self) -> int:
        return len(self._buffer)

    # --- the caller's path: append only -----------------------------------------------------------

    def log_prediction(
        self,
        model: str,
        id: str | int,
        features: Mapping[str, Any],
        prediction: Any,
        score: Any = None,
        timestamp: datetime | float | str | None = None,
        model_version: str | None = None,
    ) -> None:
        """Queue one prediction; returns at once and never raises.

        ``model_version`` (default: the client's) names the version that made it; the API rejects a
        version that is not 1 to 100 printable characters, and one left out means the version deployed then.
        """
        try:
            record = {"id": id, "timestamp": _timestamp(timestamp), "features": features, "prediction": prediction}
            if score is not None:
                record["score"] = score
            if (version := model_version or self.model_version) is not None:
                record["model_version"] = version
            self._append("prediction", model, _dumps(record))
        except Exception:  # the serving path must never fail because of monitoring
            self._count_failed(1)
            log.exception("driftscope: could not queue a prediction for %s", model)

    def log_label(self, model: str, id: str | int, label: Any, timestamp: datetime | float | str | None = None) -> None:
        """Queue the true outcome of prediction ``id``; returns at once and never raises."""
        try:
            self._append("label", model, _dumps({"id": id, "label": label, "timestamp": _timestamp(timestamp)}))
        except Exception:
            self._count_failed(1)
            log.exception("driftscope: could not queue a label for %s", model)

    def _count_failed(self, count: int) -> None:
        with self._lock:  # written by the caller's threads and the sender
            self.failed += count

    def _append(self, kind: Kind, model: str, record: bytes) -> None:
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self._dropped += 1  # deque(maxlen) drops the oldest on append
            self._buffer.append((kind, model, record))
            self._idle.clear()
            if self._thread is None:
                self._start()
            if len(self._buffer) >= self.batch_size:
                self._wake.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="driftscope-sdk", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- the background thread --------------------------------------------------------------------

    def _take(self) -> dict[tuple[Kind, str], list[bytes]]:
        groups: dict[tuple[Kind, str], list[bytes]] = {}
        with self._lock:
            for _ in range(min(self.batch_size, len(self._buffer))):
                kind, model, record = self._buffer.popleft()
                groups.setdefault((kind, model), []).append(record)
        return groups

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, headers=self._headers()) as http:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                self._log_drops()
                groups = self._take()
                if not groups:
                    with self._lock:
                        if not self._buffer:
                            self._idle.set()
                    if self._closing:
                        return
                    continue
                for (kind, model), records in groups.items():
                    self._deliver(http, kind, model, records)
                if len(self._buffer) >= self.batch_size or self._closing:
                    self._wake.set()

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _deliver(self, http: httpx.Client, kind: Kind, model: str, records: list[bytes]) -> None:
        """Send one batch until it is acknowledged, refused for good, or close() runs out of time."""
        idempotency_key = uuid.uuid4().hex  # the same key on every retry of this batch

        def send() -> None:
            if self.url is not None:
                self._post(http, kind, model, records, idempotency_key)
            if self.elasticsearch is not None:
                self._index(self.elasticsearch, kind, records)

        def warn(_attempt: int, wait: float, exc: BaseException) -> None:
            log.warning("driftscope: sending %s records failed (%s), retrying in %.1fs", kind, exc, wait)

        try:
            call(send, self.retry, stop=lambda: self._closing and time.monotonic() > self._deadline, on_retry=warn)
        except Exception as exc:
            self._count_failed(len(records))
            if is_transient(exc):
                log.error("driftscope: gave up on %d %s records at exit: %s", len(records), kind, exc)
            else:
                log.error("driftscope: %d %s records for %s refused: %s", len(records), kind, model, exc)
            return
        self.sent += len(records)

    def _post(self, http: httpx.Client, kind: Kind, model: str, records: list[bytes], idempotency_key: str) -> None:
        path = "predictions" if kind == "prediction" else "labels"
        try:
            response = http.post(
                f"{self.url}/v1/models/{model}/{path}",
                content=b"[" + b",".join(records) + b"]",
                headers={"Idempotency-Key": idempotency_key},
            )
        except httpx.TransportError as exc:  # connection refused or reset, timeout
            raise _SendError(f"{type(exc).__name__}: {exc}", transient=True) from exc
        # A 422 that lists rejections means every record was invalid: counted as rejected, like the invalid
        # records of a 200; resending would be rejected again.
        rejected = _rejections(response)
        if response.status_code >= 400 and rejected is None:
            transient = is_transient_status(response.status_code)
            detail = "" if transient else f": {response.text[:300]}"
            raise _SendError(f"HTTP {response.status_code}{detail}", transient=transient)
        if rejected:
            self.rejected += len(rejected)
            log.warning(
                "driftscope: %d of %d records for %s rejected; first: %s",
                len(rejected),
                len(records),
                model,
                rejected[0]["message"],
            )

    def _index(self, client: Elasticsearch, kind: Kind, records: list[bytes]) -> None:
        from elasticsearch import ApiError, TransportError, helpers

        index = self.index if kind == "prediction" else self.label_index
        if index is None:
            raise _SendError("no label_index configured for the Elasticsearch sink", transient=False)
        documents = [orjson.loads(r) for r in records]
        actions = ({"_index": index, "_id": str(d["id"]), "_source": d} for d in documents)
        try:
            helpers.bulk(client, actions, refresh=False)
        except helpers.BulkIndexError as exc:
            raise _SendError(f"{len(exc.errors)} documents refused by Elasticsearch", transient=False) from exc
        except ApiError as exc:
            raise _SendError(f"Elasticsearch: {exc}", transient=is_transient_status(exc.status_code)) from exc
        except TransportError as exc:  # connection refused, timeout
            raise _SendError(f"Elasticsearch unreachable: {exc}", transient=True) from exc

    def _log_drops(self) -> None:
        now = time.monotonic()
        if self._dropped > self._dropped_logged and now - self._last_drop_log >= DROP_LOG_INTERVAL:
            log.warning(
                "driftscope: buffer full, dropped %d oldest records (%d in total)",
                self._dropped - self._dropped_logged,
                self._dropped,
            )
            self._dropped_logged, self._last_drop_log = self._dropped, now

    # --- reading ------------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        if self.url is None:
            raise ReadError("reading needs the API url")
        params = {k: v for k, v in (params or {}).items() if v is not None}

        def get() -> httpx.Response:
            try:
                with httpx.Client(timeout=self.timeout, headers=self._headers()) as http:
                    response = http.get(f"{self.url}{path}", params=params)
            except httpx.TransportError as exc:
                raise ReadError(f"{type(exc).__name__}: {exc}", transient=True) from exc
            if response.status_code >= 400:
                detail = response.text[:300]
                raise ReadError(
                    f"GET {path}: HTTP {response.status_code}: {detail}",
                    status=response.status_code,
                    transient=is_transient_status(response.status_code),
                )
            return response

        return call(get, self.read_retry)

    def health(self, model: str) -> dict[str, Any]:
        """What ``GET /v1/models/{model}/health`` answers: state, firing alerts, latest window, drift, performance."""
        return self._get(f"/v1/models/{quote(model, safe='')}/health").json()

    def scores(
        self,
        model: str,
        *,
        kind: str | None = None,
        monitor: str | None = None,
        feature: str | None = None,
        method: str | None = None,
        since: Moment = None,
        until: Moment = None,
        page_size: int = 5000,
    ) -> pd.DataFrame:
        """Every score matching the filters as a DataFrame, following the API's cursors page by page."""
        import pandas as pd

        params: dict[str, Any] = {
            "kind": kind, "monitor": monitor, "feature": feature, "method": method,
            "since": _param(since), "until": _param(until), "limit": page_size,
        }  # fmt: skip
        rows: list[dict[str, Any]] = []
        while True:
            page = self._get(f"/v1/models/{quote(model, safe='')}/scores", params).json()
            rows.extend(page["scores"])
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        columns = ["id", "monitor", "window_start", "kind", "feature", "method", "value", "threshold", "breached",
                   "status", "reason"]  # fmt: skip
        frame = pd.DataFrame(rows, columns=columns)
        frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
        return frame

    def alerts(
        self,
        *,
        state: str | list[str] | None = None,
        model: str | None = None,
        severity: str | None = None,
        since: Moment = None,
        until: Moment = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first (``GET /v1/alerts``)."""
        params = {
            "state": [state] if isinstance(state, str) else state, "model": model, "severity": severity,
            "since": _param(since), "until": _param(until), "limit": limit,
        }  # fmt: skip
        return self._get("/v1/alerts", params).json()["alerts"]

    def rejected_records(
        self, model: str, *, since: Moment = None, until: Moment = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The model's rejected records, newest first, with field and reason (every page, or the newest ``limit``)."""
        params: dict[str, Any] = {"since": _param(since), "until": _param(until), "limit": min(limit or 1000, 1000)}
        rows: list[dict[str, Any]] = []
        while limit is None or len(rows) < limit:
            page = self._get(f"/v1/models/{quote(model, safe='')}/rejected", params).json()
            rows.extend(page["rejected"])
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        return rows[:limit] if limit else rows

    # --- flushing ---------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is delivered (or refused); False on timeout."""
        if self._thread is None:
            return True
        self._wake.set()
        return self._idle.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush for up to ``timeout`` seconds, then stop the thread (also runs at interpreter exit)."""
        if self._thread is None or self._closing:
            return
        self._deadline = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        self._thread.join(timeout + self.timeout)
        atexit.unregister(self.close)
        if self._buffer:
            self._count_failed(len(self._buffer))
            log.error("driftscope: %d records were not sent before exit", len(self._buffer))
