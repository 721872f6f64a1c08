"""Helpers for the alert tests: a config, and run + score rows written straight into the store.

The scheduler that normally writes runs and scores belongs to another area; the alert tests insert
what it would write.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from monitor.config import Config, parse_config
from monitor.store.engine import transaction
from monitor.store.queries import sync_models
from monitor.store.tables import MetricPoint, MetricSeries, Run, Score

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MONITOR = "churn-hourly"
FEATURES = ("tenure", "plan", "monthly_charges")


def make_config(
    rules: list[dict[str, Any]], channels: dict[str, Any] | None = None, *, metrics: tuple[str, ...] = (), **alerts: Any
) -> Config:
    """A churn model with one monitor; ``metrics`` names Prometheus metrics of the model (rules on them must)."""
    model: dict[str, Any] = {"task": "binary", "features": {f: "numeric" for f in FEATURES}}
    sources = {"prom": {"kind": "prometheus", "url": "http://prometheus.test:9090"}} if metrics else {}
    model["metrics"] = {name: {"source": "prom", "query": name} for name in metrics}
    return parse_config(
        {
            "sources": sources,
            "models": {"churn": model},
            "monitors": {MONITOR: {"model": "churn", "reference": {"range": ["2026-01-01", "2026-02-01"]}}},
            "alerts": {"rules": rules, "channels": channels or {}, **alerts},
            "dashboard": {"public_url": "https://driftscope.example.test"},
        },
        env={},
    )


def setup_models(engine: Engine, config: Config) -> dict[str, int]:
    return sync_models(engine, config)


def add_window(
    engine: Engine,
    model_id: int,
    window_start: datetime,
    share_drifted: float | None = None,
    features: dict[str, float] | None = None,
    *,
    monitor: str = MONITOR,
    extra: list[dict[str, Any]] | None = None,
    rows: int = 1000,
) -> int:
    """One succeeded run with a share_drifted score and per-feature KS p-values; returns the run id."""
    with transaction(engine) as session:
        run = Run(
            monitor=monitor,
            model_id=model_id,
            window_start=window_start,
            window_end=window_start + HOUR,
            status="succeeded",
            row_count=rows,
        )
        session.add(run)
        session.flush()
        scores: list[dict[str, Any]] = []
        if share_drifted is not None:
            scores.append({"kind": "drift", "method": "share_drifted", "value": share_drifted, "threshold": 0.5})
        for feature, p_value in (features or {}).items():
            scores.append(
                {
                    "kind": "drift",
                    "method": "ks",
                    "feature": feature,
                    "value": p_value,
                    "threshold": 0.05,
                    "breached": p_value < 0.05,
                    "details": {"p_value": True, "n_current": rows, "n_reference": 5000},
                }
            )
        for spec in (*scores, *(extra or ())):
            session.add(
                Score(
                    run_id=run.id,
                    monitor=monitor,
                    model_id=model_id,
                    window_start=window_start,
                    status="ok",
                    **{"details": {}, **spec},
                )
            )
        return run.id


def add_metric_points(engine: Engine, model_id: int, name: str, points: list[tuple[datetime, float]]) -> None:
    with transaction(engine) as session:
        series = MetricSeries(model_id=model_id, name=name, query="q", labels={"job": "churn"}, labels_hash="h")
        session.add(series)
        session.flush()
        session.add_all(MetricPoint(series_id=series.id, ts=ts, value=value) for ts, value in points)
