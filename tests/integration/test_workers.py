"""Two real ``driftscope worker`` processes on one Postgres store: every window computed exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sqlalchemy import Engine, func, insert, select

from monitor.cli.worker_process import Worker
from monitor.config import load_config, parse_config
from monitor.store.queries import sync_models
from monitor.store.tables import Prediction, Run

WINDOWS = 200
ROWS_PER_WINDOW = 5
DRIFTSCOPE = str(Path(sys.executable).with_name("driftscope"))


def wait_until(check, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def log_events(path: Path, event: str) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


@pytest.mark.integration
def test_two_workers_compute_every_window_exactly_once(postgres_engine: Engine, postgres_url: str, tmp_path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=WINDOWS + 1)
    config_path = tmp_path / "driftscope.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "store": postgres_url,
                "models": {"m": {"task": "binary", "features": {"x": "numeric", "c": "categorical"}}},
                "monitors": {
                    "m-minutely": {
                        "model": "m",
                        "window": "1m",
                        "lateness": "0s",
                        "min_rows": 3,
                        "reference": {"range": [start.isoformat(), (start + timedelta(minutes=10)).isoformat()]},
                    }
                },
                "worker": {"tick": "0.2s", "claim_ttl": "1m", "metrics_port": None},
            }
        )
    )
    config = load_config(config_path)
    workers = {}
    for name in ("w1", "w2"):
        log_path = tmp_path / f"{name}.log"
        with log_path.open("w") as log_file:  # the child keeps its own descriptor
            workers[name] = (
                subprocess.Popen(
                    [DRIFTSCOPE, "--log-format", "json", "worker", "--config", str(config_path), "--id", name],
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                ),
                log_path,
            )
    try:
        for name, (_, log_path) in workers.items():
            wait_until(lambda p=log_path: log_events(p, "worker started"), f"{name} to start")
        # Both workers are idle (no data yet); the whole backlog appears at once and they race for it.
        model_id = sync_models(postgres_engine, config)["m"]
        rng = np.random.default_rng(0)
        rows = [
            {
                "model_id": model_id,
                "prediction_id": f"{w}-{i}",
                "ts": start + timedelta(minutes=w, seconds=i * 10),
                "features": {"x": float(rng.normal()), "c": str(rng.choice(["a", "b"]))},
                "prediction": 1,
                "score": 0.7,
                "source": "test",
            }
            for w in range(WINDOWS)
            for i in range(ROWS_PER_WINDOW)
        ]
        crashed = start  # the first window, so planning (after the newest run) still covers every other one
        with postgres_engine.begin() as connection:
            connection.execute(insert(Prediction), rows)
            # A worker that died while computing this window: its lease ran out a second ago.
            connection.execute(
                insert(Run).values(
                    monitor="m-minutely", model_id=model_id, window_start=crashed,
                    window_end=crashed + timedelta(minutes=1), status="running", claimed_by="crashed",
                    claimed_until=datetime.now(UTC) - timedelta(seconds=1), attempts=1,
                )
            )  # fmt: skip

        def computed() -> int:
            with postgres_engine.connect() as connection:
                return connection.execute(
                    select(func.count()).where(Run.status == "succeeded", Run.row_count == ROWS_PER_WINDOW)
                ).scalar()

        wait_until(lambda: computed() == WINDOWS, f"{WINDOWS} windows to be computed")
    finally:
        for process, _ in workers.values():
            process.send_signal(signal.SIGTERM)
        exit_codes = {name: process.wait(timeout=60) for name, (process, _) in workers.items()}
    assert exit_codes == {"w1": 0, "w2": 0}  # clean shutdown on SIGTERM

    with postgres_engine.connect() as connection:
        runs = connection.execute(select(Run.window_start, Run.attempts, Run.claimed_by, Run.status)).all()
    data_windows = {start + timedelta(minutes=w) for w in range(WINDOWS)}
    assert data_windows <= {r.window_start for r in runs}
    # Claimed, and so computed, once each; the crashed worker's window once more by a live worker.
    assert {r.window_start: r.attempts for r in runs if r.attempts != 1} == {crashed: 2}
    # The workers' own logs: every window computed by exactly one of them, and both did work.
    finished = {
        name: [e["window_start"] for e in log_events(path, "run finished")] for name, (_, path) in workers.items()
    }
    everything = finished["w1"] + finished["w2"]
    assert len(everything) == len(set(everything)) == len(runs)
    assert {datetime.fromisoformat(w) for w in everything} == {r.window_start for r in runs}
    assert finished["w1"] and finished["w2"]
    assert {r.claimed_by for r in runs} == {"w1", "w2"}
    for name, (_, path) in workers.items():
        assert log_events(path, "worker stopped"), name


@pytest.mark.integration
def test_runs_of_a_killed_worker_are_retaken_within_two_leases(
    postgres_engine: Engine, postgres_url: str, tmp_path
) -> None:
    """Five SIGKILLs during a catch-up: each interrupted window is retaken as soon as its short lease
    (renewed by heartbeat while it lived) expires, and every window is computed once in the end."""
    lease = timedelta(seconds=2)
    windows, rows_per_window = 80, 400
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=windows + 1)
    config_path = tmp_path / "driftscope.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "store": postgres_url,
                "models": {"m": {"task": "binary", "features": {f"x{j}": "numeric" for j in range(8)}}},
                "monitors": {
                    "m-minutely": {
                        "model": "m",
                        "window": "1m",
                        "lateness": "0s",
                        "min_rows": 3,
                        # Several windows of reference per run: runs long enough to be killed in the middle.
                        "reference": {"previous_windows": 5},
                    }
                },
                "worker": {"tick": "0.2s", "run_lease": "2s", "metrics_port": None},
            }
        )
    )
    model_id = sync_models(postgres_engine, load_config(config_path))["m"]
    rng = np.random.default_rng(1)
    with postgres_engine.begin() as connection:
        connection.execute(
            insert(Prediction),
            [
                {"model_id": model_id, "prediction_id": f"{w}-{i}",
                 "ts": start + timedelta(minutes=w, seconds=i * 60 / rows_per_window),
                 "features": {f"x{j}": float(v) for j, v in enumerate(rng.normal(size=8))},
                 "prediction": 1, "score": 0.7, "source": "test"}
                for w in range(windows)
                for i in range(rows_per_window)
            ],
        )  # fmt: skip

    def launch(name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = tmp_path / f"{name}.log"
        with log_path.open("w") as log_file:
            process = subprocess.Popen(
                [DRIFTSCOPE, "--log-format", "json", "worker", "--config", str(config_path), "--id", name],
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        return process, log_path

    def store_runs() -> dict[datetime, Any]:
        with postgres_engine.connect() as connection:
            return {r.window_start: r for r in connection.execute(select(Run)).all()}

    def done() -> int:
        return sum(r.status != "running" and r.status != "pending" for r in store_runs().values())

    orphans: dict[datetime, datetime] = {}  # window left running by a killed worker → when it was killed
    started: dict[str, datetime] = {}
    processes = []
    try:
        for kill in range(6):
            name = f"w{kill}"
            process, log_path = launch(name)
            processes.append(process)
            wait_until(lambda p=log_path: log_events(p, "worker started"), f"{name} to start", timeout=60)
            started[name] = datetime.fromisoformat(log_events(log_path, "worker started")[0]["timestamp"])
            if kill == 5:
                break  # the last one finishes the backlog
            # The window its predecessor left running is retaken (by this worker), and some more are computed.
            wait_until(
                lambda before=done(), interrupted=list(orphans): (
                    done() >= before + 3 and all(store_runs()[w].status != "running" for w in interrupted)
                ),
                f"{name} to take over and make progress",
                timeout=60,
            )
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            killed_at = datetime.now(UTC)
            orphans |= {w: killed_at for w, r in store_runs().items() if r.status == "running" and r.claimed_by == name}
        wait_until(lambda: done() == len(store_runs()) > windows, "the backlog to be computed", timeout=120)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)

    final = store_runs()
    assert len(orphans) >= 3, "the kills should have interrupted runs"
    data_windows = [start + timedelta(minutes=w) for w in range(windows)]
    # The first window has no previous windows to compare with (its reference): insufficient_data, nothing read.
    # The first five windows have fewer than the five previous windows their reference needs.
    assert [final[w].row_count for w in data_windows] == [None] * 5 + [rows_per_window] * (windows - 5)
    assert [final[w].status for w in data_windows] == ["insufficient_data"] * 5 + ["succeeded"] * (windows - 5)
    # Claimed once each, the interrupted ones once more: nothing computed twice, nothing lost.
    assert {w: r.attempts for w, r in final.items() if r.attempts != 1} == dict.fromkeys(orphans, 2)
    for window, killed_at in orphans.items():
        run = final[window]
        retaken_after = run.started_at - max(killed_at, started[run.claimed_by])
        assert retaken_after <= 2 * lease, (window, retaken_after)
    # Only dead workers lost claims: every live one kept its lease by heartbeat.
    assert not [name for name in started if "run lost its claim" in (tmp_path / f"{name}.log").read_text()]


def test_worker_in_process_start_and_shutdown(sqlite_engine: Engine) -> None:
    """How ``driftscope up`` / ``demo`` embed the worker: start() returns, shutdown() stops every job."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=6)
    config = parse_config(
        {
            "models": {"m": {"task": "regression", "features": {"x": "numeric"}}},
            "monitors": {
                "m-minutely": {
                    "model": "m",
                    "window": "1m",
                    "lateness": "0s",
                    "min_rows": 3,
                    "reference": {"previous_windows": 2},
                }
            },
            "worker": {"tick": "0.1s", "metrics_port": None},
        }
    )
    model_id = sync_models(sqlite_engine, config)["m"]
    with sqlite_engine.begin() as connection:
        connection.execute(
            insert(Prediction),
            [
                {"model_id": model_id, "prediction_id": f"{w}-{i}", "ts": start + timedelta(minutes=w, seconds=i),
                 "features": {"x": float(i)}, "prediction": 1.0, "source": "test"}
                for w in range(5)
                for i in range(10)
            ],
        )  # fmt: skip
    worker = Worker(config, sqlite_engine, worker_id="embedded")
    worker.start()
    try:

        def done() -> bool:
            with sqlite_engine.connect() as connection:
                return connection.execute(select(func.count()).where(Run.status != "pending")).scalar() >= 5

        wait_until(done, "the embedded worker to compute the backlog")
    finally:
        worker.shutdown()
    assert not worker._jobs.running
    with sqlite_engine.connect() as connection:
        statuses = dict(connection.execute(select(Run.window_start, Run.status)).all())
    # Windows 0 and 1 have fewer than the two previous windows their reference needs.
    assert [statuses[start + timedelta(minutes=w)] for w in range(5)] == ["insufficient_data"] * 2 + ["succeeded"] * 3


