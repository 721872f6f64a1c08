"""Model versions in the data (docs/versions.md) through every ingestion path, against real servers:
the push API under uvicorn, the SDK, the Elasticsearch-compatible server and both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch, helpers
from sqlalchemy import Engine, select

from collectors.elasticsearch import ElasticsearchCollector
from monitor.api.app import create_app
from monitor.config import parse_config
from monitor.sdk import Client
from monitor.store.api_keys import create_api_key
from monitor.store.tables import Prediction, RejectedRecord
from tests.integration.test_api import canonical, client_for, make_config, serving

pytestmark = pytest.mark.integration


def versions(engine: Engine) -> dict[str, tuple[str | None, Any]]:
    """prediction id → (model_version, label)."""
    with engine.connect() as connection:
        rows = connection.execute(select(Prediction.prediction_id, Prediction.model_version, Prediction.label))
        return {row.prediction_id: (row.model_version, row.label) for row in rows}


def test_pushed_versions_are_stored_and_neither_labels_nor_replays_erase_them(store_engine: Engine) -> None:
    key, _ = create_api_key(store_engine, "svc-versions")
    with client_for(create_app(make_config(), store_engine), key) as client:
        batch = [canonical(1, model_version="2.0"), canonical(2, model_version="2.1-canary"), canonical(3)]
        response = client.post("/v1/models/churn/predictions", json=batch)
        assert response.status_code == 200 and response.json()["accepted"] == 3, response.text
        # A label (and a replay that names no version, or another one) leaves the version as first stored.
        assert client.post("/v1/models/churn/labels", json=[{"id": "r1", "label": 1}]).json()["accepted"] == 1
        replay = [canonical(1), canonical(2, model_version="9", label=0)]
        assert client.post("/v1/models/churn/predictions", json=replay).json()["accepted"] == 2
        # A label that waited for its prediction joins a versioned one.
        client.post("/v1/models/churn/labels", json=[{"id": "r4", "label": 0}])
        client.post("/v1/models/churn/predictions", json=[canonical(4, model_version="2.1-canary")])
        bad = client.post("/v1/models/churn/predictions", json=[canonical(5, model_version="2.1\n<b>")])
    assert versions(store_engine) == {
        "r1": ("2.0", 1),
        "r2": ("2.1-canary", 0),
        "r3": (None, None),
        "r4": ("2.1-canary", 0),
    }
    assert bad.status_code == 422
    assert bad.json()["rejected"][0]["field"] == "model_version"
    assert bad.json()["rejected"][0]["message"].startswith('[0].model_version: version "2.1\\n<b>" contains a non-')
    with store_engine.connect() as connection:
        rejected = connection.execute(select(RejectedRecord.record_ref, RejectedRecord.field)).one()
    assert tuple(rejected) == ("id=r5", "model_version")


def test_the_sdk_sends_its_version_and_a_call_may_name_another(sqlite_engine: Engine) -> None:
    key, _ = create_api_key(sqlite_engine, "svc-sdk")
    with serving(create_app(make_config(), sqlite_engine)) as url:
        client = Client(url, key, flush_interval=0.05, model_version="3.0")
        shadow = Client(url, key, flush_interval=0.05)
        features = {"tenure": 1, "plan": "pro", "monthly_charges": 10.0}
        client.log_prediction("churn", "a", features, 1)
        client.log_prediction("churn", "b", features, 1, model_version="3.1-shadow")
        shadow.log_prediction("churn", "c", features, 0)
        assert client.flush(timeout=30) and shadow.flush(timeout=30)
        client.close()
        shadow.close()
    assert versions(sqlite_engine) == {"a": ("3.0", None), "b": ("3.1-shadow", None), "c": (None, None)}


def test_the_elasticsearch_field_map_reads_the_version_at_its_path(
    es_client: Elasticsearch, make_es_index, sqlite_engine: Engine
) -> None:
    index = make_es_index({"dynamic": True})
    url = es_client.transport.node_pool.get().base_url
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    config = parse_config(
        {
            "sources": {"es": {"kind": "elasticsearch", "url": url, "index": index, "safety_lag": "1s"}},
            "models": {
                "churn": {
                    "task": "binary",
                    "source": "es",
                    "fields": {
                        "id": "request_id",
                        "timestamp": "@timestamp",
                        "prediction": "output.label",
                        "model_version": "deploy.version",
                    },
                    "features": {"tenure": "numeric"},
                }
            },
        }
    )
    docs = [
        {
            "request_id": f"r{i}",
            "@timestamp": (t0 + timedelta(seconds=i)).isoformat(),
            "output": {"label": i % 2},
            "tenure": i,
            **({"deploy": {"version": f"v{i % 2}"}} if i < 3 else {}),
            **({"deploy": {"version": "bad\u0007"}} if i == 3 else {}),
        }
        for i in range(4)
    ]
    helpers.bulk(es_client, [{"_index": index, "_id": d["request_id"], "_source": d} for d in docs], refresh=True)
    collector = ElasticsearchCollector(sqlite_engine, config, "churn", clock=lambda: t0 + timedelta(hours=1))
    assert "deploy.version" in collector.source_fields()
    result = collector.collect()
    assert result.stored == 3
    assert {k: v for k, (v, _) in versions(sqlite_engine).items()} == {"r0": "v0", "r1": "v1", "r2": "v0"}
    with sqlite_engine.connect() as connection:
        rejected = connection.execute(select(RejectedRecord.record_ref, RejectedRecord.field)).one()
    assert tuple(rejected) == (f"{index}/r3", "deploy.version")  # the collector refers to index/_id
