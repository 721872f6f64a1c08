"""Ingestion into the weekly-partitioned prediction table (migration 0010) against the plain table before it.

Two databases of one throw-away Postgres (tests/servers.py): ``plain`` migrated to 0009 (one table,
``UNIQUE (model_id, prediction_id)``, the upsert of that revision) and ``partitioned`` at head (a
partition per week of the history, ``prediction_key``, the upsert with its lookup and triggers). The
same records go to both, through ``monitor.ingest.writer`` in batches of 2,000 in one transaction each:

1. new predictions spread over 26 weeks (ids shuffled, as services send them);
2. the same predictions again (replays: every row conflicts);
3. labels for a fifth of them, ids drawn over the whole history (the label join by prediction id).

Each step prints rows/s on both stores and the ratio partitioned / plain (above 1: faster).

    .venv/bin/python bench/partitions.py [--rows 300000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from monitor.config import parse_config
from monitor.ingest import writer
from monitor.ingest.records import ValidLabel, ValidPrediction
from monitor.store import partitions
from monitor.store.engine import make_engine, transaction, upgrade
from monitor.store.queries import sync_models

ROOT = Path(__file__).resolve().parent.parent
BATCH = 2_000
WEEKS = 26
# The upsert of revision 0009 (monitor/ingest/writer.py before migration 0010): the reference.
UPSERT_0009 = """
    INSERT INTO prediction (model_id, prediction_id, ts, features, prediction, score, label, label_ts,
                            label_received_at, source, ingested_at)
    SELECT :model_id, r.id, r.ts, r.features, r.prediction, r.score, r.label, r.label_ts, r.label_ts,
           :source, :now
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id text, ts timestamptz, features jsonb,
         prediction jsonb, score jsonb, label jsonb, label_ts timestamptz)
    ON CONFLICT (model_id, prediction_id) DO UPDATE
        SET label = EXCLUDED.label, label_ts = EXCLUDED.label_ts, label_received_at = EXCLUDED.label_received_at,
            label_corrections = prediction.label_corrections + CASE WHEN prediction.label IS NULL THEN 0 ELSE 1 END
        WHERE EXCLUDED.label IS NOT NULL AND prediction.label IS DISTINCT FROM EXCLUDED.label
"""
CONFIG = parse_config(
    {"models": {"churn": {"task": "binary", "features": {"tenure": "numeric", "plan": "categorical"}}}}
)


@contextmanager
def revision_0009_upsert() -> Iterator[None]:
    """The writer with the upsert statement of revision 0009, for the plain table."""
    original = writer._upsert_predictions

    def upsert(session: Any, dialect: str, params: dict[str, Any]) -> None:
        session.execute(writer._statement(UPSERT_0009), params)

    writer._upsert_predictions = upsert  # type: ignore[assignment]
    try:
        yield
    finally:
        writer._upsert_predictions = original  # type: ignore[assignment]


def batches(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def push(engine: Engine, model_id: int, rows: list[ValidPrediction]) -> float:
    begun = time.perf_counter()
    for chunk in batches(rows):
        with transaction(engine) as session:
            writer.write_predictions(session, model_id, chunk, "bench")
    return time.perf_counter() - begun


def label(engine: Engine, model_id: int, labels: list[ValidLabel]) -> float:
    begun = time.perf_counter()
    for chunk in batches(labels):
        with transaction(engine) as session:
            writer.write_labels(session, model_id, chunk, "bench")
    return time.perf_counter() - begun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000, help="predictions over the 26 weeks")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    now = datetime.now(UTC)
    first = partitions.week(now - WEEKS * partitions.WEEK)
    rng = np.random.default_rng(16)
    offsets = rng.uniform(0, (now - first.start).total_seconds(), args.rows)
    tenure = rng.normal(0, 1, args.rows)
    rows = [
        ValidPrediction(id=f"p{i:09d}", ts=first.start + timedelta(seconds=float(offsets[i])),
                        features={"tenure": float(tenure[i]), "plan": "pro" if i % 3 else "basic"},
                        prediction=int(tenure[i] > 0), score=float(1 / (1 + np.exp(-tenure[i]))), label=None)
        for i in rng.permutation(args.rows)
    ]  # fmt: skip
    labelled = rng.choice(args.rows, args.rows // 5, replace=False)
    labels = [ValidLabel(id=f"p{i:09d}", label=int(i % 2), ts=now) for i in labelled]

    sys.path.insert(0, str(ROOT))
    from tests import servers  # the tests' throw-away Postgres cluster

    server = servers.start_postgres()
    results: dict[str, dict[str, float]] = {}
    try:
        for name, revision in (("plain", "0009"), ("partitioned", "head")):
            server.create_database(name)
            engine = make_engine(server.url(name))
            upgrade(engine, revision)
            if revision == "head":
                with engine.begin() as connection:
                    week = first
                    while week.start <= now:
                        partitions.create(connection, week)
                        week = partitions.week(week.end)
            model_id = sync_models(engine, CONFIG)["churn"]
            steps: dict[str, Callable[[Engine, int], float]] = {
                "new predictions": lambda e, m: push(e, m, rows),
                "replayed predictions": lambda e, m: push(e, m, rows),
                "labels": lambda e, m: label(e, m, labels),
            }
            with revision_0009_upsert() if revision == "0009" else _nothing():
                results[name] = {step: run(engine, model_id) for step, run in steps.items()}
            with engine.connect() as connection:
                stored = connection.execute(text("SELECT count(*), count(label) FROM prediction")).one()
            assert tuple(stored) == (args.rows, len(labels)), stored
            engine.dispose()
    finally:
        server.stop()

    print(f"\n{args.rows:,} predictions over {WEEKS} weeks ({WEEKS + 1} partitions), {len(labels):,} labels, "
          f"batches of {BATCH:,}")  # fmt: skip
    print(f"{'step':<22} {'plain rows/s':>13} {'partitioned rows/s':>19} {'ratio':>7}")
    for step in results["plain"]:
        count = len(labels) if step == "labels" else args.rows
        plain, parted = count / results["plain"][step], count / results["partitioned"][step]
        print(f"{step:<22} {plain:>13,.0f} {parted:>19,.0f} {parted / plain:>7.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    main()
