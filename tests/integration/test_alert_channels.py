"""Delivery to real servers: aiosmtpd, a local Slack-like receiver, Debian's prometheus-alertmanager."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from alerts import deliver_due, evaluate
from alerts.alertmanager import AlertmanagerNotifier
from alerts.email import message_id
from alerts.message import probe_payload
from alerts.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from monitor.config import AlertmanagerChannel, Config, ConfigError
from monitor.store.engine import transaction
from monitor.store.tables import Notification
from tests import servers
from tests.alert_support import HOUR, T0, add_window, make_config, setup_models

pytestmark = pytest.mark.integration

DRIFT = {"name": "feature drift", "when": "drift.share_drifted > 0.3", "resolve_when": "drift.share_drifted < 0.2"}
FEATURES = {"tenure": 0.3, "plan": 1e-6, "monthly_charges": 0.004}


def _notifications(engine: Engine) -> list[Notification]:
    with transaction(engine) as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def fire_then_resolve(engine: Engine, config: Config, start: datetime = T0) -> None:
    model = setup_models(engine, config)["churn"]
    add_window(engine, model, start, 0.67, FEATURES)
    evaluate(engine, config, start + HOUR)
    assert deliver_due(engine, config, start + HOUR) == 1
    add_window(engine, model, start + HOUR, 0.1, {f: 0.5 for f in FEATURES})
    evaluate(engine, config, start + 2 * HOUR)
    assert deliver_due(engine, config, start + 2 * HOUR) == 1


def test_smtp_receives_firing_and_resolved_emails(sqlite_engine: Engine, smtp_server: servers.SmtpServer) -> None:
    channel = {
        "kind": "email",
        "smtp": f"smtp://{smtp_server.host}:{smtp_server.port}",
        "to": ["oncall@example.test", "ml-team@example.test"],
        "from": "driftscope@example.test",
    }
    config = make_config([{**DRIFT, "notify": ["mail"]}], {"mail": channel}, group_wait="0s")
    fire_then_resolve(sqlite_engine, config)
    firing, resolved = smtp_server.messages
    keys = [n.idempotency_key for n in _notifications(sqlite_engine)]
    assert [m.message["Message-ID"] for m in (firing, resolved)] == [message_id(k) for k in keys]
    assert firing.message["Subject"] == "[FIRING:1] feature drift · model=churn"
    assert resolved.message["Subject"] == "[RESOLVED] feature drift · model=churn"
    assert firing.rcpt_tos == ["oncall@example.test", "ml-team@example.test"]
    assert firing.message.get_content_type() == "multipart/alternative"
    text = firing.message.get_body(("plain",)).get_content()
    html = firing.message.get_body(("html",)).get_content()
    assert "drift.share_drifted on churn = 0.67 > 0.3" in text
    assert text.index("plan: ks") < text.index("monthly_charges: ks") < text.index("tenure: ks")  # ranked
    assert "1000 rows in window" in text and "n=1000 vs 5000" in text
    assert "https://driftscope.example.test/models/churn?window=2026-03-02T08%3A00%3A00Z&monitor=churn-hourly" in text
    assert (
        '<a href="https://driftscope.example.test/models/churn?window=2026-03-02T08%3A00%3A00Z&amp;monitor=churn-hourly">'
        in html
    )
    assert "resolved (drift.share_drifted &lt; 0.2)" in resolved.message.get_body(("html",)).get_content()


def _check_block_kit(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of Slack's Block Kit rules this payload uses (https://api.slack.com/reference/block-kit)."""
    assert isinstance(message["text"], str) and message["text"]
    (attachment,) = message["attachments"]
    assert attachment["color"].startswith("#") and len(attachment["color"]) == 7
    blocks = attachment["blocks"]
    assert 0 < len(blocks) <= 50
    for block in blocks:
        kind = block["type"]
        assert kind in ("header", "section", "context", "actions")
        if kind == "header":
            assert block["text"]["type"] == "plain_text" and 0 < len(block["text"]["text"]) <= 150
        if kind == "section":
            assert block["text"]["type"] == "mrkdwn" and 0 < len(block["text"]["text"]) <= 3000
        if kind == "actions":
            for element in block["elements"]:
                assert element["type"] == "button" and element["text"]["type"] == "plain_text"
                assert element["url"].startswith("https://") and len(element["url"]) <= 3000
    return blocks


