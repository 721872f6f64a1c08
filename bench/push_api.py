"""Push API throughput and latency, plus the SDK's cost on the caller's path.

Starts a throw-away Postgres (tests/servers.py) or uses SQLite, runs ``driftscope api``'s app under
one uvicorn worker process, then measures:

* records/s posting batches of 1,000 canonical records (``--clients`` concurrent connections);
* p50/p99 latency of single-record requests (sequential);
* p50/p99/max of ``Client.log_prediction`` (the SDK's cost in a serving path).

    .venv/bin/python bench/push_api.py [--store postgres|sqlite] [--batches 100] [--singles 2000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.sdk import Client  # noqa: E402
from monitor.store.api_keys import create_api_key  # noqa: E402
from monitor.store.engine import make_engine, upgrade  # noqa: E402
from tests.servers import free_port, http_ok, start_postgres, wait_for  # noqa: E402

MODELS = {
    "churn": {
        "task": "binary",
        "features": {f"n{i}": "numeric" for i in range(8)} | {f"c{i}": "categorical" for i in range(2)},
    }
}


def record(i: int, rng: np.random.Generator) -> dict[str, object]:
    features: dict[str, object] = {f"n{j}": float(v) for j, v in enumerate(rng.normal(size=8))}
    features |= {"c0": f"plan-{i % 5}", "c1": f"region-{i % 7}"}
    return {
        "id": f"p{i}",
        "timestamp": 1772366400 + i / 1000,
        "features": features,
        "prediction": i % 2,
        "score": float(rng.uniform()),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report throughput per core-second."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument(
        "--switch-interval", type=float, help="sys.setswitchinterval for the SDK part (default: Python's 5 ms)"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-push-"))
    postgres = start_postgres() if args.store == "postgres" else None
    if postgres is not None:
        postgres.create_database("bench")
        store = postgres.url("bench")
    else:
        store = f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(store)
    upgrade(engine)
    key, _ = create_api_key(engine, "bench")
    config_path = workdir / "driftscope.yaml"
    config_path.write_text(yaml.safe_dump({"store": store, "models": MODELS}))
    port = free_port()
    env = {**os.environ, "DRIFTSCOPE_CONFIG": str(config_path), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "monitor.cli.api:app_from_environment",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        wait_for(lambda: http_ok(f"{url}/healthz") or None, "API")
        rng = np.random.default_rng(0)
        bodies = [
            orjson.dumps([record(b * args.batch_size + i, rng) for i in range(args.batch_size)])
            for b in range(args.batches)
        ]
        with httpx.Client(base_url=url, headers=headers) as warm:  # first-request costs out of the way
            warm.post("/v1/models/churn/predictions", content=orjson.dumps([record(10**9, rng)]))

        def post_batches(share: list[bytes]) -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                for body in share:
                    response = client.post("/v1/models/churn/predictions", content=body)
                    assert response.status_code == 200 and not response.json()["rejected"], response.text[:300]

        threads = [
            threading.Thread(target=post_batches, args=(bodies[n :: args.clients],)) for n in range(args.clients)
        ]
        started, cpu_started = time.perf_counter(), cpu_seconds(server.pid)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(server.pid) - cpu_started
        total = args.batches * args.batch_size
        print(
            f"batches: API process CPU {cpu:.2f}s = {total / cpu:,.0f} records per CPU-second of the API process "
            "(Postgres work runs in its own processes)"
        )
        print(
            f"batches: {total} records in {elapsed:.2f}s = {total / elapsed:,.0f} records/s "
            f"({args.batches} x {args.batch_size}, {args.clients} clients, store {args.store})"
        )

        latencies = []
        with httpx.Client(base_url=url, headers=headers) as client:
            for i in range(args.singles):
                body = orjson.dumps([record(2 * 10**9 + i, rng)])
                start = time.perf_counter()
                response = client.post("/v1/models/churn/predictions", content=body)
                latencies.append(time.perf_counter() - start)
                assert response.status_code == 200
        print(
            f"single-record requests: p50 {percentile(latencies, 50):.2f} ms, "
            f"p99 {percentile(latencies, 99):.2f} ms ({args.singles} sequential)"
        )

        if args.switch_interval:
            sys.setswitchinterval(args.switch_interval)
        sdk = Client(url, key, batch_size=1000, flush_interval=0.2)
        calls = []
        features = record(0, rng)["features"]
        for i in range(100_000):
            start = time.perf_counter()
            sdk.log_prediction("churn", f"s{i}", features, 1, score=0.5)
            calls.append(time.perf_counter() - start)
        sdk.flush(timeout=120)
        sdk.close()
        print(
            f"sdk log_prediction: p50 {percentile(calls, 50) * 1000:.1f} us, "
            f"p99 {percentile(calls, 99) * 1000:.1f} us, p99.9 {percentile(calls, 99.9) * 1000:.1f} us, "
            f"max {max(calls) * 1000:.3f} ms (100,000 calls, API up; sent {sdk.sent}, dropped {sdk.dropped}; "
            f"switch interval {sys.getswitchinterval() * 1000:g} ms)"
        )
    finally:
        server.terminate()
        server.wait()
        engine.dispose()
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    main()
