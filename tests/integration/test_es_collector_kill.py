"""A backfill killed with SIGKILL at random points and restarted stores exactly the right rows; an
incremental collection killed while it re-reads its overlap keeps its watermark.

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

from monitor.ingest.writer import read_checkpoint
from monitor.store.tables import Checkpoint, Prediction, RejectedRecord
from tests.integration.test_es_collector import MAPPINGS, doc

pytestmark = pytest.mark.integration

KILLS = 10
TOTAL = 20_000
T0 = datetime(2026, 3, 1, tzinfo=UTC)
COMMAND = "import sys; from monitor.cli.collect import collect_app; collect_app(sys.argv[1:])"


def rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Prediction))


def checkpoint_written(engine: Engine, collector: str) -> object:
    with engine.connect() as connection:
        return connection.scalar(select(Checkpoint.updated_at).where(Checkpoint.collector == collector))


def write_config(path: Path, store: str, elasticsearch_url: str, index: str) -> Path:
    config = {
        "store": store,
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
    path.write_text(yaml.safe_dump(config))
    return path


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
    config_path = write_config(tmp_path / "driftscope.yaml", postgres_url, elasticsearch_url, index)
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


def test_kills_during_the_overlap_reread_never_move_the_watermark_back(
    es_client: Elasticsearch,
    make_es_index,
    elasticsearch_url: str,
    postgres_url: str,
    postgres_engine: Engine,
    tmp_path: Path,
) -> None:
    """Issue 17: each kill during the re-read used to leave the watermark at the last re-read page."""
    index = make_es_index(MAPPINGS)
    # Within the default 10-minute overlap of a watermark set now: every restart re-reads all of them.
    start = datetime.now(UTC) - timedelta(minutes=9)
    docs = (doc(i, start + timedelta(milliseconds=20 * i), index) for i in range(TOTAL))
    helpers.bulk(es_client, docs, refresh=True, chunk_size=5000)
    config_path = write_config(tmp_path / "driftscope.yaml", postgres_url, elasticsearch_url, index)
    argv = [sys.executable, "-c", COMMAND, "elasticsearch", "--model", "churn", "-c", str(config_path)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert rows(postgres_engine) == TOTAL
    name = "elasticsearch:churn"
    watermarks = [read_checkpoint(postgres_engine, name)["watermark"]]
    rng = np.random.default_rng(11)
    kills = 0
    for run in range(6):
        written = checkpoint_written(postgres_engine, name)
        with (tmp_path / f"rerun{run}.log").open("wb") as log:
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        # Kill once this run has stored a page of its re-read (its checkpoint was written).
        while process.poll() is None and checkpoint_written(postgres_engine, name) == written:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.1))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
        watermarks.append(read_checkpoint(postgres_engine, name)["watermark"])
    print("watermark after each run:", watermarks)
    assert kills >= 4, f"the re-read finished too fast to be killed often: {watermarks}"
    assert watermarks == sorted(watermarks), f"the watermark moved backwards: {watermarks}"
    assert rows(postgres_engine) == TOTAL
