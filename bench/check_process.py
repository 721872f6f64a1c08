"""Benchmark: ``driftscope check`` against Evidently's DataDriftPreset, each as a whole process.

    .venv/bin/python bench/check_process.py --rows 300000 1000000 [--repeat 1]

What a user runs, start to finish: for each size the parent writes a seeded reference and current
pair (``bench/drift.py``'s frames: N rows × 25 columns, 20 numeric and 5 categorical, some
drifting) to parquet files in a temporary directory, then starts one fresh process per side:

* driftscope: ``python -m monitor check --reference ref.parquet --current cur.parquet --format json``
  — interpreter and CLI start, both files read, and every detector ``check`` runs without a
  config (drift, data quality, the gate).
* evidently: this file with ``--side evidently``: the same start, ``pandas.read_parquet`` of both
  files and ``Report([DataDriftPreset()]).run(...)`` with its ``.dict()`` (as ``bench/drift.py``
  drives it), numeric and categorical columns declared as ours are inferred.

Each process is reaped with ``os.wait4``, which gives that one child's peak resident set
(``ru_maxrss``) and CPU time (user + system). Wall time is ``time.perf_counter`` around the
process. With ``--repeat`` above 1 the fastest wall time counts, and the largest peak. The machine
is shared: the 1-minute load average is printed before each run, and CPU time is reported beside
wall time because it is much less sensitive to load. Budget: driftscope ≥ 20× faster and at most
¼ of Evidently's peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

SPEED_BUDGET = 20.0
MEMORY_BUDGET = 0.25


@dataclass(frozen=True, slots=True)
class Run:
    wall_s: float
    cpu_s: float
    peak_mib: float
    load: float
    drifted: int


def run_evidently(reference_file: str, current_file: str) -> None:
    """The Evidently side, inside its own process: read both files, run the preset, print the drifted count."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        reference = pd.read_parquet(reference_file)
        current = pd.read_parquet(current_file)
        definition = DataDefinition(
            numerical_columns=[c for c in reference.columns if c.startswith("num_")],
            categorical_columns=[c for c in reference.columns if c.startswith("cat_")],
        )
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        metrics = snapshot.dict()["metrics"]
    (count,) = [m["value"]["count"] for m in metrics if m["config"]["type"].endswith("DriftedColumnsCount")]
    print(json.dumps({"drifted": int(count)}))


def _measure(argv: list[str], out: Path) -> Run:
    """One fresh process: wall, its own CPU time and peak RSS (``os.wait4`` reports that child alone)."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with out.open("wb") as stdout:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if code not in (0, 1):  # ``check`` exits 1 when a drift test fails: still a complete run
        raise SystemExit(f"{' '.join(argv)} exited {code}:\n{stderr}")
    return Run(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        load=load,
        drifted=_drifted(out),
    )


def _drifted(out: Path) -> int:
    """How many columns the side found drifted: a sanity check that both did the whole job."""
    text = out.read_text()
    if out.stem == "evidently":
        return int(json.loads(text.strip().splitlines()[-1])["drifted"])
    (count,) = [s["value"] for s in json.loads(text)["scores"] if s["method"] == "count_drifted"]
    return int(count)


def _best(runs: list[Run]) -> Run:
    fastest = min(runs, key=lambda r: r.wall_s)
    return Run(fastest.wall_s, fastest.cpu_s, max(r.peak_mib for r in runs), fastest.load, fastest.drifted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[300_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per side and size; the fastest counts")
    parser.add_argument("--side", choices=["evidently"], help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_evidently(*args.files)
        return

    from bench.drift import build_frames

    print(f"{'rows':>9} {'side':<11} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} {'load':>5} {'drifted':>7}")
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="driftscope-check-bench-") as tmp:
            ref, cur = Path(tmp, "ref.parquet"), Path(tmp, "cur.parquet")
            reference, current = build_frames(rows)
            reference.to_parquet(ref)
            current.to_parquet(cur)
            del reference, current
            sides = {
                "driftscope": [
                    sys.executable, "-m", "monitor", "check",
                    "--reference", str(ref), "--current", str(cur), "--format", "json",
                ],
                "evidently": [sys.executable, __file__, "--side", "evidently", str(ref), str(cur)],
            }  # fmt: skip
            best = {
                side: _best([_measure(argv, Path(tmp, f"{side}.out")) for _ in range(args.repeat)])
                for side, argv in sides.items()
            }
        for side, run in best.items():
            print(
                f"{rows:>9} {side:<11} {run.wall_s:>8.2f} {run.cpu_s:>8.2f} {run.peak_mib:>9.0f} "
                f"{run.load:>5.1f} {run.drifted:>7}"
            )
        ours, theirs = best["driftscope"], best["evidently"]
        speed = theirs.wall_s / ours.wall_s
        memory = ours.peak_mib / theirs.peak_mib
        print(
            f"{rows:>9} speed ×{speed:.1f} wall, ×{theirs.cpu_s / ours.cpu_s:.1f} CPU "
            f"[budget ×{SPEED_BUDGET:.0f}: {'met' if speed >= SPEED_BUDGET else 'MISSED'}]; "
            f"peak memory {memory:.3f} of Evidently's "
            f"[budget {MEMORY_BUDGET}: {'met' if memory <= MEMORY_BUDGET else 'MISSED'}]"
        )


if __name__ == "__main__":
    main()
