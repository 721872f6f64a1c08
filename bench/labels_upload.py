"""Late labels in bulk (issue 17): a month of predictions computed, then every label in one Parquet file.

1. N predictions (default 1,000,000) over 30 days of hourly windows, ingested through
   ``monitor.ingest.ingest_predictions`` (the API's and the collectors' path) in batches of 10,000;
2. the scheduler computes every window (no labels yet: performance is insufficient);
3. one Parquet file with a label for every prediction, carrying the prediction's own (old) time, is
   uploaded with ``driftscope labels upload`` (a subprocess, as a user runs it): time to upload;
4. the scheduler's stale scan: windows marked stale; then ticks until none is stale: time until every
   window's performance is recomputed;
5. the same file again: it must change nothing (0 windows stale, 0 labels received anew) — its batches
   are replays of their idempotency keys; then the same labels in reverse order, whose batches are new,
   so every row reaches the writer, which must find them unchanged.

Reference, in the same run: a plain SQL bulk ``UPDATE prediction SET label … WHERE prediction_id = …``
(executemany, one transaction) of the same labels on a copy of the store taken before step 3, and
reading the Parquet file with pyarrow.

    .venv/bin/python bench/labels_upload.py                 # 1M predictions, SQLite in a temp dir
    .venv/bin/python bench/labels_upload.py --quick         # 100k
    .venv/bin/python bench/labels_upload.py --rows 300000 --postgres   # a throw-away Postgres (tests/servers.py)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from sqlalchemy import Engine, func, select, text

from monitor.config import Config, parse_config
from monitor.ingest import ingest_predictions
from monitor.runs.scheduler import Scheduler
from monitor.store.engine import make_engine, upgrade
from monitor.store.tables import Prediction, Run

ROOT = Path(__file__).resolve().parent.parent
HOUR = timedelta(hours=1)
DAYS = 30
BATCH = 10_000


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    begun = time.perf_counter()
    out = fn()
    return time.perf_counter() - begun, out


def config_dict(store: str, start: datetime) -> dict[str, Any]:
    return {
        "store": store,
        "models": {
            "churn": {"task": "binary", "features": {"tenure": "numeric", "charges": "numeric", "plan": "categorical"}}
        },
        "monitors": {
            "churn-hourly": {
                "model": "churn",
                "window": "1h",
                "lateness": "5m",
                "start": start.isoformat(),
                "reference": {"range": [start.isoformat(), (start + timedelta(days=1)).isoformat()]},
                "performance": ["accuracy", "roc_auc"],
            }
        },
        "worker": {"metrics_port": None},
    }


def predictions(rows: int, start: datetime, seed: int = 7) -> Iterator[tuple[list[dict[str, Any]], np.ndarray]]:
    """Batches of canonical prediction records spread evenly over 30 days, with the labels they will get."""
    rng = np.random.default_rng(seed)
    step = DAYS * 86400 / rows
    for first in range(0, rows, BATCH):
        n = min(BATCH, rows - first)
        tenure, charges = rng.normal(0, 1, n), rng.normal(50, 10, n)
        score = 1 / (1 + np.exp(-tenure))
        labels = (rng.random(n) < score).astype(int)
        records = [
            {
                "id": f"p{first + i}",
                "timestamp": (start + timedelta(seconds=(first + i) * step)).isoformat(),
                "features": {"tenure": float(tenure[i]), "charges": float(charges[i]), "plan": "ab"[i % 2]},
                "prediction": int(score[i] > 0.5),
                "score": float(score[i]),
            }
            for i in range(n)
        ]
        yield records, labels


def compute_all(scheduler: Scheduler) -> int:
    """Tick until nothing is due (nor stale); returns the runs computed."""
    total = 0
    while (done := scheduler.tick()) > 0:
        total += done
    return total


def stale_windows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).where(Run.stale_since.is_not(None))) or 0


def label_state(engine: Engine) -> tuple[Any, ...]:
    """Labelled predictions, the newest reception time, the corrections: what a no-op upload must leave alone."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                select(
                    func.count(Prediction.label_received_at),
                    func.max(Prediction.label_received_at),
                    func.coalesce(func.sum(Prediction.label_corrections), 0),
                )
            ).one()
        )


def upload(config_path: Path, labels: Path) -> subprocess.CompletedProcess[str]:
    driftscope = Path(sys.executable).with_name("driftscope")
    command = [str(driftscope), "labels", "upload", "--model", "churn", "--config", str(config_path), str(labels)]
    return subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, "NO_COLOR": "1"})


def sql_update(url: str, table: pa.Table, model_id: int) -> float:
    """The reference: the same labels as one executemany UPDATE by prediction id, in one transaction."""
    engine = make_engine(url)
    ids = table.column("id").to_pylist()
    values = table.column("label").to_pylist()
    times = table.column("timestamp").to_pylist()
    params = [
        {"label": str(v), "ts": t, "model_id": model_id, "pid": i} for i, v, t in zip(ids, values, times, strict=True)
    ]
    statement = text(
        "UPDATE prediction SET label = :label, label_ts = :ts, label_received_at = CURRENT_TIMESTAMP "
        "WHERE model_id = :model_id AND prediction_id = :pid"
    )
    try:
        begun = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(statement, params)
        return time.perf_counter() - begun
    finally:
        engine.dispose()


