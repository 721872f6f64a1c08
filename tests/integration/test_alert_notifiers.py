"""Contract tests run over every notifier: each kind of the config has one, delivers the same payload to
its real server, and reports an unreachable target as a transient DeliveryError."""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

from alerts import ssrf
from alerts.base import DeliveryError
from alerts.message import probe_payload
from alerts.registry import NOTIFIERS
from monitor.config import Channel
from tests import servers

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
NETWORK_KINDS = ("slack", "email", "webhook", "alertmanager")


def _channel(spec: dict[str, Any]) -> Any:
    return TypeAdapter(Channel).validate_python(spec)


def test_every_channel_kind_has_one_notifier() -> None:
    members = typing.get_args(typing.get_args(Channel)[0])
    kinds = {typing.get_args(m.model_fields["kind"].annotation)[0] for m in members}
    assert set(NOTIFIERS) == kinds


@pytest.fixture
def live(
    request: pytest.FixtureRequest, http_receiver: servers.HttpReceiver, smtp_server: servers.SmtpServer
) -> Iterator[tuple[dict[str, Any], Callable[[], int]]]:
    """(channel spec, count of what its server received) for the kind in ``request.param``."""
    kind = request.param
    if kind == "slack":
        spec = {"kind": "slack", "webhook": f"{http_receiver.url}/services/x", "allow_private": True}
        yield spec, lambda: len(http_receiver.requests)
    elif kind == "webhook":
        spec = {"kind": "webhook", "url": http_receiver.url, "allow_private": True, "secret": "k"}
        yield spec, lambda: len(http_receiver.requests)
    elif kind == "email":
        spec = {"kind": "email", "smtp": f"smtp://127.0.0.1:{smtp_server.port}", "to": ["a@example.test"]}
        yield spec, lambda: len(smtp_server.messages)
    elif kind == "alertmanager":
        am = request.getfixturevalue("alertmanager_server")
        count = lambda: len(am.alerts(alertname="driftscope test notification", channel_test=str(NOW)))  # noqa: E731
        yield {"kind": "alertmanager", "url": am.url, "allow_private": True}, count
    else:
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("alerts.console").addHandler(handler)
        yield {"kind": "console"}, lambda: len(records)
        logging.getLogger("alerts.console").removeHandler(handler)


@pytest.mark.parametrize("live", [*NETWORK_KINDS, "console"], indirect=True)
def test_each_notifier_delivers_the_same_payload(live: tuple[dict[str, Any], Callable[[], int]]) -> None:
    spec, received = live
    payload = probe_payload("contract", NOW)
    payload["alerts"][0]["labels"]["channel_test"] = str(NOW)
    NOTIFIERS[spec["kind"]].send(_channel(spec), payload, "contract-key")
    servers.wait_for(lambda: received() == 1, f"{spec['kind']} to receive the notification", timeout=10)


@pytest.mark.parametrize("kind", NETWORK_KINDS)
def test_an_unreachable_target_is_a_transient_error(kind: str) -> None:
    port = servers.free_port()  # nothing listens there
    spec = {
        "slack": {"kind": "slack", "webhook": f"http://127.0.0.1:{port}/services/x", "allow_private": True},
        "webhook": {"kind": "webhook", "url": f"http://127.0.0.1:{port}/", "allow_private": True},
        "email": {"kind": "email", "smtp": f"smtp://127.0.0.1:{port}", "to": ["a@example.test"]},
        "alertmanager": {"kind": "alertmanager", "url": f"http://127.0.0.1:{port}", "allow_private": True},
    }[kind]
    with pytest.raises(DeliveryError) as caught:
        NOTIFIERS[kind].send(_channel(spec), probe_payload("contract", NOW), "contract-key")
    assert caught.value.transient is True and "connection failed" in caught.value.reason


# The key of each HTTP channel's URL: they all go out through alerts.http.post, behind one guard.
HTTP_URL_KEYS = {"slack": "webhook", "webhook": "url", "alertmanager": "url"}


@pytest.mark.parametrize("kind", HTTP_URL_KEYS)
def test_every_http_channel_refuses_loopback_unless_allow_private(
    kind: str, http_receiver: servers.HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {"kind": kind, HTTP_URL_KEYS[kind]: f"{http_receiver.url}/services/T000/B000/XXXX"}
    payload = probe_payload("contract", NOW)
    with pytest.raises(DeliveryError, match=f"port {http_receiver.port} not allowed") as caught:
        NOTIFIERS[kind].send(_channel(spec), payload, "contract-key")
    assert caught.value.transient is False
    # With the receiver's port allowed, the address is what the guard refuses.
    monkeypatch.setattr(ssrf, "ALLOWED_PORTS", (*ssrf.ALLOWED_PORTS, http_receiver.port))
    with pytest.raises(DeliveryError, match="resolves to a loopback address; set allow_private: true"):
        NOTIFIERS[kind].send(_channel(spec), payload, "contract-key")
    assert http_receiver.requests == []
    NOTIFIERS[kind].send(_channel({**spec, "allow_private": True}), payload, "contract-key")
    assert len(http_receiver.requests) == 1


CANARY = "CANARYpath5e1f"  # the secret part of a URL, which no failure may repeat


@pytest.mark.parametrize("kind", HTTP_URL_KEYS)
def test_no_failure_repeats_the_url(
    kind: str, http_receiver: servers.HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    what = {"slack": "slack webhook"}.get(kind, kind)
    hook = f"{http_receiver.url}/services/{CANARY}"
    cases = [  # (url, allow_private, transient, the reason after "<what>: ")
        (hook, False, False, f"port {http_receiver.port} not allowed"),
        (f"http://127.0.0.1:{servers.free_port()}/services/{CANARY}", True, True, "connection failed"),
        (f"{hook}\x00", True, False, "not a valid URL; correct the channel's url"),
        (f"http://{CANARY * 5}.example/x", True, False, "not a valid host name; correct the channel's url"),
        (f"http://{CANARY}.invalid/services/{CANARY}", True, True, "host does not resolve"),
        (hook, True, True, "HTTP 500"),
    ]
    http_receiver.script(servers.ScriptedResponse(500, CANARY.encode()))
    for url, allow_private, transient, reason in cases:
        spec = {"kind": kind, HTTP_URL_KEYS[kind]: url, "allow_private": allow_private}
        with pytest.raises(DeliveryError) as caught:
            NOTIFIERS[kind].send(_channel(spec), probe_payload("contract", NOW), "contract-key")
        assert caught.value.reason.startswith(f"{what}: {reason}") and caught.value.transient is transient
        assert CANARY not in f"{caught.value} {caught.value!r} {caught.value.__cause__!r}"
    assert len(http_receiver.requests) == 1  # the 500
    assert caplog.records and CANARY not in caplog.text
