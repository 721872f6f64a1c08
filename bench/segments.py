"""What segments cost: one window scored with 20 segments against the same window scored without.

The window (default 100,000 rows × 25 features: 20 numeric, 5 categorical, binary labels and scores,
performance and estimated performance on) is scored by ``monitor.runs.evaluation.evaluate`` as the
scheduler does; with ``segments: [channel]`` (20 channels, ``segment_top: 20``) it is scored again per
channel by ``monitor.runs.segments.evaluate_segments``. Both against the same baseline, in the same run;
best of ``--runs``, wall and CPU time.

    .venv/bin/python bench/segments.py
    .venv/bin/python bench/segments.py --rows 1000000 --segments 50
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from monitor.config import parse_config
from monitor.runs.evaluation import evaluate, fit_baseline
from monitor.runs.segments import evaluate_segments
from monitor.runs.windows import Batch


def make_batch(rng: np.random.Generator, rows: int, numeric: int, categorical: int, segments: int) -> Batch:
    features: dict[str, np.ndarray] = {f"x{i}": rng.normal(0, 1, rows) for i in range(numeric)}
    for i in range(categorical - 1):
        features[f"c{i}"] = rng.choice([f"v{k}" for k in range(8)], rows).astype(object)
    # Channel volumes fall off like real traffic: the largest has ~25 times the rows of the smallest.
    weights = 1 / np.arange(1, segments + 1)
    features["channel"] = rng.choice([f"ch{k}" for k in range(segments)], rows, p=weights / weights.sum())
    features["channel"] = features["channel"].astype(object)
    score = 1 / (1 + np.exp(-features["x0"]))
    label = (rng.random(rows) < score).astype(int)
    return Batch(
        n=rows,
        features=features,
        prediction=(score >= 0.5).astype(int).astype(object),
        score=score,
        label=label.astype(object),
    )


def best_of(runs: int, func: Callable[[], object]) -> tuple[float, float]:
    """Best wall and CPU seconds of ``runs`` calls."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        func()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=25)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    categorical = 5
    numeric = args.features - categorical
    features = {f"x{i}": "numeric" for i in range(numeric)}
    features |= {f"c{i}": "categorical" for i in range(categorical - 1)} | {"channel": "categorical"}
    monitor = {
        "model": "m",
        "reference": {"previous_windows": 1},
        "performance": ["accuracy", "roc_auc"],
        "estimated_performance": True,
    }
    config = parse_config(
        {
            "models": {"m": {"task": "binary", "features": features}},
            "monitors": {
                "plain": monitor,
                "segmented": {**monitor, "segments": ["channel"], "segment_top": args.segments},
            },
        },
        env={},
    )
    model, plain, segmented = config.models["m"], config.monitors["plain"], config.monitors["segmented"]
    rng = np.random.default_rng(0)
    reference = make_batch(rng, args.rows, numeric, categorical, args.segments)
    window = make_batch(rng, args.rows, numeric, categorical, args.segments)
    baseline = fit_baseline(model, plain, reference, reference_seconds=None)
    seconds = plain.window.total_seconds()

    def whole() -> None:
        evaluate(model, plain, baseline, window, window_seconds=seconds)

    def with_segments() -> None:
        evaluate(model, segmented, baseline, window, window_seconds=seconds)
        evaluate_segments(model, segmented, baseline, window, window_seconds=seconds)

    results = evaluate_segments(model, segmented, baseline, window, window_seconds=seconds)
    sizes = sorted(r.rows for r in results)
    print(
        f"window: {args.rows:,} rows × {args.features} features; {len(results)} segments of "
        f"{sizes[0]:,}–{sizes[-1]:,} rows; {sum(len(r.scores) for r in results):,} segment scores"
    )
    base_wall, base_cpu = best_of(args.runs, whole)
    seg_wall, seg_cpu = best_of(args.runs, with_segments)
    print(f"without segments: {base_wall:.2f} s wall, {base_cpu:.2f} s CPU")
    print(f"with {len(results)} segments: {seg_wall:.2f} s wall, {seg_cpu:.2f} s CPU")
    print(f"ratio: {seg_wall / base_wall:.2f}× wall, {seg_cpu / base_cpu:.2f}× CPU")


if __name__ == "__main__":
    main()
