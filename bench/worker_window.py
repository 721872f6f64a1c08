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


def server_cpu(postmaster: int | None) -> float:
    """CPU seconds the Postgres server spent so far: the postmaster, its reaped children and its live
    ones (the backends serving the worker); 0 for SQLite, which runs inside the worker."""
    if postmaster is None:
        return 0.0
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # a process that just ended
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif ppid == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Stages:
    """Seconds per stage of one window, by wrapping the functions the scheduler calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.batch: Any = None
        self._originals: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        inner = getattr(owner, name)
        self._originals.append((owner, name, inner))

        def timed(*args: Any, **kwargs: Any) -> Any:
            begun, cpu = time.perf_counter(), time.process_time()
            try:
                result = inner(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - begun
                self.cpu[stage] += time.process_time() - cpu
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
    return timings(repeat, func)[0]


def timings(repeat: int, func: Callable[[], Any]) -> tuple[float, float]:
    """Wall and this process's CPU seconds of ``func``, the fastest of ``repeat`` runs."""
    runs = []
    for _ in range(repeat):
        begun, cpu = time.perf_counter(), time.process_time()
        func()
        runs.append((time.perf_counter() - begun, time.process_time() - cpu))
    return min(runs)


def window_side(store: str, repeat: int, multivariate: bool, postmaster: int | None) -> dict[str, Any]:
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
        begun, cpu, db_cpu = time.perf_counter(), time.process_time(), server_cpu(postmaster)
        with _timed(stages.seconds, "claim"):
            claim = worker.claim()
        assert claim is not None, "no window to claim"
        statuses.append(worker.compute(claim))
        total = time.perf_counter() - begun
        cpu = time.process_time() - cpu
        runs.append(
            {
                "total": total,
                "cpu": cpu,
                "db_cpu": server_cpu(postmaster) - db_cpu,
                **stages.seconds,
                **{f"{stage}_cpu": seconds for stage, seconds in stages.cpu.items()},
            }
        )
        batch = stages.batch
        stages.restore()  # the next attempt wraps the originals again
    peak = _kib("VmHWM")
    model, monitor = config.models[MODEL], config.monitors[MONITOR]
    baseline = worker.references.baseline(MONITOR, WINDOW[0])
    # The columns as evaluate() hands them to the drift tests (converted from the typed batch: nothing left to do).
    ready = {name: values for name, (_, values) in evaluation.drift_columns(model, typed(model, batch)).items()}
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


# ---------------------------------------------------------------------------- storage prototype


