"""The push API over the real store (SQLite and the Postgres fixture), in process through TestClient."""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, func, select

from monitor.api.app import Public, RequireScope, create_app, route_access
from monitor.config import Config, parse_config
from monitor.store.api_keys import (
    SCOPES,
    UNKNOWN_BUCKET,
    ApiKeyError,
    FailureLimiter,
    create_api_key,
    list_api_keys,
    revoke_api_key,
)
from monitor.store.engine import make_engine
from monitor.store.tables import AuthFailure, PendingLabel, Prediction, RejectedRecord

MODELS = {
    "churn": {
        "task": "binary",
        "fields": {
            "id": "request_id",
            "timestamp": "@timestamp",
            "prediction": "output.label",
            "score": "output.proba",
            "label": "outcome",
        },
        "features": {"tenure": "numeric", "plan": "categorical", "monthly_charges": "numeric"},
    },
    "price": {"task": "regression", "features": {"sqft": "numeric"}},
}


def make_config(store: str = "sqlite://", **api: Any) -> Config:
    return parse_config({"store": store, "models": MODELS, "api": api})


def canonical(i: int, **changes: Any) -> dict[str, Any]:
    record = {
        "id": f"r{i}",
        "timestamp": "2026-03-01T12:00:00Z",
        "features": {"tenure": i, "plan": "pro" if i % 2 else "basic", "monthly_charges": 20.5 + i},
        "prediction": i % 2,
        "score": 0.25,
    }
    record.update(changes)
    return record


