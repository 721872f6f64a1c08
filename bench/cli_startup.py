"""How long ``driftscope`` takes to show its help: the cost of starting every command.

    .venv/bin/python bench/cli_startup.py [--repeat 7]

Each case runs as a fresh process (``python -m monitor ARGS --help``), ``--repeat`` times; the
median wall time is reported beside ``python -c pass`` measured in the same run, so the ratio
says what the CLI adds to the interpreter's own start. The median CPU time (user + system) of the
process is printed too: on a busy machine it stays put while the wall time grows. The budget is
0.5 s for any ``--help``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES: list[list[str]] = [
    [],
    ["db", "upgrade"],
    ["collect", "elasticsearch"],
    ["reference", "upload"],
    ["report"],
    ["alerts"],
    ["check"],
    ["worker"],
    ["dashboard"],
    ["api"],
    ["up"],
    ["demo"],
    ["demo-service"],
]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_seconds(argv: list[str], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``argv`` as a fresh process."""
    wall, cpu = [], []
    for _ in range(repeat):
        cpu_before, start = _children_cpu(), time.perf_counter()
        subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - cpu_before)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    reference, reference_cpu = median_seconds([sys.executable, "-c", "pass"], args.repeat)
    print(f"{'':<40} {'wall':>7} {'cpu':>7}  wall vs python -c pass")
    print(f"{'python -c pass':<40} {reference:6.3f}s {reference_cpu:6.3f}s")
    for case in CASES:
        seconds, cpu = median_seconds([sys.executable, "-m", "monitor", *case, "--help"], args.repeat)
        label = " ".join(["driftscope", *case, "--help"])
        print(f"{label:<40} {seconds:6.3f}s {cpu:6.3f}s  {seconds / reference:5.1f}x")


if __name__ == "__main__":
    main()