def test_slack_receives_a_valid_block_kit_payload(sqlite_engine: Engine, http_receiver: servers.HttpReceiver) -> None:
    channel = {"kind": "slack", "webhook": f"{http_receiver.url}/services/T000/B000/XXXX", "allow_private": True}
    config = make_config([{**DRIFT, "severity": "critical", "notify": ["slack"]}], {"slack": channel}, group_wait="0s")
    fire_then_resolve(sqlite_engine, config)
    firing, resolved = http_receiver.requests
    assert firing.path == "/services/T000/B000/XXXX" and firing.headers["Content-Type"] == "application/json"
    blocks = _check_block_kit(firing.json())
    assert firing.json()["attachments"][0]["color"] == "#d62728"  # critical
    assert blocks[0]["text"]["text"] == "[FIRING:1] feature drift · model=churn"
    assert "0.67 &gt; 0.3" in blocks[1]["text"]["text"] and "plan: ks" in blocks[1]["text"]["text"]
    assert blocks[-1]["elements"][0]["url"].endswith(
        "/models/churn?window=2026-03-02T08%3A00%3A00Z&monitor=churn-hourly"
    )
    _check_block_kit(resolved.json())
    assert resolved.json()["attachments"][0]["color"] == "#2ca02c"


def test_alertmanager_lists_the_alert_and_its_resolve(
    sqlite_engine: Engine, alertmanager_server: servers.AlertmanagerServer
) -> None:
    # Alertmanager compares endsAt with its own clock: the simulated clock starts near the real one.
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    test_id = uuid.uuid4().hex
    rule = {**DRIFT, "labels": {"test_id": test_id}, "notify": ["am"]}
    channel = {"kind": "alertmanager", "url": alertmanager_server.url, "allow_private": True}
    config = make_config([rule], {"am": channel}, group_wait="0s")
    model = setup_models(sqlite_engine, config)["churn"]
    add_window(sqlite_engine, model, start, 0.67, FEATURES)
    evaluate(sqlite_engine, config, start + HOUR)
    assert deliver_due(sqlite_engine, config, start + HOUR) == 1
    (listed,) = servers.wait_for(lambda: alertmanager_server.alerts(test_id=test_id), "the alert in Alertmanager")
    assert listed["labels"] | {"test_id": ""} == {
        "alertname": "feature drift",
        "rule": "feature drift",
        "model": "churn",
        "monitor": "churn-hourly",
        "severity": "warning",
        "test_id": "",
    }
    assert listed["status"]["state"] == "active"
    assert listed["annotations"]["summary"] == "feature drift: drift.share_drifted on churn = 0.67 > 0.3"
    assert listed["generatorURL"].startswith("https://driftscope.example.test/models/churn?window=")
    add_window(sqlite_engine, model, start + HOUR, 0.1, {f: 0.5 for f in FEATURES})
    evaluate(sqlite_engine, config, start + 2 * HOUR)
    assert deliver_due(sqlite_engine, config, start + 2 * HOUR) == 1
    # endsAt in the past: Alertmanager no longer lists it as active.
    servers.wait_for(lambda: not alertmanager_server.alerts(test_id=test_id), "the alert to resolve")