@contextmanager
def stores(postgres: bool, workdir: Path) -> Iterator[tuple[str, Callable[[], str]]]:
    """The store's URL, and a function that copies it (for the reference) and returns the copy's URL."""
    if not postgres:
        path = workdir / "store.db"

        def copy_sqlite() -> str:
            shutil.copy(path, workdir / "reference.db")
            return f"sqlite:///{workdir / 'reference.db'}"

        yield f"sqlite:///{path}", copy_sqlite
        return
    sys.path.insert(0, str(ROOT))
    from tests import servers  # the tests' throw-away Postgres cluster

    server = servers.start_postgres()
    try:
        server.create_database("bench")

        def copy_postgres() -> str:
            server._admin("CREATE DATABASE bench_reference TEMPLATE bench")  # the store's engine is disposed
            return server.url("bench_reference")

        yield server.url("bench"), copy_postgres
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="predictions over the 30 days")
    parser.add_argument("--quick", action="store_true", help="100,000 predictions")
    parser.add_argument("--postgres", action="store_true", help="a throw-away Postgres (tests/servers.py), not SQLite")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=DAYS) - 2 * HOUR  # every window closed, on the real clock the writer stamps
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp, stores(args.postgres, Path(tmp)) as (url, copy_store):
        workdir = Path(tmp)
        spec = config_dict(url, start)
        config: Config = parse_config(spec)
        config_path = workdir / "driftscope.yaml"
        config_path.write_text(yaml.safe_dump(spec))
        engine = make_engine(url)
        upgrade(engine)
        print(f"store: {engine.dialect.name}, {rows:,} predictions over {DAYS} days of hourly windows")

        ids: list[str] = []
        stamps: list[datetime] = []
        labels: list[int] = []

        def ingest() -> None:
            for records, batch_labels in predictions(rows, start):
                result = ingest_predictions(engine, config, "churn", records, "bench", shape="canonical")
                assert not result.rejected, result.rejected[:1]
                ids.extend(r["id"] for r in records)
                stamps.extend(datetime.fromisoformat(r["timestamp"]) for r in records)
                labels.extend(batch_labels.tolist())

        t_ingest, _ = timed(ingest)
        print(f"ingest predictions: {t_ingest:8.1f} s  ({rows / t_ingest:,.0f} rows/s)")
        scheduler = Scheduler(config, engine)
        t_compute, computed = timed(lambda: compute_all(scheduler))
        with engine.connect() as conn:
            statuses = dict(conn.execute(select(Run.status, func.count()).group_by(Run.status)).all())
        print(f"compute windows:    {t_compute:8.1f} s  ({computed} windows: {statuses})")

        table = pa.table({"id": ids, "label": labels, "timestamp": pa.array(stamps, type=pa.timestamp("us", tz="UTC"))})
        parquet = workdir / "labels.parquet"
        pq.write_table(table, parquet)
        print(f"labels file: {parquet.stat().st_size / 1e6:.1f} MB Parquet, {table.num_rows:,} rows")
        with engine.connect() as conn:
            model_id = conn.execute(select(Prediction.model_id).limit(1)).scalar_one()
        engine.dispose()
        reference_url = copy_store()

        t_upload, done = timed(lambda: upload(config_path, parquet))
        print(f"labels upload:      {t_upload:8.1f} s  ({rows / t_upload:,.0f} rows/s)  {done.stdout.strip()}")
        t_mark, marked = timed(scheduler.mark_stale)
        print(f"stale scan:         {t_mark:8.1f} s  ({marked} windows marked stale)")
        t_recompute, recomputed = timed(lambda: compute_all(scheduler))
        left = stale_windows(engine)
        print(f"recompute:          {t_recompute:8.1f} s  ({recomputed} windows; {left} still stale)")
        print(f"upload → every window's performance recomputed: {t_upload + t_mark + t_recompute:.1f} s")
        before = label_state(engine)

        t_again, again = timed(lambda: upload(config_path, parquet))
        marked_again = scheduler.mark_stale()
        recomputed_again = compute_all(scheduler)
        after = label_state(engine)
        print(
            f"same file again:    {t_again:8.1f} s  {again.stdout.strip()}; "
            f"{marked_again} windows stale, {recomputed_again} recomputed, "
            f"labels unchanged: {before == after} ({after[0]:,} labelled, {after[2]} corrections)"
        )

        # The same labels in another order: no batch is a replay, so every row reaches the writer, which
        # must see the labels are unchanged (no write, no new reception time).
        reordered = workdir / "labels-reordered.parquet"
        pq.write_table(table.take(pa.array(np.arange(table.num_rows)[::-1])), reordered)
        t_reordered, again_reordered = timed(lambda: upload(config_path, reordered))
        marked_reordered = scheduler.mark_stale()
        recomputed_reordered = compute_all(scheduler)
        after_reordered = label_state(engine)
        print(
            f"reordered copy:     {t_reordered:8.1f} s  {again_reordered.stdout.strip()}; "
            f"{marked_reordered} windows stale, {recomputed_reordered} recomputed, "
            f"labels unchanged: {before == after_reordered}"
        )
        engine.dispose()

        t_read, _ = timed(lambda: pq.read_table(parquet))
        t_sql = sql_update(reference_url, table, model_id)
        print(f"reference: read the Parquet file with pyarrow {t_read:.2f} s; plain SQL bulk UPDATE {t_sql:.1f} s")
        print(f"ratio: upload / plain UPDATE = {t_upload / t_sql:.2f}×")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        changed = marked_again + recomputed_again + marked_reordered + recomputed_reordered
        if changed or before != after or before != after_reordered or left:
            sys.exit("FAILED: the second upload changed something, or windows stayed stale")


if __name__ == "__main__":
    main()
