"""The canary gate's bootstrap interval of a ROC AUC difference against the textbook way to compute it.

    .venv/bin/python bench/canary_bootstrap.py [--rows 400 4000 40000] [--resamples 2000] [--repeat 3]

For each size, a candidate with ``rows / 10`` labelled rows and a baseline with ``rows`` (a 10 % canary):
``detectors.performance.metric_difference`` (resampling counts as weights, one sort per sample) against
``scipy.stats.bootstrap((candidate, baseline), paired=False, method="percentile")`` calling scikit-learn's
``roc_auc_score`` on each resample (``vectorized=False``), on the same data with the same seed. Reported:
the best of ``--repeat`` runs of each, their ratio, and the largest difference between the two intervals'
ends (the same draws, so only float rounding; computed up to 4,000 rows). The reference is timed on at
most 200 resamples and scaled to ``--resamples`` (its cost is linear in them), so the run stays short.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.performance import _BLOCK_ELEMENTS, metric_difference


def sample(n: int, rng: np.random.Generator, signal: float) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 + (y - 0.5) * signal + rng.normal(0, 0.25, n), 0, 1)
    return y, score


def best(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def one(rows: int, resamples: int, repeat: int, rng: np.random.Generator) -> str:
    cy, cs = sample(rows // 10, rng, 0.3)
    by, bs = sample(rows, rng, 0.4)
    ours_s, ours = best(
        lambda: metric_difference("binary", "roc_auc", (cy, None, cs), (by, None, bs), n_resamples=resamples, seed=1),
        repeat,
    )

    def statistic(ic: np.ndarray, ib: np.ndarray) -> float:
        return float(roc_auc_score(cy[ic], cs[ic]) - roc_auc_score(by[ib], bs[ib]))

    # metric_difference draws in blocks of resamples (memory): scipy's batch set to the same block draws the same
    # indices in the same order.
    block = max(1, _BLOCK_ELEMENTS // max(len(cy), len(by)))

    def reference(n_resamples: int) -> Any:
        return stats.bootstrap((np.arange(len(cy)), np.arange(len(by))), statistic, paired=False, vectorized=False,
                               method="percentile", n_resamples=n_resamples, batch=block,
                               rng=np.random.default_rng(1))  # fmt: skip

    timed = min(resamples, 200)
    ref_s, _ = best(lambda: reference(timed), repeat)
    ref_s *= resamples / timed
    gap = float("nan")
    if rows <= 4000:  # the intervals on the full resample count, once (minutes beyond)
        ci = reference(resamples).confidence_interval
        gap = max(abs(ci.low - ours.ci_lower), abs(ci.high - ours.ci_upper))
    return f"{rows:>13} {rows // 10:>9} {ours_s:>12.3f} {ref_s:>15.2f} {ref_s / ours_s:>6.0f}x {gap:>10.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[400, 4000, 40000])
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"ROC AUC difference, percentile bootstrap, {args.resamples} resamples, best of {args.repeat}")
    header = ("baseline rows", "candidate", "driftscope s", "scipy+sklearn s", "ratio", "max |d ci|")
    print("{:>13} {:>9} {:>12} {:>15} {:>7} {:>10}".format(*header))
    for rows in args.rows:
        print(one(rows, args.resamples, args.repeat, rng))


if __name__ == "__main__":
    main()
