"""The Prometheus collector and Driftscope's own /metrics against a real Prometheus (Debian's)."""

from __future__ import annotations

import glob
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, select

from collectors.prometheus import PrometheusCollector, to_ms
from detectors.drift import ColumnPolicy, drift_scores
from detectors.profile import profile_reference
from monitor.config import MetricQuery, PrometheusSource, parse_config
from monitor.errors import SourceError
from monitor.logs import configure_logging
from monitor.metrics.exporter import start_metrics_server
from monitor.retry import Backoff
from monitor.store.engine import transaction
from monitor.store.queries import sync_models
from monitor.store.tables import MetricPoint, MetricSeries, Run, Score
from tests import servers
from tests.conftest import _start, unique_name

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STEP = timedelta(milliseconds=250)
STEP_MS = 250
CONFIG = {"models": {"churn": {"task": "binary", "features": {"tenure": "numeric"}}}}


# --- a test exporter with known values -----------------------------------------------------------


class ScrapeCounter(Collector):
    """Serves two series; both change on every scrape: route="/a" = n and route="/b" = 1.5 n."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.lock:
            self.scrapes += 1
            n = self.scrapes
        gauge = GaugeMetricFamily("driftscope_test_requests", "known test values", labels=["route"])
        gauge.add_metric(["/a"], n)
        gauge.add_metric(["/b"], 1.5 * n)
        yield gauge


@dataclass
class Exporter:
    address: str
    collector: ScrapeCounter
    stop: Callable[[], None]


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    registry = CollectorRegistry(auto_describe=False)
    counter = ScrapeCounter()
    registry.register(counter)
    httpd, thread = start_http_server(0, addr="127.0.0.1", registry=registry)

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()
        thread.join()

    yield Exporter(f"127.0.0.1:{httpd.server_port}", counter, stop)
    stop()


@dataclass
class RequestLog:
    """An httpx client that records each query_range and can act after the n-th response."""

    ranges: list[tuple[float, float, float]] = field(default_factory=list)
    responses: int = 0
    on_response: Callable[[int], None] | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        client = httpx.Client(timeout=5, event_hooks={"request": [self._request], "response": [self._response]})
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def _request(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/query_range"):
            params = request.url.params
            self.ranges.append((float(params["start"]), float(params["end"]), float(params["step"])))

    def _response(self, response: httpx.Response) -> None:
        self.responses += 1
        if self.on_response is not None:
            self.on_response(self.responses)


@pytest.fixture
def request_log() -> Iterator[RequestLog]:
    log = RequestLog()
    yield log
    log.close()


def make_engine_with_model(engine: Engine) -> Engine:
    sync_models(engine, parse_config(CONFIG))
    return engine


def make_collector(engine: Engine, url: str, expr: str, client: httpx.Client, **kwargs: Any) -> PrometheusCollector:
    source = PrometheusSource(kind="prometheus", url=url, max_points_per_request=3, safety_lag=timedelta(seconds=1))
    query = MetricQuery(source="prom", query=expr, step=STEP)
    return PrometheusCollector(engine, "churn", "requests", query, source, client=client, **kwargs)


def stored_points(engine: Engine) -> dict[str, list[tuple[int, float]]]:
    """route label → [(epoch ms, value)] in time order."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(MetricSeries.labels, MetricPoint.ts, MetricPoint.value)
            .join(MetricPoint, MetricPoint.series_id == MetricSeries.id)
            .order_by(MetricPoint.ts)
        ).all()
    points: dict[str, list[tuple[int, float]]] = {}
    for labels, ts, value in rows:
        points.setdefault(labels["route"], []).append((to_ms(ts), value))
    return points


def prometheus_range(url: str, expr: str, start_ms: int, end_ms: int) -> dict[str, list[tuple[int, float]]]:
    """The same range in one request straight from Prometheus: the ground truth."""
    body = httpx.get(
        f"{url}/api/v1/query_range",
        params={"query": expr, "start": start_ms / 1000, "end": end_ms / 1000, "step": STEP_MS / 1000},
    ).json()
    return {
        item["metric"]["route"]: [(round(float(ts) * 1000), float(v)) for ts, v in item["values"]]
        for item in body["data"]["result"]
    }


