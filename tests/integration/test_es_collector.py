"""The Elasticsearch collector against noida-db (Elasticsearch 8 API) and the real store."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from elasticsearch import Elasticsearch, helpers
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from collectors import build_collectors
from collectors.elasticsearch import ElasticsearchCollector
from monitor.config import Config, parse_config
from monitor.errors import SourceError
from monitor.ingest.writer import read_checkpoint
from monitor.retry import Backoff
from monitor.store.tables import PendingLabel, Prediction, RejectedRecord
from tests.servers import free_port

pytestmark = pytest.mark.integration

MAPPINGS = {
    "dynamic": False,
    "properties": {
        "@timestamp": {"type": "date"},
        "request_id": {"type": "keyword"},
        "plan": {"type": "keyword"},
        "event": {"properties": {"ingested": {"type": "date"}}},
    },
}
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def es_config(url: str, index: str, label_index: str | None = None, **source: Any) -> Config:
    return parse_config(
        {
            "sources": {"es": {"kind": "elasticsearch", "url": url, "index": index, **source}},
            "models": {
                "churn": {
                    "task": "binary",
                    "source": "es",
                    "label_index": label_index,
                    "fields": {
                        "id": "request_id",
                        "timestamp": "@timestamp",
                        "prediction": "output.label",
                        "score": "output.proba",
                        "label": "outcome",
                    },
                    "features": {"tenure": "numeric", "plan": "categorical"},
                }
            },
        }
    )


def doc(i: int, ts: datetime, index: str, **extra: Any) -> dict[str, Any]:
    source = {
        "request_id": f"r{i}",
        "@timestamp": ts.isoformat().replace("+00:00", "Z"),
        "output": {"label": i % 2, "proba": (i % 100) / 100},
        "tenure": i % 72,
        "plan": ["basic", "pro", "team"][i % 3],
        "message": "x" * 200,  # not a model field: _source filtering leaves it in Elasticsearch
        **extra,
    }
    return {"_index": index, "_id": f"r{i}", "_source": source}


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(Prediction.prediction_id)))


def late_counter() -> float:
    return (
        REGISTRY.get_sample_value("driftscope_collector_late_documents_total", {"model": "churn", "kind": "prediction"})
        or 0.0
    )


@pytest.mark.parametrize("total", [20_000, pytest.param(100_000, marks=[pytest.mark.slow, pytest.mark.timeout(1800)])])
def test_scheduled_collection_with_late_documents_stores_every_id_once(
    total: int, es_client: Elasticsearch, make_es_index, postgres_engine: Engine
) -> None:
    index = make_es_index(MAPPINGS)
    config = es_config(es_client.transport.node_pool.get().base_url, index, page_size=1000, safety_lag="1s")
    now = [T0]
    collector = ElasticsearchCollector(postgres_engine, config, "churn", clock=lambda: now[0])
    step = timedelta(milliseconds=10)
    chunk = 2000
    held: list[list[dict[str, Any]]] = []
    before = late_counter()
    for start in range(0, total, chunk):
        ids = range(start, min(start + chunk, total))
        # Every 20th document becomes searchable two cycles late: its timestamp is then behind the
        # collector's watermark (by ~40 s of event time), but within the 10-minute overlap.
        docs = [doc(i, T0 + i * step, index) for i in ids if i % 20]
        held.append([doc(i, T0 + i * step, index) for i in ids if i % 20 == 0])
        ready = docs + (held.pop(0) if len(held) > 2 else [])
        helpers.bulk(es_client, ready, refresh=True, chunk_size=5000)
        now[0] = T0 + ids[-1] * step + timedelta(seconds=1, milliseconds=5)  # the scheduler's tick
        collector.collect()
    for late in held:
        helpers.bulk(es_client, late, refresh=True)
    now[0] += timedelta(seconds=5)
    result = collector.collect()
    assert result.caught_up
    ids = stored_ids(postgres_engine)
    assert len(ids) == total
    assert set(ids) == {f"r{i}" for i in range(total)}
    assert late_counter() == before  # nothing arrived later than the overlap


def test_documents_later_than_the_overlap_are_counted_or_read_by_ingest_time(
    es_client: Elasticsearch, make_es_index, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    index = make_es_index(MAPPINGS)
    url = es_client.transport.node_pool.get().base_url
    now = T0 + timedelta(hours=2)
    helpers.bulk(es_client, [doc(i, T0 + timedelta(hours=1, seconds=i), index) for i in range(10)], refresh=True)
    by_event = ElasticsearchCollector(sqlite_engine, es_config(url, index, overlap="10m"), "churn", clock=lambda: now)
    assert by_event.collect().stored == 10
    # Three documents from an hour before the watermark appear (a backfill, a stuck shipper).
    ingested = int(now.timestamp() * 1000)
    stale = [doc(100 + i, T0 + timedelta(seconds=i), index, event={"ingested": ingested}) for i in range(3)]
    helpers.bulk(es_client, stale, refresh=True)
    before = late_counter()
    with caplog.at_level(logging.WARNING, logger="collectors.elasticsearch"):
        assert by_event.collect().stored == 0
    assert late_counter() == before + 3
    assert "3 document(s)" in caplog.text and "arrived after the collector's overlap" in caplog.text
    assert by_event.collect().stored == 0 and late_counter() == before + 3  # counted once
    # With an ingest-time cursor the same documents are simply read: they were ingested just now.
    config = es_config(url, index, overlap="10m", ingest_time_field="event.ingested")
    by_ingest = ElasticsearchCollector(sqlite_engine, config, "churn", clock=lambda: now + timedelta(minutes=1))
    assert by_ingest.collect().stored == 3
    assert sorted(stored_ids(sqlite_engine)) == sorted([f"r{i}" for i in range(10)] + ["r100", "r101", "r102"])


def test_mapping_source_filtering_and_malformed_documents(
    es_client: Elasticsearch, make_es_index, store_engine: Engine
) -> None:
    index = make_es_index(MAPPINGS)
    config = es_config(es_client.transport.node_pool.get().base_url, index)
    docs = [doc(i, T0 + timedelta(seconds=i), index) for i in range(5)]
    docs[1]["_source"]["output.proba"] = docs[1]["_source"]["output"].pop("proba")  # flat dotted key
    docs[2]["_source"]["tenure"] = "abc"
    del docs[3]["_source"]["request_id"]
    docs[4]["_source"]["outcome"] = 1
    helpers.bulk(es_client, docs, refresh=True)
    collector = ElasticsearchCollector(store_engine, config, "churn", clock=lambda: T0 + timedelta(hours=1))
    assert collector.source_fields() == [
        "request_id",
        "@timestamp",
        "output.label",
        "output.proba",
        "outcome",
        "model_version",  # the field map's default path: a document may name its model version there
        "tenure",
        "plan",
    ]
    result = collector.collect()
    assert (result.stored, result.rejected, result.caught_up) == (3, 2, True)
    with store_engine.connect() as connection:
        rows = {r.prediction_id: r for r in connection.execute(select(Prediction))}
        rejected = connection.execute(select(RejectedRecord).order_by(RejectedRecord.record_ref)).all()
    assert rows["r1"].score == 0.01 and rows["r4"].label == 1 and rows["r0"].features == {"tenure": 0, "plan": "basic"}
    assert rows["r0"].source == "elasticsearch" and rows["r0"].ts == T0
    assert [(r.record_ref, r.reason) for r in rejected] == [
        (f"{index}/r2", '[2].tenure: expected number, got "abc"'),
        (f"{index}/r3", "[3].request_id: required field is missing"),
    ]
    assert "message" not in rejected[0].payload  # only the model's fields were fetched
    assert read_checkpoint(store_engine, "elasticsearch:churn")["watermark"] == int(
        (T0 + timedelta(minutes=59, seconds=30)).timestamp() * 1000
    )


def test_label_index_and_backfill(es_client: Elasticsearch, make_es_index, sqlite_engine: Engine) -> None:
    index, labels = make_es_index(MAPPINGS), make_es_index(MAPPINGS)
    config = es_config(es_client.transport.node_pool.get().base_url, index, label_index=labels, page_size=7)
    helpers.bulk(es_client, [doc(i, T0 + timedelta(minutes=i), index) for i in range(60)], refresh=True)
    label_docs = [
        {
            "_index": labels,
            "_id": f"l{i}",
            "_source": {"request_id": f"r{i}", "outcome": 1, "@timestamp": T0.isoformat()},
        }
        for i in (5, 50, 500)
    ]
    helpers.bulk(es_client, label_docs, refresh=True)
    collectors = build_collectors(config, sqlite_engine)
    assert [c.name for c in collectors] == ["elasticsearch:churn", "elasticsearch:churn:labels"]
    prediction_collector = collectors[0]
    assert isinstance(prediction_collector, ElasticsearchCollector)
    seen: list[tuple[int, int | None]] = []
    result = prediction_collector.backfill(
        T0 + timedelta(minutes=10), T0 + timedelta(minutes=30), lambda *p: seen.append(p)
    )
    assert (result.stored, result.caught_up) == (20, True)
    assert seen[-1] == (20, 20) and len(seen) == 3  # pages of 7
    assert sorted(stored_ids(sqlite_engine), key=lambda s: int(s[1:])) == [f"r{i}" for i in range(10, 30)]
    assert prediction_collector.backfill(T0 + timedelta(minutes=10), T0 + timedelta(minutes=30)).stored == 0  # done
    # A rerun with a later end (as `collect --from` without --to) reads on from where the first stopped.
    later = prediction_collector.backfill(T0 + timedelta(minutes=10), T0 + timedelta(minutes=40))
    assert (later.stored, later.caught_up) == (10, True)
    assert len(stored_ids(sqlite_engine)) == 30
    collectors[1].collect(until=T0 + timedelta(hours=2))  # labels: r5 and r500 wait, r50 has no prediction yet either
    with sqlite_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(PendingLabel)) == 3
    prediction_collector.collect(until=T0 + timedelta(hours=2))
    with sqlite_engine.connect() as connection:
        labelled = dict(
            connection.execute(
                select(Prediction.prediction_id, Prediction.label).where(Prediction.label.is_not(None))
            ).all()
        )
        assert labelled == {"r5": 1, "r50": 1}
        assert connection.scalar(select(func.count()).select_from(PendingLabel)) == 1


def test_unreachable_elasticsearch_is_retried_then_a_transient_error(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    config = es_config(f"http://127.0.0.1:{free_port()}", "predictions")
    collector = ElasticsearchCollector(sqlite_engine, config, "churn", retry=Backoff(attempts=3, base=0.01))
    with caplog.at_level(logging.WARNING), pytest.raises(SourceError, match=r"unavailable .* after 3 attempts") as info:
        collector.collect()
    assert info.value.transient
    assert caplog.text.count("retrying in") == 2
    assert read_checkpoint(sqlite_engine, "elasticsearch:churn") is None


class _FaultyProxy:
    """Forwards to Elasticsearch; can refuse point-in-time or report failed shards on searches."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.refuse_pit, self.failed_searches = upstream, False, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.refuse_pit and "_pit" in self.path:
                    return self._send(
                        400, {"error": {"type": "parse_exception", "reason": "no PIT here"}, "status": 400}
                    )
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None, method=self.command)
                request.add_header("Content-Type", self.headers.get("Content-Type", "application/json"))
                try:
                    with urllib.request.urlopen(request) as response:
                        status, payload = response.status, json.loads(response.read() or b"{}")
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, json.loads(exc.read() or b"{}")
                if "_search" in self.path and proxy.failed_searches and payload.get("hits", {}).get("hits"):
                    proxy.failed_searches -= 1
                    payload["_shards"] = {"total": 2, "successful": 1, "skipped": 0, "failed": 1}
                self._send(status, payload)

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def faulty_proxy(elasticsearch_url: str) -> Iterator[_FaultyProxy]:
    proxy = _FaultyProxy(elasticsearch_url)
    yield proxy
    proxy.server.shutdown()
    proxy.server.server_close()


