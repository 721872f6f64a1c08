from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from monitor.cli.main import app
from monitor.config import ConfigError, load_config, parse_config, parse_duration
from monitor.errors import StoreError
from monitor.store.engine import make_engine

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
        "sources": {"es": {"kind": "elasticsearch", "url": "http://x:9200", "index": "p", "idx": "typo"}},
        "models": {
            "churn": {"task": "binary", "features": {"tenure": "nmeric"}},
            "loans": {"task": "binry", "features": {"amount": "numeric"}},
        },
        "monitors": {"m": {"model": "churn", "window": "1 hour", "reference": {"previous_windows": 3}}},
    }
    errors = errors_of(data)
    assert (
        errors["models.churn.features.tenure"] == "expected numeric|categorical, got 'nmeric'; did you mean 'numeric'?"
    )
    assert errors["models.loans.task"] == "expected binary|multiclass|regression, got 'binry'; did you mean 'binary'?"
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
    assert errors_of(data) == {
        "monitors.m.performance[0]": "roc_auc does not apply to a regression model (valid: mae, rmse, mape, r2)"
    }


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


def _monitor(**settings):
    return {**MINIMAL, "monitors": {"churn-hourly": {**MINIMAL["monitors"]["churn-hourly"], **settings}}}


def test_drift_methods_are_checked_at_load_all_at_once():
    data = _monitor(
        window="1 hour",
        drift={"columns": {"tenure": {"method": "kss"}, "plan": {"method": "ks"}, "score": {"method": "kl_div"}}},
        performance=["f11", "mae"],
    )
    errors = errors_of(data)
    assert errors["monitors.churn-hourly.window"].startswith("expected a duration")
    assert errors["monitors.churn-hourly.drift.columns.tenure.method"].startswith(
        "unknown drift method 'kss'; did you mean 'ks'? (valid: auto, anderson, chisquare,"
    )
    assert errors["monitors.churn-hourly.drift.columns.plan.method"] == (
        "'ks' does not apply to categorical columns "
        "(for categorical: auto, chisquare, hellinger, jensenshannon, psi, unseen_share, z)"
    )
    assert (
        "'kl_div' (Evidently's Kullback–Leibler divergence) is not implemented"
        in (errors["monitors.churn-hourly.drift.columns.score.method"])
    )
    assert errors["monitors.churn-hourly.performance[0]"].startswith("unknown metric 'f11'; did you mean 'f1'?")
    assert errors["monitors.churn-hourly.performance[1]"].startswith("mae does not apply to a binary model")


@pytest.mark.parametrize(
    ("column", "method", "key"),
    [
        ("plan", "chi2", "chisquare"),  # NannyML
        ("tenure", "kolmogorov_smirnov", "ks"),  # NannyML
        ("plan", "jensen_shannon", "jensenshannon"),  # NannyML
        ("tenure", "ks_2samp", "ks"),  # SciPy
        ("tenure", "wasserstein_distance", "wasserstein"),  # SciPy
        ("tenure", "cramervonmises_2samp", "cramer_von_mises"),  # SciPy
        ("tenure", "anderson_ksamp", "anderson"),  # SciPy
        ("plan", "chisquare", "chisquare"),  # Evidently and SciPy
        ("tenure", "KS", "ks"),
    ],
)
def test_other_tools_names_are_aliases_stored_as_our_key(column, method, key):
    config = parse_config(_monitor(drift={"method": method, "columns": {column: {"method": method}}}), env={})
    drift = config.monitors["churn-hourly"].drift
    assert (drift.method, drift.columns[column].method) == (key, key)


def test_chi_square_on_a_numeric_column_and_hellinger_on_the_prediction_of_a_regression():
    data = {
        "models": {"price": {"task": "regression", "features": {"area": "numeric"}}},
        "monitors": {
            "m": {
                "model": "price",
                "reference": {"previous_windows": 3},
                "drift": {"columns": {"area": {"method": "chi2"}, "prediction": {"method": "hellinger"}}},
            }
        },
    }
    errors = errors_of(data)
    assert errors["monitors.m.drift.columns.area.method"].startswith("'chisquare' does not apply to numeric columns")
    assert errors["monitors.m.drift.columns.prediction.method"].startswith("'hellinger' does not apply to numeric")


