from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli.main import app
from monitor.config import ConfigError, load_config, parse_config, parse_duration

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {
    "models": {"churn": {"task": "binary", "features": {"tenure": "numeric", "plan": "categorical"}}},
    "monitors": {"churn-hourly": {"model": "churn", "reference": {"previous_windows": 24}}},
}


def errors_of(data, env=None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env=env or {})
    return dict(caught.value.errors)


def test_minimal_file_gets_defaults():
    config = parse_config(MINIMAL, env={})
    assert config.store == "sqlite:///driftscope.db"
    monitor = config.monitors["churn-hourly"]
    assert monitor.window == timedelta(hours=1)
    assert monitor.drift.method == "auto"


def test_example_file_is_valid():
    config = load_config(ROOT / "examples" / "driftscope.yaml", env={})
    assert config.models["churn"].fields.timestamp == "@timestamp"
    assert config.alerts.rules[0].for_ == 2


def test_every_error_is_reported_with_its_key_path():
    data = {
        "sources": {"es": {"kind": "elasticsearch", "url": "http://x", "index": "p", "idx": "typo"}},
        "models": {
            "churn": {"task": "binary", "features": {"tenure": "nmeric"}},
            "loans": {"task": "binry", "features": {"amount": "numeric"}},
        },
        "monitors": {"m": {"model": "churn", "window": "1 hour", "reference": {"previous_windows": 3}}},
    }
    errors = errors_of(data)
    assert errors["models.churn.features.tenure"] == "expected numeric|categorical, got 'nmeric'"
    assert errors["models.loans.task"] == "expected binary|multiclass|regression, got 'binry'"
    assert errors["monitors.m.window"].startswith("expected a duration like 30s")
    assert errors["sources.es.idx"].startswith("unknown key (valid keys: api_key, index,")


def test_dangling_references_name_what_exists():
    data = {
        **MINIMAL,
        "models": {"churn": {**MINIMAL["models"]["churn"], "source": "es"}},
        "monitors": {"m": {"model": "ghost", "reference": {"previous_windows": 3}}},
        "alerts": {"rules": [{"name": "r", "when": "drift.share_drifted > 0.3", "notify": ["pager"]}]},
    }
    errors = errors_of(data)
    assert errors["models.churn.source"] == "unknown source 'es' (known: none defined)"
    assert errors["monitors.m.model"] == "unknown model 'ghost' (known: churn)"
    assert errors["alerts.rules[0].notify"] == "unknown channel 'pager' (known: none defined)"


def test_metrics_on_a_regression_model_are_checked():
    data = {
        "models": {"price": {"task": "regression", "features": {"area": "numeric"}}},
        "monitors": {"m": {"model": "price", "reference": {"previous_windows": 3}, "performance": ["roc_auc", "mae"]}},
    }
    assert errors_of(data) == {"monitors.m.performance": "roc_auc do not apply to a regression model"}


def test_reference_needs_exactly_one_kind():
    data = {**MINIMAL, "monitors": {"m": {"model": "churn", "reference": {}}}}
    assert "exactly one of range, dataset, previous_windows" in errors_of(data)["monitors.m.reference"]


def test_secrets_come_from_the_environment_and_stay_secret():
    data = {
        "alerts": {"channels": {"slack": {"kind": "slack", "webhook": "${SLACK_URL}"}}},
    }
    config = parse_config(data, env={"SLACK_URL": "https://hooks.example/very-secret"})
    channel = config.alerts.channels["slack"]
    assert channel.webhook.get_secret_value() == "https://hooks.example/very-secret"
    assert "very-secret" not in repr(config)
    assert errors_of(data) == {"alerts.channels.slack.webhook": "environment variable SLACK_URL is not set"}


def test_env_default_is_used_when_unset():
    config = parse_config({"store": "${STORE:-sqlite:///x.db}"}, env={})
    assert config.store == "sqlite:///x.db"


def test_store_env_overrides_the_file(tmp_path):
    file = tmp_path / "d.yaml"
    file.write_text("store: sqlite:///a.db\n")
    assert load_config(file, env={"DRIFTSCOPE_STORE": "sqlite:///b.db"}).store == "sqlite:///b.db"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("7d", 604800), (90, 90), ("250ms", 0.25)]
)
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


def test_unreadable_yaml_names_the_line(tmp_path):
    file = tmp_path / "d.yaml"
    file.write_text("models:\n  churn: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file, env={})
    ((where, message),) = caught.value.errors
    assert where.startswith("line 3") and "not valid YAML" in message


def test_cli_validate_exit_codes(tmp_path):
    runner = CliRunner()
    good = runner.invoke(app, ["config", "validate", str(ROOT / "examples" / "driftscope.yaml")])
    assert good.exit_code == 0, good.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("models:\n  churn:\n    task: binary\n    features: {tenure: nmeric}\n")
    bad = runner.invoke(app, ["config", "validate", str(broken)])
    assert bad.exit_code == 2
    assert "models.churn.features.tenure: expected numeric|categorical, got 'nmeric'" in bad.output
    missing = runner.invoke(app, ["config", "validate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
