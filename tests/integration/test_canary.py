"""The canary gate over a real store (SQLite and Postgres): `driftscope canary` and GET /v1/models/{m}/canary
give the same verdict on rows whose version is their own or the one deployed at their time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from monitor.api.app import create_app
from monitor.cli.main import app as cli
from monitor.config import Config, parse_config
from monitor.runs.canary import run_canary
from monitor.store.api_keys import create_api_key
from monitor.store.engine import transaction
from monitor.store.queries import sync_models
from monitor.store.tables import Deployment, MetricPoint, MetricSeries, Prediction
from tests.canary_traffic import MODEL, Row, traffic
from tests.integration.test_api import bearer, serving

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
REFERENCE = (NOW - timedelta(hours=6), NOW - timedelta(hours=4))
CANARY_AT = NOW - timedelta(hours=1)


def config_for(engine: Engine) -> dict[str, Any]:
    return {
        "store": engine.url.render_as_string(hide_password=False),
        "models": {"churn": MODEL},
        "monitors": {
            "churn-hourly": {
                "model": "churn",
                "reference": {"range": [r.isoformat() for r in REFERENCE]},
                "performance": ["roc_auc"],
                "estimated_performance": True,
            }
        },
    }


def insert(engine: Engine, model_id: int, rows: list[Row], *, labelled: bool) -> None:
    with transaction(engine) as session:
        session.add_all(
            Prediction(
                model_id=model_id, prediction_id=r.id, ts=r.ts, features=r.features, prediction=r.prediction,
                score=r.score, label=r.label if labelled else None, label_ts=r.ts if labelled else None,
                source="test", model_version=r.version,
            )
            for r in rows
        )  # fmt: skip


@pytest.fixture
def store(store_engine: Engine, tmp_path: Path) -> Iterator[tuple[Engine, Config, Path, int]]:
    raw = config_for(store_engine)
    config = parse_config(raw)
    model_id = sync_models(store_engine, config)["churn"]
    # 2.0 took all the traffic 8 hours ago; its reference is labelled; 2.1 took 10 % an hour ago.
    insert(store_engine, model_id, traffic(2000, REFERENCE[0], REFERENCE[1] - REFERENCE[0], seed=1, prefix="ref"),
           labelled=True)  # fmt: skip
    with transaction(store_engine) as session:
        session.add(Deployment(model_id=model_id, version="2.0", deployed_at=NOW - timedelta(hours=8),
                               deployed_by="ci"))  # fmt: skip
        session.add(Deployment(model_id=model_id, version="2.1", deployed_at=CANARY_AT, traffic=0.1, deployed_by="ci"))
    path = tmp_path / "driftscope.yaml"
    path.write_text(json.dumps(raw))
    yield store_engine, config, path, model_id


def canary(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["canary", "-m", "churn", "--candidate", "2.1", "--baseline", "2.0", "--format", "json", "-c",
              str(config), *args],
    )  # fmt: skip
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def test_cli_and_api_fail_a_candidate_worse_on_one_region_before_and_after_labels(store) -> None:
    engine, config, path, model_id = store
    live = traffic(4000, CANARY_AT, NOW - CANARY_AT - timedelta(seconds=1), seed=2, prefix="live", canary_share=0.1)
    insert(engine, model_id, live, labelled=False)

    code, body = canary(path)
    assert code == 1, body
    assert body["rows"]["candidate"] == sum(r.version == "2.1" for r in live)
    assert body["rows"]["baseline"] == sum(r.version is None for r in live)  # untagged rows: 2.0, deployed then
    assert any(n.startswith("range: since the deployment of 2.1") for n in body["notes"])
    worse = [f for f in body["findings"] if f["worse"]]
    assert {f["slice"] for f in worse if f["check"] == "prediction_drift"} >= {"region=eu"}
    assert not {f["slice"] for f in worse} & {"region=us", "region=apac"}
    assert any(r.startswith("score distribution in region=eu of 2.1 differs from 2.0's") for r in body["reasons"])
    assert {f["name"] for f in body["findings"] if f["check"] == "estimated_performance"} == {"roc_auc"}
    assert [n["what"] for n in body["needs"]] == ["labels", "labels"]

    key, _ = create_api_key(engine, "svc-read", scopes=["read"])
    with serving(create_app(config, engine)) as url:
        answer = httpx.get(f"{url}/v1/models/churn/canary", params={"candidate": "2.1", "baseline": "2.0"},
                           headers=bearer(key), timeout=60)  # fmt: skip
        assert answer.status_code == 200, answer.text
        api = answer.json()
        assert (api["verdict"], api["exit_code"], api["reasons"]) == ("worse", 1, body["reasons"])
        bad = httpx.get(f"{url}/v1/models/churn/canary", params={"candidate": "2.1", "baseline": "2.1"},
                        headers=bearer(key), timeout=60)  # fmt: skip
        assert bad.status_code == 400 and "the same version" in bad.json()["detail"]
        since = httpx.get(f"{url}/v1/models/churn/canary", headers=bearer(key), timeout=60,
                          params={"candidate": "2.1", "baseline": "2.0", "since": "yesterday"})  # fmt: skip
        assert since.status_code == 400 and "expected a duration" in since.json()["detail"]

    # Labels arrive: realized ROC AUC, with its interval, names the region too.
    with transaction(engine) as session:
        for r in live:
            session.execute(update(Prediction).where(Prediction.prediction_id == r.id)
                            .values(label=r.label, label_ts=r.ts))  # fmt: skip
    code, body = canary(path)
    assert code == 1, body
    realized = {f["slice"]: f for f in body["findings"] if f["check"] == "realized_performance"}
    assert realized[None]["worse"] and realized[None]["ci"][1] < 0
    assert realized["region=eu"]["worse"] and not realized["region=us"]["worse"]
    assert any(r.startswith("realized roc_auc in region=eu of 2.1 ") and "CI [" in r for r in body["reasons"])
    assert body["needs"] == []


def test_too_little_candidate_traffic_waits_saying_how_much_more(store) -> None:
    engine, _, path, model_id = store
    insert(engine, model_id, traffic(1500, CANARY_AT, NOW - CANARY_AT, seed=3, prefix="live", canary_share=0.02),
           labelled=False)  # fmt: skip
    code, body = canary(path)
    assert code == 2, body
    (need,) = body["needs"]
    assert (need["role"], need["what"], need["need"]) == ("candidate", "rows", 200)
    assert need["more"] == 200 - body["rows"]["candidate"] > 0
    assert body["reasons"] == [need["message"]]
    assert need["message"].startswith(f"candidate 2.1 has {body['rows']['candidate']} rows, needs 200: ")

    result = CliRunner().invoke(cli, ["canary", "-m", "churn", "--candidate", "2.1", "--baseline", "2.0", "-c",
                                      str(path)])  # fmt: skip
    assert result.exit_code == 2
    assert "not enough data yet" in result.stdout and need["message"] in result.stdout


def test_a_range_longer_than_the_limit_is_refused_before_any_row_is_read(store) -> None:
    """since=3650d would load ten years of both versions' rows: the CLI and the API refuse it naming the limit,
    with the exit code and status of a malformed since; the limit itself (31d) is accepted."""
    engine, config, path, _ = store
    args = ["canary", "-m", "churn", "--candidate", "2.1", "--baseline", "2.0", "-c", str(path), "--since"]
    malformed = CliRunner().invoke(cli, [*args, "yesterday"])
    too_long = CliRunner().invoke(cli, [*args, "3650d"])
    assert too_long.exit_code == malformed.exit_code == 2, too_long.output
    assert "longer than the 31 days a canary compares at most" in too_long.output
    at_limit = CliRunner().invoke(cli, [*args, "31d"])
    assert at_limit.exit_code == 2 and "not enough data yet" in at_limit.stdout  # judged: too few rows

    key, _ = create_api_key(engine, "svc-read", scopes=["read"])
    with serving(create_app(config, engine)) as url:
        for since in ("3650d", "999999999d", (NOW - timedelta(days=32)).isoformat()):
            answer = httpx.get(f"{url}/v1/models/churn/canary", headers=bearer(key), timeout=60,
                               params={"candidate": "2.1", "baseline": "2.0", "since": since})  # fmt: skip
            assert answer.status_code == 400, (since, answer.text)
            assert "longer than the 31 days a canary compares at most" in answer.json()["detail"]

    # Without since, a deployment of the candidate older than the limit starts the range at the limit instead.
    later = NOW + timedelta(days=40)
    verdict = run_canary(engine, config, "churn", "2.1", "2.0", now=later)
    assert (verdict.start, verdict.end) == (later - timedelta(days=31), later)
    assert any(n.startswith("range: the last 31 days, the longest a canary compares (the deployment of 2.1 at ")
               for n in verdict.notes)  # fmt: skip


def test_service_metrics_are_compared_per_version_label(store_engine: Engine, tmp_path: Path) -> None:
    raw = config_for(store_engine)
    raw["sources"] = {"prom": {"kind": "prometheus", "url": "http://prometheus.invalid:9090"}}
    raw["models"]["churn"] = {
        **MODEL,
        "metrics": {"error_rate": {"source": "prom", "query": "sum by (version) (rate(errors_total[5m]))"}},
        "canary": {**MODEL["canary"], "service_metrics": ["error_rate"]},
    }
    model_id = sync_models(store_engine, parse_config(raw))["churn"]
    insert(store_engine, model_id, traffic(3000, CANARY_AT, NOW - CANARY_AT, seed=4, prefix="live", canary_share=0.2),
           labelled=False)  # fmt: skip
    with transaction(store_engine) as session:
        session.add(Deployment(model_id=model_id, version="2.0", deployed_at=NOW - timedelta(hours=8),
                               deployed_by="ci"))  # fmt: skip
        for version, rate in (("2.0", 0.01), ("2.1", 0.04), ("1.9", 0.5)):
            series = MetricSeries(model_id=model_id, name="error_rate", query="q", labels={"version": version},
                                  labels_hash=version)  # fmt: skip
            session.add(series)
            session.flush()
            # One point an hour before the range (not counted) and one a minute within it.
            session.add_all(MetricPoint(series_id=series.id, ts=CANARY_AT + timedelta(minutes=m), value=rate * (m > 0))
                            for m in (-60, *range(1, 60)))  # fmt: skip
    path = tmp_path / "driftscope.yaml"
    path.write_text(json.dumps(raw))
    # From CANARY_AT, not "1h": NOW was read when the module was imported, minutes before this test runs.
    code, body = canary(path, "--since", CANARY_AT.isoformat())
    (found,) = [f for f in body["findings"] if f["check"] == "service_metric"]
    assert (found["candidate"], found["baseline"], found["worse"]) == (pytest.approx(0.04), pytest.approx(0.01), True)
    assert found["message"].startswith("error_rate of 2.1 0.04 vs 0.01 for 2.0 (mean of 59 and 59 points")
    assert code == 1 and found["message"] in body["reasons"]
