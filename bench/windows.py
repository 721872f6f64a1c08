"""Loading one window from the store: ``monitor.runs.windows.load_window`` against a plain ORM load.

The scheduler reads every window with one query and turns the JSON columns into NumPy arrays.
This compares it, on the same rows in the same run, with the obvious way: ORM objects
(SQLAlchemy's JSON type decodes each column with ``json.loads``) and columns built from them.

    .venv/bin/python bench/windows.py                       # SQLite in a temp dir
    .venv/bin/python bench/windows.py --store postgresql+psycopg://...   # an empty Postgres database
    .venv/bin/python bench/windows.py --rows 100000 --features 25
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from monitor.config import parse_config
from monitor.runs.windows import load_window
from monitor.store.engine import make_engine, upgrade
from monitor.store.queries import sync_models
from monitor.store.tables import Prediction

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def orm_load(engine, model_id: int, schema: dict[str, str], start: datetime, end: datetime) -> dict[str, np.ndarray]:
    with Session(engine) as session:
        rows = session.scalars(
            select(Prediction).where(Prediction.model_id == model_id, Prediction.ts >= start, Prediction.ts < end)
        ).all()
        columns = {name: np.array([r.features.get(name) for r in rows], dtype=object) for name in schema}
        columns["prediction"] = np.array([r.prediction for r in rows], dtype=object)
        columns["score"] = np.array([r.score for r in rows], dtype=np.float64)
        columns["label"] = np.array([r.label for r in rows], dtype=object)
        return columns


def best_of(runs: int, func) -> float:
    times = []
    for _ in range(runs):
        begun = time.perf_counter()
        func()
        times.append(time.perf_counter() - begun)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=25)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.store or f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        schema = {f"f{i}": "numeric" if i % 5 else "categorical" for i in range(args.features)}
        config = parse_config({"models": {"bench": {"task": "binary", "features": schema}}})
        model_id = sync_models(engine, config)["bench"]
        rng = np.random.default_rng(0)
        values = rng.normal(size=(args.rows, args.features))
        rows = [
            {
                "model_id": model_id,
                "prediction_id": str(i),
                "ts": T0 + timedelta(milliseconds=10 * i),
                "features": {
                    name: (f"c{int(abs(values[i, j]) * 3)}" if kind == "categorical" else float(values[i, j]))
                    for j, (name, kind) in enumerate(schema.items())
                },
                "prediction": int(values[i, 0] > 0),
                "score": float(1 / (1 + np.exp(-values[i, 0]))),
                "label": int(values[i, 1] > 0),
                "source": "bench",
            }
            for i in range(args.rows)
        ]
        with engine.begin() as connection:
            for i in range(0, len(rows), 10_000):
                connection.execute(insert(Prediction), rows[i : i + 10_000])
        start, end = T0, T0 + timedelta(days=1)

        def ours() -> None:
            with engine.connect() as connection:
                load_window(connection, model_id, schema, start, end)

        fast = best_of(args.runs, ours)
        slow = best_of(args.runs, lambda: orm_load(engine, model_id, schema, start, end))
        print(f"store: {engine.dialect.name}, {args.rows:,} rows x {args.features} features, best of {args.runs}")
        print(f"load_window: {fast:.3f} s ({args.rows / fast:,.0f} rows/s)")
        print(f"ORM objects: {slow:.3f} s ({args.rows / slow:,.0f} rows/s)")
        print(f"speed-up:    {slow / fast:.2f}x")
        engine.dispose()


if __name__ == "__main__":
    main()
