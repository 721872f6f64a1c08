"""Slow drift through the scheduler on a real store: a gradual shift no window's own test flags raises the
CUSUM score within a few windows, an alert rule on it fires, and a recomputed window gets the same score
(its state comes from the store)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select, update

from alerts.engine import evaluate
from monitor.config import parse_config
from monitor.runs.scheduler import Scheduler
from monitor.store.tables import Alert, Run, Score
from tests.integration.test_scheduler import HOUR, T0, add_predictions, clock_at

HOURS = 14
FIRST_ALARM = 10  # the window the CUSUM first raises on, with the seeds below


def _drift_scores(engine: Engine) -> dict[str, list[tuple[float | None, bool | None]]]:
    """Per method (cusum, and the per-window tests), the (value, breached) of tenure, window by window."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Score.method, Score.value, Score.breached)
            .where(Score.kind == "drift", Score.feature == "tenure")
            .order_by(Score.window_start)
        ).all()
    out: dict[str, list[tuple[float | None, bool | None]]] = {}
    for method, value, breached in rows:
        out.setdefault("cusum" if method == "cusum" else "per_window", []).append((value, breached))
    return out


def test_a_gradual_shift_raises_cusum_while_every_window_stays_unbreached(store_engine: Engine) -> None:
    # Each window's own test is KS (p < 0.05). The reference is the first two hours (4,000 rows, so its own
    # sampling error moves every window's input little); tenure's mean then moves 0.025 sd per hour up to 0.1 sd.
    config = parse_config(
        {
            "models": {
                "churn": {
                    "task": "binary",
                    "features": {"tenure": "numeric", "plan": "categorical"},
                    "fields": {"score": "score", "label": "label"},
                }
            },
            "monitors": {
                "churn-hourly": {
                    "model": "churn",
                    "window": "1h",
                    "reference": {"range": [T0.isoformat(), (T0 + 2 * HOUR).isoformat()]},
                    "min_rows": 20,
                    "drift": {"method": "ks", "slow_drift": {"method": "cusum", "threshold": 5}},
                }
            },
            # An alert rule on the slow-drift score, beside one on the windows' own tests and a generic one
            # (no method: the windows' own tests only, the CUSUM is on another scale).
            "alerts": {
                "rules": [
                    {"name": "slow", "when": "drift.cusum.breached"},
                    {"name": "ks", "when": "drift.ks.breached"},
                    {"name": "any", "when": "drift.breached"},
                ]
            },
            "worker": {"metrics_port": None},
        }
    )
    add_predictions(store_engine, config, range(2), rows=2000, seed=3)
    for hour in range(2, HOURS):
        shift = min(0.025 * (hour - 1), 0.1)
        add_predictions(store_engine, config, range(hour, hour + 1), rows=200, shift=shift, seed=300 + hour)
    # Up to the window the CUSUM first raises on (10, with these seeds): the alert engine reads it as any drift
    # score, so the rule on it fires for tenure while the rules on the windows' own tests stay quiet.
    scheduler = Scheduler(config, store_engine, clock=clock_at(T0 + (FIRST_ALARM + 1) * HOUR + timedelta(minutes=5)))
    assert scheduler.tick() == FIRST_ALARM + 1
    evaluate(store_engine, config, T0 + (FIRST_ALARM + 1) * HOUR + timedelta(minutes=6))
    with store_engine.connect() as connection:
        alerts = connection.execute(select(Alert.rule, Alert.state, Alert.labels)).all()
    assert [(a.rule, a.state, a.labels["feature"]) for a in alerts] == [("slow", "firing", "tenure")]

    scheduler.clock = clock_at(T0 + HOURS * HOUR + timedelta(minutes=5))
    assert scheduler.tick() == HOURS - FIRST_ALARM - 1
    found = _drift_scores(store_engine)
    assert [breached for _, breached in found["per_window"]] == [False] * HOURS
    cusum = found["cusum"]
    assert len(cusum) == HOURS
    raised = [i for i, (_, breached) in enumerate(cusum) if breached]
    assert raised[0] == FIRST_ALARM, cusum
    assert cusum[FIRST_ALARM][0] > 5.0 > max(value for value, _ in cusum[:FIRST_ALARM])  # type: ignore[type-var]
    assert cusum[FIRST_ALARM + 1][0] < 5.0  # reset after the alarm: it starts again from 0
    with store_engine.connect() as connection:
        first = connection.execute(
            select(Score.threshold, Score.details).where(Score.method == "cusum", Score.feature == "plan").limit(1)
        ).one()
    assert first.threshold == 5.0 and first.details["input_kind"] == "chisquare_tail_z"  # categories: one-sided

    # Late rows recompute window 6: the CUSUM is read again from the stored inputs of windows 0-5, so its
    # value changes only by what the window's own input changed, and the windows after it keep theirs.
    before = found["cusum"]
    with store_engine.begin() as connection:
        connection.execute(
            update(Run).where(Run.window_start == T0 + 6 * HOUR).values(stale_since=T0 + HOURS * HOUR, stale_rows=True)
        )
    assert scheduler.tick() == 1
    assert _drift_scores(store_engine)["cusum"] == before
