"""Benchmark: the read API over HTTP on Postgres, beside the raw SQL for the same rows.

    .venv/bin/python bench/read_api.py                       # throw-away Postgres cluster
    .venv/bin/python bench/read_api.py --postgres-url postgresql+psycopg://user@host/db   # an empty database

Seeds the dashboard benchmark's store (``tests/seed.py``: 90 days of hourly windows × 50 features, two
monitors per model), runs ``VACUUM ANALYZE`` as autovacuum would, serves it with ``driftscope api`` (uvicorn,
its own process, on loopback) and times ``--repeat`` requests of each, after one warm-up:

* scores — every drift score of model ``churn`` in its last 30 days, both monitors (what
  ``Client.scores(model, kind="drift", since=...)`` fetches): ``GET /v1/models/churn/scores`` pages of
  ``--page-size`` rows, following ``next_cursor`` to the end; one request = the whole 30 days.
  Reference: the same rows in one SQL query (same filter and order) fetched by psycopg in this process.
* health — ``GET /v1/models/churn/health``. Reference: :func:`monitor.store.reads.model_health`'s queries
  in this process, without HTTP.

Budgets (p99): health < 100 ms, 30 days of drift scores < 500 ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ is sys.path[0]: import the project from the root.
sys.path[0] = str(ROOT)

import httpx  # noqa: E402
import orjson  # noqa: E402
from sqlalchemy import Engine, select, text  # noqa: E402

from monitor.store import reads  # noqa: E402
from monitor.store.api_keys import create_api_key  # noqa: E402
from monitor.store.engine import make_engine, upgrade  # noqa: E402
from monitor.store.tables import Score  # noqa: E402
from tests import servers  # noqa: E402
from tests.seed import MODEL, seed_store  # noqa: E402

BUDGETS_S = {"health": 0.100, "scores": 0.500}
SPAN = timedelta(days=30)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: p99 of 100 samples is the 99th smallest, a value that was measured."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def timed_runs(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    result = fn()  # warm-up: plans, imports, the connection pool
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - start)
    return runs, result


@contextmanager
def api_server(url: str, workdir: Path) -> Iterator[str]:
    """``driftscope api`` on a free loopback port in its own process; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = workdir / "driftscope.yaml"
    config.write_bytes(orjson.dumps({"store": url, "api": {"host": "127.0.0.1", "port": port}}))
    log = (workdir / "api.log").open("wb")
    driftscope = Path(sys.executable).parent / "driftscope"
    proc = subprocess.Popen([str(driftscope), "api", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"driftscope api did not start; see {workdir / 'api.log'}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def fetch_scores(client: httpx.Client, params: dict[str, Any]) -> tuple[int, int]:
    """Every page of the query, following cursors; returns the rows and pages read."""
    params, rows, pages = dict(params), 0, 0
    while True:
        pages += 1
        response = client.get(f"/v1/models/{MODEL}/scores", params=params)
        response.raise_for_status()
        page = response.json()
        rows += len(page["scores"])
        if not page["next_cursor"]:
            return rows, pages
        params["cursor"] = page["next_cursor"]


def raw_scores(engine: Engine, where: reads.ScoreFilter) -> int:
    columns = [getattr(Score, c) for c in reads.SCORE_COLUMNS]
    with engine.connect() as conn:
        return len(conn.execute(select(*columns).where(*where.where()).order_by(Score.window_start, Score.id)).all())


def raw_health(engine: Engine) -> reads.Health:
    with engine.connect() as conn:
        model = reads.model_by_name(conn, MODEL)
        assert model is not None
        return reads.model_health(conn, model)


def report(name: str, api: list[float], raw: list[float]) -> bool:
    p50, p99 = percentile(api, 50), percentile(api, 99)
    raw50, raw99 = percentile(raw, 50), percentile(raw, 99)
    within = p99 < BUDGETS_S[name]
    print(
        f"  {name:7s} API p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms   "
        f"raw SQL p50 {raw50 * 1000:7.1f} ms  p99 {raw99 * 1000:7.1f} ms   "
        f"ratio p50 {p50 / raw50:4.1f}×  p99 {p99 / raw99:4.1f}×   "
        f"{'within' if within else 'OVER'} the {BUDGETS_S[name] * 1000:.0f} ms p99 budget"
    )
    return within


def measure(url: str, days: int, features: int, repeat: int, page_size: int) -> bool:
    engine = make_engine(url)
    upgrade(engine)
    start = time.perf_counter()
    info = seed_store(engine, days=days, n_features=features)
    print(f"seeded {days} days × {features} features in {time.perf_counter() - start:.0f} s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    key = create_api_key(engine, "bench-read", scopes=["read"])[0]
    since = info.churn.last_window + timedelta(hours=1) - SPAN
    where = reads.ScoreFilter(info.churn.id, kind="drift", since=since)
    params = {"kind": "drift", "since": since.isoformat(), "limit": page_size}
    with (
        tempfile.TemporaryDirectory() as tmp,
        api_server(url, Path(tmp)) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client,
    ):
        print(f"load average before timing: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        scores_api, (rows, pages) = timed_runs(lambda: fetch_scores(client, params), repeat)
        scores_raw, raw_rows = timed_runs(lambda: raw_scores(engine, where), repeat)
        assert rows == raw_rows, (rows, raw_rows)

        def health() -> dict[str, Any]:
            response = client.get(f"/v1/models/{MODEL}/health")
            response.raise_for_status()
            return response.json()

        health_api, body = timed_runs(health, repeat)
        health_raw, _ = timed_runs(lambda: raw_health(engine), repeat)
        print(f"load average after timing: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    engine.dispose()
    print(f"30 days of drift scores: {rows:,} rows in {pages} pages of ≤ {page_size:,}; health state {body['state']}")
    print(f"{repeat} requests each (after one warm-up):")
    return all([report("scores", scores_api, scores_raw), report("health", health_api, health_raw)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", help="an empty Postgres database (default: start a throw-away cluster)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--page-size", type=int, default=5000, help="limit= per page (the SDK's default)")
    args = parser.parse_args()

    server = None
    url = args.postgres_url
    if url is None:
        server = servers.start_postgres()
        server.create_database("bench_read_api")
        url = server.url("bench_read_api")
    try:
        within = measure(url, args.days, args.features, args.repeat, args.page_size)
    finally:
        if server is not None:
            server.stop()
    sys.exit(0 if within else 1)


if __name__ == "__main__":
    main()
