"""Model versions in the data (docs/versions.md) through every ingestion path, against real servers:
the push API under uvicorn, the SDK, the Elasticsearch-compatible server and both stores."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from elasticsearch import Elasticsearch, helpers
from sqlalchemy import Engine, select

from alerts import evaluate
from alerts.message import alert_lines, deployment_note
from collectors.elasticsearch import ElasticsearchCollector
from monitor.api.app import create_app
from monitor.config import parse_config
from monitor.ingest import ingest_predictions
from monitor.sdk import Client
from monitor.store import reads
from monitor.store.api_keys import create_api_key
from monitor.store.deployments import (
    VersionRows,
    deployments,
    latest_deployment,
    record_deployment,
    version_at,
    versions_seen,
)
from monitor.store.engine import transaction
from monitor.store.queries import sync_models
from monitor.store.tables import Alert, Prediction, RejectedRecord
from tests.alert_support import HOUR, add_window, setup_models
from tests.alert_support import T0 as ALERT_T0
from tests.alert_support import make_config as alert_config
from tests.integration.test_api import MODELS, bearer, canonical, client_for, make_config, serving

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


# --- deployments -------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def push(engine: Engine, records: list[dict[str, Any]]) -> None:
    result = ingest_predictions(engine, make_config(), "churn", records, "test", shape="canonical")
    assert result.accepted == len(records), result.rejections


def at(minutes: float, i: int, version: str | None = None) -> dict[str, Any]:
    record = canonical(i, timestamp=(T0 + timedelta(minutes=minutes)).isoformat())
    return record if version is None else {**record, "model_version": version}


def test_rows_without_a_version_belong_to_the_full_deployment_of_their_time(store_engine: Engine) -> None:
    sync_models(store_engine, make_config())
    record = functools.partial(record_deployment, store_engine, "churn", deployed_by="ci")
    record("1.0", at=T0)
    record("2.0", at=T0 + timedelta(minutes=60))
    record("2.1", at=T0 + timedelta(minutes=90), traffic="10%")  # a canary: not the current version
    push(store_engine, [at(10, 1), at(20, 2), at(70, 3), at(95, 4), at(96, 5, "2.1"), at(97, 6, "2.1"), at(-5, 7)])
    with store_engine.connect() as conn:
        model_id = reads.model_by_name(conn, "churn").id  # type: ignore[union-attr]
        assert version_at(conn, model_id, T0 - timedelta(seconds=1)) is None
        assert version_at(conn, model_id, T0) == "1.0"  # at the deployment's instant it is current
        assert version_at(conn, model_id, T0 + timedelta(minutes=59)) == "1.0"
        assert version_at(conn, model_id, T0 + timedelta(minutes=95)) == "2.0"
        seen = versions_seen(conn, model_id, T0 - timedelta(hours=1), T0 + timedelta(hours=2))
        assert seen == [
            VersionRows("1.0", rows=2, tagged=0),
            VersionRows("2.0", rows=2, tagged=0),
            VersionRows("2.1", rows=2, tagged=2),
            VersionRows(None, rows=1, tagged=0),
        ]
        # A range that starts inside a stretch counts its rows under the version current at its start.
        assert versions_seen(conn, model_id, T0 + timedelta(minutes=15), T0 + timedelta(minutes=80)) == [
            VersionRows("1.0", rows=1, tagged=0),
            VersionRows("2.0", rows=1, tagged=0),
        ]
        listed = deployments(conn, model_id)
        assert [(d.version, d.traffic) for d in listed] == [("2.1", 0.1), ("2.0", None), ("1.0", None)]
        assert latest_deployment(conn, model_id, T0 + timedelta(minutes=60)).version == "2.0"  # type: ignore[union-attr]


def test_a_deployment_recorded_by_the_cli_reads_back_from_the_cli_and_the_api(
    store_engine: Engine, tmp_path: Path
) -> None:
    config = tmp_path / "driftscope.yaml"
    config.write_text(
        orjson.dumps({"store": store_engine.url.render_as_string(hide_password=False), "models": MODELS}).decode()
    )
    env = {**os.environ, "USER": "ana", "DRIFTSCOPE_CONFIG": str(config)}

    def driftscope(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args], env=env, capture_output=True, text=True, timeout=120
        )

    done = driftscope(
        "deploy", "record", "--model", "churn", "--version", "2.1", "--commit", "9f2c1ab", "--traffic", "10%",
        "--url", "https://ci.example.com/runs/812", "--at", "2026-03-01T12:00Z", "--note", "canary <b>",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "deployment 1: churn 2.1 at 2026-03-01 12:00:00Z, traffic 10%" in done.stdout
    assert driftscope("deploy", "record", "-m", "churn", "--version", "2.2", "--by", "release-bot").returncode == 0
    refused = driftscope(
        "deploy", "record", "-m", "churn", "--version", "3\n", "--traffic", "10", "--url", "javascript:alert(1)"
    )
    assert refused.returncode == 2
    assert "deployment.version:" in refused.stderr and "deployment.traffic:" in refused.stderr
    assert 'deployment.url: expected an http(s) URL with a host, got "javascript:alert(1)"' in refused.stderr
    listed = driftscope("deploy", "list", "-m", "churn")
    assert listed.returncode == 0, listed.stderr
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert lines[0] == ["id", "version", "deployed", "traffic", "commit", "by", "url", "note"]
    assert [line[1] for line in lines[1:]] == ["2.2", "2.1"]  # newest first
    assert lines[2] == [
        "1", "2.1", "2026-03-01 12:00:00Z", "10%", "9f2c1ab", "ana", "https://ci.example.com/runs/812", "canary <b>"
    ]  # fmt: skip
    assert lines[1][5] == "release-bot"

    key, _ = create_api_key(store_engine, "svc-read", scopes=["read"])
    with client_for(create_app(make_config(), store_engine), key) as client:
        served = client.get("/v1/models/churn/deployments").json()["deployments"]
    assert [(d["version"], d["deployed_by"], d["traffic"]) for d in served] == [
        ("2.2", "release-bot", None),
        ("2.1", "ana", 0.1),
    ]
    assert served[1]["url"] == "https://ci.example.com/runs/812" and served[1]["deployed_at"] == "2026-03-01T12:00:00Z"


def test_the_api_records_deployments_with_an_operate_or_admin_key(store_engine: Engine) -> None:
    keys = {
        scope: create_api_key(store_engine, f"ci-{scope}", scopes=[scope])[0]
        for scope in ("operate", "admin", "read", "ingest")
    }
    keys["operate-price"] = create_api_key(store_engine, "ci-price", models=["price"], scopes=["operate"])[0]
    sync_models(store_engine, make_config())  # as `driftscope api` does when it starts
    app = create_app(make_config(), store_engine)
    with client_for(app) as client:

        def post(key: str, body: dict[str, Any], model: str = "churn") -> httpx.Response:
            return client.post(f"/v1/models/{model}/deployments", json=body, headers=bearer(key))

        first = post(keys["operate"], {"version": "2.0", "deployed_at": "2026-03-01T00:00:00Z", "commit": "abc"})
        assert first.status_code == 201, first.text
        assert {k: first.json()[k] for k in ("id", "model", "version", "deployed_by", "traffic", "commit")} == {
            "id": 1, "model": "churn", "version": "2.0", "deployed_by": "apikey:ci-operate", "traffic": None,
            "commit": "abc",
        }  # fmt: skip
        canary = post(keys["admin"], {"version": "2.1", "traffic": "10%", "url": "https://ci.example.com/r/9"})
        assert canary.status_code == 201 and canary.json()["traffic"] == 0.1
        assert canary.json()["deployed_by"] == "apikey:ci-admin"
        assert post(keys["read"], {"version": "x"}).status_code == 403
        assert post(keys["ingest"], {"version": "x"}).status_code == 403
        assert post(keys["operate-price"], {"version": "x"}).status_code == 403  # not its model
        assert post(keys["operate"], {"version": "x"}, model="nope").status_code == 404
        bad = post(keys["operate"], {"version": "", "traffic": 2, "url": "ftp://ci.example.com/x"})
        assert bad.status_code == 400
        assert bad.json()["detail"] == (
            "deployment.version: version must be 1 to 100 characters, got 0; deployment.traffic: must be more than 0"
            " and at most 1 (100%), got 2.0 (a percentage needs %: 10%); deployment.url: expected an http(s) URL with"
            ' a host, got "ftp://ci.example.com/x"'
        )
        assert post(keys["operate"], {"version": "1", "deployed_by": "me"}).status_code == 422  # not the caller's say
        listed = client.get("/v1/models/churn/deployments", headers=bearer(keys["read"])).json()["deployments"]
        assert [d["version"] for d in listed] == ["2.1", "2.0"]
        since = client.get(
            "/v1/models/churn/deployments", params={"since": "2026-03-02T00:00:00Z"}, headers=bearer(keys["read"])
        )
        assert [d["version"] for d in since.json()["deployments"]] == ["2.1"]
        # The model's detail: the current version (the canary is not it) and the versions of the last 24 hours.
        now = datetime.now(UTC)
        push(store_engine, [canonical(i, timestamp=(now - timedelta(hours=1)).isoformat()) for i in range(3)])
        push(store_engine, [canonical(9, timestamp=(now - timedelta(hours=2)).isoformat(), model_version="2.1")])
        push(store_engine, [canonical(8, timestamp=(now - timedelta(hours=30)).isoformat(), model_version="1.9")])
        detail = client.get("/v1/models/churn", headers=bearer(keys["read"])).json()
    assert detail["current_version"] == "2.0"
    assert detail["versions_24h"] == [
        {"version": "2.0", "rows": 3, "tagged": 0},
        {"version": "2.1", "rows": 1, "tagged": 1},
    ]


# --- alert messages ----------------------------------------------------------------------------------

ALERT_RULE = {"name": "feature drift", "when": "drift.share_drifted > 0.3", "for": 1, "notify": ["console"]}


def _fired(engine: Engine, config: Any, now: datetime) -> dict[str, Any]:
    evaluate(engine, config, now)
    with engine.connect() as connection:
        (annotations,) = connection.scalars(select(Alert.annotations)).all()
    return annotations


def test_an_alert_that_began_after_the_latest_deployment_says_since_which(store_engine: Engine) -> None:
    config = alert_config([ALERT_RULE], {"console": {"kind": "console"}}, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    record_deployment(store_engine, "churn", "2.0", deployed_by="ana", at=ALERT_T0 - timedelta(days=3))
    record_deployment(
        store_engine, "churn", "2.1", deployed_by="apikey:ci", at=ALERT_T0 - timedelta(minutes=40), traffic="10%",
        commit="9f2c1ab", url="https://ci.example.com/runs/812",
    )  # fmt: skip
    add_window(store_engine, model, ALERT_T0 - HOUR, 0.1, {"tenure": 0.5})
    add_window(store_engine, model, ALERT_T0, 0.67, {"tenure": 1e-9})
    notes = _fired(store_engine, config, ALERT_T0 + HOUR)
    assert notes["summary"] == (
        "feature drift: drift.share_drifted on churn = 0.67 > 0.3, since deployment of 2.1 at 2026-03-02T07:20:00Z"
        " (the breach began 40 min after it)"
    )
    assert notes["deployment"]["version"] == "2.1" and notes["deployment"]["traffic"] == 0.1
    lines = alert_lines({"state": "firing", "severity": "warning", "rule": "feature drift", "annotations": notes})
    assert (
        "since deployment of 2.1 at 2026-03-02T07:20:00Z (the breach began 40 min after it): deployed 2.1"
        " (10% canary, commit 9f2c1ab, by apikey:ci): https://ci.example.com/runs/812"
    ) in lines


def test_an_alert_names_a_deployment_inside_its_first_window_and_none_made_after_the_breach(
    store_engine: Engine,
) -> None:
    config = alert_config([ALERT_RULE], {"console": {"kind": "console"}}, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    add_window(store_engine, model, ALERT_T0, 0.67, {"tenure": 1e-9})
    # No deployment at all: the message is as before.
    assert "deployment" not in _fired(store_engine, config, ALERT_T0 + HOUR)
    with transaction(store_engine) as session:
        # Deployed 20 minutes into the first breached window: the window mixes both versions.
        inside = deployment_note(session, model, ALERT_T0, HOUR, ALERT_T0 + HOUR)
        assert inside is None
    record_deployment(store_engine, "churn", "3.0", deployed_by="bob", at=ALERT_T0 + timedelta(minutes=20))
    with transaction(store_engine) as session:
        inside = deployment_note(session, model, ALERT_T0, HOUR, ALERT_T0 + HOUR)
        assert inside is not None
        assert inside["text"] == (
            "since deployment of 3.0 at 2026-03-02T08:20:00Z (the breach began in the window it was deployed in)"
        )
    # A rollback recorded after the breach began is the latest deployment: the breach predates it.
    record_deployment(store_engine, "churn", "2.0", deployed_by="bob", at=ALERT_T0 + 2 * HOUR)
    with transaction(store_engine) as session:
        assert deployment_note(session, model, ALERT_T0, HOUR, ALERT_T0 + 3 * HOUR) is None
        # Evaluated as of before the rollback, 3.0 is still the latest.
        assert deployment_note(session, model, ALERT_T0, HOUR, ALERT_T0 + HOUR) is not None
