"""The docker-compose stack's processes, started as plain processes against the real test servers.

docker-compose.yml cannot run here (no Docker engine), so this test starts the same commands the
compose services run, in the compose order — ``driftscope db upgrade``, ``demo-service``,
``collect elasticsearch`` (the one-shot backfill), ``api``, ``worker``, ``dashboard`` — with the
stack's own ``deploy/driftscope.yaml``, changed only where the test must differ (server addresses,
ports, unique index names, and second-scale windows instead of minutes), against Postgres, the
Elasticsearch-compatible server, Prometheus, Alertmanager and an SMTP server.

The whole flow is then checked end to end: documents the model service logs to Elasticsearch become
prediction rows (every one, exactly once), drift scores (flagged in the drifted windows, not in the
undrifted ones), the drift gauge that Prometheus scrapes from the worker (equal to the stored score),
an alert in Alertmanager and an e-mail in the SMTP server; the API ingests a pushed record and the
dashboard serves its pages; the processes stop cleanly on SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func, select

from monitor.store.api_keys import create_api_key
from monitor.store.engine import make_engine
from monitor.store.tables import MetricPoint, MetricSeries, Model, Prediction, Run, Score
from tests import servers
from tests.conftest import unique_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DRIFTSCOPE = str(Path(sys.executable).parent / "driftscope")
MODEL = "loan-approval"
MONITOR = "loan-approval-1m"  # the name in deploy/driftscope.yaml; only its window is shortened here
WINDOW = timedelta(seconds=10)
# The model service backfills HISTORY before its start t0 (>= its launch). The monitored windows
# begin FIRST_WINDOW before the launch (rounded down to a window); each is compared, as in
# deploy/driftscope.yaml, with the windows before it: REFERENCE_WINDOWS of them, all in the history.
HISTORY = timedelta(seconds=150)
FIRST_WINDOW = timedelta(seconds=35)
REFERENCE_WINDOWS = 6
DEADLINE = 120.0  # seconds for each eventual condition; the flow itself takes about a minute


class Process:
    """One long-running ``driftscope`` process in its own session, output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def log(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def terminate(self) -> int:
        """SIGTERM, as `docker compose stop` and Kubernetes send it; the exit code (SIGKILL after 30 s)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return -signal.SIGKILL


class Stack:
    """The processes of one test; every one still running is stopped at the end."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.processes: dict[str, Process] = {}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A one-shot command (like the compose `migrate` service); fails the test with its output."""
        result = subprocess.run([DRIFTSCOPE, *args], env=self.env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"driftscope {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        return result

    def start(self, name: str, *args: str) -> Process:
        process = Process(name, [DRIFTSCOPE, *args], self.directory / f"{name}.log", self.env)
        self.processes[name] = process
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{p.log()}" for name, p in self.processes.items())

    def wait(self, check: Callable[[], Any], what: str) -> Any:
        """Poll ``check`` until truthy; on timeout or a crashed process, fail with every process's log."""

        def guarded() -> Any:
            for name, process in self.processes.items():
                code = process.proc.poll()
                if code is not None:
                    pytest.fail(f"{name} exited with {code} while waiting for {what}\n{self.logs()}")
            return check()

        try:
            return servers.wait_for(guarded, what, DEADLINE)
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{self.logs()}")

    def stop(self, name: str) -> int:
        return self.processes.pop(name).terminate()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.processes.pop(name).terminate()


def http_status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def align(ts: datetime, step: timedelta) -> datetime:
    """``ts`` rounded down to a multiple of ``step`` since the epoch."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((ts - epoch) // step) * step


def stack_config(
    launched: datetime, index: str, label_index: str, ports: dict[str, int], run_label: str
) -> dict[str, Any]:
    """deploy/driftscope.yaml with second-scale timing and this test's addresses.

    The model service, launched at ``launched``, backfills ``HISTORY`` of undrifted traffic before its
    start ``t0 >= launched`` and drifts from ``t0`` on. The monitored windows begin before ``launched``,
    so the first windows and their references are undrifted (they must not be flagged); the windows
    just after ``t0`` are drifted against undrifted references (they must be).
    """
    config = yaml.safe_load((ROOT / "deploy" / "driftscope.yaml").read_text(encoding="utf-8"))
    es = config["sources"]["es"]
    es.update(index=index, interval="1s", safety_lag="1s", overlap="1m")
    config["sources"]["prom"].update(step="1s", interval="1s", safety_lag="1s")
    config["models"][MODEL]["label_index"] = label_index
    monitor = config["monitors"][MONITOR]
    monitor.update(
        window=f"{WINDOW.total_seconds():.0f}s",
        lateness="3s",
        start=align(launched - FIRST_WINDOW, WINDOW).isoformat(),
        reference={"previous_windows": REFERENCE_WINDOWS},
    )
    for rule in config["alerts"]["rules"]:
        rule["labels"] = {"run": run_label}  # Alertmanager is shared by the session: find our alerts
    config["alerts"].update(group_wait="1s", group_interval="5s")
    config["api"].update(host="127.0.0.1", port=ports["api"])
    config["dashboard"].update(host="127.0.0.1", port=ports["dashboard"])
    config["worker"].update(metrics_host="127.0.0.1", metrics_port=ports["worker"], tick="1s")
    return config


def service_start(log_path: Path) -> datetime | None:
    """The service's ``t0`` (where drift begins: --drift-after 0s), from its JSON start line."""
    for line in log_path.read_text(errors="replace").splitlines():
        if '"demo model service started"' in line:
            return datetime.fromisoformat(json.loads(line)["drift_from"])
    return None


def drift_shares(engine: Engine) -> list[tuple[datetime, float | None, bool | None, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(Score.window_start, Score.value, Score.breached, Score.status)
            .where(Score.monitor == MONITOR, Score.kind == "drift", Score.method == "share_drifted")
            .order_by(Score.window_start)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def drifted_features(engine: Engine) -> list[tuple[datetime, str | None, str, float | None, float | None]]:
    """Every breached per-column drift score: window, column, method, value, threshold (for failure messages)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Score.window_start, Score.feature, Score.method, Score.value, Score.threshold)
            .where(Score.monitor == MONITOR, Score.kind == "drift", Score.feature.is_not(None), Score.breached)
            .order_by(Score.window_start)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.fixture
def stack(
    tmp_path: Path,
    postgres_url: str,
    elasticsearch_url: str,
    prometheus_server: servers.PrometheusServer,
    alertmanager_url: str,
    smtp_server: servers.SmtpServer,
) -> Iterator[Stack]:
    env = {
        **os.environ,
        # As in docker-compose.yml: the config file, the store and the secrets come from the environment.
        "DRIFTSCOPE_CONFIG": str(tmp_path / "driftscope.yaml"),
        "DRIFTSCOPE_STORE": postgres_url,
        "DRIFTSCOPE_LOG_FORMAT": "json",
        "DRIFTSCOPE_LOG_LEVEL": "INFO",
        "DRIFTSCOPE_PUBLIC_URL": "http://127.0.0.1:8050",
        "ELASTICSEARCH_URL": elasticsearch_url,
        "ELASTICSEARCH_USERNAME": "elastic",
        "ELASTICSEARCH_PASSWORD": "test-password",
        "PROMETHEUS_URL": prometheus_server.url,
        "ALERTMANAGER_URL": alertmanager_url,
        "SMTP_URL": f"smtp://{smtp_server.host}:{smtp_server.port}",
    }
    started = Stack(tmp_path, env)
    yield started
    started.stop_all()


def test_compose_processes_end_to_end(
    stack: Stack,
    tmp_path: Path,
    postgres_url: str,
    es_client: Any,
    prometheus_server: servers.PrometheusServer,
    prometheus_scrape: Callable[..., None],
    alertmanager_server: servers.AlertmanagerServer,
    smtp_server: servers.SmtpServer,
) -> None:
    index, label_index = unique_name("predictions-"), unique_name("labels-")
    ports = {name: servers.free_port() for name in ("api", "dashboard", "worker", "service")}
    run_label = unique_name("e2e-")

    # The config is written first, anchored at the model service's launch: its traffic drifts from
    # its start t0 >= launched; the reference and the first windows lie in the undrifted history.
    launched = datetime.now(UTC)
    config = stack_config(launched, index, label_index, ports, run_label)
    Path(stack.env["DRIFTSCOPE_CONFIG"]).write_text(yaml.safe_dump(config), encoding="utf-8")
    # The model service backfills its history while the compose `migrate` service runs.
    service = stack.start(
        "model-service",
        "demo-service",
        f"--index={index}",
        f"--label-index={label_index}",
        "--label-delay=2s",
        f"--history={HISTORY.total_seconds():.0f}s",
        "--drift-after=0s",
        "--ramp=0s",
        "--rate=100",  # 1,000 rows a window: sampling noise stays well under the drift thresholds
        "--tick=0.5",
        f"--metrics-port={ports['service']}",
        "--metrics-host=127.0.0.1",
    )
    stack.run("db", "upgrade")
    t0: datetime = stack.wait(lambda: service_start(service.log_path), "the model service to backfill and start")
    first_window = datetime.fromisoformat(config["monitors"][MONITOR]["start"])
    assert launched <= t0 and first_window - REFERENCE_WINDOWS * WINDOW >= t0 - HISTORY, "reference outside the history"
    prometheus_scrape(f"127.0.0.1:{ports['service']}", {"run": run_label})
    # The compose `backfill` service: the history, stored before the worker starts; the worker's
    # collector takes over from its checkpoint, so the live (drifted) documents come through it.
    stack.run("collect", "elasticsearch", "--model", MODEL)

    engine = make_engine(postgres_url)
    history_docs = es_client.count(index=index, query={"range": {"@timestamp": {"lt": t0.isoformat()}}})["count"]
    with engine.connect() as connection:
        model_id = connection.scalar(select(Model.id).where(Model.name == MODEL))
        stored = connection.scalar(
            select(func.count()).select_from(Prediction).where(Prediction.model_id == model_id, Prediction.ts < t0)
        )
    assert history_docs > 10_000 and stored == history_docs, "every backfilled document is stored exactly once"

    stack.start("api", "api")
    stack.start("worker", "worker")
    stack.start("dashboard", "dashboard")
    api, dashboard = f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['dashboard']}"
    worker_metrics = f"http://127.0.0.1:{ports['worker']}/metrics"
    stack.wait(lambda: http_status(f"{api}/healthz") == 200, "api /healthz")
    stack.wait(lambda: http_status(f"{api}/readyz") == 200, "api /readyz (store reachable)")
    stack.wait(lambda: http_status(worker_metrics) == 200, "worker /metrics")
    stack.wait(lambda: http_status(f"{dashboard}/") == 200, "dashboard /")
    assert http_status(f"{dashboard}/_dash-layout") == 200

    # Prometheus scrapes the worker (and the model service, above), as deploy/prometheus.yml does.
    prometheus_scrape(f"127.0.0.1:{ports['worker']}", {"run": run_label})

    # Drift: undrifted windows (before t0) are not flagged; drifted ones (after t0) are.
    def drifted_window_scored() -> list[Any] | None:
        shares = drift_shares(engine)
        return shares if any(start >= t0 and breached for start, _, breached, _ in shares) else None

    shares = stack.wait(drifted_window_scored, "a drifted window scored as drift")
    before = [(start, value, breached, status) for start, value, breached, status in shares if start + WINDOW <= t0]
    after = [(start, value, breached, status) for start, value, breached, status in shares if start >= t0]
    assert len(before) >= 2 and all(status == "ok" for *_, status in before), before
    assert not any(breached for _, _, breached, _ in before), f"undrifted windows flagged: {before}"
    assert all(value is not None and value < 0.3 for _, value, _, _ in before), (before, drifted_features(engine))
    assert any(value is not None and value > 0.3 for _, value, _, _ in after), after
    with engine.connect() as connection:
        runs = connection.execute(select(Run.window_start, Run.row_count).where(Run.monitor == MONITOR)).all()
        live = connection.scalar(
            select(func.count()).select_from(Prediction).where(Prediction.model_id == model_id, Prediction.ts >= t0)
        )
    assert live > 0, "the worker's scheduled collector stores the live documents"
    assert all(count and count >= 50 for start, count in runs if start + WINDOW <= t0), runs

    # The alert: an e-mail in the SMTP server and an alert in Alertmanager.
    def drift_mail() -> Any:
        return next((m for m in smtp_server.messages if "feature drift" in str(m.message["Subject"])), None)

    mail = stack.wait(drift_mail, "the drift alert e-mail")
    assert mail.rcpt_tos == ["oncall@example.com"]
    assert MODEL in mail.message.get_body(preferencelist=("plain",)).get_content()
    stack.wait(
        lambda: alertmanager_server.alerts(alertname="feature drift", run=run_label), "the alert in Alertmanager"
    )

    # Prometheus reads the drift gauge from the worker; the worker stores the service's metrics.
    def gauge_matches_store() -> bool:
        # The gauge is the latest window's share; windows keep closing, so poll until one scrape agrees.
        result = prometheus_server.query(f'driftscope_drift_share_drifted{{monitor="{MONITOR}",run="{run_label}"}}')
        scored = [value for _, value, _, status in drift_shares(engine) if status == "ok"]
        return bool(result and scored) and float(result[0]["value"][1]) == scored[-1]

    stack.wait(gauge_matches_store, "Prometheus to scrape the latest drift share from the worker, as stored")

    def service_metric_points() -> int:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    select(func.count())
                    .select_from(MetricPoint)
                    .join(MetricSeries, MetricSeries.id == MetricPoint.series_id)
                    .where(MetricSeries.model_id == model_id, MetricSeries.name == "requests_per_second")
                )
                or 0
            )

    stack.wait(service_metric_points, "the model service's request rate, via Prometheus, in the store")

    # The API ingests a pushed record (the key is made as `driftscope apikey create` makes it).
    key, _ = create_api_key(engine, "e2e", [MODEL])
    record = {
        "id": "pushed-1",
        "timestamp": datetime.now(UTC).isoformat(),
        "features": {
            "income": 50000.0,
            "loan_amount": 9000.0,
            "credit_score": 700,
            "debt_to_income": 0.2,
            "employment_years": 3.0,
            "age": 30,
            "open_accounts": 5,
            "purpose": "car",
            "home_ownership": "rent",
            "channel": "web",
        },
        "prediction": "1",
        "score": 0.8,
    }
    status = http_status(
        f"{api}/v1/models/{MODEL}/predictions",
        json.dumps([record]).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert 200 <= status < 300
    with engine.connect() as connection:
        assert connection.scalar(select(Prediction.score).where(Prediction.prediction_id == "pushed-1")) == 0.8

    # SIGTERM, as `docker compose stop` / Kubernetes send it: the long-running processes exit cleanly.
    for name in ("worker", "model-service"):
        code = stack.stop(name)
        assert code == 0, f"{name} exited {code} on SIGTERM\n{stack.logs()}"
    # uvicorn shuts down gracefully, then re-raises the signal so that its parent sees it: -SIGTERM.
    api_process = stack.processes["api"]
    assert stack.stop("api") in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in api_process.log(), api_process.log()
    engine.dispose()
