"""Elasticsearch → store throughput of the collector, as a ratio to a raw ``helpers.scan`` of the same index.

Starts noida-db (Elasticsearch 8 API) and a throw-away Postgres (tests/servers.py), indexes N
prediction documents, then in the same run times:

* ``helpers.scan`` of the whole index (size 5,000, no processing): the raw read speed;
* the collector's own reads without storing: PIT + ``search_after`` sorted on the timestamp;
* ``ElasticsearchCollector.collect()`` into an empty store (``--page-size``): read, validate,
  upsert, checkpoint per page.

    .venv/bin/python bench/ingest_es.py [--docs 100000] [--store postgres|sqlite] [--page-size 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from elasticsearch import Elasticsearch, helpers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.elasticsearch import ElasticsearchCollector  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.store.engine import make_engine, upgrade  # noqa: E402
from tests.servers import start_elasticsearch, start_postgres  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)
FEATURES = {f"n{i}": "numeric" for i in range(8)} | {f"c{i}": "categorical" for i in range(2)}


def document(i: int, index: str) -> dict[str, object]:
    source: dict[str, object] = {f"n{j}": (i * (j + 1)) % 97 / 7 for j in range(8)}
    source |= {"c0": f"plan-{i % 5}", "c1": f"region-{i % 7}"}
    source |= {
        "request_id": f"r{i}",
        "@timestamp": (T0 + timedelta(milliseconds=10 * i)).isoformat(),
        "output": {"label": i % 2, "proba": (i % 100) / 100},
    }
    return {"_index": index, "_id": f"r{i}", "_source": source}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--page-size", type=int, default=5000)
    args = parser.parse_args()
    es_server = start_elasticsearch()
    postgres = start_postgres() if args.store == "postgres" else None
    try:
        es = Elasticsearch(es_server.url, request_timeout=120)
        index = "predictions"
        es.indices.create(
            index=index,
            mappings={"properties": {"@timestamp": {"type": "date"}, "request_id": {"type": "keyword"}}},
        )
        helpers.bulk(es, (document(i, index) for i in range(args.docs)), chunk_size=5000, refresh=True)

        started = time.perf_counter()
        scanned = sum(1 for _ in helpers.scan(es, index=index, size=5000))
        scan_seconds = time.perf_counter() - started

        # The same reads the collector does (PIT, sorted on the timestamp, search_after, _source
        # filtered), without storing anything: splits the gap to scan into server cost and ours.
        started = time.perf_counter()
        pit = es.open_point_in_time(index=index, keep_alive="2m")["id"]
        paged, after = 0, None
        while True:
            page = es.search(
                pit={"id": pit, "keep_alive": "2m"},
                size=args.page_size,
                sort=[{"@timestamp": "asc"}],
                search_after=after,
                source_includes=["request_id", "@timestamp", "output.label", "output.proba", *FEATURES],
                track_total_hits=False,
            )["hits"]["hits"]
            if not page:
                break
            paged, after = paged + len(page), page[-1]["sort"]
        es.close_point_in_time(id=pit)
        paged_seconds = time.perf_counter() - started

        if postgres is not None:
            postgres.create_database("bench")
            store = postgres.url("bench")
        else:
            store = f"sqlite:///{tempfile.mkdtemp(prefix='bench-es-')}/bench.db"
        engine = make_engine(store)
        upgrade(engine)
        config = parse_config(
            {
                "store": store,
                "sources": {
                    "es": {"kind": "elasticsearch", "url": es_server.url, "index": index, "page_size": args.page_size}
                },
                "models": {
                    "m": {
                        "task": "binary",
                        "source": "es",
                        "fields": {
                            "id": "request_id",
                            "timestamp": "@timestamp",
                            "prediction": "output.label",
                            "score": "output.proba",
                        },
                        "features": FEATURES,
                    }
                },
            }
        )
        # The collector builds its own client from the config (as in production); the scan uses a default one.
        collector = ElasticsearchCollector(engine, config, "m", clock=lambda: T0 + timedelta(days=1))
        started = time.perf_counter()
        result = collector.collect()
        collect_seconds = time.perf_counter() - started
        assert scanned == paged == args.docs and result.stored == args.docs, (scanned, paged, result)

        scan_rate, collect_rate = scanned / scan_seconds, result.stored / collect_seconds
        print(f"raw helpers.scan: {scanned} docs in {scan_seconds:.2f}s = {scan_rate:,.0f} docs/s")
        print(
            f"raw PIT + search_after, sorted: {paged} docs in {paged_seconds:.2f}s "
            f"= {paged / paged_seconds:,.0f} docs/s"
        )
        print(f"collector → {args.store}: {result.stored} docs in {collect_seconds:.2f}s = {collect_rate:,.0f} docs/s")
        print(f"ratio collector/scan: {collect_rate / scan_rate:.2f} (budget ≥ 0.50)")
        print(f"ratio collector/sorted PIT read: {collect_rate * paged_seconds / paged:.2f}")
        engine.dispose()
    finally:
        es_server.stop()
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    main()
