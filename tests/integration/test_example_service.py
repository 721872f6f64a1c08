"""examples/fastapi-service end to end, as its README runs it: the Driftscope API and the example service
as real uvicorn processes on one SQLite store, the training set uploaded as the reference, traffic
with drifted tenure sent to the service, the outcomes sent as labels under the request ids the
service returned, one scheduler tick, and the scores read back through the read API."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from monitor.config import load_config
from monitor.runs.scheduler import Scheduler
from monitor.sdk import Client
from monitor.store.api_keys import create_api_key
from monitor.store.tables import Prediction, utcnow
from tests.integration.test_api import bearer
from tests.servers import ManagedProcess, free_port, http_ok, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fastapi-service"
REQUESTS = 300


def example_model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_churn_model", EXAMPLE / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while it is being defined
    spec.loader.exec_module(module)
    return module


@contextmanager
def uvicorn(name: str, target: str, cwd: Path, log_dir: Path, *options: str) -> Iterator[str]:
    """A uvicorn process serving ``target`` (with this process's environment); yields its URL once /healthz
    answers, stops it with SIGTERM after."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", *options, target, "--host", "127.0.0.1", "--port", str(port)]
    process = ManagedProcess(name, argv, log_dir / f"{name}.log", cwd)
    try:
        url = f"http://127.0.0.1:{port}"
        process.wait_ready(lambda: http_ok(f"{url}/healthz"), timeout=60)
        yield url
    finally:
        process.stop()


@pytest.fixture
def environment(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the processes inherit: the store, the example's config, and the repository on the path."""
    monkeypatch.setenv("DRIFTSCOPE_STORE", sqlite_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("DRIFTSCOPE_CONFIG", str(EXAMPLE / "driftscope.yaml"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def send_traffic(service_url: str, api_url: str, key: str) -> str:
    """REQUESTS predictions with drifted tenure, and their outcomes as labels; returns the model's version."""
    model = example_model()
    rng = np.random.default_rng(11)
    traffic = model.customers(REQUESTS, rng, tenure_shift=30.0)  # longer-standing customers than in training
    outcomes = model.churned(traffic, rng)
    labels = Client(api_url, key, flush_interval=0.1)
    with httpx.Client(base_url=service_url, timeout=30) as http:
        assert http.post("/predict", json={"tenure": -1, "monthly_charges": 1, "plan": "x"}).status_code == 422
        for row, outcome in zip(traffic.to_dict("records"), outcomes, strict=True):
            answer = http.post("/predict", json=row)
            assert answer.status_code == 200 and set(answer.json()) == {"prediction", "score"}
            # The middleware returned the id it logged the prediction under: the label goes to the same id.
            labels.log_label("churn", answer.headers["x-request-id"], int(outcome))
    assert labels.flush(timeout=60)
    labels.close()
    return model.VERSION


def labelled(engine: Engine) -> int:
    """Predictions stored with their label."""
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Prediction).where(Prediction.label.is_not(None)))


@pytest.mark.usefixtures("environment")
def test_the_example_service_is_monitored_end_to_end(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest, _ = create_api_key(sqlite_engine, "svc-churn")
    admin, _ = create_api_key(sqlite_engine, "ml-team", scopes=["admin", "read"])
    api = uvicorn("driftscope-api", "monitor.cli.api:app_from_environment", ROOT, tmp_path, "--factory")
    with api as api_url:
        reference = tmp_path / "train.csv"
        subprocess.run([sys.executable, str(EXAMPLE / "model.py"), str(reference)], check=True, timeout=120)
        uploaded = httpx.put(
            f"{api_url}/v1/models/churn/references/train.csv",
            content=reference.read_bytes(),
            headers={**bearer(admin), "Content-Type": "text/csv"},
            timeout=60,
        )
        assert uploaded.status_code == 200, uploaded.text

        monkeypatch.setenv("DRIFTSCOPE_URL", api_url)
        monkeypatch.setenv("DRIFTSCOPE_API_KEY", ingest)
        with uvicorn("example-service", "app:app", EXAMPLE, tmp_path) as service_url:
            version = send_traffic(service_url, api_url, ingest)
            # The service's client sends in the background, once a second.
            wait_for(lambda: labelled(sqlite_engine) == REQUESTS or None, "the predictions, joined with their labels")
        with sqlite_engine.connect() as connection:
            versions = set(connection.scalars(select(Prediction.features["model_version"].as_string())))
        assert versions == {version}

        # The worker's tick, three hours on: the window of the traffic has closed.
        computed = Scheduler(load_config(), sqlite_engine, clock=lambda: utcnow() + timedelta(hours=3)).tick()
        assert computed >= 1
        scores = Client(api_url, admin).scores("churn")

    drift = scores[scores["kind"] == "drift"].set_index("feature")
    assert {"tenure", "monthly_charges", "plan", "model_version"} <= set(drift.index)
    assert drift.loc[["tenure"], "breached"].all()  # the shift the traffic carries
    assert not drift.loc[["model_version"], "breached"].any()  # the version trained is the one serving
    accuracy = scores[(scores["kind"] == "performance") & (scores["method"] == "accuracy")]["value"]
    assert len(accuracy) >= 1 and 0.5 < accuracy.max() <= 1.0
