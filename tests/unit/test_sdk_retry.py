"""The SDK's sender retries only what may succeed later; scripted through httpx.MockTransport."""

from __future__ import annotations

import logging

import httpx
import pytest

from monitor.sdk import Client

RECORDS = [b'{"id":"r1","timestamp":"2024-01-01T00:00:00+00:00","features":{},"prediction":1}']


def deliver(*answers: httpx.Response | Exception) -> tuple[Client, list[httpx.Request]]:
    """Send one batch through a transport that answers with ``answers`` in turn, then 200."""
    script, seen = list(answers), []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = script.pop(0) if script else httpx.Response(200, json={"accepted": 1, "rejected": []})
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = Client("http://api.invalid", "dsk_test", max_backoff=0.01)
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client._deliver(http, "prediction", "churn", RECORDS)
    return client, seen


def test_connection_errors_and_503_are_retried_with_the_same_idempotency_key() -> None:
    client, seen = deliver(httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(429))
    assert (client.sent, client.failed, len(seen)) == (1, 0, 4)
    assert len({request.headers["Idempotency-Key"] for request in seen}) == 1


def test_a_4xx_is_refused_at_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "monitor.sdk"):
        client, seen = deliver(httpx.Response(404, text="unknown model"))
    assert (client.sent, client.failed, len(seen)) == (0, 1, 1)
    assert "refused: HTTP 404: unknown model" in caplog.text


def test_an_error_that_is_not_transient_is_not_retried_forever() -> None:
    client, seen = deliver(httpx.DecodingError("a proxy garbled the gzip body"))
    assert (client.sent, client.failed, len(seen)) == (0, 1, 1)