def test_worker_metrics_port_in_use_is_a_clear_error(sqlite_engine: Engine) -> None:
    import socket

    from monitor.errors import DriftscopeError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = parse_config({"worker": {"metrics_port": port}})
        worker = Worker(config, sqlite_engine)
        with pytest.raises(DriftscopeError, match=f"worker.metrics_port {port}: cannot serve /metrics"):
            worker.start()
    assert not worker._jobs.running


def test_worker_schedules_each_collector_on_its_source_interval(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config(
        {
            "sources": {"prom": {"kind": "prometheus", "url": "http://127.0.0.1:9", "interval": "7s"}},
            "models": {
                "m": {
                    "task": "binary",
                    "features": {"x": "numeric"},
                    "metrics": {"lat": {"source": "prom", "query": "up"}},
                }
            },
            "worker": {"metrics_port": None, "tick": "1s"},
        }
    )
    worker = Worker(config, sqlite_engine)
    with caplog.at_level("WARNING", logger="monitor.cli.worker_process"):
        worker.start()
        try:
            jobs = {job.id: job.trigger.interval for job in worker._jobs.get_jobs()}
            wait_until(lambda: any("collect:" in r.getMessage() for r in caplog.records), "the first collect")
        finally:
            worker.shutdown()
    assert jobs == {"collect:prometheus:m:lat": timedelta(seconds=7), "monitors": timedelta(seconds=1)}
    # Prometheus is down: an expected failure, logged with its reason (no traceback), retried next interval.
    (failure,) = [r for r in caplog.records if r.getMessage().startswith("worker job collect:")]
    assert "unreachable" in failure.getMessage() and failure.exc_info is None
