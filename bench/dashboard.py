"""Benchmark: the dashboard's model page over 90 days of hourly windows × 50 features, server-side.

    .venv/bin/python bench/dashboard.py                       # throw-away Postgres cluster + SQLite
    .venv/bin/python bench/dashboard.py --postgres-url postgresql+psycopg://user@host/db   # an empty database

For each store the script seeds the demo story (``tests/seed.py``: drift, quality, volume, realized and
estimated performance with CIs, 3 Prometheus series, alerts) for ``--days`` of hourly windows and
``--features`` features, runs ``VACUUM ANALYZE`` on Postgres, warms up once, then times ``--repeat`` renders of
``/models/churn?range=90d`` and keeps every run:

* queries — :func:`dashboard.pages.model.build`: all SQL of the page (aggregated per bucket in the database);
* figure — :func:`dashboard.figures.model_timeline` on that data;
* page — :func:`dashboard.app.render_page`, the router callback's work (queries + figure + KPIs + layout);
* json — the page serialised as the callback response (``plotly.io.json.to_json_plotly``);
* total — page + json: what the server does before the browser gets its answer. Budget: < 1 s.

As a reference in the same run it also times fetching the range's raw drift scores into pandas
(``window × feature`` rows, what the heatmap would need without SQL aggregation), and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ is sys.path[0] and this file would shadow the dashboard package: use the root.
sys.path[0] = str(ROOT)

import pandas as pd  # noqa: E402
from plotly.io.json import to_json_plotly  # noqa: E402
from sqlalchemy import Engine, select, text  # noqa: E402

from dashboard import figures, queries  # noqa: E402
from dashboard.app import render_page  # noqa: E402
from dashboard.context import Context  # noqa: E402
from dashboard.pages import model as model_page  # noqa: E402
from dashboard.state import PageQuery  # noqa: E402
from monitor.config import Config  # noqa: E402
from monitor.store.engine import make_engine, upgrade  # noqa: E402
from monitor.store.tables import Score  # noqa: E402
from tests import servers  # noqa: E402
from tests.seed import MODEL, seed_store  # noqa: E402

BUDGET_S = 1.0
PAGE = f"/models/{MODEL}"
SEARCH = "?range=90d"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def raw_drift_rows(engine: Engine, model_id: int, query: PageQuery) -> int:
    with engine.connect() as conn:
        extent = queries.model_extent(conn, model_id)
        tr = query.time_range(extent.first, extent.last, extent.window)
        result = conn.execute(
            select(Score.window_start, Score.feature, Score.value, Score.threshold, Score.breached).where(
                Score.model_id == model_id,
                Score.kind == "drift",
                Score.window_start >= tr.start,
                Score.window_start < tr.end,
            )
        )
        return len(pd.DataFrame(result.all(), columns=list(result.keys())))


def measure(name: str, engine: Engine, days: int, features: int, repeat: int) -> dict[str, float]:
    upgrade(engine)
    seconds, info = timed(lambda: seed_store(engine, days=days, n_features=features))
    with engine.connect() as conn:
        scores = conn.scalar(select(Score.id).order_by(Score.id.desc()).limit(1))
    if engine.dialect.name == "postgresql":
        # What autovacuum does in steady state: statistics, and the visibility map index-only scans need.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    print(f"\n[{name}] seeded {days} days × {features} features ({scores:,} scores) in {seconds:.1f} s")
    print(f"[{name}] load average before timing: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    ctx = Context(Config(), engine)
    query = PageQuery.parse(SEARCH)
    render_page(ctx, PAGE, SEARCH)  # warm-up: imports, first-query plans, plotly validators
    runs: dict[str, list[float]] = {"queries": [], "figure": [], "page": [], "json": [], "total": [], "raw": []}
    for _ in range(repeat):
        with queries.read_only(engine) as conn:
            model = queries.model_by_name(conn, MODEL)
        t_queries, page = timed(partial(model_page.build, engine, model, query))
        t_figure, _ = timed(partial(figures.model_timeline, page.timeline))
        t_page, layout = timed(partial(render_page, ctx, PAGE, SEARCH))
        t_json, body = timed(partial(to_json_plotly, layout))
        t_raw, rows = timed(partial(raw_drift_rows, engine, info.churn.id, query))
        for key, value in zip(runs, (t_queries, t_figure, t_page, t_json, t_page + t_json, t_raw), strict=True):
            runs[key].append(value)
    timeline = page.timeline
    cells = len(timeline.matrix)
    print(
        f"[{name}] range 90 d, bucket {timeline.bucket.total_seconds() / 3600:g} h → {cells:,} heatmap cells "
        f"(from {rows:,} drift scores), response {len(body) / 1e6:.2f} MB"
    )
    for key, values in runs.items():
        label = "raw drift rows → pandas (reference)" if key == "raw" else key
        print(f"[{name}]   {label:38s} median {statistics.median(values):.3f} s   max {max(values):.3f} s")
    total = statistics.median(runs["total"])
    verdict = "within" if max(runs["total"]) < BUDGET_S else "OVER"
    print(
        f"[{name}] total median {total:.3f} s, max {max(runs['total']):.3f} s: {verdict} the {BUDGET_S:.0f} s budget; "
        f"SQL-aggregated queries are {statistics.median(runs['raw']) / statistics.median(runs['queries']):.1f}× "
        "faster than fetching the raw drift rows alone"
    )
    return {key: statistics.median(values) for key, values in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", help="an empty Postgres database (default: start a throw-away cluster)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    server = None
    url = args.postgres_url
    if url is None:
        server = servers.start_postgres()
        server.create_database("bench_dashboard")
        url = server.url("bench_dashboard")
    try:
        engine = make_engine(url)
        measure("postgres", engine, args.days, args.features, args.repeat)
        engine.dispose()
    finally:
        if server is not None:
            server.stop()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            measure("sqlite", engine, args.days, args.features, args.repeat)
            engine.dispose()


if __name__ == "__main__":
    main()
