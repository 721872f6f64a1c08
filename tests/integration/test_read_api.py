"""The read API (/v1 GETs, acknowledge and silences, reference upload), `driftscope status` and the SDK's read
methods, over a real uvicorn server on SQLite and Postgres."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import Engine

from monitor.api.app import create_app
from monitor.api.read import ScoresOut
from monitor.sdk import Client, ReadError
from monitor.store.api_keys import create_api_key
from monitor.store.engine import transaction
from monitor.store.queries import sync_models
from monitor.store.tables import Alert, RejectedRecord, Run, Score
from tests.integration.test_api import MODELS, bearer, make_config, serving

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
FEATURES = ("monthly_charges", "plan", "tenure")


def add_window(engine: Engine, model_id: int, start: datetime, *, drifting: tuple[str, ...] = ()) -> None:
    """One computed window of monitor churn-hourly: a drift score per feature, share_drifted and roc_auc."""
    with transaction(engine) as session:
        run = Run(
            monitor="churn-hourly", model_id=model_id, window_start=start, window_end=start + HOUR,
            status="succeeded", row_count=100, label_count=80, attempts=1, duration_ms=12.5,
        )  # fmt: skip
        session.add(run)
        session.flush()
        common = {"run_id": run.id, "monitor": "churn-hourly", "model_id": model_id, "window_start": start}
        for feature in FEATURES:
            breached = feature in drifting
            value = 0.3 if breached else 0.05
            session.add(Score(**common, kind="drift", feature=feature, method="ks", value=value, threshold=0.1,
                              breached=breached))  # fmt: skip
        share = len(drifting) / len(FEATURES)
        session.add(Score(**common, kind="drift", method="share_drifted", value=share, breached=share > 0.5))
        session.add(Score(**common, kind="performance", method="roc_auc", value=0.8, breached=False))


@pytest.fixture
def served(store_engine: Engine) -> Iterator[tuple[str, Engine, dict[str, str], int]]:
    config = make_config()
    ids = sync_models(store_engine, config)
    keys = {
        scope: create_api_key(store_engine, f"svc-{scope}", scopes=[scope])[0]
        for scope in ("read", "operate", "admin", "ingest")
    }
    keys["read-price"] = create_api_key(store_engine, "svc-read-price", models=["price"], scopes=["read"])[0]
    with serving(create_app(config, store_engine)) as url:
        yield url, store_engine, keys, ids["churn"]


def get(url: str, key: str, path: str, **params: object) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, headers=bearer(key), timeout=30)


def fire(engine: Engine, model: str, severity: str = "warning") -> int:
    with transaction(engine) as session:
        alert = Alert(rule=f"{model}-drift", fingerprint=f"fp-{model}-{severity}", labels={"model": model},
                      severity=severity, state="firing", fired_at=T0)  # fmt: skip
        session.add(alert)
        session.flush()
        return alert.id


def test_health_models_windows_and_the_status_gate_agree(served, tmp_path: Path) -> None:
    url, engine, keys, churn = served
    assert get(url, keys["read"], "/v1/models/churn/health").json()["state"] == "no data"
    for i in range(3):
        add_window(engine, churn, T0 + i * HOUR, drifting=("tenure",) if i == 2 else ())
    health = get(url, keys["read"], "/v1/models/churn/health").json()
    assert (health["state"], health["exit_code"], health["firing"]) == ("ok", 0, [])
    assert health["drifting_features"] == ["tenure"]
    assert health["latest_window"] == (T0 + 2 * HOUR).isoformat().replace("+00:00", "Z")
    assert health["performance"] == {"roc_auc": 0.8} and health["monitor"] == "churn-hourly"
    alert_id = fire(engine, "churn", "critical")
    health = get(url, keys["read"], "/v1/models/churn/health").json()
    assert (health["state"], health["exit_code"]) == ("critical", 1)
    assert health["firing"][0]["id"] == alert_id

    models = get(url, keys["read"], "/v1/models").json()["models"]
    assert [(m["model"], m["state"]) for m in models] == [("churn", "critical"), ("price", "no data")]
    windows = get(url, keys["read"], "/v1/models/churn/windows", since=(T0 + HOUR).isoformat()).json()["windows"]
    assert [(w["window_start"][:13], w["row_count"], w["label_count"], w["status"]) for w in windows] == [
        ("2026-03-01T02", 100, 80, "succeeded"),
        ("2026-03-01T01", 100, 80, "succeeded"),
    ]
    assert get(url, keys["read"], "/v1/models/churn").json()["features"] == MODELS["churn"]["features"]

    # The same function from the CLI, with the gate's exit codes.
    from typer.testing import CliRunner

    from monitor.cli.main import app as cli

    config = tmp_path / "driftscope.yaml"
    config.write_text(orjson.dumps({"store": engine.url.render_as_string(hide_password=False),
                                    "models": MODELS}).decode())  # fmt: skip
    runner = CliRunner()
    alerting = runner.invoke(cli, ["status", "--model", "churn", "--format", "json", "-c", str(config)])
    assert alerting.exit_code == 1, alerting.output
    printed = orjson.loads(alerting.stdout)
    assert printed["drifting_features"] == ["tenure"]
    # Byte for byte the API's document (times with Z, as the API gives them), but for the clock-dependent age.
    served_health = get(url, keys["read"], "/v1/models/churn/health").json()
    assert printed["latest_window"] == "2026-03-01T02:00:00Z" and printed["firing"][0]["since"].endswith("Z")
    assert {**printed, "age_seconds": None} == {**served_health, "age_seconds": None}
    assert runner.invoke(cli, ["status", "--model", "price", "-c", str(config)]).exit_code == 2
    with transaction(engine) as session:
        session.get(Alert, alert_id).state = "resolved"
    assert runner.invoke(cli, ["status", "--model", "churn", "-c", str(config)]).exit_code == 0


def test_health_gives_the_dashboards_numbers(store_engine: Engine) -> None:
    """On the dashboard's seeded store (two monitors per model, stored predictions), the API's health and
    models list give the numbers the overview and the model page show (issue 18: the same number
    everywhere): rows of 24 h, share drifted, drifting inputs, performance, last window, health."""
    from dashboard import queries
    from dashboard.pages.overview import model_health
    from monitor.store.tables import Prediction
    from tests.seed import seed_store

    seed = seed_store(store_engine, days=3)
    churn = seed.churn
    # Late predictions of the newest window, received after it was computed: stored, not in its run's count.
    with transaction(store_engine) as session:
        session.add_all(
            Prediction(model_id=churn.id, prediction_id=f"late-{i}", ts=churn.last_window + i * timedelta(minutes=1),
                       features={}, source="test")
            for i in range(5)
        )  # fmt: skip
    key = create_api_key(store_engine, "svc-read", scopes=["read"])[0]
    with serving(create_app(make_config(), store_engine)) as url:
        health = get(url, key, "/v1/models/churn/health").json()
        listed = {m["model"]: m for m in get(url, key, "/v1/models").json()["models"]}

    with queries.read_only(store_engine) as conn:
        overview = queries.overview(conn)
        open_alerts = [a for a in queries.open_alerts(conn) if a.model == churn.name]
        last = churn.last_window
        matrix = queries.drift_matrix(conn, churn.id, churn.monitor, last, last + HOUR, HOUR)
    row = overview[(overview["model_id"] == churn.id) & (overview["monitor"] == churn.monitor)].iloc[0]
    assert health["monitor"] == churn.monitor
    assert health["rows_24h"] == row["predictions_24h"] == churn.predictions_24h + 5
    assert churn.last_share[churn.monitor] != churn.last_share[churn.rolling_monitor]
    assert health["share_drifted"] == pytest.approx(row["share_drifted"])
    assert health["share_drifted"] == pytest.approx(churn.last_share[churn.monitor])
    drifting = matrix[(matrix["breached"] > 0) & ~matrix["feature"].isin(queries.OUTPUT_COLUMNS)]
    assert health["drifting_features"] == sorted(drifting["feature"]) and health["drifting_features"]
    for kind in ("performance", "estimated_performance"):
        shown = {c.split(":")[1]: row[c] for c in overview.columns if c.count(":") == 1 and c.startswith(f"{kind}:")}
        assert health[kind] == pytest.approx({m: v for m, v in shown.items() if v == v}) and health[kind]
    assert health["latest_window"] == row["last_window"].isoformat().replace("+00:00", "Z")
    assert health["state"] == model_health(open_alerts, True) == "critical"
    assert {k: v for k, v in listed["churn"].items() if k != "age_seconds"} == {
        k: v for k, v in health.items() if k != "age_seconds"
    }
    assert (listed["pricing"]["state"], listed["pricing"]["rows_24h"]) == ("no data", 0)


def test_scopes_and_model_scoped_keys(served) -> None:
    url, engine, keys, _ = served
    fire(engine, "churn")
    assert get(url, keys["ingest"], "/v1/models").status_code == 403
    assert get(url, keys["read-price"], "/v1/models/churn/health").status_code == 403
    assert [m["model"] for m in get(url, keys["read-price"], "/v1/models").json()["models"]] == ["price"]
    assert get(url, keys["read-price"], "/v1/alerts").json()["alerts"] == []
    assert len(get(url, keys["read"], "/v1/alerts", state="firing").json()["alerts"]) == 1
    missing = get(url, keys["read"], "/v1/models/nope/health")
    assert missing.status_code == 404 and missing.json()["detail"]["known_models"] == ["churn", "price"]


def test_score_pages_stay_correct_while_windows_are_written(served) -> None:
    url, engine, keys, churn = served
    for i in range(5):
        add_window(engine, churn, T0 + i * HOUR)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"kind": "drift", "limit": 7, **({"cursor": cursor} if cursor else {})}
        response = get(url, keys["read"], "/v1/models/churn/scores", **params)
        page = response.json()
        # Written straight from the rows (no model per row): the body is still the documented ScoresOut, as
        # pydantic writes it (UTC datetimes with Z).
        assert response.headers["content-type"] == "application/json"
        assert orjson.loads(ScoresOut.model_validate(page).model_dump_json()) == page
        seen += [s["id"] for s in page["scores"]]
        # Whole windows per page: every window_start in a page has all its 4 drift scores.
        starts = [s["window_start"] for s in page["scores"]]
        assert all(starts.count(s) == 4 for s in starts)
        pages += 1
        if pages == 1:  # a worker writes a newer window between two pages: read once, later
            add_window(engine, churn, T0 + 5 * HOUR)
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6 * 4
    assert get(url, keys["read"], "/v1/models/churn/scores", cursor="garbage!").status_code == 400

    csv = httpx.get(f"{url}/v1/models/churn/scores", params={"kind": "performance", "limit": 2},
                    headers={**bearer(keys["read"]), "Accept": "text/csv"}, timeout=30)  # fmt: skip
    assert csv.headers["content-type"].startswith("text/csv") and csv.headers["x-next-cursor"]
    assert csv.text.splitlines()[0].startswith("id,monitor,window_start,kind,feature,method,value")
    matrix = get(url, keys["read"], "/v1/models/churn/scores/matrix").json()
    assert matrix["features"] == list(FEATURES) and len(matrix["windows"]) == 6
    assert matrix["values"][0] == [0.05, 0.05, 0.05]

    client = Client(url, api_key=keys["read"])
    frame = client.scores("churn", kind="drift", since=T0 + HOUR, page_size=5)
    assert len(frame) == 5 * 4 and frame["window_start"].min() == T0 + HOUR
    with pytest.raises(ReadError) as refused:
        Client(url, api_key=keys["ingest"]).health("churn")
    assert refused.value.status == 403


def test_alerts_acknowledge_and_silences(served) -> None:
    url, engine, keys, _ = served
    alert_id = fire(engine, "churn")
    with httpx.Client(base_url=url, headers=bearer(keys["operate"]), timeout=30) as operate:
        assert httpx.post(f"{url}/v1/alerts/{alert_id}/acknowledge", headers=bearer(keys["read"])).status_code == 403
        acked = operate.post(f"/v1/alerts/{alert_id}/acknowledge", json={"comment": "rolling back"})
        assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "apikey:svc-operate"
        assert Client(url, api_key=keys["read"]).alerts(state="firing")[0]["ack_comment"] == "rolling back"
        assert operate.post("/v1/alerts/999999/acknowledge").status_code == 404

        created = operate.post("/v1/silences", json={"matchers": {"model": "churn"}, "duration_minutes": 60,
                                                      "comment": "migration"})  # fmt: skip
        assert created.status_code == 201 and created.json()["active"] is True
        assert (
            operate.post("/v1/silences", json={"matchers": {}, "duration_minutes": 5, "comment": "x"}).status_code
            == 400
        )
        listed = get(url, keys["read"], "/v1/silences").json()["silences"]
        assert [s["id"] for s in listed] == [created.json()["id"]]
        expired = operate.post(f"/v1/silences/{created.json()['id']}/expire")
        assert expired.status_code == 200 and expired.json()["active"] is False
        assert get(url, keys["read"], "/v1/silences").json()["silences"] == []


def test_rejected_records_and_references(served, tmp_path: Path) -> None:
    url, engine, keys, _ = served
    with transaction(engine) as session:
        for i in range(5):
            session.add(RejectedRecord(model="churn", source="api", record_ref=f"r{i}", field="features.tenure",
                                       reason='expected number, got "abc"'))  # fmt: skip
    rejected = Client(url, api_key=keys["read"]).rejected_records("churn")
    assert [r["record_ref"] for r in rejected] == ["r4", "r3", "r2", "r1", "r0"]
    page = get(url, keys["read"], "/v1/models/churn/rejected", limit=2).json()
    assert len(page["rejected"]) == 2 and page["next_cursor"]

    body = "tenure,plan,monthly_charges,prediction\n" + "".join(f"{i},pro,{i}.5,1\n" for i in range(50))
    upload = httpx.put(f"{url}/v1/models/churn/references/train.csv", content=body.encode(),
                       headers={**bearer(keys["admin"]), "Content-Type": "text/csv"}, timeout=30)  # fmt: skip
    assert upload.status_code == 200, upload.text
    assert upload.json() == {"name": "train.csv", "model": "churn", "rows": 50}
    bad = httpx.put(f"{url}/v1/models/churn/references/bad.csv", content=b"tenure\n1\n",
                    headers=bearer(keys["admin"]), timeout=30)  # fmt: skip
    assert bad.status_code == 400 and "plan" in bad.text
    refs = get(url, keys["read"], "/v1/models/churn/references").json()["references"]
    assert [(r["name"], r["row_count"]) for r in refs] == [("train.csv", 50)]
    assert httpx.put(f"{url}/v1/models/churn/references/x.csv", content=body.encode(),
                     headers=bearer(keys["read"]), timeout=30).status_code == 403  # fmt: skip


def test_every_read_route_has_an_example(sqlite_engine: Engine) -> None:
    schema = create_app(make_config(), sqlite_engine).openapi()
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/v1/") or operation["tags"] == ["ingest"]:
                continue
            ok = operation["responses"].get("200") or operation["responses"]["201"]
            ref = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            assert components[ref].get("examples"), (method, path)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_calls_of_docs_api_md_run(served) -> None:
    url, engine, _, churn = served
    add_window(engine, churn, T0)
    fire(engine, "churn")
    docs_key, _ = create_api_key(engine, "svc-docs", scopes=["read", "operate", "admin"])
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 10
    for block in blocks:
        env = {"DRIFTSCOPE_URL": url, "DRIFTSCOPE_KEY": docs_key, "PATH": "/usr/bin:/bin"}
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True,
                              timeout=60, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
        assert done.returncode == 0, (block, done.stderr)
        if "format=csv" not in block:
            orjson.loads(done.stdout)
