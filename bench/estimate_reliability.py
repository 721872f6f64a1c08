"""How often labelled windows refute CBPE on the demo's traffic: calm windows against the drift episode.

    .venv/bin/python bench/estimate_reliability.py [--windows 200] [--rows 480]

CBPE is fitted on 29k calm rows of the demo's loan traffic (monitor/demo/traffic.py), as the demo's
reference; then ``--windows`` windows of ``--rows`` rows are drawn calm and fully drifted, labelled in
full and at 30 %. For each, the estimated and realized ROC AUC, accuracy and F1 are computed as the
monitor computes them (detectors/estimation.py, detectors/performance.py) and judged by the marker
(monitor/store/reliability.py: the estimate's interval, each side widened by sqrt(rows / labelled
rows)); the reference in the same run is NannyML's plain comparison (the estimate's interval as is).
The ratio of the two in calm windows is how much more often the plain rule cries wolf.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.estimation import estimated_performance_scores, fit_cbpe
from detectors.performance import performance_scores
from monitor.demo.traffic import LoanTraffic
from monitor.store.reliability import EstimatePoint

METRICS = ("roc_auc", "accuracy", "f1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--rows", type=int, default=480)
    args = parser.parse_args()
    traffic = LoanTraffic(seed=5)

    def scored(drift: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        applicants = traffic.applicants([T0 + timedelta(seconds=i) for i in range(n)], np.full(n, drift))
        return np.array([a.score for a in applicants]), np.array([a.label for a in applicants], dtype=float)

    cbpe = fit_cbpe(*scored(0.0, 29_000), chunk_size=args.rows)
    rng = np.random.default_rng(0)
    print(f"{args.windows} windows of {args.rows} rows per line; share of windows that refute the estimate")
    print("labelled drift  est/realized AUC   marker: " + " ".join(f"{m:>8}" for m in METRICS) + "   plain: "
          + " ".join(f"{m:>8}" for m in METRICS) + "   calm ratio plain/marker")  # fmt: skip
    for share in (1.0, 0.3):
        for drift in (0.0, 1.0):
            marker = dict.fromkeys(METRICS, 0)
            plain = dict.fromkeys(METRICS, 0)
            estimated, realized = [], []
            for _ in range(args.windows):
                scores, labels = scored(drift, args.rows)
                labels[rng.random(args.rows) >= share] = np.nan
                est = {s.method: s for s in estimated_performance_scores(cbpe, scores, metrics=METRICS)}
                decisions = (scores >= cbpe.threshold).astype(float)
                real = {s.method: s for s in performance_scores("binary", labels, decisions, scores, metrics=METRICS)}
                for m in METRICS:
                    e, r = est[m], real[m]
                    lo, hi = e.details.get("ci_lower"), e.details.get("ci_upper")
                    judged = EstimatePoint(T0, e.value, lo, hi, r.value, e.details["n"], r.details.get("n"))
                    bare = EstimatePoint(T0, e.value, lo, hi, r.value)
                    marker[m] += judged.comparable and judged.disagrees()
                    plain[m] += bare.comparable and bare.disagrees()
                estimated.append(est["roc_auc"].value)
                realized.append(real["roc_auc"].value)
            ratio = sum(plain.values()) / max(sum(marker.values()), 1) if drift == 0 else float("nan")
            print(
                f"{share:>7.0%} {drift:>6.1f}  {np.median(estimated):.3f}/{np.median(realized):.3f}      "
                + " ".join(f"{marker[m] / args.windows:>8.1%}" for m in METRICS)
                + "         "
                + " ".join(f"{plain[m] / args.windows:>8.1%}" for m in METRICS)
                + (f"   {ratio:.1f}" if drift == 0 else "")
            )


if __name__ == "__main__":
    main()
