"""The SDK against the real API (uvicorn in a thread) and noida-db, over the real store."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from sqlalchemy import Engine, select

from collectors.elasticsearch import ElasticsearchCollector
from monitor.api.app import create_app
from monitor.config import parse_config
from monitor.sdk import Client
from monitor.store.api_keys import create_api_key
from monitor.store.tables import Prediction
from tests.integration.test_api import make_config, serving
from tests.servers import free_port

pytestmark = pytest.mark.integration


def stored(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(Prediction.prediction_id)))


def features(i: int) -> dict[str, object]:
    return {"tenure": i, "plan": "pro", "monthly_charges": 10.0}


# The 30 s outage runs with -m slow; the default suite scales it to 3 s (same retry path,
# the backoff reaches its 0.5 s cap either way).
@pytest.mark.parametrize("outage", [3, pytest.param(30, marks=pytest.mark.slow)])
def test_api_outage_loses_nothing_and_doubles_nothing(
    outage: float, store_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    key, _ = create_api_key(store_engine, "svc-sdk")
    app = create_app(make_config(), store_engine)
    port = free_port()
    client = Client(f"http://127.0.0.1:{port}", key, batch_size=200, flush_interval=0.05, max_backoff=0.5)
    with serving(app, port):
        for i in range(500):
            client.log_prediction("churn", f"a{i}", features(i), i % 2, score=0.5)
        assert client.flush(timeout=30)
    with caplog.at_level(logging.WARNING, logger="monitor.sdk"):
        for i in range(1000):  # the API is down: these wait in the buffer
            client.log_prediction("churn", f"b{i}", features(i), i % 2)
            client.log_label("churn", f"b{i}", 1)
        time.sleep(outage)
    assert "retrying in" in caplog.text
    with serving(app, port):
        assert client.flush(timeout=60)
    client.close()
    ids = stored(store_engine)
    assert len(ids) == 1500 and set(ids) == {f"a{i}" for i in range(500)} | {f"b{i}" for i in range(1000)}
    assert (client.sent, client.dropped, client.failed, client.rejected) == (2500, 0, 0, 0)
    with store_engine.connect() as connection:
        sources = set(connection.scalars(select(Prediction.source)))
        label = connection.scalar(select(Prediction.label).where(Prediction.prediction_id == "b7"))
    assert sources == {"sdk"} and label == 1


def test_full_buffer_drops_the_oldest_and_counts_them(sqlite_engine: Engine) -> None:
    key, _ = create_api_key(sqlite_engine, "svc-sdk")
    port = free_port()
    client = Client(
        f"http://127.0.0.1:{port}", key, batch_size=50, flush_interval=0.05, max_buffer=100, max_backoff=0.2
    )
    for i in range(250):  # nothing listens: the buffer fills, the oldest go
        client.log_prediction("churn", f"r{i}", features(i), 1)
    # The sender may hold one batch in flight; what is left in the buffer is always the newest records.
    assert client.dropped + client.pending + 50 >= 250 and client.dropped >= 100
    with serving(create_app(make_config(), sqlite_engine), port):
        assert client.flush(timeout=30)
    client.close()
    ids = sorted(stored(sqlite_engine), key=lambda s: int(s[1:]))
    assert len(ids) == 250 - client.dropped
    assert ids[-100:] == [f"r{i}" for i in range(150, 250)]


def test_invalid_records_and_permanent_errors_are_counted_not_retried(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    key, _ = create_api_key(sqlite_engine, "svc-sdk")
    with serving(create_app(make_config(), sqlite_engine)) as url, caplog.at_level(logging.WARNING, "monitor.sdk"):
        client = Client(url, key, flush_interval=0.05)
        client.log_prediction("churn", "ok", features(1), 1)
        client.log_prediction("churn", "bad", {"tenure": "x"}, 1)
        client.log_prediction("no-such-model", "x", features(1), 1)
        client.log_prediction("churn", "weird", object(), 1)  # type: ignore[arg-type]  # never raises
        client.log_label("churn", "ok", None)
        assert client.flush(timeout=30)
        client.close()
    assert (client.sent, client.rejected, client.failed) == (3, 2, 2)  # failed: the 404 and the object()
    assert stored(sqlite_engine) == ["ok"]
    assert "[0].label: required field is null" in caplog.text  # null, not "missing": the key was sent


def test_timestamps_backfill_predictions_and_labels(sqlite_engine: Engine) -> None:
    """docs/ingestion.md: a naive datetime is UTC, ISO text and epoch milliseconds are read as such."""
    key, _ = create_api_key(sqlite_engine, "svc-sdk")
    with serving(create_app(make_config(), sqlite_engine)) as url:
        client = Client(url, key, flush_interval=0.05)
        client.log_prediction("churn", "p1", features(1), 1, timestamp=datetime(2025, 6, 1, 12))
        client.log_prediction("churn", "p2", features(2), 0, timestamp="2025-06-01T14:00:00+02:00")
        client.log_prediction("churn", "p3", features(3), 1, timestamp=1748779200000)
        assert client.flush(timeout=30)
        client.log_label("churn", "p1", 0, timestamp=datetime(2025, 6, 8, tzinfo=UTC))
        assert client.flush(timeout=30)
        client.close()
    with sqlite_engine.connect() as connection:
        rows = {r.prediction_id: r for r in connection.execute(select(Prediction))}
    assert {i: r.ts for i, r in rows.items()} == dict.fromkeys(("p1", "p2", "p3"), datetime(2025, 6, 1, 12, tzinfo=UTC))
    assert (rows["p1"].label, rows["p1"].label_ts) == (0, datetime(2025, 6, 8, tzinfo=UTC))


def test_records_are_flushed_at_interpreter_exit(sqlite_engine: Engine, tmp_path: Path) -> None:
    key, _ = create_api_key(sqlite_engine, "svc-sdk")
    script = tmp_path / "service.py"
    with serving(create_app(make_config(), sqlite_engine)) as url:
        script.write_text(
            "from monitor.sdk import Client\n"
            f"client = Client({url!r}, {key!r}, flush_interval=60)\n"
            "for i in range(300):\n"
            "    client.log_prediction('churn', f'x{i}', {'tenure': i}, 0)\n"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=60)
    assert len(stored(sqlite_engine)) == 300


def test_elasticsearch_sink_feeds_the_collector(es_client: Elasticsearch, make_es_index, sqlite_engine: Engine) -> None:
    index = make_es_index({"properties": {"timestamp": {"type": "date"}, "id": {"type": "keyword"}}})
    url = es_client.transport.node_pool.get().base_url
    client = Client(elasticsearch=es_client, index=index, flush_interval=0.05)
    for i in range(40):
        client.log_prediction("churn", f"s{i}", features(i), i % 2, score=0.25, timestamp=1772366400 + i)
    assert client.flush(timeout=30)
    client.close()
    es_client.indices.refresh(index=index)
    config = parse_config(
        {
            "sources": {"es": {"kind": "elasticsearch", "url": url, "index": index}},
            "models": {
                "churn": {
                    "task": "binary",
                    "source": "es",
                    "fields": {"score": "score", "label": "label", "features": "features"},
                    "features": {"tenure": "numeric", "plan": "categorical", "monthly_charges": "numeric"},
                }
            },
        }
    )
    result = ElasticsearchCollector(sqlite_engine, config, "churn").collect()
    assert (result.stored, result.rejected) == (40, 0)
    assert sorted(stored(sqlite_engine)) == sorted(f"s{i}" for i in range(40))
