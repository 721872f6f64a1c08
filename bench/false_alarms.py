"""False alarms and detection of the drift detectors, on streams drawn from the reference itself.

    .venv/bin/python bench/false_alarms.py            # --quick: window sizes 50, 200, 1k, 10k (a few minutes)
    .venv/bin/python bench/false_alarms.py --full     # adds 100k and 1M (long; not on a shared machine)
    .venv/bin/python bench/false_alarms.py --gradual  # slow drift: CUSUM vs per-window KS (about 3 minutes)

Three datasets, each a reference and a stream of windows with no drift at all:

* ``mixed``: a well-mixed synthetic reference — normal, log-normal, bimodal and uniform columns, a
  few-valued numeric (Poisson counts), a categorical of 5 and one of 50 Zipf-rare categories, a
  numeric with 20 % missing values; the stream is fresh draws of the same distributions.
* ``structured``: a reference ordered by a hidden cycle (a numeric that follows it, a categorical
  whose mix follows it, as rows ordered by region or a weekly cycle); the stream goes on with the
  same cycle, so each window sees part of it.
* ``nannyml``: NannyML's synthetic sample reference (tests/data/nannyml, 50,000 rows, 7 features)
  split into consecutive windows and scored against itself.

For every mode (each registered method at its fixed default threshold, ``auto``, and the modes
``extra_modes`` adds) the table gives the false-alarm rate per feature-window (flagged columns /
tested columns) and per dataset-window (windows with at least one flagged column, what on-call
sees). Then shifts of known size are injected into ``mixed`` (location +0.1/+0.5 sd, scale ×1.5,
category mix, a new category at 5 %): detection rate and windows until first detection.

``--gradual`` runs the slow-drift scenario alone (:func:`gradual_drift`): a mean that moves a little
every window, the slow-drift CUSUM against each window's own KS test.

Everything goes through ``detectors.drift.drift_scores`` with a profile from
``detectors.profile`` — the code the worker runs, without the store.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from detectors.calibration import calibrate_column
from detectors.drift import ColumnPolicy, drift_scores
from detectors.profile import ReferenceProfile, profile_reference
from detectors.stattests import stattest_keys
from detectors.types import ColumnKind, Score
from monitor.methods import AUTO

NANNYML = Path(__file__).resolve().parents[1] / "tests" / "data" / "nannyml" / "synthetic_sample_reference.csv.gz"
NANNYML_FEATURES: Mapping[str, ColumnKind] = {
    "distance_from_office": "numeric",
    "salary_range": "categorical",
    "gas_price_per_litre": "numeric",
    "public_transportation_cost": "numeric",
    "wfh_prev_workday": "categorical",
    "workday": "categorical",
    "tenure": "numeric",
}
QUICK_SIZES = (50, 200, 1_000, 10_000)
FULL_SIZES = (*QUICK_SIZES, 100_000, 1_000_000)
CYCLE_ROWS = 5_000  # the structured reference's hidden cycle, in rows (4 cycles in 20,000 rows)

Columns = dict[str, np.ndarray]
Draw = Callable[[np.random.Generator, int], Columns]


def _categories(rng: np.random.Generator, n: int, shares: np.ndarray, prefix: str = "c") -> np.ndarray:
    names = np.array([f"{prefix}{i}" for i in range(shares.size)], dtype=object)
    return rng.choice(names, size=n, p=shares)


ZIPF = 1 / np.arange(1, 51)
ZIPF = ZIPF / ZIPF.sum()
FIVE = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
MIXED_KINDS: Mapping[str, ColumnKind] = {
    "normal": "numeric",
    "lognormal": "numeric",
    "bimodal": "numeric",
    "uniform": "numeric",
    "counts": "numeric",
    "cat5": "categorical",
    "rare50": "categorical",
    "missing": "numeric",
}


def draw_mixed(rng: np.random.Generator, n: int) -> Columns:
    missing = rng.normal(size=n)
    missing[rng.random(n) < 0.2] = np.nan
    return {
        "normal": rng.normal(size=n),
        "lognormal": rng.lognormal(0.0, 1.0, n),
        "bimodal": np.where(rng.random(n) < 0.3, rng.normal(-2.0, 0.5, n), rng.normal(1.0, 1.0, n)),
        "uniform": rng.uniform(0.0, 1.0, n),
        "counts": rng.poisson(2.0, n).astype(float),
        "cat5": _categories(rng, n, FIVE),
        "rare50": _categories(rng, n, ZIPF),
        "missing": missing,
    }


STRUCTURED_KINDS: Mapping[str, ColumnKind] = {"cyclic": "numeric", "cluster": "categorical"}


def draw_structured(rng: np.random.Generator, n: int, start: int) -> Columns:
    """Rows ``start``… of a stream whose distribution follows a hidden cycle of CYCLE_ROWS rows."""
    phase = 2 * np.pi * (np.arange(start, start + n) % CYCLE_ROWS) / CYCLE_ROWS
    cluster_a = rng.random(n) < 0.5 + 0.4 * np.sin(phase)
    return {
        "cyclic": np.sin(phase) + rng.normal(0.0, 0.5, n),
        "cluster": np.where(cluster_a, "a", np.where(rng.random(n) < 0.5, "b", "c")).astype(object),
    }


@dataclass(frozen=True)
class Dataset:
    name: str
    kinds: Mapping[str, ColumnKind]
    reference: Columns  # in the reference's own row order (calibration reads consecutive windows)
    windows: Callable[[int, int], Iterator[Columns]]  # (size, count) -> windows without drift
    profile: ReferenceProfile = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", profile_reference(self.reference, dict(self.kinds)))


def datasets(rng: np.random.Generator, reference_rows: int) -> list[Dataset]:
    def mixed_windows(size: int, count: int) -> Iterator[Columns]:
        for _ in range(count):
            yield draw_mixed(rng, size)

    def structured_windows(size: int, count: int) -> Iterator[Columns]:
        start = reference_rows
        for _ in range(count):
            yield draw_structured(rng, size, start)
            start += size

    frame = pd.read_csv(NANNYML, usecols=list(NANNYML_FEATURES))
    nannyml = {name: frame[name].to_numpy() for name in NANNYML_FEATURES}

    def nannyml_windows(size: int, count: int) -> Iterator[Columns]:
        for i in range(min(count, len(frame) // size)):
            yield {name: values[i * size : (i + 1) * size] for name, values in nannyml.items()}

    return [
        Dataset("mixed", MIXED_KINDS, draw_mixed(rng, reference_rows), mixed_windows),
        Dataset("structured", STRUCTURED_KINDS, draw_structured(rng, reference_rows, 0), structured_windows),
        Dataset("nannyml", NANNYML_FEATURES, nannyml, nannyml_windows),
    ]


# ------------------------------------------------------------------------------------------- modes


@dataclass(frozen=True)
class Mode:
    """How a dataset is tested: per-column policies for a window size (fitted once per dataset and size)
    and the keyword arguments of ``drift_scores``."""

    name: str
    policies: Callable[[Dataset, int], list[ColumnPolicy]]
    options: Mapping[str, object] = field(default_factory=dict)


def fixed(method: str) -> Mode:
    def policies(ds: Dataset, size: int) -> list[ColumnPolicy]:
        # A method is measured on the columns it applies to only; the others are not tested.
        return [ColumnPolicy(name, kind, method) for name, kind in ds.kinds.items() if kind in _kinds(method)]

    return Mode(method, policies)


def _kinds(method: str) -> frozenset[str]:
    return frozenset(kind for kind in ("numeric", "categorical") if method == AUTO or method in stattest_keys(kind))


def calibrated(method: str, alpha_window: float, seed: int) -> Mode:
    """``threshold: calibrated`` at a budget of ``alpha_window`` per dataset-window, Holm across features."""

    def policies(ds: Dataset, size: int) -> list[ColumnPolicy]:
        columns = {name: kind for name, kind in ds.kinds.items() if kind in _kinds(method)}
        alpha = alpha_window / len(columns)
        rng = np.random.default_rng(seed)
        out = []
        for name, kind in columns.items():
            cal = calibrate_column(name, ds.reference[name], kind, method, [size], alpha=alpha, rng=rng)
            out.append(ColumnPolicy(name, kind, method, calibration=cal))
        return out

    return Mode(f"{method} calibrated", policies, {"multiple_testing": "holm", "family_alpha": alpha_window})


def effect_floor(method: str, min_effect: float) -> Mode:
    def policies(ds: Dataset, size: int) -> list[ColumnPolicy]:
        return [
            ColumnPolicy(name, kind, method, min_effect=min_effect)
            for name, kind in ds.kinds.items()
            if kind in _kinds(method)
        ]

    return Mode(f"{method} holm, min_effect {min_effect}", policies, {"multiple_testing": "holm"})


def extra_modes(args: argparse.Namespace) -> list[Mode]:
    """The new modes: calibrated thresholds (with Holm) and a p-value test with an effect floor."""
    return [calibrated(m, args.alpha, args.seed) for m in args.calibrate] + [effect_floor("ks", args.min_effect)]


def modes(args: argparse.Namespace) -> list[Mode]:
    out = [fixed(AUTO)] + [fixed(m) for m in stattest_keys() if m not in args.skip]
    return out + extra_modes(args)


def _flags(scores: Sequence[Score], mode: Mode) -> tuple[int, int, bool]:
    """(flagged columns, tested columns, dataset flagged) of one window's scores."""
    columns = [s for s in scores if s.feature is not None and s.status == "ok"]
    decided = [bool(s.details.get("corrected_breached", s.breached)) for s in columns]
    return sum(decided), len(columns), any(decided)