def prototype(store: str, config: Any, repeat: int) -> dict[str, float]:
    """What typed feature storage would gain, on the window's rows: its features loaded as today
    (JSON objects per row, as ``load_window`` reads them) against a scratch table (bench only, no
    migration) holding per row the numeric features as packed float64 in schema order (NaN where
    missing) and the categorical ones as a JSON array. Wall and worker CPU seconds, best of ``repeat``.
    """
    import orjson
    from sqlalchemy import text

    from monitor.runs.windows import _feature_array, _feature_lists, load_window
    from monitor.store.engine import make_engine

    model = config.models[MODEL]
    names = list(model.features)
    numeric = [n for n in names if model.features[n] == "numeric"]
    categorical = [n for n in names if model.features[n] == "categorical"]
    engine = make_engine(store)
    postgres = engine.dialect.name == "postgresql"
    window = {"start": WINDOW[0], "end": WINDOW[1]}
    with engine.connect() as connection:
        batch = typed(model, load_window(connection, 1, model.features, *WINDOW))
    matrix = np.column_stack([batch.features[n] for n in numeric]).astype(np.float64)
    cats = zip(*(batch.features[n].tolist() for n in categorical), strict=True)
    rows = [{"r": i, "num": matrix[i].tobytes(), "cat": orjson.dumps(c).decode()} for i, c in enumerate(cats)]
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS proto_features"))
        blob = "bytea" if postgres else "blob"
        connection.execute(text(f"CREATE TABLE proto_features (row_no bigint PRIMARY KEY, num {blob}, cat text)"))
        connection.execute(text("INSERT INTO proto_features VALUES (:r, :num, :cat)"), rows)

    def as_json() -> dict[str, np.ndarray]:
        with engine.connect() as connection:
            if postgres:
                aggs = ", ".join(f"json_agg(f -> '{n}')::text" for n in names)
                texts = connection.execute(
                    text(
                        f"SELECT {aggs} FROM (SELECT features AS f FROM prediction WHERE model_id = 1"
                        " AND ts >= :start AND ts < :end ORDER BY ts, id) s"
                    ),
                    window,
                ).one()
                lists = dict(zip(names, (orjson.loads(t) for t in texts), strict=True))
            else:
                found = connection.execute(
                    text(
                        "SELECT features FROM prediction WHERE model_id = 1 AND ts >= :start AND ts < :end"
                        " ORDER BY ts, id"
                    ),
                    {k: v.strftime("%Y-%m-%d %H:%M:%S.%f") for k, v in window.items()},
                ).scalars()
                lists = _feature_lists([orjson.loads(t) for t in found], names)
        return {n: _feature_array(lists[n], model.features[n]) for n in names}

    def as_packed() -> dict[str, np.ndarray]:
        with engine.connect() as connection:
            if postgres:
                num, cat = connection.execute(
                    text("SELECT string_agg(num, ''::bytea ORDER BY row_no), json_agg(cat::json ORDER BY row_no)::text"
                         " FROM proto_features")
                ).one()  # fmt: skip
            else:
                found = connection.execute(text("SELECT num, cat FROM proto_features ORDER BY row_no")).all()
                nums, cats_ = zip(*found, strict=True)
                num, cat = b"".join(nums), "[" + ",".join(cats_) + "]"
        values = np.frombuffer(num, dtype=np.float64).reshape(-1, len(numeric))
        out = {n: values[:, j].copy() for j, n in enumerate(numeric)}
        columns = zip(*orjson.loads(cat), strict=True)
        out |= {n: _feature_array(list(c), "categorical") for n, c in zip(categorical, columns, strict=True)}
        return out

    same = as_json(), as_packed()
    for n in names:  # the prototype reads back the same columns
        np.testing.assert_array_equal(same[0][n], same[1][n])
    (json_s, json_cpu), (packed_s, packed_cpu) = timings(repeat, as_json), timings(repeat, as_packed)
    result = {"json": json_s, "json_cpu": json_cpu, "packed": packed_s, "packed_cpu": packed_cpu}
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE proto_features"))
    engine.dispose()
    return result


# ------------------------------------------------------------------------------------------ parent


def measure(store: str, repeat: int, multivariate: bool, postmaster: int | None) -> tuple[dict[str, Any], float]:
    argv = [sys.executable, __file__, "--side", store, "--repeat", str(repeat)]
    if postmaster is not None:
        argv += ["--postmaster", str(postmaster)]
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
    cpu_stages = " ".join(f"{s} {w.get(f'{s}_cpu', 0.0):.2f}" for s in STAGES if s != "claim")
    other = w["total"] - sum(w.get(s, 0.0) for s in STAGES)
    verdict = "met" if ratio <= BUDGET else f"missed by {ratio / BUDGET:.2f}x"
    print(
        f"{store_kind:<8} {rows:>9,} rows | seeded in {seeded:.0f} s | load avg {load:.1f}"
        f" | status {result['statuses'][-1]}\n"
        f"  window {w['total']:.2f} s  = {stages} other {other:.2f}\n"
        f"  drift alone {result['drift_alone']:.2f} s | window/drift {ratio:.2f}x (budget {BUDGET:.0f}x: {verdict})"
        f"\n  CPU: window {w['cpu']:.2f} s in the worker + {w['db_cpu']:.2f} s in Postgres,"
        f" drift alone {result['drift_cpu']:.2f} s ({(w['cpu'] + w['db_cpu']) / result['drift_cpu']:.2f}x)\n"
        f"  worker CPU by stage: {cpu_stages}"
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
    parser.add_argument(
        "--prototype", action="store_true", help="also time the features from a typed-storage prototype (scratch table)"
    )
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--postmaster", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(window_side(args.side, args.repeat, args.multivariate, args.postmaster)))
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
                    postmaster = None
                    if kind == "postgres":
                        assert postgres is not None
                        postmaster = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
                    result, load = measure(store, args.repeat, args.multivariate, postmaster)
                    report(kind, rows, seeded, result, load)
                    if args.prototype:
                        proto = prototype(store, config, args.repeat)
                        print(
                            f"  storage prototype, the window's features: JSON objects per row {proto['json']:.2f} s,"
                            f" packed float64 + JSON array of categories {proto['packed']:.2f} s"
                            f" ({proto['json'] / proto['packed']:.1f}x); worker CPU {proto['json_cpu']:.2f} s"
                            f" against {proto['packed_cpu']:.2f} s",
                            flush=True,
                        )
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
