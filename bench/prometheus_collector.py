"""Prometheus → store throughput of the collector, as a ratio to raw ``query_range`` reads of the same range.

Starts Debian's prometheus (and, for ``--store postgres``, a throw-away Postgres) from
tests/servers.py. The query is computed by Prometheus itself (``--series`` constant series made with
``label_replace(vector(i))``), so no scraping is needed and every step has a value. In the same
run it times:

* the raw read: the collector's own chunks (``max_points_per_request`` 10,000) fetched with httpx
  and JSON-decoded, with no processing;
* ``PrometheusCollector.backfill()`` into an empty store: fetch, parse, upsert, checkpoint per chunk;
* the same backfill again, where every point already exists (the idempotent re-run).

    .venv/bin/python bench/prometheus_collector.py [--series 10] [--steps 50000] [--store sqlite|postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.prometheus import PrometheusCollector, plan_chunks, to_ms  # noqa: E402
from monitor.config import MetricQuery, PrometheusSource, parse_config  # noqa: E402
from monitor.store.engine import make_engine, upgrade  # noqa: E402
from monitor.store.queries import sync_models  # noqa: E402
from tests.servers import start_postgres, start_prometheus  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    prometheus = start_prometheus()
    postgres = start_postgres() if args.store == "postgres" else None
    try:
        if postgres is not None:
            postgres.create_database("bench")
            url = postgres.url("bench")
        else:
            url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
        engine = make_engine(url)
        upgrade(engine)
        sync_models(engine, parse_config({"models": {"m": {"task": "binary", "features": {"x": "numeric"}}}}))
        expr = " or ".join(f'label_replace(vector({i}) * 1.5, "series", "{i}", "", "")' for i in range(args.series))
        source = PrometheusSource(kind="prometheus", url=prometheus.url, step=timedelta(seconds=1))
        end = T0 + timedelta(seconds=args.steps - 1)

        started = time.perf_counter()
        with httpx.Client(timeout=120) as client:
            for start_ms, end_ms in plan_chunks(to_ms(T0), to_ms(end), 1000, source.max_points_per_request):
                params = {"query": expr, "start": start_ms / 1000, "end": end_ms / 1000, "step": 1}
                client.get(f"{prometheus.url}/api/v1/query_range", params=params).json()
        raw = time.perf_counter() - started

        collector = PrometheusCollector(engine, "m", "q", MetricQuery(source="prom", query=expr), source)
        started = time.perf_counter()
        result = collector.backfill(T0, end)
        first = time.perf_counter() - started
        started = time.perf_counter()
        collector.backfill(T0, end)
        again = time.perf_counter() - started
        collector.close()
        engine.dispose()
    finally:
        prometheus.stop()
        if postgres is not None:
            postgres.stop()

    points = result.stored
    print(f"store={args.store} series={args.series} steps={args.steps} points={points:,}")
    print(f"raw query_range read: {raw:.2f} s ({points / raw:,.0f} points/s)")
    print(f"collector backfill:   {first:.2f} s ({points / first:,.0f} points/s), {first / raw:.1f}x the raw read")
    print(f"backfill again:       {again:.2f} s ({points / again:,.0f} points/s), {again / raw:.1f}x the raw read")


if __name__ == "__main__":
    main()
