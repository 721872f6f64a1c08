"""Benchmark: Driftscope's auto drift against Evidently's DataDriftPreset on the same frames.

    .venv/bin/python bench/drift.py --rows 100000 1000000 --repeat 3

For each size the parent builds nothing itself: it starts one fresh subprocess per side
(``--side driftscope`` / ``--side evidently``). Each subprocess builds the same seeded
reference and current frames (N rows × 25 columns: 20 numeric, 5 categorical, drift in some),
runs the computation once on a small 2,000-row pair to warm up (lazy imports, first-call costs;
same for both sides), then measures only the drift computation on the real pair (the fastest of ``--repeat`` runs,
one run above 100,000 rows; the peak memory is the largest of the runs):

* time: wall clock (``time.perf_counter``) around the computation. Driftscope reports the
  reference profiling and the per-window drift separately and their sum; Evidently's number is
  ``Report([DataDriftPreset()]).run(...)`` including its ``Dataset.from_pandas`` wrapping.
* peak memory: the kernel's resident-set high-water mark (``VmHWM``) during the computation
  minus the resident set just before it. The peak is reset with ``/proc/self/clear_refs``
  after the frames are built, so the number is what the drift computation itself needs on top
  of the input. RSS rather than ``tracemalloc``: it sees every native allocation (pandas'
  hash tables, SciPy's work arrays) and does not slow the code under test down; a fresh
  process per side keeps one side's allocator state from flattering the other.

The parent then checks that both sides' values agree to 1e-9, and prints speed and
peak-memory ratios against the budget (≥ 20× faster, ≤ ¼ of Evidently's peak memory).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

N_NUMERIC = 20
N_CATEGORICAL = 5
SEED = 42
TOLERANCE = 1e-9
WARMUP_ROWS = 2_000

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


def build_frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames; numeric columns 0-5 and categorical 0-1 drift."""
    rng = np.random.default_rng(SEED)

    def frame(drift: bool) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {}
        for i in range(N_NUMERIC):
            shift = 0.3 * (i < 6) if drift else 0.0
            if i % 4 == 0:
                data[f"num_{i}"] = rng.normal(10 + shift, 2.0, rows)
            elif i % 4 == 1:
                data[f"num_{i}"] = rng.exponential(1.0 + shift, rows)
            elif i % 4 == 2:
                data[f"num_{i}"] = rng.uniform(0, 1 + shift, rows)
            else:
                data[f"num_{i}"] = rng.lognormal(shift, 0.5, rows)
        for j in range(N_CATEGORICAL):
            k = 3 + 2 * j
            weights = np.arange(1, k + 1, dtype=float)
            if drift and j < 2:
                weights = weights[::-1]
            labels = np.array([f"c{j}_{v}" for v in range(k)], dtype=object)
            data[f"cat_{j}"] = labels[rng.choice(k, rows, p=weights / weights.sum())]
        return pd.DataFrame(data)

    return frame(False), frame(True)


def _rss_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _reset_peak() -> int:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    return _rss_kib("VmRSS")


