"""Driftscope's own /metrics: store-backed gauges, collector status, serving, multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.config import parse_config
from monitor.metrics.exporter import (
    StoreCollector,
    metrics_asgi_app,
    start_metrics_server,
    use_multiprocess_dir,
)
from monitor.metrics.process import CollectorStatusCollector
from monitor.store.engine import make_engine, transaction
from monitor.store.queries import sync_models
from monitor.store.tables import Alert, Notification, Run, Score

W1 = datetime(2026, 2, 1, 10, tzinfo=UTC)
W2 = W1 + timedelta(hours=1)
W3 = W2 + timedelta(hours=1)


def add_run(session: Any, model_id: int, start: datetime, status: str, scores: list[dict[str, Any]]) -> None:
    run = Run(monitor="churn-hourly", model_id=model_id, window_start=start, window_end=start + timedelta(hours=1))
    run.status = status
    session.add(run)
    session.flush()
    for score in scores:
        session.add(Score(run_id=run.id, monitor=run.monitor, model_id=model_id, window_start=start, **score))


def populate(engine: Engine) -> None:
    """Window 1 has labels (performance); window 2 is the newest succeeded run; window 3 failed."""
    model_id = sync_models(
        engine, parse_config({"models": {"churn": {"task": "binary", "features": {"tenure": "numeric"}}}})
    )["churn"]
    drift = {"kind": "drift", "feature": "tenure", "method": "ks", "threshold": 0.05}
    with transaction(engine) as session:
        add_run(
            session,
            model_id,
            W1,
            "succeeded",
            [
                {**drift, "value": 0.5, "breached": False},
                {"kind": "performance", "method": "roc_auc", "value": 0.81},
            ],
        )
        add_run(
            session,
            model_id,
            W2,
            "succeeded",
            [
                {**drift, "value": 0.001, "breached": True},
                {"kind": "drift", "method": "share_drifted", "value": 1.0, "threshold": 0.5, "breached": True},
                {"kind": "quality", "feature": "tenure", "method": "missing_share", "value": 0.02},
                {"kind": "estimated_performance", "method": "roc_auc", "value": 0.74},
                {"kind": "performance", "method": "roc_auc", "value": None, "status": "insufficient_data"},
            ],
        )
        add_run(session, model_id, W3, "failed", [])
        for i, (severity, state) in enumerate(
            [("warning", "firing"), ("warning", "firing"), ("critical", "firing"), ("critical", "resolved")]
        ):
            session.add(Alert(rule="r", fingerprint=f"f{i}", labels={}, severity=severity, state=state))
        for i, (channel, status) in enumerate(
            [("slack", "pending"), ("slack", "sending"), ("email", "failed"), ("email", "delivered")]
        ):
            session.add(
                Notification(idempotency_key=f"k{i}", channel=channel, event="firing", payload={}, status=status)
            )


def registry_for(engine: Engine, **kwargs: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(engine, **kwargs))
    return registry


def test_store_gauges_show_the_latest_windows(store_engine: Engine) -> None:
    populate(store_engine)
    value = registry_for(store_engine).get_sample_value
    key = {"model": "churn", "monitor": "churn-hourly", "feature": "tenure", "method": "ks"}
    assert value("driftscope_store_up") == 1
    assert value("driftscope_drift_score", key) == 0.001  # window 2, not window 1 nor the failed window 3
    assert value("driftscope_drift_threshold", key) == 0.05
    assert value("driftscope_drift_detected", key) == 1
    assert value("driftscope_drift_share_drifted", {"model": "churn", "monitor": "churn-hourly"}) == 1.0
    assert value("driftscope_last_window_end_timestamp_seconds", {"model": "churn", "monitor": "churn-hourly"}) == (
        W3.timestamp()
    )
    quality = {"model": "churn", "monitor": "churn-hourly", "feature": "tenure", "check": "missing_share"}
    assert value("driftscope_data_quality", quality) == 0.02
    metric = {"model": "churn", "monitor": "churn-hourly", "metric": "roc_auc"}
    assert value("driftscope_performance", metric) == 0.81  # the newest window that has labels
    assert value("driftscope_estimated_performance", metric) == 0.74
    assert value("driftscope_alerts_firing", {"severity": "warning"}) == 2
    assert value("driftscope_alerts_firing", {"severity": "critical"}) == 1
    assert value("driftscope_alerts_firing", {"severity": "info"}) == 0
    assert value("driftscope_notifications_pending", {"channel": "slack"}) == 2
    assert value("driftscope_notifications_failed", {"channel": "email"}) == 1
    assert value("driftscope_notifications_pending", {"channel": "email"}) is None


def test_store_reads_are_cached(sqlite_engine: Engine) -> None:
    now = [0.0]
    registry = registry_for(sqlite_engine, cache_seconds=5, clock=lambda: now[0])
    assert registry.get_sample_value("driftscope_alerts_firing", {"severity": "critical"}) == 0
    with transaction(sqlite_engine) as session:
        session.add(Alert(rule="r", fingerprint="f", labels={}, severity="critical", state="firing"))
    now[0] = 4.9
    assert registry.get_sample_value("driftscope_alerts_firing", {"severity": "critical"}) == 0
    now[0] = 5.0
    assert registry.get_sample_value("driftscope_alerts_firing", {"severity": "critical"}) == 1


def test_an_unreadable_store_reports_store_up_zero(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'not-migrated.db'}")
    registry = registry_for(engine)
    assert registry.get_sample_value("driftscope_store_up") == 0
    assert registry.get_sample_value("driftscope_alerts_firing", {"severity": "info"}) is None
    engine.dispose()


def test_collector_lag_grows_at_scrape_time() -> None:
    now = [1_000.0]
    status = CollectorStatusCollector(clock=lambda: now[0])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(status)
    status.record("prometheus:churn:p99", datetime.fromtimestamp(940, UTC))
    labels = {"collector": "prometheus:churn:p99"}
    assert registry.get_sample_value("driftscope_collector_lag_seconds", labels) == 60
    assert registry.get_sample_value("driftscope_collector_last_success_timestamp_seconds", labels) == 1_000
    now[0] = 1_300.0  # no new success: the lag keeps growing
    assert registry.get_sample_value("driftscope_collector_lag_seconds", labels) == 360
    assert registry.get_sample_value("driftscope_collector_last_success_timestamp_seconds", labels) == 1_000


def test_asgi_app_serves_text_and_openmetrics(sqlite_engine: Engine) -> None:
    populate(sqlite_engine)
    app = metrics_asgi_app(sqlite_engine)

    async def get(accept: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            return await client.get("/metrics", headers={"Accept": accept})

    text = anyio.run(get, "*/*")
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'driftscope_drift_share_drifted{model="churn",monitor="churn-hourly"} 1.0' in text.text
    assert "driftscope_records_ingested_total" in text.text  # process metrics are there too
    openmetrics = anyio.run(get, "application/openmetrics-text; version=1.0.0")
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


def test_worker_metrics_server_on_its_own_port(sqlite_engine: Engine) -> None:
    populate(sqlite_engine)
    server = start_metrics_server(sqlite_engine, 0)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            body = response.read().decode()
    finally:
        server.stop()
    assert server.port > 0
    assert 'driftscope_alerts_firing{severity="warning"} 2.0' in body


MULTIPROCESS_CHILD = """
import sys
from monitor.metrics.process import RECORDS_INGESTED
RECORDS_INGESTED.labels("churn", "api", "prediction", "accepted").inc(int(sys.argv[1]))
"""

MULTIPROCESS_SCRAPE = """
import sys
from monitor.store.engine import make_engine
from monitor.metrics.exporter import build_registry
registry = build_registry(make_engine(sys.argv[1]))
labels = {"model": "churn", "source": "api", "kind": "prediction", "outcome": "accepted"}
print(registry.get_sample_value("driftscope_records_ingested_total", labels))
print(registry.get_sample_value("driftscope_store_up"))
"""


@dataclass
class Python:
    env: dict[str, str]

    def run(self, code: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *args], env=self.env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


def test_multiprocess_mode_sums_counters_over_processes(sqlite_engine: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "prometheus-multiproc"
    directory.mkdir()
    python = Python({**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)})
    python.run(MULTIPROCESS_CHILD, "3")  # two "uvicorn workers"
    python.run(MULTIPROCESS_CHILD, "4")
    total, store_up = python.run(MULTIPROCESS_SCRAPE, str(sqlite_engine.url)).split()
    assert float(total) == 7
    assert float(store_up) == 1


def test_a_repeated_score_never_duplicates_a_series(sqlite_engine: Engine) -> None:
    model_id = sync_models(
        sqlite_engine, parse_config({"models": {"churn": {"task": "binary", "features": {"tenure": "numeric"}}}})
    )["churn"]
    twice = {"kind": "quality", "feature": None, "method": "row_count"}
    with transaction(sqlite_engine) as session:
        add_run(session, model_id, W1, "succeeded", [{**twice, "value": 10.0}, {**twice, "value": 11.0}])
    family = next(f for f in registry_for(sqlite_engine).collect() if f.name == "driftscope_data_quality")
    assert len(family.samples) == 1


def test_use_multiprocess_dir_sets_a_fresh_directory_once(monkeypatch: Any) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # unset for the helper; restored after the test
    directory = use_multiprocess_dir()
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == directory
    assert os.listdir(directory) == []
    assert use_multiprocess_dir() == directory  # already set: kept