def test_shard_failures_hold_the_watermark(
    es_client: Elasticsearch, make_es_index, faulty_proxy, sqlite_engine: Engine
) -> None:
    index = make_es_index(MAPPINGS)
    helpers.bulk(es_client, [doc(i, T0 + timedelta(seconds=i), index) for i in range(30)], refresh=True)
    config = es_config(faulty_proxy.url, index, page_size=10)
    collector = ElasticsearchCollector(sqlite_engine, config, "churn", clock=lambda: T0 + timedelta(hours=1))
    faulty_proxy.failed_searches = 1
    first = collector.collect()
    assert not first.caught_up and first.stored == 10
    assert "watermark" not in read_checkpoint(sqlite_engine, "elasticsearch:churn")  # held before that page
    second = collector.collect()
    assert second.caught_up and len(stored_ids(sqlite_engine)) == 30


def test_falls_back_to_search_after_without_point_in_time(
    es_client: Elasticsearch, make_es_index, faulty_proxy, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    index = make_es_index(MAPPINGS)
    helpers.bulk(es_client, [doc(i, T0 + timedelta(seconds=i // 3), index) for i in range(25)], refresh=True)
    faulty_proxy.refuse_pit = True
    config = es_config(faulty_proxy.url, index, page_size=4)  # ties on the timestamp across pages
    collector = ElasticsearchCollector(sqlite_engine, config, "churn", clock=lambda: T0 + timedelta(hours=1))
    with caplog.at_level(logging.WARNING):
        result = collector.collect()
    assert "falling back to search_after without it" in caplog.text
    assert result.stored == 25 and sorted(stored_ids(sqlite_engine)) == sorted(f"r{i}" for i in range(25))


def test_credentials_in_the_url_reach_no_error_and_no_log(
    es_client: Elasticsearch, make_es_index, faulty_proxy, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-es"
    down = es_config(f"http://admin:{secret}@127.0.0.1:{free_port()}", "predictions")
    collector = ElasticsearchCollector(sqlite_engine, down, "churn", retry=Backoff(attempts=2, base=0.01))
    with caplog.at_level(logging.WARNING), pytest.raises(SourceError) as info:
        collector.collect()
    assert "http://[redacted]@127.0.0.1:" in str(info.value) and secret not in str(info.value)

    index = make_es_index(MAPPINGS)
    helpers.bulk(es_client, [doc(i, T0, index) for i in range(3)], refresh=True)
    faulty_proxy.refuse_pit = True
    proxied = es_config(faulty_proxy.url.replace("://", f"://admin:{secret}@"), index)
    collector = ElasticsearchCollector(sqlite_engine, proxied, "churn", clock=lambda: T0 + timedelta(hours=1))
    with caplog.at_level(logging.WARNING):
        assert collector.collect().stored == 3
    assert "falling back to search_after without it" in caplog.text
    assert secret not in caplog.text and "admin" not in caplog.text


def test_backfill_reads_event_time_even_with_an_ingest_time_cursor(
    es_client: Elasticsearch, make_es_index, sqlite_engine: Engine
) -> None:
    index = make_es_index(MAPPINGS)
    helpers.bulk(es_client, [doc(i, T0 + timedelta(minutes=i), index) for i in range(12)], refresh=True)  # no event.*
    config = es_config(es_client.transport.node_pool.get().base_url, index, ingest_time_field="event.ingested")
    collector = ElasticsearchCollector(sqlite_engine, config, "churn", clock=lambda: T0 + timedelta(hours=1))
    assert collector.collect().stored == 0  # nothing has an ingest time
    assert collector.backfill(T0, T0 + timedelta(minutes=6)).stored == 6
    assert sorted(stored_ids(sqlite_engine)) == sorted(f"r{i}" for i in range(6))


def test_label_index_on_a_schedule_labels_days_late_and_predictions_after_their_labels(
    es_client: Elasticsearch, make_es_index, store_engine: Engine
) -> None:
    """Issue 17: a second index of outcomes, read each cycle with the predictions, joins them either way round.

    The outcome documents carry the time of the prediction they label (old, days behind the cursor
    by the time they are indexed), so the collectors read by ingest time.
    """
    index, labels = make_es_index(MAPPINGS), make_es_index(MAPPINGS)
    config = es_config(
        es_client.transport.node_pool.get().base_url, index, label_index=labels, ingest_time_field="event.ingested"
    )
    collectors = build_collectors(config, store_engine)

    def indexed(at: datetime) -> dict[str, Any]:
        return {"event": {"ingested": at.isoformat()}}

    def outcome(i: int, at: datetime) -> dict[str, Any]:
        source = {"request_id": f"r{i}", "outcome": 1 - i % 2, "@timestamp": (T0 + timedelta(minutes=i)).isoformat()}
        return {"_index": labels, "_id": f"l{i}", "_source": {**source, **indexed(at)}}

    def cycle(now: datetime) -> None:
        for collector in collectors:  # what the worker's schedule does every interval
            collector.collect(until=now)

    def labelled() -> dict[str, Any]:
        with store_engine.connect() as connection:
            return dict(
                connection.execute(
                    select(Prediction.prediction_id, Prediction.label).where(Prediction.label.is_not(None))
                ).all()
            )

    def pending() -> int:
        with store_engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(PendingLabel))

    day = timedelta(days=1)
    # Day 0: predictions r0-r49; no outcome yet.
    predictions = [doc(i, T0 + timedelta(minutes=i), index, **indexed(T0 + timedelta(minutes=i))) for i in range(50)]
    helpers.bulk(es_client, predictions, refresh=True)
    cycle(T0 + timedelta(hours=1))
    assert labelled() == {} and pending() == 0
    # Day 3: outcomes of r0-r29 (three days after their predictions), and of r100-r109, whose
    # predictions a replayed queue has not delivered yet.
    helpers.bulk(es_client, [outcome(i, T0 + 3 * day) for i in [*range(30), *range(100, 110)]], refresh=True)
    cycle(T0 + 3 * day + timedelta(hours=1))
    assert labelled() == {f"r{i}": 1 - i % 2 for i in range(30)}
    assert pending() == 10
    # Day 5: the predictions r100-r109 arrive, after their labels: each is joined to its waiting label.
    late = [doc(i, T0 + timedelta(minutes=i), index, **indexed(T0 + 5 * day)) for i in range(100, 110)]
    helpers.bulk(es_client, late, refresh=True)
    cycle(T0 + 5 * day + timedelta(hours=1))
    assert labelled() == {f"r{i}": 1 - i % 2 for i in [*range(30), *range(100, 110)]}
    assert pending() == 0
    with store_engine.connect() as connection:
        label_ts = connection.scalar(select(Prediction.label_ts).where(Prediction.prediction_id == "r3"))
        assert connection.scalar(select(func.count()).select_from(RejectedRecord)) == 0
    assert label_ts == T0 + timedelta(minutes=3)  # the time the outcome document carries
