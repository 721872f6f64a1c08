"""Latency the instrumentation adds to each request of a model service, against the same service without it.

Starts the Driftscope API (``monitor.cli.api:app_from_environment``, SQLite) and three copies of one
small FastAPI model service as separate uvicorn processes — two plain (the second measures the noise
between two identical processes), one with ``DriftscopeMiddleware`` logging every prediction to that
API — then sends ``--requests`` sequential POST /predict requests to each over keep-alive connections
on loopback, alternating blocks of 100 between them so that all see the same machine load, and prints
p50/p99/mean per variant with their differences and ratios to the first plain one. The instrumented
service's counters and its SDK client's ``sent``/``dropped`` are printed too, so the logging is shown
to have happened (with ``--api down`` nothing listens at the API's URL: ``sent`` stays 0).

    .venv/bin/python bench/instrument_overhead.py [--requests 5000] [--sample-rate 1.0] [--api down]

The service processes are started by this script as ``uvicorn --factory instrument_overhead:service``.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, http_ok, wait_for  # noqa: E402

MODELS = {"churn": {"task": "binary", "features": {"tenure": "numeric", "monthly_charges": "numeric",
                                                   "plan": "categorical"}}}  # fmt: skip
BLOCK = 100


class Customer(BaseModel):  # at module level: FastAPI resolves the endpoint's annotation here
    tenure: float
    monthly_charges: float
    plan: str


def service() -> Any:
    """The model service (uvicorn factory): instrumented when $BENCH_DRIFTSCOPE_URL is set."""
    from fastapi import FastAPI

    from monitor.instrument import Counters, DriftscopeMiddleware
    from monitor.sdk import Client

    app = FastAPI()
    weights = {"basic": 0.0, "pro": -0.4, "enterprise": -1.2}

    @app.post("/predict")
    async def predict(customer: Customer) -> dict[str, float | int]:
        logit = 1.0 - 0.12 * customer.tenure + 0.02 * customer.monthly_charges + weights.get(customer.plan, 0.0)
        score = 1 / (1 + math.exp(-logit))
        return {"prediction": int(score >= 0.5), "score": round(score, 4)}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    url = os.environ.get("BENCH_DRIFTSCOPE_URL")
    if url:
        client, counters = Client(url, os.environ["BENCH_DRIFTSCOPE_KEY"]), Counters()
        sample_rate = float(os.environ.get("BENCH_SAMPLE_RATE", "1"))
        app.add_middleware(
            DriftscopeMiddleware, client=client, model="churn", counters=counters, sample_rate=sample_rate
        )

        @app.get("/stats")
        def stats() -> dict[str, int]:
            client.flush(timeout=5)
            return {"logged": counters.logged, "failed": counters.failed, "sampled_out": counters.sampled_out,
                    "sent": client.sent, "dropped": client.dropped, "client_failed": client.failed}  # fmt: skip

    return app


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log = (workdir / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def uvicorn(name: str, target: str, env: dict[str, str], workdir: Path, *options: str) -> tuple[Process, str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", *options, target, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log"]  # fmt: skip
    process = Process(name, argv, env, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/healthz") or None, name, timeout=60)
    return process, url


def bodies(count: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    plans = rng.choice(["basic", "pro", "enterprise"], count)
    return [
        b'{"tenure": %.1f, "monthly_charges": %.2f, "plan": "%s"}' % (t, c, p.encode())
        for t, c, p in zip(rng.gamma(2.0, 12.0, count), rng.normal(65, 20, count), plans, strict=True)
    ]


def measure(urls: dict[str, str], requests: int, warmup: int) -> dict[str, np.ndarray]:
    """Sequential requests, alternating blocks between the variants; seconds per request, by variant."""
    payload = bodies(requests + warmup)
    headers = {"Content-Type": "application/json"}
    clients = {name: httpx.Client(base_url=url, headers=headers, timeout=30) for name, url in urls.items()}
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    try:
        for client in clients.values():
            for body in payload[:warmup]:
                client.post("/predict", content=body).raise_for_status()
        for start in range(warmup, warmup + requests, BLOCK):
            for name, client in clients.items():
                for body in payload[start : start + BLOCK]:
                    began = time.perf_counter()
                    response = client.post("/predict", content=body)
                    latencies[name].append(time.perf_counter() - began)
                    response.raise_for_status()
    finally:
        for client in clients.values():
            client.close()
    return {name: np.array(values) for name, values in latencies.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per variant")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--sample-rate", type=float, default=1.0)
    parser.add_argument("--api", choices=["up", "down"], default="up", help="down: nothing listens at the API URL")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-instrument-"))
    store = f"sqlite:///{workdir / 'driftscope.db'}"
    config = workdir / "driftscope.yaml"
    config.write_text(yaml.safe_dump({"store": store, "models": MODELS}))
    env = {**os.environ, "DRIFTSCOPE_CONFIG": str(config), "PYTHONPATH": str(ROOT), "DRIFTSCOPE_LOG_LEVEL": "WARNING"}
    driftscope = [sys.executable, "-c", "from monitor.cli.main import main; main()"]
    subprocess.run([*driftscope, "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run([*driftscope, "apikey", "create", "--name", "bench"], env=env, check=True,
                             capture_output=True, text=True)  # fmt: skip
    key = created.stdout.strip()

    processes: list[Process] = []
    try:
        if args.api == "up":
            api, api_url = uvicorn("api", "monitor.cli.api:app_from_environment", env, workdir, "--factory")
            processes.append(api)
        else:
            api_url = f"http://127.0.0.1:{free_port()}"
        target = "instrument_overhead:service"
        options = ("--factory", "--app-dir", str(ROOT / "bench"))
        urls = {}
        for name in ("plain", "plain again"):  # the second: the noise floor of two identical processes
            process, urls[name] = uvicorn(name.replace(" ", "-"), target, env, workdir, *options)
            processes.append(process)
        instrumented_env = {**env, "BENCH_DRIFTSCOPE_URL": api_url, "BENCH_DRIFTSCOPE_KEY": key,
                            "BENCH_SAMPLE_RATE": str(args.sample_rate)}  # fmt: skip
        instrumented, urls["instrumented"] = uvicorn("instrumented", target, instrumented_env, workdir, *options)
        processes.append(instrumented)

        latencies = measure(urls, args.requests, args.warmup)
        stats = httpx.get(f"{urls['instrumented']}/stats", timeout=30).json()
    finally:
        for process in reversed(processes):
            process.stop()

    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[:3]
    print(f"{args.requests} sequential requests per variant (blocks of {BLOCK}, alternating), "
          f"API {args.api}, sample_rate {args.sample_rate}, load average {' '.join(load)}")  # fmt: skip
    print(f"{'variant':<26}{'p50 ms':>11}{'p99 ms':>11}{'mean ms':>11}")
    summary = {}
    for name, values in latencies.items():
        ms = values * 1000
        summary[name] = (np.percentile(ms, 50), np.percentile(ms, 99), ms.mean())
        print(f"{name:<26}" + "".join(f"{value:>11.3f}" for value in summary[name]))
    for name in ("plain again", "instrumented"):
        pairs = list(zip(summary["plain"], summary[name], strict=True))
        print(f"{name + ' − plain':<26}" + "".join(f"{(v - p) * 1000:>+9.0f}µs" for p, v in pairs))
        print(f"{name + ' / plain':<26}" + "".join(f"{v / p:>11.3f}" for p, v in pairs))
    print(f"instrumented service: {stats}")


if __name__ == "__main__":
    main()
