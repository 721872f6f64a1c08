"""Benchmark: one worker window end to end against the drift detectors alone, on SQLite and Postgres.

    .venv/bin/python bench/worker_window.py --rows 100000 1000000 [--stores sqlite postgres] [--repeat 2]

Budget (issue 16): the whole window costs at most 3× its drift.

For each store and size the parent seeds a fresh store (a SQLite file in a temporary directory; a
new database on a throwaway Postgres started as the tests start it, ``tests/servers.py``) through
the real ingestion writer (``monitor.ingest.writer.write_predictions``, not timed): a reference
hour of ``--reference-rows`` rows and one window hour of N rows, 25 features (``bench/drift.py``'s
frames: 20 numeric, 5 categorical, some drifting) with predictions, scores and labels, so
performance and CBPE estimation run. The monitor is the example config's
(``examples/driftscope.yaml``, ``churn-hourly``: auto drift, its per-column PSI override on a
categorical column, quality on, ``performance: [roc_auc, f1]``, ``estimated_performance: true``;
multivariate drift is off there, ``--multivariate`` turns it on) with the 25 features and a range
reference. The parent profiles the reference once (the baseline cached in the store, as after a
worker's first window), then starts a fresh process per store and size that measures:

* **window**: what the worker does for one window, timed as a whole: ``Scheduler.claim`` then
  ``Scheduler.compute`` (reference baseline from the store, ``load_window``, every detector
  family, arrival counts, the run and its scores written in one transaction). The stages are
  timed by wrapping the scheduler's and evaluation's own functions, so the breakdown is that same
  run: claim / reference / load / quality / drift / performance+estimation / multivariate /
  arrival+write.
* **drift alone**: ``monitor.runs.evaluation._drift`` (every drift test the monitor runs: the 25
  features, prediction, score and label) on the window's columns already loaded and typed —
  numeric features as float64, as a file gives them — so the denominator is the statistics only.

Times are the fastest of ``--repeat`` runs (the run is made pending again between them; the
first run reads a store just written, so its pages are cached). Peak memory is the child's
resident-set high-water mark (``VmHWM``) over the window runs, and above the resident set
just before the first one (imports, config, nothing of the window yet). The 1-minute load
average is printed: the machine is shared.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

BUDGET = 3.0
T0 = datetime(2026, 3, 1, tzinfo=UTC)
REFERENCE = (T0, T0 + timedelta(hours=1))
WINDOW = (T0 + timedelta(hours=2), T0 + timedelta(hours=3))
NOW = WINDOW[1] + timedelta(minutes=10)
MONITOR = "churn-hourly"
MODEL = "churn"
SEED_BATCH = 20_000  # rows per ingestion transaction while seeding
STAGES = ("claim", "reference", "load", "quality", "drift", "perf+est", "multivariate", "write")


# ------------------------------------------------------------------------------------------ config


def bench_config(store: str, *, multivariate: bool) -> Any:
    """The example config's model and monitor with the bench's 25 features and a range reference."""
    from bench.drift import N_CATEGORICAL, N_NUMERIC
    from monitor.config import parse_config

    data = yaml.safe_load((ROOT / "examples" / "driftscope.yaml").read_text(encoding="utf-8"))
    data["store"] = store
    model = data["models"][MODEL]
    model["features"] = {f"num_{i}": "numeric" for i in range(N_NUMERIC)} | {
        f"cat_{j}": "categorical" for j in range(N_CATEGORICAL)
    }
    model.pop("metrics", None)  # Prometheus metrics are shown beside drift, not computed by the window
    monitor = data["monitors"][MONITOR]
    monitor["reference"] = {"range": [REFERENCE[0].isoformat(), REFERENCE[1].isoformat()]}
    monitor["start"] = WINDOW[0].isoformat()
    # The example's override is on its categorical `plan`: the same on a categorical column here.
    monitor["drift"]["columns"] = {"cat_0": monitor["drift"]["columns"]["plan"]}
    monitor["drift"]["multivariate"] = multivariate
    data["monitors"] = {MONITOR: monitor}
    return parse_config(data, source="examples/driftscope.yaml (bench)", env={})


# ------------------------------------------------------------------------------------------ seeding


def _records(frame: Any, start: datetime, prefix: str, seed: int) -> list[Any]:
    """ValidPredictions of ``frame``'s rows, spread over the hour from ``start``, with score and label."""
    from monitor.ingest.records import ValidPrediction

    rng = np.random.default_rng(seed)
    n = len(frame)
    logit = (frame["num_0"].to_numpy() - 10) / 2 + (frame["num_1"].to_numpy() - 1)
    score = 1 / (1 + np.exp(-logit))
    label = (rng.random(n) < score).astype(int).tolist()
    prediction = (score > 0.5).astype(int).tolist()
    step = timedelta(hours=1) / n
    columns = {name: frame[name].tolist() for name in frame.columns}
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return [
        ValidPrediction(f"{prefix}{i}", start + i * step, rows[i], prediction[i], s, label[i])
        for i, s in enumerate(score.tolist())
    ]


