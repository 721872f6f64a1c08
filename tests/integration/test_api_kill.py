"""The API process killed with SIGKILL mid-request: every record that got a 2xx is in the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import Engine, select

from monitor.store.api_keys import create_api_key
from monitor.store.tables import Prediction
from tests.integration.test_api import MODELS, canonical
from tests.servers import free_port, http_ok, wait_for

pytestmark = pytest.mark.integration


def test_every_acknowledged_record_survives_a_sigkill(
    postgres_url: str, postgres_engine: Engine, tmp_path: Path
) -> None:
    config_path = tmp_path / "driftscope.yaml"
    config_path.write_text(yaml.safe_dump({"store": postgres_url, "models": MODELS}))
    key, _ = create_api_key(postgres_engine, "svc-kill")
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "monitor.cli.api:app_from_environment",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "DRIFTSCOPE_CONFIG": str(config_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with (tmp_path / "api.log").open("wb") as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(f"{url}/healthz") or None, "the API", timeout=30)
        acknowledged: list[str] = []
        failed = 0
        lock = threading.Lock()
        stop = threading.Event()

        def send(worker: int) -> None:
            nonlocal failed
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
                batch_number = 0
                while not stop.is_set():
                    ids = [f"w{worker}-b{batch_number}-{i}" for i in range(500)]
                    batch_number += 1
                    try:
                        response = client.post("/v1/models/churn/predictions", json=[canonical(0, id=i) for i in ids])
                    except httpx.TransportError:
                        with lock:
                            failed += 1
                        return
                    if response.status_code == 200:
                        with lock:
                            acknowledged.extend(ids)

        threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        while len(acknowledged) < 20_000:
            time.sleep(0.005)
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    with postgres_engine.connect() as connection:
        stored = set(connection.scalars(select(Prediction.prediction_id)))
    assert failed == len(threads)  # every client saw the server die
    assert set(acknowledged) <= stored
    # An unacknowledged batch may or may not be stored, but never in part: a batch is one transaction.
    assert len(stored) % 500 == 0
