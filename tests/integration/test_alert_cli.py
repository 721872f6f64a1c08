"""``driftscope alerts ...`` on a real SQLite store, through typer's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from alerts import deliver_due, evaluate
from monitor.cli import alerts as alerts_commands
from monitor.config import load_config
from monitor.store.actions import ActionError, acknowledge, create_silence
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Silence
from tests.alert_support import HOUR, MONITOR, T0, add_window, setup_models


@pytest.fixture
def cli(sqlite_engine: Engine, tmp_path: Path):  # type: ignore[no-untyped-def]
    config_path = tmp_path / "driftscope.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "store": str(sqlite_engine.url),
                "models": {"churn": {"task": "binary", "features": {"tenure": "numeric"}}},
                "monitors": {MONITOR: {"model": "churn", "reference": {"previous_windows": 3}}},
                "alerts": {
                    "rules": [{"name": "drift", "when": "drift.share_drifted > 0.3", "notify": ["nowhere"]}],
                    "channels": {"nowhere": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}},
                    "group_wait": "0s",
                },
            }
        )
    )
    app = typer.Typer()
    alerts_commands.register(app)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["alerts", *args, "--config", str(config_path)])
        assert result.exit_code == code, result.output
        return result.output

    config = load_config(config_path)
    model = setup_models(sqlite_engine, config)["churn"]
    add_window(sqlite_engine, model, T0, 0.8)
    evaluate(sqlite_engine, config, T0 + HOUR)
    deliver_due(sqlite_engine, config, T0 + HOUR)
    return run


def test_list_ack_and_failed(cli, sqlite_engine: Engine) -> None:  # type: ignore[no-untyped-def]
    listed = cli("list")
    assert "firing" in listed and "drift" in listed and "model=churn" in listed
    assert "acknowledged by ana" in cli("ack", "1", "--user", "ana", "-m", "on it")
    with transaction(sqlite_engine) as session:
        alert = session.scalars(select(Alert)).one()
    assert (alert.acknowledged_by, alert.ack_comment) == ("ana", "on it")
    assert "does not exist" in cli("ack", "99", "--user", "ana", code=2)
    failed = cli("failed")
    assert "nowhere" in failed and "not allowed" in failed  # port 9 refused by the SSRF guard
    assert "no notifier" not in failed


def test_silence_silences_and_expire(cli, sqlite_engine: Engine) -> None:  # type: ignore[no-untyped-def]
    out = cli("silence", "--match", "model=churn", "--match", "rule=drift", "-a", "ana", "-m", "deploy", "--for", "2h")
    assert out.startswith("silence 1 until")
    with transaction(sqlite_engine) as session:
        silence = session.scalars(select(Silence)).one()
    assert silence.matchers == {"model": "churn", "rule": "drift"}
    assert silence.ends_at - silence.starts_at == 2 * HOUR
    assert "model=churn rule=drift" in cli("silences")
    assert "expired" in cli("expire", "1")
    assert "model=churn" not in cli("silences")
    assert "expected label=value" in cli("silence", "--match", "model", "-a", "a", "-m", "x", code=2)


def test_actions_reject_bad_input_naming_the_field(sqlite_engine: Engine) -> None:
    with pytest.raises(ActionError, match=r"silence\.matchers"):
        create_silence(sqlite_engine, {}, T0, T0 + HOUR, "ana", "x")
    with pytest.raises(ActionError, match=r"silence\.ends"):
        create_silence(sqlite_engine, {"model": "churn"}, T0, T0, "ana", "x")
    with pytest.raises(ActionError, match=r"silence\.comment"):
        create_silence(sqlite_engine, {"model": "churn"}, T0, T0 + HOUR, "ana", " ")
    with pytest.raises(ActionError, match="alert 5 does not exist"):
        acknowledge(sqlite_engine, 5, "ana", now=T0)


def test_config_validate_reports_bad_rule_expressions(tmp_path: Path) -> None:
    from monitor.cli.main import app

    path = tmp_path / "bad.yaml"
    rules = [{"name": "ok", "when": "drift.share_drifted > 0.3"}, {"name": "typo", "when": "drfit.share > 1"}]
    path.write_text(yaml.safe_dump({"alerts": {"rules": rules}}))
    result = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert "alerts.rules[1].when: unknown source 'drfit' in 'drfit.share'" in result.output
