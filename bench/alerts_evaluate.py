"""How one alert evaluation pass scales with history: 1 day vs 90 days of hourly drift scores.

    .venv/bin/python bench/alerts_evaluate.py [--features 50] [--days 1 90] [--repeat 5]

For each history length, a fresh SQLite store gets one monitor's hourly runs with a share_drifted
score and a KS score per feature, and two rules (per-feature ``drift.ks.p_value < 0.01 for 3`` and
``drift.share_drifted > 0.3 for 2``). The best of ``--repeat`` passes of ``alerts.evaluate`` is
reported, and its ratio to the shortest history: a pass should cost the same after months of
history as after a day (evaluation ranks only each monitor's recent windows).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import alerts
from monitor.store.engine import make_engine, transaction, upgrade
from monitor.store.tables import Run, Score
from tests.alert_support import HOUR, MONITOR, T0, make_config, setup_models


def one(days: int, features: int, repeat: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as directory:
        engine = make_engine(f"sqlite:///{directory}/bench.db")
        upgrade(engine)
        rules = [
            {"name": "ks", "when": "drift.ks.p_value < 0.01", "for": 3, "notify": ["console"]},
            {"name": "share", "when": "drift.share_drifted > 0.3", "for": 2, "notify": ["console"]},
        ]
        config = make_config(rules, {"console": {"kind": "console"}})
        model = setup_models(engine, config)["churn"]
        windows = 24 * days
        with transaction(engine) as session:
            session.execute(
                insert(Run),
                [
                    {
                        "monitor": MONITOR,
                        "model_id": model,
                        "window_start": T0 + i * HOUR,
                        "window_end": T0 + (i + 1) * HOUR,
                        "status": "succeeded",
                        "row_count": 1000,
                    }
                    for i in range(windows)
                ],
            )
            run_ids = list(session.scalars(select(Run.id).order_by(Run.window_start)))
            common = {"monitor": MONITOR, "model_id": model, "kind": "drift", "status": "ok"}
            rows = []
            for i, run_id in enumerate(run_ids):
                start = T0 + i * HOUR
                rows.append(
                    {
                        **common,
                        "run_id": run_id,
                        "window_start": start,
                        "method": "share_drifted",
                        "value": 0.1,
                        "threshold": 0.5,
                        "details": {},
                    }
                )
                rows += [
                    {
                        **common,
                        "run_id": run_id,
                        "window_start": start,
                        "feature": f"f{j}",
                        "method": "ks",
                        "value": 0.5,
                        "threshold": 0.05,
                        "breached": False,
                        "details": {"p_value": True},
                    }
                    for j in range(features)
                ]
            session.execute(insert(Score), rows)
        now = T0 + windows * HOUR
        alerts.evaluate(engine, config, now)  # warm-up
        best = min(_timed(engine, config, now + k * timedelta(seconds=30)) for k in range(1, repeat + 1))
        engine.dispose()
        return len(rows), best


def _timed(engine, config, now) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    alerts.evaluate(engine, config, now)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--days", type=int, nargs="+", default=[1, 90])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    baseline = None
    print("| days of history | scores | evaluate (best) | ratio to shortest |")
    print("|---|---|---|---|")
    for days in args.days:
        scores, seconds = one(days, args.features, args.repeat)
        baseline = baseline or seconds
        print(f"| {days} | {scores:,} | {seconds * 1000:.1f} ms | {seconds / baseline:.2f} |")


if __name__ == "__main__":
    main()