@contextlib.contextmanager
def serving(app: FastAPI, port: int = 0) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server in a thread; yields its base URL."""
    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            thread.join(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


@contextlib.contextmanager
def client_for(app: FastAPI, key: str | None = None) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with serving(app) as url, httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def api(store_engine: Engine) -> Iterator[tuple[httpx.Client, str, Engine]]:
    key, _ = create_api_key(store_engine, "svc-test")
    with client_for(create_app(make_config(max_body_bytes=200_000), store_engine), key) as client:
        yield client, key, store_engine


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def count(engine: Engine, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(getattr(table, column) == value)
    with engine.connect() as connection:
        return connection.scalar(query)


def predictions(engine: Engine) -> dict[str, Prediction]:
    with engine.connect() as connection:
        return {row.prediction_id: row for row in connection.execute(select(Prediction))}


@pytest.mark.integration
def test_batch_is_stored_once_and_reads_back_typed(api) -> None:
    client, _, engine = api
    batch = [canonical(i) for i in range(50)]
    first = client.post("/v1/models/churn/predictions", json=batch)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 50, "rejected": [], "replayed": False}
    again = client.post("/v1/models/churn/predictions", json=[*batch[:10], canonical(50)])
    assert again.json()["accepted"] == 11
    rows = predictions(engine)
    assert len(rows) == 51
    row = rows["r3"]
    assert row.features == {"tenure": 3, "plan": "pro", "monthly_charges": 23.5}
    assert (row.prediction, row.score, row.label, row.source) == (1, 0.25, None, "api")
    assert row.ts.isoformat() == "2026-03-01T12:00:00+00:00"


@pytest.mark.integration
def test_ndjson_and_epoch_timestamps(api) -> None:
    client, _, engine = api
    lines = [canonical(1, timestamp=1772366400), canonical(2, timestamp=1772366400123, features={"tenure": None})]
    body = b"\n".join(orjson.dumps(r) for r in lines) + b"\n\n"
    response = client.post(
        "/v1/models/churn/predictions", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.json()["accepted"] == 2
    rows = predictions(engine)
    assert rows["r1"].ts.isoformat() == "2026-03-01T12:00:00+00:00"
    assert rows["r2"].ts.isoformat() == "2026-03-01T12:00:00.123000+00:00"
    assert rows["r2"].features == {"tenure": None, "plan": None, "monthly_charges": None}


@pytest.mark.integration
def test_bad_records_are_rejected_one_by_one(api) -> None:
    client, _, engine = api
    huge = "x" * 10_000_000
    good = [canonical(i) for i in range(3)]
    bad = [
        {k: v for k, v in canonical(10).items() if k != "id"},  # missing id
        canonical(11, features={"tenure": "abc"}),  # wrong type
        canonical(12, score=1e308 * 10),  # inf: orjson writes it as null → fine; checked below via NDJSON
        canonical(13, extra=1),  # unknown field
        canonical(14, features={"plan": huge}),  # 10 MB string
        canonical(15, features={"tenure": 1, "colour": "red"}),  # unknown feature
        canonical(16, timestamp="yesterday"),
        canonical(17, prediction=None),
        canonical(18, score=1.5),
        "not an object",
    ]
    lines = [orjson.dumps(r) for r in good + bad]
    lines += [b'{"id": "r19", "timestamp": 0, "features": {"tenure": NaN}, "prediction": 1}']  # not JSON, but read
    lines += [b'{"id": "r20", "timestamp": 0, "features": {"plan": "\xff\xfe"}, "prediction": 1}']  # invalid UTF-8
    lines += [b'{"id": "r21", ']  # truncated
    app = create_app(make_config(max_body_bytes=30_000_000), engine)
    with client_for(app, client.headers["Authorization"].removeprefix("Bearer ")) as big:
        response = big.post(
            "/v1/models/churn/predictions", content=b"\n".join(lines), headers={"Content-Type": "application/x-ndjson"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 4  # the 3 good ones and r12 (its inf became null, a missing score)
    messages = {r["index"]: r["message"] for r in body["rejected"]}
    assert messages[3] == "[3].id: required field is missing"
    assert messages[4] == '[4].features.tenure: expected number, got "abc"'
    assert messages[6].startswith("[6].extra: unknown field (expected features, id, label, model_version, prediction")
    assert messages[7] == "[7].features.plan: string of 10000000 characters is longer than 1024"
    assert messages[8].startswith("[8].features.colour: unknown feature (known: tenure, plan, monthly_charges)")
    assert messages[9] == '[9].timestamp: expected an ISO-8601 time or epoch seconds/milliseconds, got "yesterday"'
    assert messages[10] == "[10].prediction: required field is null"
    assert messages[11] == "[11].score: expected a probability in [0, 1], got 1.5"
    assert messages[12] == "[12]: expected a JSON object, got string"
    assert messages[13] == "[13].features.tenure: expected a finite number, got nan"
    assert messages[14].startswith("[14]: not valid JSON")
    assert messages[15].startswith("[15]: not valid JSON")
    assert sorted(messages) == [3, 4, *range(6, 16)]
    assert set(predictions(engine)) == {"r0", "r1", "r2", "r12"}
    with engine.connect() as connection:
        stored = connection.execute(select(RejectedRecord).order_by(RejectedRecord.id)).all()
    assert [r.reason for r in stored] == [r["message"] for r in body["rejected"]]
    assert stored[1].record_ref == "id=r11" and stored[1].field == "features.tenure"
    assert len(stored[4].payload) <= 2000  # the 10 MB record is kept only in part


@pytest.mark.integration
def test_a_record_is_rejected_with_all_its_problems_and_an_all_rejected_batch_is_422(api) -> None:
    client, _, engine = api
    four = canonical(1, timestamp="noon", prediction=None, features={"tenure": "x", "age": 40, "plan": "pro"})
    response = client.post("/v1/models/churn/predictions", json=[four, canonical(2, id=None)])
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["accepted"] == 0 and [r["index"] for r in body["rejected"]] == [0, 1]
    first = body["rejected"][0]
    assert [(p["field"], p["reason"].split(" (")[0]) for p in first["problems"]] == [
        ("timestamp", 'expected an ISO-8601 time or epoch seconds/milliseconds, got "noon"'),
        ("features.age", "unknown feature"),
        ("features.tenure", 'expected number, got "x"'),
        ("prediction", "required field is null"),
    ]
    assert (first["field"], first["record_ref"]) == ("timestamp", "id=r1")
    assert first["message"].count("[0].") == 4
    with engine.connect() as connection:
        stored = connection.execute(select(RejectedRecord).order_by(RejectedRecord.id)).all()
    assert len(stored) == 2  # one row per record, every problem readable in it
    assert stored[0].reason == first["message"]
    assert stored[0].field == "timestamp, features.age, features.tenure, prediction"
    # The same batch replayed by its Idempotency-Key answers the same status; a partly rejected batch is a 200.
    headers = {"Idempotency-Key": "all-bad"}
    assert client.post("/v1/models/churn/labels", json=[{"id": "r1"}], headers=headers).status_code == 422
    replay = client.post("/v1/models/churn/labels", json=[{"id": "r1", "label": 1}], headers=headers)
    assert replay.status_code == 422 and replay.json()["replayed"] is True
    partial = client.post("/v1/models/churn/predictions", json=[canonical(3), canonical(4, id=None)])
    assert partial.status_code == 200 and partial.json()["accepted"] == 1
    assert client.post("/v1/models/churn/predictions", json=[]).status_code == 200  # nothing sent, nothing rejected
    assert count(engine, Prediction) == 1


@pytest.mark.integration
def test_non_finite_numbers_are_rejected(store_engine: Engine) -> None:
    from monitor.ingest import ingest_predictions

    config = make_config()
    records = [
        canonical(1, features={"tenure": float("nan")}),
        canonical(2, score=float("inf")),
        {"id": "p", "timestamp": 0, "features": {"sqft": 1.0}, "prediction": float("-inf")},
    ]
    result = ingest_predictions(store_engine, config, "churn", records[:2], "test", shape="canonical")
    assert [r.message for r in result.rejected] == [
        "[0].features.tenure: expected a finite number, got nan",
        "[1].score: expected a finite number, got inf",
    ]
    result = ingest_predictions(store_engine, config, "price", records[2:], "test", shape="canonical")
    assert result.rejected[0].message == "[0].prediction: expected a finite number, got -inf"
    assert count(store_engine, Prediction) == 0
    assert count(store_engine, RejectedRecord) == 3


@pytest.mark.integration
def test_nul_characters_are_rejected_on_both_stores(store_engine: Engine) -> None:
    """Postgres text/jsonb cannot hold NUL: one such record must not fail its batch there."""
    from monitor.ingest import ingest_predictions

    records = [
        canonical(1),
        canonical(2, features={"tenure": 2, "plan": "pro\x00", "monthly_charges": 1.0}),
        canonical(3, id="r\x003"),
        canonical(4, prediction="1\x00"),
    ]
    result = ingest_predictions(store_engine, make_config(), "churn", records, "test", shape="canonical")
    assert result.accepted == 1
    assert [r.message for r in result.rejected] == [
        "[1].features.plan: string contains a NUL (\\u0000) character",
        "[2].id: string contains a NUL (\\u0000) character",
        "[3].prediction: string contains a NUL (\\u0000) character",
    ]
    assert count(store_engine, Prediction) == 1
    assert count(store_engine, RejectedRecord) == 3


@pytest.mark.integration
def test_invalid_json_array_body_is_400_and_recorded(api) -> None:
    client, _, engine = api
    response = client.post(
        "/v1/models/churn/predictions", content=b'[{"id": 1,', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "body is not valid JSON" in response.json()["detail"]
    response = client.post("/v1/models/churn/predictions", json={"id": 1})
    assert response.status_code == 400
    assert response.json()["detail"] == "expected a JSON array of records, got a JSON dict"
    assert count(engine, RejectedRecord) == 2


@pytest.mark.integration
def test_labels_before_and_after_their_predictions(api) -> None:
    client, _, engine = api
    client.post("/v1/models/churn/predictions", json=[canonical(1), canonical(2)])
    response = client.post(
        "/v1/models/churn/labels",
        json=[{"id": "r1", "label": 1}, {"id": "r3", "label": 0, "timestamp": "2026-03-02T00:00:00Z"}, {"id": "r4"}],
    )
    assert response.json()["accepted"] == 2, response.text
    assert response.json()["rejected"][0]["message"] == "[2].label: required field is missing"
    assert count(engine, PendingLabel) == 1
    client.post("/v1/models/churn/predictions", json=[canonical(3), canonical(4)])
    rows = predictions(engine)
    assert {k: r.label for k, r in rows.items()} == {"r1": 1, "r2": None, "r3": 0, "r4": None}
    assert rows["r3"].label_ts.isoformat() == "2026-03-02T00:00:00+00:00"
    assert count(engine, PendingLabel) == 0
    # A re-sent prediction keeps its label; a corrected label replaces it.
    client.post("/v1/models/churn/predictions", json=[canonical(1)])
    client.post("/v1/models/churn/labels", json=[{"id": "r3", "label": 1}])
    rows = predictions(engine)
    assert (rows["r1"].label, rows["r3"].label) == (1, 1)


@pytest.mark.integration
def test_idempotency_key_replays_the_first_answer(api) -> None:
    client, _, engine = api
    headers = {"Idempotency-Key": "batch-7"}
    first = client.post("/v1/models/churn/predictions", json=[canonical(1), canonical(2, id=None)], headers=headers)
    replay = client.post("/v1/models/churn/predictions", json=[canonical(3)], headers=headers)
    assert replay.json() == {**first.json(), "replayed": True}
    assert set(predictions(engine)) == {"r1"}
    assert count(engine, RejectedRecord) == 1
    # Another route or model with the same key is a different request.
    other = client.post("/v1/models/churn/labels", json=[{"id": "r1", "label": 1}], headers=headers)
    assert other.json()["replayed"] is False


@pytest.mark.integration
def test_authentication_scope_and_errors(api) -> None:
    client, _, engine = api
    url = "/v1/models/churn/predictions"
    no_key = client.post(url, json=[canonical(1)], headers={"Authorization": ""})
    wrong = client.post(url, json=[canonical(1)], headers={"Authorization": "Bearer dsk_0000_nope"})
    assert no_key.status_code == wrong.status_code == 401
    assert no_key.json() == wrong.json() == {"detail": "invalid or missing API key"}
    scoped, _ = create_api_key(engine, "svc-price", ["price"])
    forbidden = client.post(url, json=[canonical(1)], headers={"Authorization": f"Bearer {scoped}"})
    assert forbidden.status_code == 403
    unknown = client.post("/v1/models/nope/predictions", json=[])
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == {"message": "unknown model 'nope'", "known_models": ["churn", "price"]}
    revoke_api_key(engine, "svc-price")
    revoked = client.post("/v1/models/price/predictions", json=[], headers={"Authorization": f"Bearer {scoped}"})
    assert revoked.status_code == 401 and revoked.json() == wrong.json()
    assert count(engine, Prediction) == 0


@pytest.mark.integration
def test_a_scoped_key_learns_no_model_outside_its_scope(api) -> None:
    client, _, engine = api
    scoped, _ = create_api_key(engine, "svc-price", ["price", "retired"])
    outside = client.post("/v1/models/churn/predictions", json=[], headers=bearer(scoped))
    unknown = client.post("/v1/models/nope/predictions", json=[], headers=bearer(scoped))
    assert outside.status_code == unknown.status_code == 403
    assert outside.json() == {"detail": "this API key may not write to model 'churn'"}
    assert unknown.json() == {"detail": "this API key may not write to model 'nope'"}
    # In its scope but no longer configured: the 404 names only the models the key may write to.
    retired = client.post("/v1/models/retired/labels", json=[], headers=bearer(scoped))
    assert retired.status_code == 404
    assert retired.json()["detail"] == {"message": "unknown model 'retired'", "known_models": ["price"]}


@pytest.mark.integration
def test_guessing_one_prefix_is_limited_but_never_locks_out_a_valid_key(api) -> None:
    # Behind an ingress every client has the same address: one client's bad keys must not block the others.
    client, key, engine = api
    url = "/v1/models/churn/predictions"
    other, other_info = create_api_key(engine, "svc-other")
    prefix = key.split("_")[1]
    guesses = [client.post(url, json=[], headers=bearer(f"dsk_{prefix}_guess{i}")) for i in range(12)]
    assert [g.status_code for g in guesses] == [401] * 10 + [429] * 2
    assert 0 < int(guesses[-1].headers["Retry-After"]) <= 61
    # The prefix is not secret, so the right secret still gets in: nobody can lock a key's owner out.
    assert client.post(url, json=[]).status_code == 200
    assert client.post(url, json=[], headers=bearer(other)).status_code == 200
    assert client.post(url, json=[], headers=bearer(f"dsk_{other_info.prefix}_guess")).status_code == 401


@pytest.mark.integration
def test_unknown_prefixes_share_one_bucket_whatever_x_forwarded_for_says(api) -> None:
    client, _, engine = api
    url = "/v1/models/churn/predictions"
    spray = [
        client.post(
            url, json=[], headers={**bearer(f"dsk_{secrets.token_hex(6)}_x"), "X-Forwarded-For": f"10.0.0.{i}"}
        ).status_code
        for i in range(30)
    ]
    assert spray == [401] * 10 + [429] * 20
    assert count(engine, AuthFailure) == count(engine, AuthFailure, bucket=UNKNOWN_BUCKET) == 10
    assert client.post(url, json=[], headers={"X-Forwarded-For": "10.0.0.1"}).status_code == 200


@pytest.mark.integration
def test_failure_count_is_shared_by_api_processes(api) -> None:
    client, key, engine = api
    url = "/v1/models/churn/predictions"
    bad = bearer(f"dsk_{key.split('_')[1]}_guess")
    # A second app over its own engine on the same store stands for a second API process.
    second_engine = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with client_for(create_app(make_config(), second_engine)) as second:
            halves = [client.post(url, json=[], headers=bad).status_code for _ in range(5)]
            halves += [second.post(url, json=[], headers=bad).status_code for _ in range(5)]
            assert halves == [401] * 10
            assert client.post(url, json=[], headers=bad).status_code == 429
            assert second.post(url, json=[], headers=bad).status_code == 429
    finally:
        second_engine.dispose()


@pytest.mark.integration
def test_failures_expire_with_their_window_and_are_deleted(store_engine: Engine) -> None:
    limiter = FailureLimiter(store_engine, max_failures=2, window=timedelta(seconds=1))
    limiter.record_failure("abc")
    limiter.record_failure("abc")
    assert 0 < limiter.retry_after("abc") <= 1
    assert limiter.retry_after("def") is None
    time.sleep(1.1)
    assert limiter.retry_after("abc") is None
    limiter.record_failure("def")
    assert count(store_engine, AuthFailure) == 1


@pytest.mark.integration
def test_body_size_limit(api) -> None:
    client, _, engine = api
    big = [canonical(i, features={"plan": "p" * 1000}) for i in range(300)]  # ~330 kB > 200 kB
    response = client.post("/v1/models/churn/predictions", json=big)
    assert response.status_code == 413
    chunked = client.post(
        "/v1/models/churn/predictions", content=iter([orjson.dumps(big)]), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    assert count(engine, Prediction) == 0


def test_every_route_declares_its_access_and_the_server_enforces_it(sqlite_engine: Engine) -> None:
    app = create_app(make_config(), sqlite_engine)
    access = {
        (route.path, method): route_access(route)
        for route in app.routes
        for method in sorted(getattr(route, "methods", None) or ["GET"])
        if method != "HEAD"
    }
    assert [path for path, declared in access.items() if declared is None] == []
    public = {path for (path, _), declared in access.items() if isinstance(declared, Public)}
    assert public == {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    assert all(len(declared.reason) > 20 for declared in access.values() if isinstance(declared, Public))
    scoped = {route: declared.scope for route, declared in access.items() if isinstance(declared, RequireScope)}
    accepted = {route: declared.accepted for route, declared in access.items() if isinstance(declared, RequireScope)}
    # Only recording a deployment and approving a reference take a second scope: pipelines hold operate keys,
    # platform admins admin ones.
    assert {route: scopes for route, scopes in accepted.items() if len(scopes) > 1} == {
        ("/v1/models/{model}/deployments", "POST"): ("operate", "admin"),
        ("/v1/models/{model}/references/{name}/approve", "POST"): ("operate", "admin"),
    }
    assert {route: scope for route, scope in scoped.items() if scope == "ingest"} == {
        ("/v1/models/{model}/predictions", "POST"): "ingest",
        ("/v1/models/{model}/labels", "POST"): "ingest",
    }
    # Reads are GETs; acting on alerts and uploading references are not (tests/integration/test_read_api.py).
    assert all((scope == "read") == (method == "GET") for (_, method), scope in scoped.items())
    callers: dict[str, str | None] = {"nobody": None}
    for scope in SCOPES:
        callers[scope], _ = create_api_key(sqlite_engine, f"svc-{scope}", scopes=[scope])
    with client_for(app) as client:
        for route_path, method in access:
            path = route_path.replace("{model}", "churn").replace("{alert_id}", "1").replace("{silence_id}", "1")
            path = path.replace("{name}", "train.csv")
            for caller, key in callers.items():
                record_id = f"{caller}-{path}"
                body = {"id": record_id, "label": 1} if path.endswith("/labels") else canonical(1, id=record_id)
                headers = bearer(key) if key else {}
                answer = client.request(method, path, json=[body], headers=headers)
                if route_path in public:
                    assert answer.status_code == 200, (method, path, caller, answer.text)
                elif key is None or caller not in accepted[route_path, method]:
                    assert answer.status_code == (401 if key is None else 403), (method, path, caller, answer.text)
                else:  # past authentication: ingested, or a read of what this empty store has (unknown alert...)
                    assert answer.status_code not in (401, 403), (method, path, caller, answer.text)


def test_key_scopes_are_stored_and_checked(sqlite_engine: Engine) -> None:
    _, info = create_api_key(sqlite_engine, "svc-ops", scopes=["operate", "ingest", "read"])
    assert info.scopes == ("ingest", "read", "operate")  # in SCOPES order
    assert {k.name: k.scopes for k in list_api_keys(sqlite_engine)} == {"svc-ops": ("ingest", "read", "operate")}
    assert create_api_key(sqlite_engine, "svc-default")[1].scopes == ("ingest",)
    with pytest.raises(ApiKeyError, match=r"unknown scope\(s\) write \(scopes: ingest, read, operate, admin\)"):
        create_api_key(sqlite_engine, "svc-bad", scopes=["ingest", "write"])
    with pytest.raises(ApiKeyError, match="at least one scope"):
        create_api_key(sqlite_engine, "svc-none", scopes=[])


def test_apikey_create_takes_scopes(sqlite_engine: Engine, tmp_path) -> None:
    from typer.testing import CliRunner

    from monitor.cli.main import app as cli

    config = tmp_path / "driftscope.yaml"
    config.write_text(orjson.dumps({"store": str(sqlite_engine.url), "models": MODELS}).decode())
    created = CliRunner().invoke(
        cli, ["apikey", "create", "--name", "svc-cli", "--scope", "ingest", "--scope", "read", "-c", str(config)]
    )
    assert created.exit_code == 0, created.output
    assert {k.name: k.scopes for k in list_api_keys(sqlite_engine)} == {"svc-cli": ("ingest", "read")}
    bad = CliRunner().invoke(cli, ["apikey", "create", "--name", "svc-x", "--scope", "root", "-c", str(config)])
    assert bad.exit_code == 2 and "unknown scope(s) root" in bad.output
    listed = CliRunner().invoke(cli, ["apikey", "list", "-c", str(config)], env={"COLUMNS": "200"})
    assert "ingest, read" in listed.output


@pytest.mark.integration
def test_health_readiness_and_openapi(api, tmp_path) -> None:
    client, _, _ = api
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/models/{model}/predictions"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-ndjson"}
    for route in ("predictions", "labels"):
        answers = spec["paths"][f"/v1/models/{{model}}/{route}"]["post"]["responses"]
        assert "every record of the batch was rejected" in answers["422"]["description"]
        # FastAPI's own 422 (a malformed header) has a `detail` body instead.
        assert answers["422"]["content"]["application/json"]["schema"]["anyOf"] == [
            {"$ref": "#/components/schemas/IngestResponse"},
            {"$ref": "#/components/schemas/ErrorOut"},
        ]
    problems = spec["components"]["schemas"]["RejectionOut"]["properties"]["problems"]
    assert problems["items"] == {"$ref": "#/components/schemas/ProblemOut"}
    assert client.get("/docs").status_code == 200
    down = create_app(make_config(), make_engine(f"sqlite:///{tmp_path}/no/such/dir.db"))
    with client_for(down) as unready:
        assert unready.get("/readyz").status_code == 503


@pytest.mark.integration
def test_labels_and_predictions_arriving_together_never_miss_each_other(postgres_engine: Engine) -> None:
    from monitor.ingest import ingest_labels, ingest_predictions

    config = make_config()
    for round_ in range(30):
        ids = [f"c{round_}-{i}" for i in range(100)]
        barrier = threading.Barrier(2)

        def predictions_side(ids: list[str] = ids, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            ingest_predictions(
                postgres_engine, config, "churn", [canonical(0, id=i) for i in ids], "t", shape="canonical"
            )

        def labels_side(ids: list[str] = ids, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            ingest_labels(
                postgres_engine, config, "churn", [{"id": i, "label": 1} for i in ids], "t", shape="canonical"
            )

        threads = [threading.Thread(target=predictions_side), threading.Thread(target=labels_side)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert count(postgres_engine, PendingLabel) == 0
    assert {row.label for row in predictions(postgres_engine).values()} == {1}