def run_driftscope(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    from detectors.drift import ColumnPolicy, drift_scores, infer_kind
    from detectors.profile import profile_reference

    base = _reset_peak()
    t0 = time.perf_counter()
    kinds = {c: infer_kind(reference[c].to_numpy()) for c in reference.columns}
    profile = profile_reference({c: reference[c].to_numpy() for c in reference.columns}, kinds)
    t1 = time.perf_counter()
    policies = [ColumnPolicy(c, k) for c, k in kinds.items()]
    scores = drift_scores(profile, {c: current[c].to_numpy() for c in current.columns}, policies)
    t2 = time.perf_counter()
    peak = _rss_kib("VmHWM") - base
    by = {s.feature or s.method: s for s in scores}
    return {
        "profile_s": t1 - t0,
        "window_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_kib": peak,
        "columns": {c: [by[c].method, by[c].value] for c in reference.columns},
        "count": by["count_drifted"].value,
        "share": by["share_drifted"].value,
    }


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

    from tests.unit.evidently_reference import DISPLAY_TO_KEY

    numeric = [c for c in reference.columns if c.startswith("num_")]
    categorical = [c for c in reference.columns if c.startswith("cat_")]
    base = _reset_peak()
    t0 = time.perf_counter()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        metrics = snapshot.dict()["metrics"]
    t1 = time.perf_counter()
    peak = _rss_kib("VmHWM") - base
    columns, count, share = {}, None, None
    for metric in metrics:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = [DISPLAY_TO_KEY[config["method"]], float(metric["value"])]
        elif config["type"].endswith("DriftedColumnsCount"):
            count, share = metric["value"]["count"], metric["value"]["share"]
    return {"total_s": t1 - t0, "peak_kib": peak, "columns": columns, "count": count, "share": share}


def _side(side: str, rows: int, repeat: int) -> dict:
    """Run one side in a fresh interpreter and return its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--side", side, "--rows", str(rows), "--repeat", str(repeat)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compare(ours: dict, theirs: dict) -> float:
    """Largest absolute difference; raises if a method or the drifted count differs."""
    worst = 0.0
    for column, (method, value) in theirs["columns"].items():
        our_method, our_value = ours["columns"][column]
        if our_method != method:
            raise SystemExit(f"{column}: method {our_method} != Evidently's {method}")
        worst = max(worst, abs(our_value - value))
    if ours["count"] != theirs["count"] or abs(ours["share"] - theirs["share"]) > TOLERANCE:
        raise SystemExit(
            f"dataset drift differs: {ours['count']}/{ours['share']} vs {theirs['count']}/{theirs['share']}"
        )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side and size; the fastest counts")
    parser.add_argument("--side", choices=["driftscope", "evidently"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run = run_driftscope if args.side == "driftscope" else run_evidently
        # Warm-up on a small pair that takes the same code paths (reference > 1000 rows), so both
        # sides are timed in the steady state a long-running worker is in, not on lazy imports.
        run(*build_frames(WARMUP_ROWS))
        reference, current = build_frames(args.rows[0])
        # The machine is shared: repeat and keep the fastest run (same count for both sides).
        runs = [run(reference, current) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["total_s"])
        best["peak_kib"] = max(r["peak_kib"] for r in runs)
        print(json.dumps(best))
        return

    print(f"{'rows':>9} {'side':<11} {'profile s':>9} {'window s':>9} {'total s':>9} {'peak MiB':>9}")
    for rows in args.rows:
        # Evidently needs over a minute per run on 1M rows: one run there (for both sides).
        repeat = args.repeat if rows <= 100_000 else 1
        ours = _side("driftscope", rows, repeat)
        theirs = _side("evidently", rows, repeat)
        worst = _compare(ours, theirs)
        print(
            f"{rows:>9} {'driftscope':<11} {ours['profile_s']:>9.3f} {ours['window_s']:>9.3f} "
            f"{ours['total_s']:>9.3f} {ours['peak_kib'] / 1024:>9.1f}"
        )
        print(
            f"{rows:>9} {'evidently':<11} {'':>9} {'':>9} {theirs['total_s']:>9.3f} {theirs['peak_kib'] / 1024:>9.1f}"
        )
        speed_window = theirs["total_s"] / ours["window_s"]
        speed_total = theirs["total_s"] / ours["total_s"]
        memory = ours["peak_kib"] / theirs["peak_kib"]
        print(
            f"{rows:>9} speed ×{speed_window:.1f} per window (profile cached), ×{speed_total:.1f} incl. profiling "
            f"[budget ×20: {'met' if speed_total >= 20 else 'MISSED'}]; peak memory {memory:.3f} of Evidently's "
            f"[budget 0.25: {'met' if memory <= 0.25 else 'MISSED'}]; max |Δvalue| {worst:.2e} "
            f"[{'ok' if worst <= TOLERANCE else 'MISMATCH'}]; drifted {ours['count']:.0f}/25 both sides"
        )


if __name__ == "__main__":
    main()