def test_webhook_is_signed_and_carries_its_idempotency_key(
    sqlite_engine: Engine, http_receiver: servers.HttpReceiver
) -> None:
    channel = {"kind": "webhook", "url": f"{http_receiver.url}/hook", "secret": "hmac-key", "allow_private": True}
    config = make_config([{**DRIFT, "notify": ["hook"]}], {"hook": channel}, group_wait="0s")
    fire_then_resolve(sqlite_engine, config)
    notifications = _notifications(sqlite_engine)
    for request, notification in zip(http_receiver.requests, notifications, strict=True):
        assert request.headers["Idempotency-Key"] == notification.idempotency_key
        assert verify("hmac-key", request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER])
        assert not verify(
            "other-key", request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER]
        )
        assert request.json()["event"] == notification.event
    assert http_receiver.requests[0].json()["alerts"][0]["annotations"]["top_features"][0]["feature"] == "plan"


# Every HTTP channel: (the key of its URL, the name its errors start with).
HTTP_CHANNELS = {
    "webhook": ("url", "webhook"),
    "slack": ("webhook", "slack webhook"),
    "alertmanager": ("url", "alertmanager"),
}


@pytest.mark.parametrize("kind", HTTP_CHANNELS)
def test_a_private_address_is_refused_without_allow_private(
    sqlite_engine: Engine, http_receiver: servers.HttpReceiver, kind: str
) -> None:
    key, what = HTTP_CHANNELS[kind]
    channels = {"out": {"kind": kind, key: f"{http_receiver.url}/services/T000/B000/XXXX"}}
    config = make_config([{**DRIFT, "notify": ["out"]}], channels, group_wait="0s")
    model = setup_models(sqlite_engine, config)["churn"]
    add_window(sqlite_engine, model, T0, 0.67, FEATURES)
    evaluate(sqlite_engine, config, T0 + HOUR)
    assert deliver_due(sqlite_engine, config, T0 + 2 * HOUR) == 0
    (notification,) = _notifications(sqlite_engine)
    assert notification.status == "failed"
    assert notification.last_error.startswith(f"{what}: port {http_receiver.port} not allowed (80, 443, 8080, 8443)")
    assert "set allow_private: true on the channel" in notification.last_error
    assert http_receiver.requests == []


@pytest.mark.parametrize("base", ["/am", "/am/", "/am?", "/am#", "/am?x=1"])
def test_alertmanager_endpoint_is_the_base_path_joined_with_the_api_path(
    http_receiver: servers.HttpReceiver, base: str
) -> None:
    # The query and fragment are refused at load (below); past validation, they are still dropped.
    channel = AlertmanagerChannel.model_construct(
        kind="alertmanager", url=f"{http_receiver.url}{base}", allow_private=True
    )
    AlertmanagerNotifier().send(channel, probe_payload("am", T0), "key")
    assert [r.path for r in http_receiver.requests] == ["/am/api/v2/alerts"]


@pytest.mark.parametrize("tail", ["?", "#", "?a=1", "/#x"])
def test_an_alertmanager_url_with_a_query_or_fragment_is_refused_at_load(tail: str) -> None:
    channel = {
        "kind": "alertmanager",
        "url": f"http://alertmanager.internal:9093/-/reload{tail}",
        "allow_private": True,
    }
    with pytest.raises(ConfigError) as caught:
        make_config([{**DRIFT, "notify": ["am"]}], {"am": channel})
    ((path, message),) = caught.value.errors
    assert path == "alerts.channels.am.url" and "no query or fragment" in message