def seed(store: str, config: Any, rows: int, reference_rows: int) -> float:
    """Write the reference and window rows through the ingestion writer; returns the seconds it took."""
    from sqlalchemy.orm import Session

    from bench.drift import build_frames
    from monitor.ingest.writer import write_predictions
    from monitor.store.engine import make_engine, upgrade
    from monitor.store.queries import sync_models

    engine = make_engine(store)
    upgrade(engine)
    model_id = sync_models(engine, config)[MODEL]
    begun = time.perf_counter()
    for frame, start, prefix, seed_ in (
        (build_frames(reference_rows)[0], REFERENCE[0], "r", 1),
        (build_frames(rows)[1], WINDOW[0], "w", 2),
    ):
        records = _records(frame, start, prefix, seed_)
        del frame
        for i in range(0, len(records), SEED_BATCH):
            with Session(engine) as session, session.begin():
                write_predictions(session, model_id, records[i : i + SEED_BATCH], "bench")
    seconds = time.perf_counter() - begun
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            from sqlalchemy import text

            connection.execute(text("VACUUM ANALYZE prediction"))
    # The reference is profiled once and its baseline cached in the store, as after a worker's first window.
    from monitor.runs.scheduler import Scheduler

    Scheduler(config, engine, clock=lambda: NOW).references.baseline(MONITOR, WINDOW[0])
    engine.dispose()
    return seconds


# ------------------------------------------------------------------------------------ the window side


def _kib(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())
    assert match is not None
    return int(match.group(1))


class Stages:
    """Seconds per stage of one window, by wrapping the functions the scheduler calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.batch: Any = None
        self._originals: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        inner = getattr(owner, name)
        self._originals.append((owner, name, inner))

        def timed(*args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                result = inner(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - begun
            if stage == "load":
                self.batch = result
            return result

        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, inner in reversed(self._originals):
            setattr(owner, name, inner)


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    begun = time.perf_counter()
    yield
    seconds[stage] += time.perf_counter() - begun


def _pending_again(engine: Any) -> None:
    from sqlalchemy import delete, update

    from monitor.store.tables import Run, Score

    with engine.begin() as connection:
        connection.execute(delete(Score).where(Score.monitor == MONITOR))
        connection.execute(
            update(Run)
            .where(Run.monitor == MONITOR)
            .values(status="pending", claimed_until=None, claim_token=None, attempts=0, stale_since=None)
        )


def typed(model: Any, batch: Any) -> Any:
    """The window's columns as a file gives them: numeric features float64, the rest as loaded."""
    from dataclasses import replace

    from monitor.runs.evaluation import to_float

    features = {n: to_float(v) if model.features[n] == "numeric" else v for n, v in batch.features.items()}
    return replace(batch, features=features)


