"""The Prometheus collector with a scripted Prometheus at the HTTP seam (httpx.MockTransport).

The real server is exercised in tests/integration/test_prometheus.py; here outages, errors and
checkpoint edge cases are scripted exactly.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from collectors.prometheus import PrometheusCollector, check_queries, plan_chunks, to_ms
from monitor.config import ConfigError, MetricQuery, PrometheusSource, parse_config
from monitor.errors import SourceError
from monitor.retry import Backoff
from monitor.store.queries import sync_models
from monitor.store.tables import Checkpoint, MetricPoint, MetricSeries

URL = "http://prometheus.test:9090"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NO_WAIT = Backoff(attempts=3, base=0)


@pytest.mark.parametrize(
    ("start", "end", "step", "max_points"),
    [(0, 0, 1, 5), (0, 9, 1, 10), (0, 10, 1, 10), (5, 95, 5, 3), (0, 99, 1, 1), (10, 5, 1, 3)],
)
def test_plan_chunks_covers_the_grid_once_within_the_limit(start: int, end: int, step: int, max_points: int) -> None:
    chunks = list(plan_chunks(start, end, step, max_points))
    covered = [t for a, b in chunks for t in range(a, b + 1, step)]
    assert covered == list(range(start, end + 1, step))
    assert all((b - a) // step + 1 <= max_points for a, b in chunks)


@dataclass
class FakePrometheus:
    """Answers query_range with two series, value = 2 * epoch seconds (route /a) and NaN (route /nan).

    ``script`` holds what to do for the next requests: an HTTP status to answer with, or an
    exception to raise; an empty script answers normally.
    """

    script: list[int | Exception] = field(default_factory=list)
    requests: list[dict[str, float]] = field(default_factory=list)
    down_after: int | None = None  # refuse connections after this many answers
    answers: int = 0
    error_body: dict[str, Any] = field(
        default_factory=lambda: {"status": "error", "errorType": "unavailable", "error": "starting"}
    )

    def handler(self, request: httpx.Request) -> httpx.Response:
        params = {k: float(v) for k, v in request.url.params.items() if k != "query"}
        self.requests.append(params)
        if self.down_after is not None and self.answers >= self.down_after:
            raise httpx.ConnectError("connection refused")
        self.answers += 1
        if self.script:
            action = self.script.pop(0)
            if isinstance(action, Exception):
                raise action
            return httpx.Response(action, json=self.error_body)
        start, end, step = params["start"], params["end"], params["step"]
        steps = [start + i * step for i in range(round((end - start) / step) + 1)]
        result = [
            {"metric": {"__name__": "m", "route": "/a"}, "values": [[t, str(2 * t)] for t in steps]},
            {"metric": {"__name__": "m", "route": "/nan"}, "values": [[t, "NaN"] for t in steps]},
        ]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": result}})


@pytest.fixture
def prometheus() -> Iterator[tuple[FakePrometheus, httpx.Client]]:
    fake = FakePrometheus()
    client = httpx.Client(transport=httpx.MockTransport(fake.handler))
    yield fake, client
    client.close()


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def make(
    engine: Engine, client: httpx.Client, clock: Callable[[], datetime], query: str = "m", **source: Any
) -> PrometheusCollector:
    sync_models(engine, parse_config({"models": {"churn": {"task": "binary", "features": {"x": "numeric"}}}}))
    settings = {"max_points_per_request": 4, "step": "1s", "safety_lag": "0s", **source}
    return PrometheusCollector(
        engine,
        "churn",
        "latency",
        MetricQuery(source="prom", query=query),
        PrometheusSource(kind="prometheus", url=URL, **settings),
        client=client,
        retry=NO_WAIT,
        initial_lookback=timedelta(seconds=9),
        clock=clock,
    )


def points(engine: Engine) -> list[tuple[int, float]]:
    with engine.connect() as connection:
        rows = connection.execute(select(MetricPoint.ts, MetricPoint.value).order_by(MetricPoint.ts)).all()
    return [(to_ms(ts), value) for ts, value in rows]


def expected(start: datetime, seconds: int) -> list[tuple[int, float]]:
    first = to_ms(start)
    return [(first + 1000 * s, 2 * (first / 1000 + s)) for s in range(seconds + 1)]


def test_collect_chunks_then_resumes_from_the_checkpoint(store_engine: Engine, prometheus: Any) -> None:
    fake, client = prometheus
    clock = Clock()
    collector = make(store_engine, client, clock)

    first = collector.collect()
    assert [(r["start"], r["end"]) for r in fake.requests] == [
        (T0.timestamp() - 9, T0.timestamp() - 6),
        (T0.timestamp() - 5, T0.timestamp() - 2),
        (T0.timestamp() - 1, T0.timestamp()),
    ]
    assert first.position == T0 and first.caught_up and first.stored == 10
    assert points(store_engine) == expected(T0 - timedelta(seconds=9), 9)

    clock.now = T0 + timedelta(seconds=3, milliseconds=500)  # not on the grid: rounded down
    fake.requests.clear()
    second = collector.collect()
    assert [(r["start"], r["end"]) for r in fake.requests] == [(T0.timestamp() + 1, T0.timestamp() + 3)]
    assert second.position == T0 + timedelta(seconds=3)
    assert points(store_engine) == expected(T0 - timedelta(seconds=9), 12)
    with store_engine.connect() as connection:
        series = connection.execute(select(MetricSeries.name, MetricSeries.labels, MetricSeries.query)).all()
    # The NaN series exists (its labels are known) but holds no points.
    assert sorted(series, key=lambda s: s[1]["route"]) == [
        ("latency", {"__name__": "m", "route": "/a"}, "m"),
        ("latency", {"__name__": "m", "route": "/nan"}, "m"),
    ]


def test_transient_failures_are_retried(sqlite_engine: Engine, prometheus: Any) -> None:
    fake, client = prometheus
    fake.script = [503, httpx.ConnectError("refused")]
    result = make(sqlite_engine, client, Clock()).collect()
    assert len(fake.requests) == 5  # 3 chunks + 2 failed attempts
    assert result.caught_up
    assert points(sqlite_engine) == expected(T0 - timedelta(seconds=9), 9)


def test_an_outage_between_chunks_keeps_what_was_stored_and_resumes_without_gap(
    sqlite_engine: Engine, prometheus: Any
) -> None:
    fake, client = prometheus
    collector = make(sqlite_engine, client, Clock())
    fake.down_after = 1
    with pytest.raises(SourceError) as raised:
        collector.collect()
    assert raised.value.transient
    assert "models.churn.metrics.latency" in str(raised.value)
    assert len(fake.requests) == 1 + NO_WAIT.attempts
    assert collector.position() == T0 - timedelta(seconds=6)  # the first chunk, and only it
    assert points(sqlite_engine) == expected(T0 - timedelta(seconds=9), 3)

    fake.down_after = None
    assert collector.collect().caught_up
    assert points(sqlite_engine) == expected(T0 - timedelta(seconds=9), 9)


def test_a_bad_query_fails_at_once_with_prometheus_error_and_the_query_name(
    sqlite_engine: Engine, prometheus: Any
) -> None:
    fake, client = prometheus
    fake.script = [400]
    fake.error_body = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "]"'}
    with pytest.raises(SourceError) as raised:
        make(sqlite_engine, client, Clock()).collect()
    assert not raised.value.transient
    assert str(raised.value) == (
        'models.churn.metrics.latency: Prometheus rejected the query (bad_data: parse error: unexpected "]")'
    )
    assert len(fake.requests) == 1
    with sqlite_engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Checkpoint)).scalar_one() == 0


def test_an_instant_vector_answer_is_rejected(sqlite_engine: Engine) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client, pytest.raises(SourceError, match="matrix"):
        make(sqlite_engine, client, Clock()).collect()


def test_backfill_is_idempotent_and_moves_the_checkpoint_only_without_gap(
    sqlite_engine: Engine, prometheus: Any
) -> None:
    _, client = prometheus
    collector = make(sqlite_engine, client, Clock())
    collector.collect()  # checkpoint at T0
    before = points(sqlite_engine)

    collector.backfill(T0 - timedelta(seconds=30), T0 - timedelta(seconds=20))  # history: checkpoint stays
    assert collector.position() == T0
    collector.backfill(T0 + timedelta(seconds=10), T0 + timedelta(seconds=12))  # ahead with a gap: stays
    assert collector.position() == T0
    collector.backfill(T0 - timedelta(seconds=2), T0 + timedelta(seconds=5))  # joins it: moves on
    assert collector.position() == T0 + timedelta(seconds=5)

    stored = points(sqlite_engine)
    assert len(stored) == len(set(stored)) == 11 + len(before) + 5 + 3
    collector.backfill(T0 - timedelta(seconds=30), T0 + timedelta(seconds=12))  # everything again
    assert points(sqlite_engine) == sorted(set(stored) | set(expected(T0 - timedelta(seconds=30), 42)))


def test_nan_values_are_not_stored(sqlite_engine: Engine, prometheus: Any) -> None:
    _, client = prometheus
    make(sqlite_engine, client, Clock()).collect()
    assert not any(math.isnan(value) for _, value in points(sqlite_engine))


# --- config validate --check-sources ---------------------------------------------------------------


def config_with_queries() -> Any:
    return parse_config(
        {
            "sources": {
                "prom": {"kind": "prometheus", "url": URL},
                "gone": {"kind": "prometheus", "url": "http://gone.test:9090"},
            },
            "models": {
                "churn": {
                    "task": "binary",
                    "features": {"x": "numeric"},
                    "metrics": {
                        "good": {"source": "prom", "query": "up"},
                        "bad": {"source": "prom", "query": "rate(up[5m]"},
                        "far1": {"source": "gone", "query": "up"},
                        "far2": {"source": "gone", "query": "up"},
                    },
                }
            },
        }
    )


def test_check_queries_reports_each_bad_query_and_each_unreachable_source_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "gone.test":
            raise httpx.ConnectError("name or service not known")
        query = request.url.params["query"]
        if query == "up":
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}})
        body = {"status": "error", "errorType": "bad_data", "error": "1:12: parse error: unclosed left parenthesis"}
        return httpx.Response(400, content=json.dumps(body))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        errors = check_queries(config_with_queries(), client)
    assert errors == [
        (
            "models.churn.metrics.bad.query",
            "Prometheus rejected the query (bad_data: 1:12: parse error: unclosed left parenthesis)",
        ),
        ("sources.gone.url", "Prometheus at http://gone.test:9090 unreachable"),
    ]


def test_a_config_edit_of_step_and_query_continues_on_the_new_grid(sqlite_engine: Engine, prometheus: Any) -> None:
    fake, client = prometheus
    make(sqlite_engine, client, Clock(T0 + timedelta(seconds=1))).collect()
    fake.requests.clear()
    edited = make(sqlite_engine, client, Clock(T0 + timedelta(seconds=10)), query="m * 1", step="4s")
    assert edited.collect().position == T0 + timedelta(seconds=8)
    assert [(r["start"], r["end"], r["step"]) for r in fake.requests] == [(T0.timestamp() + 4, T0.timestamp() + 8, 4)]
    with sqlite_engine.connect() as connection:
        assert set(connection.execute(select(MetricSeries.query)).scalars()) == {"m * 1"}


def test_two_workers_collecting_the_same_query_at_once_agree(store_engine: Engine) -> None:
    # No series in the answer: the checkpoint row is the only thing both transactions write.
    def empty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": []}})

    client = httpx.Client(transport=httpx.MockTransport(empty))
    collectors = [make(store_engine, client, Clock(), max_points_per_request=1) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(collector: PrometheusCollector) -> None:
        barrier.wait()
        try:
            collector.collect()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in collectors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    assert errors == []
    assert collectors[0].position() == T0


def test_a_step_below_a_millisecond_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(
            {
                "sources": {"prom": {"kind": "prometheus", "url": URL, "step": "0s"}},
                "models": {
                    "churn": {
                        "task": "binary",
                        "features": {"x": "numeric"},
                        "metrics": {"p99": {"source": "prom", "query": "up", "step": 0.0001}},
                    }
                },
            }
        )
    assert raised.value.errors == [
        ("sources.prom.step", "expected a step of at least 1ms, got 0s"),
        ("models.churn.metrics.p99.step", "expected a step of at least 1ms, got 0.0001s"),
    ]


@pytest.mark.parametrize(
    ("settings", "authorization"),
    [
        ({"bearer_token": "${PROM_TOKEN}"}, "Bearer t0k3n"),
        ({"username": "driftscope", "password": "${PROM_PASSWORD}"}, "Basic ZHJpZnRzY29wZTpwYXNzdzByZA=="),
        ({}, None),
    ],
)
def test_each_request_carries_the_source_credentials(
    sqlite_engine: Engine, settings: dict[str, str], authorization: str | None
) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": []}})

    env = {"PROM_TOKEN": "t0k3n", "PROM_PASSWORD": "passw0rd"}
    source = parse_config({"sources": {"prom": {"kind": "prometheus", "url": URL, **settings}}}, env=env)
    assert "t0k3n" not in repr(source) and "passw0rd" not in repr(source)
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        make(sqlite_engine, client, Clock(), **source.sources["prom"].model_dump(exclude={"kind", "url"})).collect()
    assert seen and set(seen) == {authorization}


def test_a_refused_credential_fails_at_once_naming_the_settings(sqlite_engine: Engine, prometheus: Any) -> None:
    fake, client = prometheus
    fake.script = [401]
    with pytest.raises(SourceError) as raised:
        make(sqlite_engine, client, Clock(), username="driftscope", password="wrong-one").collect()
    assert not raised.value.transient and len(fake.requests) == 1
    assert str(raised.value) == (
        f"models.churn.metrics.latency: Prometheus at {URL} refused access (HTTP 401): "
        "check the source's username and password, or its bearer_token"
    )


def test_credentials_are_basic_auth_or_a_bearer_token() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(
            {
                "sources": {
                    "both": {"kind": "prometheus", "url": URL, "username": "u", "password": "p", "bearer_token": "t"},
                    "nameless": {"kind": "prometheus", "url": URL, "password": "p"},
                }
            }
        )
    assert raised.value.errors == [
        ("sources.both.bearer_token", "give username/password or bearer_token, not both"),
        ("sources.nameless.username", "a password needs its username"),
    ]
