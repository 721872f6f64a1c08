"""``driftscope reference upload`` and ``driftscope report`` on a real (SQLite) store."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from monitor.cli.main import _register_commands, app
from monitor.config import load_config
from monitor.runs.scheduler import Scheduler
from monitor.store.queries import sync_models
from monitor.store.tables import Prediction, Reference
from tests.integration.test_scheduler import HOUR, T0, add_predictions, clock_at, runs


@pytest.fixture
def config_path(sqlite_engine: Engine, tmp_path: Path) -> Path:
    path = tmp_path / "driftscope.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": str(sqlite_engine.url),
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
                        "min_rows": 20,
                        "reference": {"dataset": "train.csv.gz"},
                        "performance": ["accuracy"],
                    }
                },
                "worker": {"metrics_port": None},
            }
        )
    )
    return path


def invoke(*args: str):
    _register_commands()
    # The app's callback points the root logger at CliRunner's stderr, which closes after the call.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        root.handlers[:], root.level = handlers, level


def training_file(path: Path, rows: int = 3000, drop: str | None = None) -> Path:
    rng = np.random.default_rng(1)
    tenure = rng.normal(0, 1, rows)
    frame = pd.DataFrame(
        {
            "tenure": tenure,
            "plan": rng.choice(["basic", "pro"], rows),
            "prediction": (tenure > 0).astype(int),
            "score": 1 / (1 + np.exp(-tenure)),
            "label": (rng.random(rows) < 0.5).astype(int),
        }
    )
    frame.drop(columns=[drop] if drop else []).to_csv(path, index=False)
    return path


def test_upload_then_report(sqlite_engine: Engine, config_path: Path, tmp_path: Path) -> None:
    result = invoke("reference", "upload", str(training_file(tmp_path / "train.csv.gz")), "--model", "churn",
                    "--config", str(config_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "reference dataset 'train.csv.gz' of model 'churn': 3,000 rows stored" in result.output
    with sqlite_engine.connect() as connection:
        (row,) = connection.execute(select(Reference.kind, Reference.row_count, Reference.dataset)).all()
    assert (row.kind, row.row_count) == ("dataset", 3000)
    assert len(pd.read_parquet(io.BytesIO(row.dataset))) == 3000

    config = load_config(config_path)
    add_predictions(sqlite_engine, config, range(2), shift=1.5)
    Scheduler(config, sqlite_engine, clock=clock_at(T0 + 3 * HOUR)).tick()
    assert [r.status for r in runs(sqlite_engine)] == ["succeeded", "succeeded"]

    out = tmp_path / "report.html"
    result = invoke("report", "--monitor", "churn-hourly", "--window", "2026-03-02T00:30:00Z", "-o", str(out),
                    "--config", str(config_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<html" in html[:200] and "tenure" in html and "plan" in html

    empty = invoke("report", "--monitor", "churn-hourly", "--window", "2026-03-02T05:00:00", "-o", str(out),
                   "--config", str(config_path))  # fmt: skip
    assert empty.exit_code == 2 and "needs rows in both" in empty.output
    unknown = invoke("report", "--monitor", "nope", "--window", "2026-03-02T05:00:00", "--config", str(config_path))
    assert unknown.exit_code == 2 and "unknown monitor 'nope'" in unknown.output


def test_upload_rejects_a_file_without_the_models_features(config_path: Path, tmp_path: Path) -> None:
    path = training_file(tmp_path / "train.csv", drop="plan")
    result = invoke("reference", "upload", str(path), "--model", "churn", "--config", str(config_path))
    assert result.exit_code == 2
    assert "feature columns ['plan'] missing" in result.output
    result = invoke("reference", "upload", str(path), "--model", "nope", "--config", str(config_path))
    assert result.exit_code == 2 and "unknown model 'nope'" in result.output


def test_worker_once_computes_what_is_due_and_exits(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "driftscope.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": str(sqlite_engine.url),
                "models": {"m": {"task": "regression", "features": {"x": "numeric"}}},
                "monitors": {"m-hourly": {"model": "m", "min_rows": 5, "reference": {"previous_windows": 1}}},
            }
        )
    )
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    model_id = sync_models(sqlite_engine, load_config(path))["m"]
    with sqlite_engine.begin() as connection:
        connection.execute(
            insert(Prediction),
            [
                {"model_id": model_id, "prediction_id": f"{h}-{i}", "ts": hour - timedelta(hours=h, minutes=i),
                 "features": {"x": float(i)}, "prediction": 1.0, "source": "test"}
                for h in (2, 3)
                for i in range(10)
            ],
        )  # fmt: skip
    result = invoke("worker", "--once", "--config", str(path))
    assert result.exit_code == 0, result.output
    statuses = [r.status for r in runs(sqlite_engine)]
    assert f"{len(statuses)} run(s) computed" in result.output
    assert statuses[:2] == ["insufficient_data", "succeeded"]  # the first window has no previous window
    assert {r.attempts for r in runs(sqlite_engine)} == {1}
