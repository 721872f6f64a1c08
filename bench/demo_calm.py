"""The demo's calm windows: how many flag a drifted feature, with fixed and with calibrated thresholds.

    .venv/bin/python bench/demo_calm.py                 # 3 h of demo history, 1-minute windows
    .venv/bin/python bench/demo_calm.py --history 6h --budget "1 per 1 day"

Writes the demo's traffic (``monitor.demo.traffic``: the same simulated loan model, seed and
timeline as ``driftscope demo``) into a throwaway SQLite store, then computes every closed window
of the history with the real scheduler for two monitors that differ only in their drift
threshold: ``auto`` (Evidently's fixed thresholds) and ``calibrated`` at the false-alarm budget
(the demo's own setting since this measurement).
A window is *calm* when the demo's traffic there has no drift at all (``Timeline.drift_at`` is 0
over the whole window); every feature flagged in a calm window is a false alarm. The drift
episode in the history measures detection: the share of its windows flagged, and the windows
until the first flag.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from monitor.config import AlertsConfig, DriftSettings, parse_duration, parse_false_alarms
from monitor.demo.traffic import MODEL, Simulator, Timeline, demo_config
from monitor.runs.scheduler import Scheduler
from monitor.store import engine as db
from monitor.store.tables import Score

WINDOW = timedelta(minutes=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", default="3h", help="demo history to write (default 3h, as the demo)")
    parser.add_argument("--budget", default="1 per 1 day", help="false_alarms of the calibrated monitor")
    args = parser.parse_args()
    history = parse_duration(args.history)
    budget = parse_false_alarms(args.budget)

    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'demo.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        timeline = Timeline(now, history)
        demo = demo_config(url, timeline)
        monitor = next(iter(demo.monitors.values()))
        calibrated = DriftSettings(threshold="calibrated", false_alarms=args.budget)
        # model_copy: the demo's own, validated settings, with only the drift threshold changed.
        config = demo.model_copy(
            update={
                "monitors": {
                    "auto": monitor.model_copy(update={"drift": DriftSettings()}),
                    "calibrated": monitor.model_copy(update={"drift": calibrated}),
                },
                "alerts": AlertsConfig(),
            }
        )
        started = time.perf_counter()
        Simulator(engine, config, timeline).write_until(now)
        print(f"history written: {history} in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        scheduler = Scheduler(config, engine, clock=lambda: now + timedelta(minutes=5))
        while scheduler.tick():
            pass
        print(f"windows computed in {time.perf_counter() - started:.0f} s")

        with engine.connect() as connection:
            rows = connection.execute(
                select(Score.monitor, Score.window_start, Score.feature, Score.breached).where(
                    Score.kind == "drift", Score.feature.is_not(None), Score.method != "cusum"
                )
            ).all()
        engine.dispose()

    windows_per_alarm = budget.per / WINDOW / budget.alarms
    print(f"model {MODEL}, 1-minute windows; budget {args.budget}: 1 in {windows_per_alarm:,.0f} windows")
    print(
        "| threshold | calm windows flagged | calm feature-windows flagged | episode windows flagged "
        "| first flag | episode windows with share_drifted > 0.3 (the demo's alert) |"
    )
    print("|---|---|---|---|---|---|")
    episode_start, episode_end = timeline.past_episode
    for name in ("auto", "calibrated"):
        flagged: dict[datetime, list[bool]] = {}
        for monitor_name, start, _feature, breached in rows:
            if monitor_name == name:
                flagged.setdefault(start, []).append(bool(breached))
        calm = [w for w in flagged if _calm(timeline, w)]
        episode = sorted(w for w in flagged if episode_start <= w and w + WINDOW <= episode_end)
        calm_windows = sum(any(flagged[w]) for w in calm)
        calm_features = sum(sum(flagged[w]) for w in calm)
        calm_cells = sum(len(flagged[w]) for w in calm)
        caught = [w for w in episode if any(flagged[w])]
        first = f"{episode.index(caught[0]) + 1}" if caught else "–"
        alerting = sum(sum(flagged[w]) / len(flagged[w]) > 0.3 for w in episode)
        print(
            f"| {name} | {calm_windows} of {len(calm)} ({calm_windows / max(len(calm), 1):.1%}) "
            f"| {calm_features / max(calm_cells, 1):.2%} | {len(caught)} of {len(episode)} | {first} "
            f"| {alerting} of {len(episode)} |"
        )


def _calm(timeline: Timeline, start: datetime) -> bool:
    # drift_at is piecewise constant with breaks on whole minutes; both ends of the window decide.
    return timeline.drift_at(start) == 0 and timeline.drift_at(start + WINDOW - timedelta(microseconds=1)) == 0


if __name__ == "__main__":
    main()