def test_a_dataset_wide_method_only_needs_to_exist():
    # It applies to the kinds it supports; the other columns keep auto (monitor.runs.evaluation._policy).
    assert parse_config(_monitor(drift={"method": "ks"}), env={}).monitors["churn-hourly"].drift.method == "ks"
    assert errors_of(_monitor(drift={"method": "wasserstien"})) == {
        "monitors.churn-hourly.drift.method": errors_of(_monitor(drift={"method": "wasserstien"}))[
            "monitors.churn-hourly.drift.method"
        ]
    }
    assert (
        "did you mean 'wasserstein'"
        in errors_of(_monitor(drift={"method": "wasserstien"}))["monitors.churn-hourly.drift.method"]
    )


def test_thresholds_must_be_finite():
    errors = errors_of(_monitor(drift={"threshold": float("nan"), "columns": {"plan": {"threshold": "inf"}}}))
    assert set(errors) == {
        "monitors.churn-hourly.drift.threshold",
        "monitors.churn-hourly.drift.columns.plan.threshold",
    }


def test_model_checks_run_even_when_another_model_is_broken():
    data = _monitor(drift={"columns": {"plan": {"method": "ks"}}})
    data["models"] = {**data["models"], "other": {"task": "binry", "features": {"x": "numeric"}}}
    errors = errors_of(data)
    assert set(errors) == {"models.other.task", "monitors.churn-hourly.drift.columns.plan.method"}


def test_score_metrics_need_a_score_field_on_a_source_backed_model():
    data = _monitor(performance=["accuracy", "roc_auc"], estimated_performance=True)
    data["sources"] = {"es": {"kind": "elasticsearch", "url": "http://x:9200", "index": "p"}}
    data["models"] = {"churn": {**MINIMAL["models"]["churn"], "source": "es"}}
    errors = errors_of(data)
    assert errors["monitors.churn-hourly.performance[1]"].startswith("roc_auc needs the model's scores")
    assert errors["monitors.churn-hourly.estimated_performance"].startswith("needs the model's scores")
    data["models"]["churn"]["fields"] = {"score": "proba"}
    assert parse_config(data, env={}).monitors["churn-hourly"].estimated_metrics("binary") == ("roc_auc", "accuracy")


def test_estimated_metrics_follow_performance():
    churn = parse_config(_monitor(estimated_performance=True), env={}).monitors["churn-hourly"]
    assert churn.estimated_metrics("binary") == ("roc_auc", "accuracy", "precision", "recall", "f1")
    assert churn.estimated_metrics("regression") == ("mae", "mse", "rmse")
    assert errors_of(_monitor(performance=["log_loss"], estimated_performance=True)) == {
        "monitors.churn-hourly.estimated_performance": "none of performance (log_loss) can be estimated "
        "(estimable: roc_auc, accuracy, precision, recall, f1)"
    }


def test_classes_fit_the_task():
    data = {
        "models": {"churn": {**MINIMAL["models"]["churn"], "classes": ["no", "yes", "maybe"], "positive_class": "y"}}
    }
    errors = errors_of(data)
    assert errors["models.churn.classes"] == "a binary model has 2 classes, got 3"
    assert errors["models.churn.positive_class"] == "'y' is not one of classes ['no', 'yes', 'maybe']"


def test_dashboard_settings_that_cannot_work_are_refused():
    errors = errors_of({"dashboard": {"auth": "basic", "proxy_user_header": ""}})
    assert set(errors) == {"dashboard.users", "dashboard.proxy_user_header"}
    bad_hash = errors_of({"dashboard": {"auth": "basic", "users": {"ann": {"password_hash": "hunter2"}}}})
    assert list(bad_hash) == ["dashboard.users.ann.password_hash"]


def test_every_source_and_channel_kind_has_an_implementation():
    from alerts.registry import NOTIFIERS
    from monitor.config import CHANNEL_KINDS, SOURCE_KINDS

    assert set(NOTIFIERS) == set(CHANNEL_KINDS)
    assert SOURCE_KINDS == ("elasticsearch", "prometheus")  # collectors/__init__.py builds one collector per kind


def test_cli_validate_takes_the_file_as_argument_or_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./driftscope.yaml to fall back on
    runner = CliRunner()
    example = str(ROOT / "examples" / "driftscope.yaml")
    for args in ([example], ["-c", example], ["--config", example]):
        result = runner.invoke(app, ["config", "validate", *args])
        assert result.exit_code == 0, (args, result.output)
    neither = runner.invoke(app, ["config", "validate"], env={"DRIFTSCOPE_CONFIG": None})
    assert neither.exit_code == 2 and "give the file to check" in neither.output
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "models:\n  churn: {task: binary, features: {tenure: numeric, plan: categorical}}\n"
        "monitors:\n  churn-hourly:\n    model: churn\n    reference: {previous_windows: 3}\n"
        "    drift: {columns: {tenure: {method: kss}, plan: {method: ks}}}\n"
    )
    bad = runner.invoke(app, ["config", "validate", "-c", str(typo)])
    assert bad.exit_code == 2
    assert "monitors.churn-hourly.drift.columns.tenure.method: unknown drift method 'kss'; did you mean 'ks'?" in (
        bad.output
    )
    assert "monitors.churn-hourly.drift.columns.plan.method: 'ks' does not apply to categorical" in bad.output


