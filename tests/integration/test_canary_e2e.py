"""The canary gate end to end, with real processes (issue 14, "Done when"): the API process takes version 2.0's
traffic and its reference, a deployment of 2.1 is recorded through the CLI, 10 % of the traffic goes to 2.1, which
is worse in one region, and `driftscope canary` exits 1 naming what is worse before the labels arrive (the score
distribution in region=eu) and after (realized ROC AUC, with its interval); on too little canary traffic it exits
2 saying how many more rows it needs. The API's verdict is the same."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from monitor.store.api_keys import create_api_key
from monitor.store.engine import make_engine
from tests.canary_traffic import BAD_REGION, MODEL, traffic
from tests.servers import free_port, http_ok, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def driftscope(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRIFTSCOPE_CONFIG": str(config), "PYTHONPATH": str(ROOT), "DRIFTSCOPE_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A SQLite store, the config, a key and the API process: (config path, API URL, key)."""
    config = tmp_path / "driftscope.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": f"sqlite:///{tmp_path / 'store.db'}",
                "models": {"churn": MODEL},
                "monitors": {
                    "churn-hourly": {
                        "model": "churn",
                        "reference": {"dataset": "train.parquet"},
                        "performance": ["roc_auc"],
                        "estimated_performance": True,
                    }
                },
            }
        )
    )
    assert (done := driftscope(config, "db", "upgrade")).returncode == 0, done.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    key, _ = create_api_key(engine, "svc-e2e", scopes=["ingest", "read"])
    engine.dispose()
    port = free_port()
    env = {**os.environ, "DRIFTSCOPE_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "uvicorn", "--factory", "monitor.cli.api:app_from_environment", "--host",
            "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(f"{url}/healthz") or None, "the API", timeout=60)
        yield config, url, key
    finally:
        api.terminate()
        api.wait(timeout=30)


def push(url: str, key: str, path: str, records: list[dict[str, object]]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        for i in range(0, len(records), 500):
            answer = client.post(f"/v1/models/churn/{path}", json=records[i : i + 500])
            assert answer.status_code == 200 and not answer.json()["rejected"], answer.text


def test_a_canary_worse_on_one_region_is_refused_before_and_after_labels(stack, tmp_path: Path) -> None:
    config, url, key = stack
    now = datetime.now(UTC)
    canary_at = now - timedelta(hours=1)
    # Version 2.0: its training set is the monitor's reference; it has served all the traffic for hours.
    train = traffic(3000, now - timedelta(days=7), timedelta(days=1), seed=11, prefix="train")
    pd.DataFrame([{"id": r.id, "timestamp": r.ts, **r.features, "prediction": r.prediction, "score": r.score,
                   "label": r.label} for r in train]).to_parquet(tmp_path / "train.parquet")  # fmt: skip
    assert (done := driftscope(config, "reference", "upload", "--model", "churn", str(tmp_path / "train.parquet"))
            ).returncode == 0, done.stderr  # fmt: skip
    recorded = driftscope(config, "deploy", "record", "--model", "churn", "--version", "2.0",
                          "--at", (now - timedelta(hours=6)).isoformat())  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    before = traffic(3000, now - timedelta(hours=5), timedelta(hours=4), seed=12, prefix="v1")
    push(url, key, "predictions", [r.record() for r in before])

    # 2.1 goes out to 10 % of the traffic; its rows say so, 2.0's name no version (the deployed one served them).
    recorded = driftscope(config, "deploy", "record", "--model", "churn", "--version", "2.1", "--traffic", "10%",
                          "--commit", "abc123", "--at", canary_at.isoformat())  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    live = traffic(4000, canary_at, timedelta(minutes=59), seed=13, prefix="live", canary_share=0.1)
    push(url, key, "predictions", [r.record() for r in live])
    candidate_rows = sum(r.version == "2.1" for r in live)

    gate = driftscope(config, "canary", "--model", "churn", "--candidate", "2.1", "--baseline", "2.0")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert f"2.1 ({candidate_rows} rows, 0 labels) against 2.0 ({len(live) - candidate_rows} rows" in gate.stdout
    reasons = gate.stdout.split("worse: 2.1 is worse than 2.0", 1)[1]
    assert f"score distribution in region={BAD_REGION} of 2.1 differs from 2.0's" in reasons
    assert "region=us" not in reasons and "region=apac" not in reasons
    answer = httpx.get(f"{url}/v1/models/churn/canary", params={"candidate": "2.1", "baseline": "2.0"},
                       headers={"Authorization": f"Bearer {key}"}, timeout=300)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["exit_code"] == 1
    assert any(f"in region={BAD_REGION}" in r for r in answer.json()["reasons"])

    # Labels arrive through the API: realized ROC AUC and its interval say where 2.1 is worse.
    push(url, key, "labels", [{"id": r.id, "label": r.label} for r in live])
    gate = driftscope(config, "canary", "--model", "churn", "--candidate", "2.1", "--baseline", "2.0")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    reasons = gate.stdout.split("worse: 2.1 is worse than 2.0", 1)[1]
    assert f"realized roc_auc in region={BAD_REGION} of 2.1 " in reasons and "CI [" in reasons
    assert "realized roc_auc in region=us" not in reasons

    # Over the last ten minutes there are too few of 2.1's rows to say anything yet.
    gate = driftscope(config, "canary", "--model", "churn", "--candidate", "2.1", "--baseline", "2.0", "--since", "10m")
    assert gate.returncode == 2, gate.stdout + gate.stderr
    assert "not enough data yet" in gate.stdout
    assert "candidate 2.1 has " in gate.stdout and " rows, needs 200: " in gate.stdout
