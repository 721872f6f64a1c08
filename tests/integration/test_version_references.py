"""A baseline per model version on a real store (SQLite and Postgres), through the CLI and the scheduler.

Version 1.0's traffic and its training set have tenure ~ N(0, 1); version 2.0 was trained on, and serves,
tenure ~ N(1.5, 1). Under ``reference: {version: current}`` 2.0's own scores are against 2.0's reference, so
they show no drift, while the whole window (judged against the current version, 1.0) does. 2.0's reference
was uploaded with --require-approval: until ``driftscope reference approve`` its segment says so.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from monitor.cli.main import _register_commands, app
from monitor.config import load_config
from monitor.runs.canary import run_canary
from monitor.runs.scheduler import Scheduler
from monitor.store.queries import sync_models
from monitor.store.segments import VERSION
from monitor.store.tables import Deployment, Prediction, Reference, Run, Score, SegmentScore

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
ROWS = 1200
SHIFT = {"1.0": 0.0, "2.0": 1.5}


def write_config(tmp_path: Path, engine: Engine, **reference: Any) -> Path:
    path = tmp_path / "driftscope.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": engine.url.render_as_string(hide_password=False),
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
                        "lateness": "5m",
                        "min_rows": 100,
                        "segment_min_rows": 50,
                        "reference": {"version": "current", **reference},
                        "drift": {"method": "ks"},
                    }
                },
                "worker": {"metrics_port": None, "run_lease": "10m"},
            }
        )
    )
    return path


def invoke(*args: str) -> Any:
    _register_commands()
    root = logging.getLogger()  # the app's callback points the root logger at CliRunner's stderr
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        root.handlers[:], root.level = handlers, level


def training_file(path: Path, version: str, seed: int, rows: int = 3000) -> Path:
    rng = np.random.default_rng(seed)
    tenure = rng.normal(SHIFT[version], 1, rows)
    score = 1 / (1 + np.exp(-tenure))
    pd.DataFrame(
        {
            "tenure": tenure,
            "plan": rng.choice(["basic", "pro"], rows),
            "prediction": (score >= 0.5).astype(int),
            "score": score,
            "label": (rng.random(rows) < score).astype(int),
        }
    ).to_csv(path, index=False)
    return path


def add_hour(engine: Engine, model_id: int, hour: int) -> None:
    """Half the hour's rows from 2.0 (naming it), half naming none (the current version, 1.0)."""
    rng = np.random.default_rng(400 + hour)  # seeds where no window drifts by chance against its own version
    records = []
    for i in range(ROWS):
        version = "2.0" if i % 2 else None
        tenure = float(rng.normal(SHIFT[version or "1.0"], 1))
        score = 1 / (1 + np.exp(-tenure))
        ts = T0 + hour * HOUR + timedelta(seconds=i * 3600 / ROWS)
        records.append(
            {
                "model_id": model_id,
                "prediction_id": f"{hour}-{i}",
                "ts": ts,
                "features": {"tenure": tenure, "plan": str(rng.choice(["basic", "pro"]))},
                "prediction": int(score >= 0.5),
                "score": score,
                "label": int(rng.random() < score),
                "label_ts": ts + timedelta(minutes=1),
                "label_received_at": ts + timedelta(minutes=1),
                "source": "test",
                "ingested_at": ts,
                "model_version": version,
            }
        )
    with engine.begin() as connection:
        connection.execute(insert(Prediction), records)


def deploy(engine: Engine, model_id: int, version: str, at: datetime, traffic: float | None) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(Deployment).values(
                model_id=model_id, version=version, deployed_at=at, deployed_by="ci", traffic=traffic
            )
        )