def _window_count(size: int, budget_rows: int, minimum: int, maximum: int) -> int:
    return max(minimum, min(maximum, budget_rows // size))


def false_alarms(ds: Dataset, mode: Mode, size: int, count: int) -> tuple[float, float, int]:
    policies = mode.policies(ds, size)
    flagged = tested = datasets_flagged = windows = 0
    for window in ds.windows(size, count):
        f, t, d = _flags(drift_scores(ds.profile, window, policies, **mode.options), mode)  # type: ignore[arg-type]
        flagged, tested, datasets_flagged, windows = flagged + f, tested + t, datasets_flagged + d, windows + 1
    return flagged / max(tested, 1), datasets_flagged / max(windows, 1), windows


# ------------------------------------------------------------------------------------------ shifts

Shift = Callable[[np.random.Generator, Columns], Columns]


def _shifted(column: str, change: Callable[[np.random.Generator, np.ndarray], np.ndarray]) -> Shift:
    def shift(rng: np.random.Generator, window: Columns) -> Columns:
        return {**window, column: change(rng, window[column])}

    return shift


def _remix(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """The 5-category mix moved to 30/30/20/12/8 %."""
    return _categories(rng, values.size, np.array([0.3, 0.3, 0.2, 0.12, 0.08]))


def _new_category(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[rng.random(values.size) < 0.05] = "new"
    return out


SHIFTS: Mapping[str, Shift] = {
    "location +0.1 sd (normal)": _shifted("normal", lambda rng, v: v + 0.1),
    "location +0.5 sd (normal)": _shifted("normal", lambda rng, v: v + 0.5),
    "scale x1.5 (bimodal)": _shifted("bimodal", lambda rng, v: 0.3 + (v - 0.3) * 1.5),
    "category mix (cat5)": _shifted("cat5", _remix),
    "new category 5 % (rare50)": _shifted("rare50", _new_category),
}


def detection(
    ds: Dataset, mode: Mode, size: int, count: int, shift: Shift, rng: np.random.Generator
) -> tuple[float, int | None]:
    """(share of shifted windows where the dataset is flagged, 1-based index of the first such window)."""
    policies = mode.policies(ds, size)
    hits: list[bool] = []
    for window in ds.windows(size, count):
        hits.append(_flags(drift_scores(ds.profile, shift(rng, window), policies, **mode.options), mode)[2])  # type: ignore[arg-type]
    first = next((i + 1 for i, hit in enumerate(hits) if hit), None)
    return sum(hits) / max(len(hits), 1), first


GRADUAL_DETECTORS = ("CUSUM h 5", "KS p < 1/465", "KS p < 0.05")


def gradual_drift(
    rng: np.random.Generator, size: int, *, step: float, top: float, windows: int, streams: int
) -> dict[str, tuple[float, float]]:
    """Slow drift: a numeric column whose mean moves ``step`` sd per window up to ``top`` sd (windows of
    ``size`` rows against a 20,000-row reference), ``streams`` times. Per detector — the slow-drift CUSUM
    (k 0.5, h 5: ARL₀ ≈ 465 windows), each window's own KS test at the same false-alarm rate (p < 1/465)
    and at its default (p < 0.05) — the median windows to the first alarm (``windows`` when none) and the
    share of streams with an alarm. ``step=0``: no drift, so the share is the false-alarm share."""
    from scipy import stats

    from detectors.sequential import cusum, window_input

    profile = profile_reference({"x": rng.normal(size=20_000)}, {"x": "numeric"})["x"]
    shifts = np.minimum(np.arange(windows) * step, top)
    first: dict[str, list[int]] = {name: [] for name in GRADUAL_DETECTORS}
    for _ in range(streams):
        draws = [rng.normal(shift, 1.0, size) for shift in shifts]
        z = np.array([window_input(profile, d, None, 2)[0] for d in draws], dtype=np.float64)
        p = np.array([stats.ks_2samp(profile.values, d).pvalue for d in draws])
        alarms = (cusum(z, k=0.5, h=5.0).alarm, p < 1 / 465, p < 0.05)
        for name, hits in zip(GRADUAL_DETECTORS, alarms, strict=True):
            first[name].append(int(np.argmax(hits)) if hits.any() else windows)
    return {name: (float(np.median(at)), float(np.mean(np.array(at) < windows))) for name, at in first.items()}


def print_gradual(sizes: Sequence[int], seed: int, windows: int = 120, streams: int = 30) -> None:
    print(f"\n## Gradual drift: median windows to the first alarm (share of {streams} streams alarmed in {windows})\n")
    header = ["window rows", "stream", *GRADUAL_DETECTORS, "CUSUM / KS same rate"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for size in sizes:
        for label, step in (("+0.01 sd per window to 0.1 sd", 0.01), ("no drift", 0.0)):
            found = gradual_drift(
                np.random.default_rng(seed), size, step=step, top=0.1, windows=windows, streams=streams
            )
            cells = [f"{median:g} ({share:.0%})" for median, share in found.values()]
            ratio = found[GRADUAL_DETECTORS[0]][0] / found[GRADUAL_DETECTORS[1]][0]
            print(f"| {size:,} | {label} | " + " | ".join(cells) + f" | {ratio:.2f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--quick", action="store_true", help="window sizes 50, 200, 1k, 10k (the default)")
    scope.add_argument("--full", action="store_true", help="also windows of 100k and 1M rows")
    parser.add_argument("--sizes", type=int, nargs="+", help="window sizes (default: 50 200 1000 10000)")
    parser.add_argument("--rows-per-size", type=int, default=40_000, help="rows scored per dataset and size")
    parser.add_argument("--min-windows", type=int, default=5)
    parser.add_argument("--max-windows", type=int, default=100)
    parser.add_argument("--skip", nargs="*", default=["anderson"], help="methods left out (anderson is slow)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gradual", action="store_true", help="only the gradual-drift scenario (slow drift)")
    add_options(parser)
    args = parser.parse_args(argv)
    if args.gradual:
        print_gradual(args.sizes or (200, 1_000), args.seed)
        return 0
    sizes = args.sizes or (FULL_SIZES if args.full else QUICK_SIZES)
    rng = np.random.default_rng(args.seed)
    reference_rows = max(20_000, 2 * max(sizes))
    started = time.perf_counter()
    data = datasets(rng, reference_rows)
    all_modes = modes(args)
    print(f"seed {args.seed}, reference {reference_rows:,} rows (mixed, structured), nannyml 50,000 rows")
    print("\n## False alarms (no drift): feature-window rate / dataset-window rate (windows)\n")
    header = ["mode", "size", *(ds.name for ds in data)]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for mode in all_modes:
        for size in sizes:
            count = _window_count(size, args.rows_per_size, args.min_windows, args.max_windows)
            cells = []
            for ds in data:
                if size > len(next(iter(ds.reference.values()))) // 2 and ds.name == "nannyml":
                    cells.append("–")
                    continue
                per_feature, per_dataset, windows = false_alarms(ds, mode, size, count)
                cells.append(f"{per_feature:.1%} / {per_dataset:.1%} ({windows})")
            print(f"| {mode.name} | {size:,} | " + " | ".join(cells) + " |", flush=True)
    print("\n## Detection (mixed): share of shifted windows flagged / first flagged window\n")
    header = ["mode", "size", *SHIFTS]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    mixed = data[0]
    for mode in [m for m in all_modes if m.name in detection_modes(args)]:
        for size in sizes:
            count = _window_count(size, args.rows_per_size // 4, args.min_windows, args.max_windows // 4)
            cells = []
            for shift in SHIFTS.values():
                rate, first = detection(mixed, mode, size, count, shift, rng)
                cells.append(f"{rate:.0%} / {first or '–'}")
            print(f"| {mode.name} | {size:,} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--alpha",
        type=float,
        default=0.01,
        help="false-alarm budget per dataset-window of the calibrated modes (0.01: 1 per 4 days of hourly windows)",
    )
    parser.add_argument(
        "--calibrate",
        nargs="*",
        default=[AUTO, "ks", "wasserstein", "jensenshannon", "chisquare"],
        help="calibrated modes",
    )
    parser.add_argument("--min-effect", type=float, default=0.1)


def detection_modes(args: argparse.Namespace) -> set[str]:
    return {AUTO, f"{AUTO} calibrated", f"ks holm, min_effect {args.min_effect}"}


if __name__ == "__main__":
    raise SystemExit(main())