def raw_samples(url: str, expr: str) -> list[tuple[int, float]]:
    """Every scraped sample of ``expr`` in the last minute, with its scrape timestamp."""
    body = httpx.get(f"{url}/api/v1/query", params={"query": f"{expr}[1m]"}).json()
    return [(round(float(ts) * 1000), float(v)) for series in body["data"]["result"] for ts, v in series["values"]]


# --- collector: chunked ranges with known values ---------------------------------------------------


def test_collector_stores_exactly_the_scraped_samples_over_several_chunks(
    prometheus_server: servers.PrometheusServer,
    prometheus_scrape: Any,
    exporter: Exporter,
    sqlite_engine: Engine,
    request_log: RequestLog,
) -> None:
    test_id = unique_name("t")
    prometheus_scrape(exporter.address, labels={"test_id": test_id})
    expr = f'driftscope_test_requests{{test_id="{test_id}"}}'
    url = prometheus_server.url
    route_a = f'driftscope_test_requests{{test_id="{test_id}",route="/a"}}'
    samples = servers.wait_for(lambda: len(s := raw_samples(url, route_a)) >= 3 and s, "3 scrapes")
    first_ms = samples[0][0]

    engine = make_engine_with_model(sqlite_engine)
    requests = request_log
    collector = make_collector(engine, url, expr, requests.client())
    until = datetime.fromtimestamp(samples[-1][0] / 1000, UTC)
    result = collector.backfill(datetime.fromtimestamp(first_ms / 1000, UTC), until)

    stored = stored_points(engine)
    start_ms = -(-first_ms // STEP_MS) * STEP_MS
    end_ms = to_ms(until) // STEP_MS * STEP_MS
    assert len(requests.ranges) >= 3  # the range really was split
    assert all(round((end - start) / step) + 1 <= 3 for start, end, step in requests.ranges)
    assert stored == prometheus_range(url, expr, start_ms, end_ms)
    # Each stored point is the newest sample the exporter served at or before its timestamp.
    a_points = stored["/a"]
    assert [ts for ts, _ in a_points] == list(range(start_ms, end_ms + 1, STEP_MS))
    for ts, value in a_points:
        assert value == max((s for s in samples if s[0] <= ts), key=lambda s: s[0])[1]
    assert [v for _, v in stored["/b"]] == [1.5 * v for _, v in a_points]
    assert result.stored == 2 * len(a_points)
    assert result.position == datetime.fromtimestamp(end_ms / 1000, UTC)

    collector.backfill(datetime.fromtimestamp(first_ms / 1000, UTC), until)  # again: idempotent
    assert stored_points(engine) == stored


# --- Driftscope's own /metrics, scraped by Prometheus ---------------------------------------------


def test_prometheus_reads_back_a_stored_drift_score(
    prometheus_server: servers.PrometheusServer, prometheus_scrape: Any, sqlite_engine: Engine
) -> None:
    rng = np.random.default_rng(7)
    reference = profile_reference({"tenure": rng.normal(size=500)}, {"tenure": "numeric"})
    scores = drift_scores(reference, {"tenure": rng.normal(0.3, size=500)}, [ColumnPolicy("tenure", "numeric")])
    model_id = sync_models(sqlite_engine, parse_config(CONFIG))["churn"]
    window = datetime(2026, 1, 1, tzinfo=UTC)
    with transaction(sqlite_engine) as session:
        run = Run(
            monitor="churn-hourly",
            model_id=model_id,
            window_start=window,
            window_end=window + timedelta(hours=1),
            status="succeeded",
        )
        session.add(run)
        session.flush()
        for score in scores:
            session.add(
                Score(
                    run_id=run.id,
                    monitor=run.monitor,
                    model_id=model_id,
                    window_start=window,
                    kind=score.kind,
                    feature=score.feature,
                    method=score.method,
                    value=score.value,
                    threshold=score.threshold,
                    breached=score.breached,
                )
            )
    column = next(s for s in scores if s.feature == "tenure")
    share = next(s for s in scores if s.method == "share_drifted")

    server = start_metrics_server(sqlite_engine, 0, cache_seconds=0)
    try:
        test_id = unique_name("t")
        prometheus_scrape(f"127.0.0.1:{server.port}", labels={"test_id": test_id})
        drift = servers.wait_for(
            lambda: prometheus_server.query(f'driftscope_drift_score{{test_id="{test_id}"}}'), "the drift score"
        )
        shared = prometheus_server.query(f'driftscope_drift_share_drifted{{test_id="{test_id}"}}')
    finally:
        server.stop()
    (sample,) = drift
    assert sample["metric"]["model"] == "churn"
    assert sample["metric"]["monitor"] == "churn-hourly"
    assert sample["metric"]["feature"] == "tenure"
    assert sample["metric"]["method"] == column.method
    assert float(sample["value"][1]) == column.value
    assert float(shared[0]["value"][1]) == share.value


# --- outage: Prometheus stopped mid-collection and restarted on the same data dir --------------------


class OwnPrometheus:
    """A Prometheus this test alone stops and restarts (the session one is shared)."""

    def __init__(self, binary: str, directory: Path, target: str, users: dict[str, str] | None = None) -> None:
        """``users``: basic auth users and their bcrypt hashes (Prometheus's web config), if any."""
        self.binary = binary
        self.directory = directory
        self.port = servers.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "outage", "static_configs": [{"targets": [target]}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.web_config = directory / "web.yml" if users else None
        if self.web_config is not None:
            self.web_config.write_text(yaml.safe_dump({"basic_auth_users": users}))
        self.process: servers.ManagedProcess | None = None

    def start(self, ready: Callable[[], bool] | None = None) -> None:
        argv = [
            self.binary,
            f"--config.file={self.directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        if self.web_config is not None:
            argv.append(f"--web.config.file={self.web_config}")
        self.process = servers.ManagedProcess("prometheus", argv, self.directory / "prometheus.log", self.directory)
        self.process.wait_ready(ready or (lambda: servers.http_ok(f"{self.url}/-/ready")))

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Debian's prometheus binary (missing: a skip locally, a failure in CI, like the server fixtures)."""
    return _start(lambda: servers._require_binary(["/usr/bin/prometheus", "prometheus"], "prometheus"))


def test_outage_mid_collection_leaves_no_gap_and_no_duplicate(
    prometheus_binary: str, exporter: Exporter, sqlite_engine: Engine, tmp_path: Path, request_log: RequestLog
) -> None:
    prometheus = OwnPrometheus(prometheus_binary, tmp_path, exporter.address)
    prometheus.start()
    try:
        url = prometheus.url
        expr = "driftscope_test_requests"
        samples = servers.wait_for(
            lambda: len(s := raw_samples(url, 'driftscope_test_requests{route="/a"}')) >= 4 and s, "4 scrapes"
        )
        first = datetime.fromtimestamp(samples[0][0] / 1000, UTC)

        restarted = threading.Event()

        def outage(responses: int) -> None:
            # After the second chunk's answer: stop Prometheus, bring it back a moment later.
            if responses == 2:
                prometheus.stop()
                threading.Timer(1.0, lambda: (prometheus.start(), restarted.set())).start()

        requests = request_log
        requests.on_response = outage
        collector = make_collector(
            make_engine_with_model(sqlite_engine),
            url,
            expr,
            requests.client(),
            retry=Backoff(attempts=60, base=0.1, cap=0.5),
            initial_lookback=timedelta(seconds=30),
        )
        until = datetime.fromtimestamp(samples[-1][0] / 1000, UTC)
        collector.backfill(first, until)
        assert restarted.wait(30)
        assert len(requests.ranges) > requests.responses  # some requests failed and were retried

        # Collect on from the checkpoint, across the downtime, up to now. collect() stops at
        # now - safety_lag (1 s): wait until that lies past the backfill's end, or a fast
        # restart leaves nothing to collect beyond `until`.
        beyond_until = until + timedelta(seconds=1, milliseconds=2 * STEP_MS)
        time.sleep(max(0.0, (beyond_until - datetime.now(UTC)).total_seconds()))
        result = collector.collect()
        assert result.caught_up

        stored = stored_points(sqlite_engine)
        start_ms = to_ms(first) + (-to_ms(first)) % STEP_MS
        end_ms = to_ms(result.position)
        truth = prometheus_range(url, expr, start_ms, end_ms)
    finally:
        prometheus.stop()
    assert stored == truth
    timestamps = [ts for ts, _ in stored["/a"]]
    assert timestamps == list(range(start_ms, end_ms + 1, STEP_MS))  # every step, each once
    assert timestamps[0] < to_ms(until) < timestamps[-1]


# --- a Prometheus behind basic auth (its own --web.config.file) -------------------------------------------

AUTH_USER, AUTH_PASSWORD = "driftscope", "correct-horse-battery"
# bcrypt of AUTH_PASSWORD at cost 4 (fast to check), as Prometheus's web config wants it.
AUTH_HASH = "$2b$04$VVyo.lTYLUmyOWRJoAmaeuH0.eBaPGWOkMcQWl/PQ7klFqmNbXCcK"


def test_collector_authenticates_with_the_source_settings_and_fails_clearly_without(
    prometheus_binary: str, exporter: Exporter, sqlite_engine: Engine, tmp_path: Path
) -> None:
    prometheus = OwnPrometheus(prometheus_binary, tmp_path, exporter.address, users={AUTH_USER: AUTH_HASH})

    def ready() -> bool:
        try:
            return httpx.get(f"{prometheus.url}/-/ready", auth=(AUTH_USER, AUTH_PASSWORD)).status_code == 200
        except httpx.TransportError:
            return False

    prometheus.start(ready)
    engine = make_engine_with_model(sqlite_engine)

    def collect(**settings: str) -> int:
        source = {"kind": "prometheus", "url": prometheus.url, "step": "1s", **settings}
        config = parse_config({"sources": {"prom": source}}, env={"PROM_PASSWORD": AUTH_PASSWORD, "WRONG": "n0pe-x"})
        prom = config.sources["prom"]
        assert isinstance(prom, PrometheusSource)
        collector = PrometheusCollector(engine, "churn", "auth", MetricQuery(source="prom", query="vector(1)"), prom)
        try:
            return collector.collect().stored
        finally:
            collector.close()

    try:
        assert httpx.get(f"{prometheus.url}/api/v1/query", params={"query": "up"}).status_code == 401  # guarded
        for settings in ({}, {"username": AUTH_USER, "password": "${WRONG}"}):
            with pytest.raises(SourceError) as refused:
                collect(**settings)
            message = str(refused.value)
            assert not refused.value.transient
            assert "refused access (HTTP 401): check the source's username and password" in message
            assert "n0pe-x" not in message and AUTH_PASSWORD not in message
        assert collect(username=AUTH_USER, password="${PROM_PASSWORD}") > 0
    finally:
        prometheus.stop()


# --- example rules -------------------------------------------------------------------------------------


def test_example_rules_scrape_config_and_rule_tests_pass_promtool(promtool: str) -> None:
    rule_files = sorted(glob.glob(str(REPO / "examples/prometheus/*.rules.yml")))
    assert rule_files
    rules = subprocess.run([promtool, "check", "rules", *rule_files], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = subprocess.run(
        [promtool, "check", "config", str(REPO / "examples/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    unit = subprocess.run(
        [promtool, "test", "rules", str(REPO / "examples/prometheus/driftscope.rules.test.yml")],
        capture_output=True,
        text=True,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


# --- command line --------------------------------------------------------------------------------------


def write_config(tmp_path: Path, prometheus_url: str, metrics: dict[str, tuple[str, str]]) -> Path:
    config = {
        "store": f"sqlite:///{tmp_path / 'driftscope.db'}",
        "sources": {
            "prom": {"kind": "prometheus", "url": prometheus_url, "step": "1s", "max_points_per_request": 7},
            "down": {"kind": "prometheus", "url": f"http://127.0.0.1:{servers.free_port()}", "timeout": "2s"},
        },
        "models": {
            "churn": {
                "task": "binary",
                "features": {"tenure": "numeric"},
                "metrics": {name: {"source": source, "query": query} for name, (source, query) in metrics.items()},
            }
        },
    }
    path = tmp_path / "driftscope.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_validate_check_sources_names_the_bad_query(
    prometheus_server: servers.PrometheusServer, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from monitor.cli.main import app

    metrics = {"ok": ("prom", "vector(1)"), "broken": ("prom", "rate(x[5m]"), "far": ("down", "up")}
    path = write_config(tmp_path, prometheus_server.url, metrics)
    result = CliRunner().invoke(app, ["config", "validate", "--check-sources", str(path)])
    assert result.exit_code == 2
    lines = [line.strip() for line in result.output.splitlines()]
    assert any(
        line.startswith("models.churn.metrics.broken.query: Prometheus rejected the query (bad_data:") for line in lines
    )
    assert any(line.startswith("sources.down.url: Prometheus at http://127.0.0.1:") for line in lines)
    assert not any("metrics.ok" in line for line in lines)
    assert CliRunner().invoke(app, ["config", "validate", str(path)]).exit_code == 0  # without the dry run


def test_credentials_in_a_source_url_reach_no_error_log_or_command_output(
    prometheus_server: servers.PrometheusServer,
    sqlite_engine: Engine,
    tmp_path: Path,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from monitor.cli.main import app

    secret = "hunter2-prom"
    with_secret = prometheus_server.url.replace("://", f"://admin:{secret}@")  # this Prometheus ignores it
    down = f"http://admin:{secret}@127.0.0.1:{servers.free_port()}"
    configure_logging("INFO", "console")  # as every command does: httpx logs each request URL at INFO
    # alerts.http drops httpx's request lines once an alert channel has posted in this process (an
    # earlier test): keep them here, this test is about redacting third-party lines.
    monkeypatch.setattr(logging.getLogger("httpx"), "filters", [])
    engine = make_engine_with_model(sqlite_engine)
    with httpx.Client(timeout=5) as client:
        assert make_collector(engine, with_secret, "vector(1)", client).collect().stored > 0
        with pytest.raises(SourceError) as info:
            make_collector(engine, down, "vector(1)", client, retry=Backoff(attempts=2, base=0)).collect()
    assert "Prometheus at http://[redacted]@127.0.0.1:" in str(info.value) and secret not in str(info.value)
    logged = capsys.readouterr().err
    assert "HTTP Request: GET http://[redacted]@127.0.0.1:" in logged and "prometheus unavailable, retrying" in logged
    assert secret not in logged

    path = write_config(tmp_path, with_secret, {"broken": ("prom", "rate(x[5m]")})
    config = yaml.safe_load(path.read_text())
    config["sources"]["down"]["url"] = down
    config["models"]["churn"]["metrics"]["far"] = {"source": "down", "query": "up"}
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["config", "validate", "--check-sources", str(path)])
    assert result.exit_code == 2
    assert "sources.down.url: Prometheus at http://[redacted]@127.0.0.1:" in result.output
    assert "models.churn.metrics.broken.query: Prometheus rejected the query" in result.output
    assert secret not in result.output


def test_collect_prometheus_backfills_from_the_command_line(
    prometheus_server: servers.PrometheusServer, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from monitor.cli.collect import collect_app
    from monitor.store.engine import make_engine, upgrade

    path = write_config(tmp_path, prometheus_server.url, {"answer": ("prom", "vector(42)")})
    engine = make_engine(f"sqlite:///{tmp_path / 'driftscope.db'}")
    upgrade(engine)
    args = ["prometheus", "--model", "churn", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T00:00:30Z"]
    result = CliRunner().invoke(collect_app, [*args, "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "prometheus:churn:answer: 31 points stored, at 2026-01-01T00:00:30+00:00" in result.output
    with engine.connect() as connection:
        points = connection.execute(select(MetricPoint.ts, MetricPoint.value).order_by(MetricPoint.ts)).all()
    engine.dispose()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert points == [(start + timedelta(seconds=s), 42.0) for s in range(31)]