def segments(engine: Engine, window_start: datetime) -> dict[str, list[Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(SegmentScore).where(SegmentScore.window_start == window_start, SegmentScore.segment_by == VERSION)
        ).all()
    out: dict[str, list[Any]] = {}
    for row in rows:
        out.setdefault(row.segment, []).append(row)
    return out


def tenure_drift(rows: list[Any]) -> Any:
    (found,) = [r for r in rows if r.kind == "drift" and r.feature == "tenure"]
    return found


def test_each_version_against_its_own_approved_reference(store_engine: Engine, tmp_path: Path) -> None:
    path = write_config(tmp_path, store_engine)
    config = load_config(path)
    model_id = sync_models(store_engine, config)["churn"]
    deploy(store_engine, model_id, "1.0", T0 - HOUR, None)
    deploy(store_engine, model_id, "2.0", T0, 0.5)  # a canary: 1.0 stays the current version

    v1 = training_file(tmp_path / "train.csv", "1.0", 1)
    result = invoke("reference", "upload", "--model", "churn", "--version", "1.0", str(v1), "-c", str(path))
    assert result.exit_code == 0, result.output
    assert "'train.csv@1.0'" in result.output
    v2 = training_file(tmp_path / "train.csv", "2.0", 2, rows=2500)  # the same file name, from the next pipeline run
    result = invoke(
        "reference", "upload", "--model", "churn", "--version", "2.0", "--require-approval", str(v2), "-c", str(path)
    )
    assert result.exit_code == 0, result.output
    assert "driftscope reference approve --model churn train.csv@2.0" in result.output
    # another version's reference is never replaced, whatever the name
    result = invoke(
        "reference",
        "upload",
        "--model",
        "churn",
        "--version",
        "3.0",
        "--name",
        "train.csv@1.0",
        str(v2),
        "-c",
        str(path),
    )
    assert result.exit_code == 2 and "belongs to version 1.0" in result.output

    listed = invoke("reference", "list", "--model", "churn", "-c", str(path))
    assert listed.exit_code == 0, listed.output
    lines = {line.split("\t")[0]: line.split("\t") for line in listed.output.splitlines()[1:]}
    assert lines["train.csv@1.0"][1:3] == ["1.0", "3,000"] and lines["train.csv@1.0"][4] == "at upload"
    assert lines["train.csv@2.0"][1:3] == ["2.0", "2,500"] and lines["train.csv@2.0"][4] == "waiting"

    add_hour(store_engine, model_id, 0)
    scheduler = Scheduler(config, store_engine, clock=lambda: T0 + HOUR + 10 * timedelta(minutes=1))
    assert scheduler.tick() == 1
    first = segments(store_engine, T0)
    assert first["2.0"][0].status == "insufficient_data"
    assert "'train.csv@2.0' waits for approval" in first["2.0"][0].reason
    assert "driftscope reference approve --model churn train.csv@2.0" in first["2.0"][0].reason
    assert tenure_drift(first["1.0"]).breached is False  # 1.0's rows against 1.0's reference

    result = invoke("reference", "approve", "--model", "churn", "train.csv@2.0", "--by", "ana", "-c", str(path))
    assert result.exit_code == 0 and "approved by ana" in result.output, result.output
    again = invoke("reference", "approve", "--model", "churn", "train.csv@2.0", "--by", "bo", "-c", str(path))
    assert "already approved by ana" in again.output

    add_hour(store_engine, model_id, 1)
    scheduler = Scheduler(config, store_engine, clock=lambda: T0 + 2 * HOUR + 10 * timedelta(minutes=1))
    assert scheduler.tick() == 1
    second = segments(store_engine, T0 + HOUR)
    own = tenure_drift(second["2.0"])
    assert own.status == "ok" and own.breached is False, own  # 2.0 against 2.0's reference: no drift
    assert tenure_drift(second["1.0"]).breached is False
    with store_engine.connect() as connection:
        whole = connection.execute(
            select(Score).where(Score.window_start == T0 + HOUR, Score.kind == "drift", Score.feature == "tenure")
        ).one()
        cached = set(connection.scalars(select(Reference.name).where(Reference.name.like("monitor:%"))))
    # The whole window (half of it 2.0's shifted rows) against the current version's (1.0's) reference: drift,
    # as 2.0's rows would show against 1.0's.
    assert whole.breached is True
    ids = dict(invoke_ids(store_engine))
    assert cached == {f"monitor:churn-hourly#{ids['train.csv@1.0']}", f"monitor:churn-hourly#{ids['train.csv@2.0']}"}
    # The canary gate's estimates are fitted on the baseline version's own reference (2,500 rows for 2.0).
    verdict = run_canary(store_engine, config, "churn", "1.0", "2.0", since=T0, now=T0 + 2 * HOUR)
    assert any("fitted on the reference of monitor churn-hourly (2500 rows)" in note for note in verdict.notes)


def invoke_ids(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        return [(r.name, r.id) for r in connection.execute(select(Reference.name, Reference.id))]


def test_no_silent_fallback(store_engine: Engine, tmp_path: Path) -> None:
    """No current version, or only references not approved with `reference approve` under approval: required:
    the run is insufficient_data naming the command to run."""
    path = write_config(tmp_path, store_engine, approval="required")
    config = load_config(path)
    model_id = sync_models(store_engine, config)["churn"]
    v1 = training_file(tmp_path / "train.csv", "1.0", 1)
    assert (
        invoke("reference", "upload", "--model", "churn", "--version", "1.0", str(v1), "-c", str(path)).exit_code == 0
    )
    add_hour(store_engine, model_id, 0)
    add_hour(store_engine, model_id, 1)
    Scheduler(config, store_engine, clock=lambda: T0 + HOUR + 10 * timedelta(minutes=1)).tick()
    deploy(store_engine, model_id, "1.0", T0 + HOUR, None)
    Scheduler(config, store_engine, clock=lambda: T0 + 2 * HOUR + 10 * timedelta(minutes=1)).tick()
    with store_engine.connect() as connection:
        runs = {r.window_start: r for r in connection.execute(select(Run.window_start, Run.status, Run.error))}
    assert runs[T0].status == "insufficient_data"
    assert "no full deployment" in runs[T0].error and "driftscope deploy record --model churn" in runs[T0].error
    assert runs[T0 + HOUR].status == "insufficient_data"
    assert "was not approved with reference approve" in runs[T0 + HOUR].error
    assert "driftscope reference approve --model churn train.csv@1.0" in runs[T0 + HOUR].error


@pytest.mark.parametrize("bad", [{"approval": "required", "dataset": "x"}, {"version": "latest"}])
def test_config_refuses_at_load(tmp_path: Path, sqlite_engine: Engine, bad: dict[str, Any]) -> None:
    path = tmp_path / "bad.yaml"
    data = yaml.safe_load(write_config(tmp_path, sqlite_engine).read_text())
    data["monitors"]["churn-hourly"]["reference"] = bad
    path.write_text(yaml.safe_dump(data))
    result = invoke("config", "validate", str(path))
    assert result.exit_code != 0 and "monitors.churn-hourly.reference" in result.output, result.output


def test_approve_through_the_api(store_engine: Engine, tmp_path: Path) -> None:
    """POST /v1/models/{model}/references/{name}/approve: an operate or admin key, recorded as the approver; a
    second approval keeps the first; an unknown name is 404 naming the uploaded ones; a read key is refused."""
    from monitor.api.app import create_app
    from monitor.store.api_keys import create_api_key
    from tests.integration.test_api import bearer, client_for

    config = load_config(write_config(tmp_path, store_engine))
    v2 = training_file(tmp_path / "train.csv", "2.0", 2)
    result = invoke("reference", "upload", "--model", "churn", "--version", "2.0", "--require-approval", str(v2),
                    "-c", str(tmp_path / "driftscope.yaml"))  # fmt: skip
    assert result.exit_code == 0, result.output
    operate, _ = create_api_key(store_engine, "ci", scopes=["operate"])
    reader, _ = create_api_key(store_engine, "viewer", scopes=["read"])
    path = "/v1/models/churn/references/train.csv@2.0/approve"
    with client_for(create_app(config, store_engine)) as client:
        assert client.post(path, headers=bearer(reader)).status_code == 403
        missing = client.post("/v1/models/churn/references/nope.csv/approve", headers=bearer(operate))
        assert missing.status_code == 404 and "'train.csv@2.0'" in missing.text
        first = client.post(path, headers=bearer(operate))
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["version"], body["approval"], body["approved_by"], body["changed"]) == (
            "2.0", "approved", "apikey:ci", True,
        )  # fmt: skip
        again = client.post(path, headers=bearer(operate)).json()
        assert (again["changed"], again["approved_at"]) == (False, body["approved_at"])
