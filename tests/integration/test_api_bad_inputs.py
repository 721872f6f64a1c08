"""The bad-input corpus of the API review, sent over HTTP to a real uvicorn server: each input gets the
status and message it must, and the good records of its batch are stored whenever the format lets the
server tell them apart (NDJSON lines, records of a JSON array that parses)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from monitor.api.app import create_app
from monitor.store.api_keys import create_api_key
from monitor.store.tables import Prediction
from tests.integration.test_api import canonical, client_for, make_config, serving

LIMIT = 300_000  # api.max_body_bytes of the server under test
GOOD = [orjson.dumps(canonical(0)), orjson.dumps(canonical(1))]
KEPT = {"r0", "r1"}


def record(**fields: Any) -> bytes:
    """A canonical record with raw JSON ``fields`` (bytes spliced in as they are: NaN, bad UTF-8, ...)."""
    body = {"id": b'"bad"', "timestamp": b'"2026-03-01T12:00:00Z"', "features": b"{}", "prediction": b"1", **fields}
    return b"{" + b",".join(b'"%s":%s' % (k.encode(), v) for k, v in body.items()) + b"}"


def json_array(*records: bytes) -> bytes:
    return b"[" + b",".join(records) + b"]"


def ndjson(*records: bytes) -> bytes:
    return b"\n".join(records) + b"\n"


DEEP = b"[" * 10_000 + b"]" * 10_000
HUGE = b'"' + b"x" * 100_000 + b'"'


@dataclass(frozen=True)
class BadInput:
    body: bytes
    status: int
    # index -> the start of its rejection message (every rejected record listed, no other);
    # for a body refused whole (4xx other than 422), the start of its detail under key -1.
    messages: dict[int, str]
    kept: set[str] = field(default_factory=lambda: KEPT)
    ndjson: bool = False


CORPUS = {
    "oversized body": BadInput(
        json_array(*[orjson.dumps(canonical(i, features={"plan": "p" * 1000})) for i in range(400)]),
        413,
        {-1: f"request body larger than {LIMIT} bytes"},
        set(),
    ),
    "10k-deep nesting in a JSON array": BadInput(
        json_array(GOOD[0], record(features=b'{"plan":' + DEEP + b"}"), GOOD[1]),
        400,
        {-1: "body is not valid JSON (UTF-8): depth limit exceeded"},
        set(),
    ),
    "10k-deep nesting in one NDJSON line": BadInput(
        ndjson(GOOD[0], DEEP, GOOD[1]), 200, {1: "[1]: not valid JSON: depth limit exceeded"}, ndjson=True
    ),
    "NaN and Infinity literals in a JSON array": BadInput(
        json_array(GOOD[0], record(features=b'{"tenure":NaN}'), record(id=b'"inf"', score=b"-Infinity"), GOOD[1]),
        200,
        {
            1: "[1].features.tenure: expected a finite number, got nan",
            2: "[2].score: expected a finite number, got -inf",
        },
    ),
    "NaN literal in one NDJSON line": BadInput(
        ndjson(GOOD[0], record(features=b'{"monthly_charges":Infinity}'), GOOD[1]),
        200,
        {1: "[1].features.monthly_charges: expected a finite number, got inf"},
        ndjson=True,
    ),
    "invalid UTF-8 in a JSON array": BadInput(
        json_array(GOOD[0], record(features=b'{"plan":"\xff\xfe"}'), GOOD[1]),
        400,
        {-1: "body is not valid JSON (UTF-8): str is not valid UTF-8"},
        set(),
    ),
    "invalid UTF-8 in one NDJSON line": BadInput(
        ndjson(GOOD[0], record(features=b'{"plan":"\xff\xfe"}'), GOOD[1]),
        200,
        {1: "[1]: not valid JSON: str is not valid UTF-8"},
        ndjson=True,
    ),
    "NUL in an id and in a feature key": BadInput(
        json_array(GOOD[0], record(id=b'"r\\u0000x"'), record(features=b'{"pl\\u0000an":"pro"}'), GOOD[1]),
        200,
        {1: "[1].id: string contains a NUL (\\u0000) character", 2: "[2].features.pl\x00an: unknown feature"},
    ),
    "100k-character strings": BadInput(
        json_array(GOOD[0], record(id=HUGE), record(features=b'{"plan":%s}' % HUGE), GOOD[1]),
        200,
        {
            1: "[1].id: id must be 1 to 200 characters, got 100000",
            2: "[2].features.plan: string of 100000 characters is longer than 1024",
        },
    ),
    "year 99999": BadInput(
        # 3093527980800000 ms after the epoch is 99999-01-01.
        json_array(GOOD[0], record(timestamp=b'"99999-01-01T00:00:00Z"'), record(timestamp=b"3093527980800000")),
        200,
        {
            1: '[1].timestamp: expected an ISO-8601 time or epoch seconds/milliseconds, got "99999-01-01T00:00:00Z"',
            2: "[2].timestamp: expected an ISO-8601 time or epoch seconds/milliseconds, got 3093527980800000",
        },
        {"r0"},
    ),
    "a 64-bit overflowing class": BadInput(
        json_array(GOOD[0], record(prediction=b"1e300"), record(prediction=b"18446744073709551615"), GOOD[1]),
        200,
        {
            1: "[1].prediction: integer class 1e+300 is outside the 64-bit range",
            2: "[2].prediction: integer class 18446744073709551615 is outside the 64-bit range",
        },
    ),
    # Documented in docs/ingestion.md: as in JavaScript, Go and Python, the last occurrence of a key wins.
    "duplicate keys: the last wins": BadInput(
        json_array(GOOD[0], record(id=b'"first","id":"last"'), GOOD[1]),
        200,
        {},
        KEPT | {"last"},
    ),
}


@pytest.fixture
def key(sqlite_engine: Engine) -> str:
    return create_api_key(sqlite_engine, "svc-corpus")[0]


def stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(Prediction.prediction_id)))


@pytest.mark.integration
@pytest.mark.parametrize("case", CORPUS.values(), ids=CORPUS.keys())
def test_bad_input_gets_its_status_and_message_and_the_good_records_are_kept(
    case: BadInput, sqlite_engine: Engine, key: str
) -> None:
    content_type = "application/x-ndjson" if case.ndjson else "application/json"
    with client_for(create_app(make_config(max_body_bytes=LIMIT), sqlite_engine), key) as client:
        response = client.post(
            "/v1/models/churn/predictions", content=case.body, headers={"Content-Type": content_type}
        )
        assert client.get("/healthz").status_code == 200
    assert response.status_code == case.status, response.text
    if -1 in case.messages:
        assert response.json()["detail"].startswith(case.messages[-1]), response.text
    else:
        rejected = {r["index"]: r["message"] for r in response.json()["rejected"]}
        assert set(rejected) == set(case.messages), response.text
        for index, start in case.messages.items():
            assert rejected[index].startswith(start), rejected[index]
    assert stored_ids(sqlite_engine) == case.kept


@pytest.mark.integration
def test_a_chunked_body_over_the_limit_is_refused_before_it_ends(sqlite_engine: Engine, key: str) -> None:
    """No Content-Length, and the body never finishes: only a server that stops reading at the limit answers."""
    app = create_app(make_config(max_body_bytes=LIMIT), sqlite_engine)
    with serving(app) as url, socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/models/churn/predictions HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n" % key.encode()
        )
        chunk = b"[" + b" " * 65_535
        for _ in range(LIMIT // len(chunk) + 2):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = sock.recv(65_536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"request body larger than %d bytes" % LIMIT in answer
    assert stored_ids(sqlite_engine) == set()