def test_rate_limits_retries_and_final_failures(sqlite_engine: Engine, http_receiver: servers.HttpReceiver) -> None:
    channel = {"kind": "slack", "webhook": f"{http_receiver.url}/services/x", "allow_private": True}
    config = make_config([{**DRIFT, "notify": ["slack"]}], {"slack": channel}, group_wait="0s")
    model = setup_models(sqlite_engine, config)["churn"]
    add_window(sqlite_engine, model, T0, 0.67, FEATURES)
    now = T0 + HOUR
    evaluate(sqlite_engine, config, now)
    http_receiver.script(servers.ScriptedResponse(429, b"slow down", {"Retry-After": "120"}), 503)
    assert deliver_due(sqlite_engine, config, now) == 0
    (row,) = _notifications(sqlite_engine)
    assert (row.status, row.next_attempt_at, row.last_error) == (
        "pending",
        now + timedelta(seconds=120),
        "slack webhook: HTTP 429 rate limited",
    )
    assert deliver_due(sqlite_engine, config, now + timedelta(seconds=119)) == 0
    assert len(http_receiver.requests) == 1
    assert deliver_due(sqlite_engine, config, now + timedelta(seconds=120)) == 0  # 503: exponential backoff
    (row,) = _notifications(sqlite_engine)
    wait = row.next_attempt_at - (now + timedelta(seconds=120))
    assert timedelta(seconds=30) <= wait <= timedelta(seconds=60)  # base 30s * 2**1, jittered to [50%, 100%]
    assert deliver_due(sqlite_engine, config, row.next_attempt_at) == 1
    assert len(http_receiver.requests) == 3

    # A 404 is final: recorded with the reason, never with the body the target answered.
    add_window(sqlite_engine, model, T0 + HOUR, 0.1, {f: 0.5 for f in FEATURES})
    evaluate(sqlite_engine, config, T0 + 2 * HOUR)
    http_receiver.script(servers.ScriptedResponse(404, b"no_service: echo-this-body"))
    assert deliver_due(sqlite_engine, config, T0 + 2 * HOUR) == 0
    last = _notifications(sqlite_engine)[-1]
    assert (last.status, last.attempts, last.last_error) == (
        "failed",
        1,
        "slack webhook: HTTP 404 (rejected; not retried)",
    )


def test_redirects_are_not_followed(sqlite_engine: Engine, http_receiver: servers.HttpReceiver) -> None:
    other = servers.HttpReceiver()
    try:
        channel = {"kind": "webhook", "url": http_receiver.url, "allow_private": True}
        config = make_config([{**DRIFT, "notify": ["hook"]}], {"hook": channel}, group_wait="0s")
        model = setup_models(sqlite_engine, config)["churn"]
        add_window(sqlite_engine, model, T0, 0.67, FEATURES)
        evaluate(sqlite_engine, config, T0 + HOUR)
        http_receiver.script(servers.ScriptedResponse(307, b"", {"Location": f"{other.url}/internal"}))
        assert deliver_due(sqlite_engine, config, T0 + HOUR) == 0
        assert other.requests == []
        assert _notifications(sqlite_engine)[0].last_error == "webhook: HTTP 307 redirect (redirects are not followed)"
    finally:
        other.stop()


@pytest.fixture
def smtp_with_auth():  # type: ignore[no-untyped-def]
    """aiosmtpd requiring AUTH (user driftscope, password right-password) over plain SMTP."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"driftscope", b"right-password")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535 itself

    messages: list[servers.ReceivedMail] = []
    controller = Controller(
        servers._CaptureHandler(messages),
        hostname="127.0.0.1",
        port=servers.free_port(),
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield controller.port, messages
    controller.stop()


# The test server takes AUTH over plain SMTP (no certificate to make); aiosmtpd warns about that.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize(("password", "delivered"), [("right-password", True), ("wrong-password", False)])
def test_smtp_login(sqlite_engine: Engine, smtp_with_auth: Any, password: str, delivered: bool) -> None:
    port, messages = smtp_with_auth
    channel = {
        "kind": "email",
        "smtp": f"smtp://127.0.0.1:{port}",
        "to": ["oncall@example.test"],
        "username": "driftscope",
        "password": password,
    }
    config = make_config([{**DRIFT, "notify": ["mail"]}], {"mail": channel}, group_wait="0s")
    model = setup_models(sqlite_engine, config)["churn"]
    add_window(sqlite_engine, model, T0, 0.67, FEATURES)
    evaluate(sqlite_engine, config, T0 + HOUR)
    assert deliver_due(sqlite_engine, config, T0 + HOUR) == int(delivered)
    (row,) = _notifications(sqlite_engine)
    if delivered:
        assert row.status == "delivered" and len(messages) == 1
    else:
        assert (row.status, row.last_error, messages) == ("failed", "smtp: server replied 535", [])