def test_cli_validate_file_wins_over_the_environment_but_not_over_an_explicit_option(tmp_path):
    runner = CliRunner()
    example = str(ROOT / "examples" / "driftscope.yaml")
    other = tmp_path / "other.yaml"
    other.write_text("store: sqlite:///x.db\n")
    from_env = runner.invoke(app, ["config", "validate", example], env={"DRIFTSCOPE_CONFIG": str(other)})
    assert from_env.exit_code == 0 and from_env.output.startswith(example), from_env.output
    both = runner.invoke(app, ["config", "validate", example, "-c", str(other)])
    assert both.exit_code == 2 and "two files given" in both.output
    from_env_only = runner.invoke(app, ["config", "validate"], env={"DRIFTSCOPE_CONFIG": example})
    assert from_env_only.exit_code == 0, from_env_only.output


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("postgres://driftscope:pw@db:5432/driftscope", "postgresql+psycopg://driftscope:pw@db:5432/driftscope"),
        ("postgresql://driftscope@db/driftscope", "postgresql+psycopg://driftscope@db/driftscope"),
        ("postgresql+psycopg://driftscope@db/driftscope", "postgresql+psycopg://driftscope@db/driftscope"),
        ("sqlite:///driftscope.db", "sqlite:///driftscope.db"),
        ("sqlite:////var/lib/driftscope.db", "sqlite:////var/lib/driftscope.db"),
    ],
)
def test_store_urls_are_accepted_in_their_common_spellings(given, url):
    assert parse_config({"store": given}, env={}).store == url
    assert make_url(url).get_dialect().driver in ("psycopg", "pysqlite")


def test_a_postgres_store_gets_an_engine_on_psycopg_without_a_server():
    engine = make_engine(parse_config({"store": "postgres://u@localhost/db"}, env={}).store)
    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")


def test_a_sqlite_store_url_opens_a_real_engine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, env={"DRIFTSCOPE_STORE": "sqlite:///relative.db"})
    with make_engine(config.store).connect() as connection:
        assert connection.exec_driver_sql("select 1").scalar() == 1
    assert (tmp_path / "relative.db").exists()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            "mysql://u:hunter2@db/x",
            "unsupported database 'mysql': Driftscope stores in PostgreSQL or SQLite (postgresql://host",
        ),
        ("postgresql+asyncpg://u:hunter2@db/x", "unsupported driver 'postgresql+asyncpg://': write postgresql+psycopg"),
        ("postgresql://u:hunter2@db:54x2/x", "the port is not a number"),
        ("postgresql//u:hunter2@db/x", "not a database URL (expected e.g. postgresql://host:5432/db"),
    ],
)
def test_a_store_that_cannot_work_is_refused_at_load_without_its_password(given, message):
    errors = errors_of({"store": given})
    assert list(errors) == ["store"] and errors["store"].startswith(message)
    assert "hunter2" not in errors["store"]
    with pytest.raises(StoreError) as caught:
        make_engine(given)
    assert str(caught.value).startswith(f"store: {message}") and "hunter2" not in str(caught.value)


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed here")
def test_a_driver_that_is_not_installed_is_refused_with_the_right_spelling():
    errors = errors_of({"store": "postgresql+psycopg2://u:hunter2@db/x"})
    assert errors == {"store": "driver psycopg2 is not installed: write postgresql+psycopg://... "
                               "(psycopg 3, comes with Driftscope)"}  # fmt: skip


def test_a_bad_store_from_the_environment_says_where_it_came_from():
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={"DRIFTSCOPE_STORE": "mysql://u:hunter2@db/x"})
    ((path, message),) = caught.value.errors
    assert path == "store" and message.endswith("(from $DRIFTSCOPE_STORE)") and "hunter2" not in message


