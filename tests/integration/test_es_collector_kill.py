"""A backfill killed with SIGKILL at random points and restarted stores exactly the right rows.

The collector runs as its own process (the real ``collect elasticsearch`` command; started through
the ``collect`` sub-app so the other command areas' imports do not dominate the run time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from elasticsearch import Elasticsearch, helpers
from sqlalchemy import Engine, func, select

from monitor.store.tables import Prediction, RejectedRecord
from tests.integration.test_es_collector import MAPPINGS, doc

pytestmark = pytest.mark.integration

KILLS = 10
TOTAL = 20_000
T0 = datetime(2026, 3, 1, tzinfo=UTC)
COMMAND = "import sys; from monitor.cli.collect import collect_app; collect_app(sys.argv[1:])"


def rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Prediction))


def test_backfill_killed_ten_times_stores_every_row_once(
    es_client: Elasticsearch,
    make_es_index,
    elasticsearch_url: str,
    postgres_url: str,
    postgres_engine: Engine,
    tmp_path: Path,
) -> None:
    index = make_es_index(MAPPINGS)
    docs = (doc(i, T0 + timedelta(milliseconds=10 * i), index) for i in range(TOTAL))
    helpers.bulk(es_client, docs, refresh=True, chunk_size=5000)
    config = {
        "store": postgres_url,
        "sources": {"es": {"kind": "elasticsearch", "url": elasticsearch_url, "index": index, "page_size": 500}},
        "models": {
            "churn": {
                "task": "binary",
                "source": "es",
                "fields": {
                    "id": "request_id",
                    "timestamp": "@timestamp",
                    "prediction": "output.label",
                    "score": "output.proba",
                },
                "features": {"tenure": "numeric", "plan": "categorical"},
            }
        },
    }
    config_path = tmp_path / "driftscope.yaml"
    config_path.write_text(yaml.safe_dump(config))
    argv = [
        sys.executable,
        "-c",
        COMMAND,
        "elasticsearch",
        "--model",
        "churn",
        "-c",
        str(config_path),
        "--from",
        T0.isoformat(),
        "--to",
        (T0 + timedelta(hours=1)).isoformat(),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    rng = np.random.default_rng(7)
    kills = 0
    progress = [0]
    while kills < KILLS:
        with (tmp_path / f"run{kills}.log").open("wb") as log:
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        # Kill at a random point once this run has stored something (so every kill interrupts real work).
        while process.poll() is None and rows(postgres_engine) <= progress[-1]:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.15))
        if process.poll() is not None:
            break  # it finished before the kill: the rest of the check still holds
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        progress.append(rows(postgres_engine))
    print("rows after each kill:", progress)
    assert kills >= 5, f"the backfill finished too fast to be killed often: {progress}"
    assert progress[-1] < TOTAL, progress
    final = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    with postgres_engine.connect() as connection:
        ids = list(connection.scalars(select(Prediction.prediction_id)))
        assert connection.scalar(select(func.count()).select_from(RejectedRecord)) == 0
    assert len(ids) == TOTAL
    assert set(ids) == {f"r{i}" for i in range(TOTAL)}
    assert "0 rejected — done" in final.stdout, final.stdout
