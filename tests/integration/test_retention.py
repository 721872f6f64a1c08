"""Retention (issue 16): the `retention:` setting, and prune on both stores while ingestion goes on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from monitor.config import ConfigError, parse_config


def config_data(retention: dict[str, Any] | None = None, **monitor: Any) -> dict[str, Any]:
    model: dict[str, Any] = {"task": "binary", "features": {"tenure": "numeric", "plan": "categorical"}}
    if retention is not None:
        model["retention"] = retention
    spec = {"model": "churn", "window": "1h", "lateness": "5m", "reference": {"previous_windows": 24}, **monitor}
    return {"models": {"churn": model}, "monitors": {"churn-hourly": spec}, "worker": {"metrics_port": None}}


def test_retention_is_read_per_kind_and_absent_keeps_forever() -> None:
    config = parse_config(config_data({"predictions": "30d", "scores": "365d", "alerts": "90d"}))
    retention = config.models["churn"].retention
    assert (retention.predictions, retention.scores, retention.alerts) == (
        timedelta(days=30),
        timedelta(days=365),
        timedelta(days=90),
    )
    kept = parse_config(config_data()).models["churn"].retention
    assert (kept.predictions, kept.scores, kept.alerts) == (None, None, None)


@pytest.mark.parametrize(
    ("retention", "path", "message"),
    [
        ({"predictions": "0d"}, "models.churn.retention.predictions", "expected a duration greater than 0, got 0s"),
        ({"scores": "-1d"}, "models.churn.retention.scores", "expected a duration like 30s, 5m, 1h or 7d"),
        ({"alert": "90d"}, "models.churn.retention.alert", "unknown key (valid keys: alerts, predictions, scores)"),
    ],
)
def test_a_bad_retention_names_its_key(retention: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(config_data(retention))
    assert [(p, m[: len(message)]) for p, m in raised.value.errors] == [(path, message)]


def test_predictions_kept_shorter_than_previous_windows_need_names_both_keys() -> None:
    # 24 hourly windows before the newest, the newest itself and 5 minutes of lateness: 25h05m.
    with pytest.raises(ConfigError) as raised:
        parse_config(config_data({"predictions": "1d"}))
    assert raised.value.errors == [
        (
            "models.churn.retention.predictions",
            "1d is shorter than monitors.churn-hourly.reference.previous_windows needs: 24 windows of 1h before "
            "the newest, the window itself and its lateness (1505m)",
        )
    ]
    assert parse_config(config_data({"predictions": "1505m"})).models["churn"].retention.predictions == timedelta(
        minutes=1505
    )