@pytest.mark.parametrize(
    ("settings", "key", "message"),
    [
        ({"window": "0s"}, "window", "expected a duration greater than 0, got 0s"),
        ({"window": -3600}, "window", "expected a duration like 30s, 5m, 1h or 7d, got -3600"),
        ({"lateness": -60}, "lateness", "expected a duration like 30s, 5m, 1h or 7d, got -60"),
        ({"window": float("inf")}, "window", "expected a duration like 30s, 5m, 1h or 7d, got inf"),
    ],
)
def test_durations_that_cannot_work_are_refused(settings, key, message):
    assert errors_of(_monitor(**settings)) == {f"monitors.churn-hourly.{key}": message}


def test_zero_is_a_valid_wait_but_not_an_interval_of_a_loop_or_a_timeout():
    rule = {"name": "r", "when": "drift.share_drifted > 0.3", "repeat_interval": "0s"}
    waits = {**_monitor(lateness="0s"), "alerts": {"group_interval": "0s", "group_wait": "0s", "rules": [rule]}}
    assert parse_config(waits, env={}).alerts.group_interval == timedelta(0)
    data = {
        "worker": {"tick": 0, "claim_ttl": "0m"},
        "sources": {"prom": {"kind": "prometheus", "url": "http://prom:9090", "interval": "0s", "timeout": 0}},
    }
    assert set(errors_of(data)) == {"worker.tick", "worker.claim_ttl", "sources.prom.interval", "sources.prom.timeout"}


def _channel(**channel):
    return {"alerts": {"channels": {"ops": channel}}}


@pytest.mark.parametrize(
    ("smtp", "message"),
    [
        ("mail.example.com:25", "expected a URL starting with smtp:// or smtps://, got 'mail.example.com:25'"),
        ("http://mail.example.com", "expected a URL starting with smtp:// or smtps://, got 'http://mail.example.com'"),
        ("smtp://:25", "the URL has no host, got 'smtp://:25'"),
        ("smtp://mail.example.com:2x5", "the port is not a number from 1 to 65535, got 'smtp://mail.example.com:2x5'"),
        (
            "smtps://mail.example.com:70000",
            "the port is not a number from 1 to 65535, got 'smtps://mail.example.com:70000'",
        ),
    ],
)
def test_the_smtp_url_is_checked_at_load(smtp, message):
    assert errors_of(_channel(kind="email", smtp=smtp, to=["a@b.c"])) == {"alerts.channels.ops.smtp": message}


def test_smtp_urls_that_work_and_starttls_only_with_smtp():
    for smtp in ("smtp://mail.example.com", "smtp://mail.example.com:587", "SMTPS://mail.example.com:465"):
        parse_config(_channel(kind="email", smtp=smtp, to=["a@b.c"]), env={})
    assert errors_of(_channel(kind="email", smtp="smtps://mail.example.com", to=["a@b.c"], starttls=True)) == {
        "alerts.channels.ops.starttls": "smtps:// is TLS from the first byte: use starttls with smtp:// only"
    }


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            {"sources": {"es": {"kind": "elasticsearch", "url": "http://es", "index": "p"}}},
            "sources.es.url",
            "give the port of an http URL, e.g. http://localhost:9200, got 'http://es'",
        ),
        (
            {"sources": {"prom": {"kind": "prometheus", "url": "prometheus:9090"}}},
            "sources.prom.url",
            "expected a URL starting with http:// or https://, got 'prometheus:9090'",
        ),
        (
            _channel(kind="alertmanager", url="https://"),
            "alerts.channels.ops.url",
            "the URL has no host, got 'https://'",
        ),
        (
            {"dashboard": {"public_url": "driftscope.example.com"}},
            "dashboard.public_url",
            "expected a URL starting with http:// or https://, got 'driftscope.example.com'",
        ),
    ],
)
def test_http_urls_are_checked_at_load(data, path, message):
    assert errors_of(data) == {path: message}


def test_https_elasticsearch_needs_no_port_and_secret_urls_are_checked_without_echoing_them():
    parse_config({"sources": {"es": {"kind": "elasticsearch", "url": "https://es.example.com", "index": "p"}}}, env={})
    data = {"alerts": {"channels": {
        "slack": {"kind": "slack", "webhook": "hooks.slack.com/services/T0/B0/hunter2"},
        "webhook": {"kind": "webhook", "url": "ftp://user:hunter2@example.com/hook"},
        "am": {"kind": "alertmanager", "url": "http://[::1/x"},
    }}}  # fmt: skip
    assert errors_of(data) == {
        "alerts.channels.slack.webhook": "expected a URL starting with http:// or https://",
        "alerts.channels.webhook.url": "expected a URL starting with http:// or https://",
        "alerts.channels.am.url": "not a valid URL, got 'http://[::1/x'",
    }