def best_of(repeat: int, func: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        begun = time.perf_counter()
        func()
        times.append(time.perf_counter() - begun)
    return min(times)


def window_side(store: str, repeat: int, multivariate: bool) -> dict[str, Any]:
    """Runs inside the child: the window ``repeat`` times, then drift alone on its loaded columns."""
    from monitor.runs import evaluation, scheduler
    from monitor.runs.evaluation import ALL_PARTS
    from monitor.runs.references import References
    from monitor.runs.scheduler import Scheduler
    from monitor.store.engine import make_engine

    config = bench_config(store, multivariate=multivariate)
    engine = make_engine(store)
    worker = Scheduler(config, engine, clock=lambda: NOW)
    worker.plan()
    # Imported before the clock starts: a worker pays them once, not per window.
    for module in ("detectors.estimation", "detectors.performance", "detectors.multivariate"):
        importlib.import_module(module)

    runs: list[dict[str, float]] = []
    statuses = []
    rss_before = _kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    for attempt in range(repeat):
        stages = Stages()
        stages.wrap(scheduler, "load_window", "load")
        stages.wrap(References, "baseline", "reference")
        stages.wrap(evaluation, "_quality", "quality")
        stages.wrap(evaluation, "_drift", "drift")
        stages.wrap(evaluation, "_performance", "perf+est")
        stages.wrap(evaluation, "_estimated", "perf+est")
        stages.wrap(evaluation, "label_scores", "perf+est")
        stages.wrap(evaluation, "_multivariate", "multivariate")
        stages.wrap(Scheduler, "_arrival_scores", "write")
        stages.wrap(Scheduler, "_write", "write")
        if attempt:
            _pending_again(engine)
        worker.references.refresh()  # a new tick: the reference fingerprint is counted again
        begun, cpu = time.perf_counter(), time.process_time()
        with _timed(stages.seconds, "claim"):
            claim = worker.claim()
        assert claim is not None, "no window to claim"
        statuses.append(worker.compute(claim))
        total = time.perf_counter() - begun
        runs.append({"total": total, "cpu": time.process_time() - cpu, **stages.seconds})
        batch = stages.batch
        stages.restore()  # the next attempt wraps the originals again
    peak = _kib("VmHWM")
    model, monitor = config.models[MODEL], config.monitors[MONITOR]
    baseline = worker.references.baseline(MONITOR, WINDOW[0])
    ready = typed(model, batch)
    drift_cpu = time.process_time()
    drift = best_of(repeat, lambda: evaluation._drift(model, monitor, baseline, ready, ALL_PARTS))
    drift_cpu = (time.process_time() - drift_cpu) / repeat
    fastest = min(runs, key=lambda r: r["total"])
    return {
        "rows": batch.n,
        "statuses": statuses,
        "window": fastest,
        "drift_alone": drift,
        "drift_cpu": drift_cpu,
        "peak_mib": peak / 1024,
        "window_peak_mib": (peak - rss_before) / 1024,
    }


# ------------------------------------------------------------------------------------------ parent


def measure(store: str, repeat: int, multivariate: bool) -> tuple[dict[str, Any], float]:
    argv = [sys.executable, __file__, "--side", store, "--repeat", str(repeat)]
    if multivariate:
        argv.append("--multivariate")
    load = os.getloadavg()[0]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"window side failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1]), load


def report(store_kind: str, rows: int, seeded: float, result: dict[str, Any], load: float) -> None:
    w = result["window"]
    ratio = w["total"] / result["drift_alone"]
    stages = " ".join(f"{s} {w.get(s, 0.0):.2f}" for s in STAGES)
    other = w["total"] - sum(w.get(s, 0.0) for s in STAGES)
    verdict = "met" if ratio <= BUDGET else f"missed by {ratio / BUDGET:.2f}x"
    print(
        f"{store_kind:<8} {rows:>9,} rows | seeded in {seeded:.0f} s | load avg {load:.1f}"
        f" | status {result['statuses'][-1]}\n"
        f"  window {w['total']:.2f} s  = {stages} other {other:.2f}\n"
        f"  drift alone {result['drift_alone']:.2f} s | window/drift {ratio:.2f}x (budget {BUDGET:.0f}x: {verdict})"
        f"\n  worker CPU: window {w['cpu']:.2f} s, drift alone {result['drift_cpu']:.2f} s"
        f" ({w['cpu'] / result['drift_cpu']:.2f}x; Postgres' own CPU not counted)"
        f" | peak RSS {result['peak_mib']:.0f} MiB ({result['window_peak_mib']:+.0f} MiB for the window)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--repeat", type=int, default=2, help="window runs per store and size; the fastest counts")
    parser.add_argument("--multivariate", action="store_true", help="turn multivariate drift on (off in the example)")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(window_side(args.side, args.repeat, args.multivariate)))
        return

    from tests.servers import start_postgres

    postgres = start_postgres() if "postgres" in args.stores else None
    try:
        with tempfile.TemporaryDirectory(prefix="driftscope-window-bench-") as tmp:
            for rows in args.rows:
                for kind in args.stores:
                    if kind == "sqlite":
                        store = f"sqlite:///{Path(tmp) / f'w{rows}.db'}"
                    else:
                        assert postgres is not None
                        postgres.create_database(f"w{rows}")
                        store = postgres.url(f"w{rows}")
                    config = bench_config(store, multivariate=args.multivariate)
                    seeded = seed(store, config, rows, args.reference_rows)
                    result, load = measure(store, args.repeat, args.multivariate)
                    report(kind, rows, seeded, result, load)
                    if kind == "sqlite":
                        Path(tmp, f"w{rows}.db").unlink()
                    else:
                        assert postgres is not None
                        postgres.drop_database(f"w{rows}")
    finally:
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    main()
