"""Canary secrets never leak: not in logs, errors, stored rows, CLI output or exceptions — failure paths included."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import typer
import yaml
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from alerts import deliver_due, evaluate
from alerts.base import DeliveryError
from alerts.outbox import send_test
from monitor.cli import alerts as alerts_commands
from monitor.config import load_config
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Notification
from tests import servers
from tests.alert_support import HOUR, T0, add_window, setup_models

pytestmark = pytest.mark.integration

CANARIES = {
    "SLACK_URL_TOKEN": "CANARYslack7f3a9c",
    "HOOK_TOKEN": "CANARYhook91b2e",
    "HOOK2_TOKEN": "CANARYhookdead4",
    "HMAC_KEY": "CANARYhmac55c1x",
    "SMTP_PASSWORD": "CANARYsmtppw0d4e",
    "BAD_URL_TOKEN": "CANARYbadurl8a1",
}
BODY_ECHO = b"CANARYbodyecho3f"  # what a hostile target answers: never repeated either


def _config_file(tmp_path: Path, receiver: servers.HttpReceiver, smtp: servers.SmtpServer) -> Path:
    channels = {
        "slack": {"kind": "slack", "webhook": f"{receiver.url}/services/${{SLACK_URL_TOKEN}}", "allow_private": True},
        # Loopback on a high port without allow_private: refused by the SSRF guard.
        "hook": {"kind": "webhook", "url": f"{receiver.url}/${{HOOK_TOKEN}}", "secret": "${HMAC_KEY}"},
        # Nothing listens there: connection refused.
        "hook2": {
            "kind": "webhook",
            "url": f"http://127.0.0.1:{servers.free_port()}/x/${{HOOK2_TOKEN}}",
            "secret": "${HMAC_KEY}",
            "allow_private": True,
        },
        # Well-formed enough for the config (which refuses e.g. an unclosed "[" at load), not for the sender.
        "badurl": {"kind": "webhook", "url": "http://127.0.0.1:9/x/${BAD_URL_TOKEN}\x00", "allow_private": True},
        # aiosmtpd offers no AUTH: login fails.
        "mail": {
            "kind": "email",
            "smtp": f"smtp://{smtp.host}:{smtp.port}",
            "to": ["oncall@example.test"],
            "username": "driftscope",
            "password": "${SMTP_PASSWORD}",
        },
    }
    config = {
        "store": f"sqlite:///{tmp_path / 'driftscope.db'}",
        "models": {"churn": {"task": "binary", "features": {"tenure": "numeric"}}},
        "monitors": {"churn-hourly": {"model": "churn", "reference": {"previous_windows": 24}}},
        "alerts": {
            "rules": [{"name": "drift", "when": "drift.share_drifted > 0.3", "notify": list(channels)}],
            "channels": channels,
            "group_wait": "0s",
        },
    }
    path = tmp_path / "driftscope.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_canary_secrets_appear_nowhere(
    sqlite_engine: Engine,
    tmp_path: Path,
    http_receiver: servers.HttpReceiver,
    smtp_server: servers.SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    path = _config_file(tmp_path, http_receiver, smtp_server)
    config = load_config(path)
    model = setup_models(sqlite_engine, config)["churn"]
    add_window(sqlite_engine, model, T0, 0.9, {"tenure": 0.001})
    evaluate(sqlite_engine, config, T0 + HOUR)
    outputs: list[str] = []

    # Delivery failure paths: 500 (retried), then 404 (final); refused, unreachable, malformed, auth.
    http_receiver.script(servers.ScriptedResponse(500, BODY_ECHO), servers.ScriptedResponse(404, BODY_ECHO))
    deliver_due(sqlite_engine, config, T0 + HOUR)
    deliver_due(sqlite_engine, config, T0 + 3 * HOUR)
    with transaction(sqlite_engine) as session:
        rows = list(session.scalars(select(Notification)))
        statuses = {r.channel: (r.status, r.last_error) for r in rows}
        outputs.append(json.dumps([[r.payload, r.last_error, r.idempotency_key] for r in rows], default=str))
        outputs.append(json.dumps([[a.labels, a.annotations] for a in session.scalars(select(Alert))], default=str))
    assert statuses["slack"] == ("failed", "slack webhook: HTTP 404 (rejected; not retried)")
    assert statuses["hook"][0] == "failed" and "not allowed" in statuses["hook"][1]
    assert statuses["hook2"][0] == "pending" and "connection failed" in statuses["hook2"][1]
    assert statuses["badurl"] == ("failed", "webhook: not a valid URL; correct the channel's url")
    assert statuses["mail"][0] == "failed" and "STARTTLS/AUTH" in statuses["mail"][1]

    # The same channels through `send_test` and the CLI.
    http_receiver.script(servers.ScriptedResponse(403, BODY_ECHO))
    for channel in config.alerts.channels:
        with pytest.raises(DeliveryError) as caught:
            send_test(config, channel, T0)
        outputs.extend([str(caught.value), repr(caught.value), repr(caught.value.__cause__)])
    cli = typer.Typer()
    alerts_commands.register(cli)
    runner = CliRunner()
    http_receiver.script(servers.ScriptedResponse(500, BODY_ECHO))
    for args in (["test", "slack"], ["test", "hook"], ["test", "hook2"], ["test", "mail"], ["failed"], ["list"]):
        result = runner.invoke(cli, ["alerts", *args, "--config", str(path)])
        outputs.append(result.output)
        if args[0] == "test":
            assert result.exit_code == 2 and "failed" in result.output
    assert "HTTP 500" in outputs[-6]

    captured = capsys.readouterr()
    outputs += [captured.out, captured.err, caplog.text]
    outputs += [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    outputs += [str(config), repr(config), config.model_dump_json()]
    everything = "\n".join(outputs)
    assert "slack webhook" in everything and "httpcore" in everything  # the logs were captured, at DEBUG
    for name, canary in CANARIES.items():
        assert canary not in everything, f"{name} leaked"
    assert BODY_ECHO.decode() not in everything
