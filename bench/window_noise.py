"""How noisy is a drift score on a small window? Scores between samples of the SAME distribution.

    .venv/bin/python bench/window_noise.py                 # the table quoted in docs/scheduler.md
    .venv/bin/python bench/window_noise.py --repeat 500 --sizes 100 1000

A 10,000-row reference and windows of n rows are drawn from one distribution (no drift at all),
``--repeat`` times per size, and scored with the registered tests of ``detectors.stattests`` (the
code the worker runs). For the distances the table gives the 95th percentile of the score and the
share of windows at or above the default threshold (0.1): on a window without drift, that share is
the false-alarm rate. For KS it gives the share of windows flagged (p ≤ 0.05) when the mean moves
by a tiny 0.05 standard deviation, a shift nobody needs to be paged for.

Columns: ``numeric`` N(0, 1); ``categorical`` 5 categories (40/30/15/10/5 %); ``rare`` 50
categories with Zipf-like shares (the last ones below 0.3 %).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from detectors.profile import ColumnProfile, make_sample, profile_column
from detectors.stattests import get_stattest
from detectors.types import ColumnKind

REFERENCE_ROWS = 10_000
THRESHOLD = 0.1  # default of wasserstein and jensenshannon
TINY_SHIFT = 0.05  # in standard deviations

Draw = Callable[[np.random.Generator, int], np.ndarray]


def _categories(shares: np.ndarray) -> Draw:
    names = np.array([f"c{i}" for i in range(shares.size)], dtype=object)
    return lambda rng, n: rng.choice(names, size=n, p=shares)


ZIPF = 1 / np.arange(1, 51)
COLUMNS: dict[str, tuple[ColumnKind, Draw]] = {
    "numeric": ("numeric", lambda rng, n: rng.normal(size=n)),
    "categorical": ("categorical", _categories(np.array([0.4, 0.3, 0.15, 0.1, 0.05]))),
    "rare": ("categorical", _categories(ZIPF / ZIPF.sum())),
}


def _scores(method: str, kind: ColumnKind, reference: ColumnProfile, windows: list[np.ndarray]) -> np.ndarray:
    test = get_stattest(method)
    return np.array([test.compute(reference, make_sample(kind, w, "x")) for w in windows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1_000, 2_000, 10_000])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    references = {}
    for name, (kind, draw) in COLUMNS.items():
        references[name] = profile_column("x", draw(rng, REFERENCE_ROWS), kind)

    rows = []
    for n in args.sizes:
        row = [f"{n:,}"]
        for name, method in (("numeric", "wasserstein"), ("categorical", "jensenshannon"), ("rare", "jensenshannon")):
            kind, draw = COLUMNS[name]
            scores = _scores(method, kind, references[name], [draw(rng, n) for _ in range(args.repeat)])
            row.append(f"{np.percentile(scores, 95):.3f} ({np.mean(scores >= THRESHOLD):.0%})")
        shifted = [rng.normal(TINY_SHIFT, size=n) for _ in range(args.repeat)]
        p_values = _scores("ks", "numeric", references["numeric"], shifted)
        row.append(f"{np.mean(p_values <= 0.05):.0%}")
        rows.append(row)

    header = [
        "rows per window",
        "wasserstein, numeric",
        "jensenshannon, 5 categories",
        "jensenshannon, 50 rare categories",
        f"ks flags a {TINY_SHIFT} sd shift",
    ]
    print(f"reference {REFERENCE_ROWS:,} rows, {args.repeat} windows per size, seed {args.seed}")
    print("distances: 95th percentile without drift (share of windows >= 0.1)\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
