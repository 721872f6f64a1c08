"""The demo, as a newcomer meets it: history with a drift episode, live drift, alerts, a clean restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select

from alerts.engine import evaluate
from detectors.estimation import estimated_performance_scores, fit_cbpe
from monitor.demo.traffic import MODEL, MONITOR, LoanTraffic, Simulator, Timeline, demo_config, load_timeline
from monitor.runs.scheduler import Scheduler
from monitor.store.engine import make_engine, upgrade
from monitor.store.queries import sync_models
from monitor.store.tables import Alert, Prediction, Run, Score
from tests.servers import free_port, wait_for


def test_traffic_is_deterministic_and_drift_moves_the_population():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    times = [t0 + timedelta(seconds=i) for i in range(2000)]
    calm = LoanTraffic(seed=3).applicants(times, np.zeros(len(times)))
    again = LoanTraffic(seed=3).applicants(times, np.zeros(len(times)))
    drifted = LoanTraffic(seed=3).applicants(times, np.ones(len(times)))
    assert calm == again
    assert (
        np.mean([a.features["credit_score"] for a in drifted])
        < np.mean([a.features["credit_score"] for a in calm]) - 30
    )
    partner_share = np.mean([a.features["channel"] == "partner" for a in drifted])
    assert np.mean([a.features["channel"] == "partner" for a in calm]) == 0 and partner_share > 0.3


def test_drifted_traffic_lowers_the_realized_and_the_estimated_roc_auc():
    """Realized ROC AUC falls below the demo's 'AUC drop' rule and the label-free estimate falls with it."""
    traffic = LoanTraffic(seed=5)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def scored(drift: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        applicants = traffic.applicants([t0 + timedelta(seconds=i) for i in range(n)], np.full(n, drift))
        return np.array([a.score for a in applicants]), np.array([a.label for a in applicants])

    cbpe = fit_cbpe(*scored(0.0, 20_000), chunk_size=480)

    def median_roc_auc(drift: float) -> tuple[float, float]:
        realized, estimated = [], []
        for _ in range(10):
            scores, labels = scored(drift, 480)
            realized.append(roc_auc_score(labels, scores))
            (estimate,) = estimated_performance_scores(cbpe, scores, metrics=["roc_auc"])
            estimated.append(estimate.value)
        return float(np.median(realized)), float(np.median(estimated))

    calm_realized, calm_estimated = median_roc_auc(0.0)
    drifted_realized, drifted_estimated = median_roc_auc(1.0)
    assert calm_realized > 0.82 and drifted_realized < 0.78
    assert drifted_estimated < calm_estimated - 0.05


def test_timeline_places_reference_episode_and_live_drift():
    timeline = Timeline(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), timedelta(minutes=30))
    assert timeline.history_start == datetime(2026, 1, 1, 11, 30, tzinfo=UTC)
    reference_start, reference_end = timeline.reference
    assert timeline.drift_at(reference_start) == timeline.drift_at(reference_end - timedelta(seconds=1)) == 0
    assert timeline.drift_at(timeline.past_episode[0]) > 0.5
    assert timeline.drift_at(timeline.started_at) == 0
    assert timeline.drift_at(timeline.started_at + timedelta(minutes=2)) > 0.5
    assert Timeline.from_state(timeline.to_state(timeline.started_at)) == timeline


def test_history_shows_the_past_episode_and_live_drift_fires_an_alert(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    engine = make_engine(url)
    upgrade(engine)
    started_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    timeline = load_timeline(engine, started_at, timedelta(minutes=40))
    config = demo_config(url, timeline)
    sync_models(engine, config)
    simulator = Simulator(engine, config, timeline)
    live_until = timeline.started_at + timedelta(minutes=4)
    simulator.write_until(live_until)

    now = live_until + timedelta(seconds=30)
    Scheduler(config, engine, clock=lambda: now).tick()

    with engine.connect() as connection:
        statuses = dict(connection.execute(select(Run.status, func.count()).group_by(Run.status)).all())
        shares = connection.execute(
            select(Score.window_start, Score.value).where(Score.monitor == MONITOR, Score.method == "share_drifted")
        ).all()
    assert set(statuses) == {"succeeded"} and statuses["succeeded"] >= 44
    episode_start, episode_end = timeline.past_episode
    in_episode = [v for ts, v in shares if episode_start <= ts and ts + timedelta(minutes=1) <= episode_end]
    in_reference = [v for ts, v in shares if ts + timedelta(minutes=1) <= timeline.reference[1]]
    live = [v for ts, v in shares if ts >= timeline.started_at + timedelta(minutes=1)]
    assert in_episode and min(in_episode) >= 0.5
    assert in_reference and np.mean(in_reference) < 0.2
    assert live and min(live) >= 0.5

    evaluate(engine, config, now)
    with engine.connect() as connection:
        alerts = connection.execute(select(Alert.rule, Alert.state)).all()
    assert ("feature drift", "firing") in alerts


@pytest.mark.integration
def test_driftscope_demo_runs_stops_cleanly_and_restarts_where_it_stopped(tmp_path):
    port = free_port()
    api_port = next(p for p in iter(free_port, None) if p != port)
    store = f"sqlite:///{tmp_path / 'demo.db'}"
    command = [
        sys.executable, "-m", "monitor", "demo", "--store", store, "--port", str(port),
        "--api-port", str(api_port), "--history", "10m",
    ]  # fmt: skip
    env = {**os.environ, "DRIFTSCOPE_LOG_LEVEL": "WARNING"}
    engine = make_engine(store)

    def computed_runs() -> int:
        try:
            with engine.connect() as connection:
                return connection.scalar(select(func.count()).select_from(Run).where(Run.status == "succeeded")) or 0
        except Exception:  # the demo has not created the store yet
            return 0

    def answers(url: str) -> bool:
        try:
            return httpx.get(url, timeout=10).status_code == 200
        except httpx.TransportError:  # not listening yet
            return False

    def run_demo_until(condition) -> str:
        output = tmp_path / "demo-output.txt"
        with output.open("w") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: "(Ctrl-C stops)" in output.read_text(), timeout=120, what="the demo's addresses")
            # The address it prints answers at once: a newcomer opens it as soon as it appears.
            wait_for(lambda: answers(f"http://127.0.0.1:{port}/"), timeout=3, what="the printed dashboard address")
            wait_for(condition, timeout=120, what="the demo to compute its windows")
            wait_for(lambda: answers(f"http://127.0.0.1:{port}/models/{MODEL}"), timeout=60, what="the dashboard")
            assert httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=10).status_code == 200
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        assert process.returncode == 0, output.read_text()
        return output.read_text()

    run_demo_until(lambda: computed_runs() >= 10)
    timeline = load_timeline(engine, datetime.now(UTC))
    with engine.connect() as connection:
        first_count = connection.scalar(select(func.count()).select_from(Prediction))
    assert first_count > 0

    run_demo_until(lambda: computed_runs() >= 11)
    assert load_timeline(engine, datetime.now(UTC)) == timeline  # the same story continues
    with engine.connect() as connection:
        duplicates = connection.execute(
            select(Prediction.prediction_id).group_by(Prediction.prediction_id).having(func.count() > 1)
        ).all()
        runs_per_window = connection.execute(
            select(Run.window_start).group_by(Run.monitor, Run.window_start).having(func.count() > 1)
        ).all()
    assert duplicates == [] and runs_per_window == []
    engine.dispose()
    assert Path(tmp_path / "demo.db").exists()
