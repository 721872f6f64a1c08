"""Rule expressions: parsing, errors that name the rule and field, and deciding one observation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from alerts.rules import SCORE_KINDS, Observation, RuleError, Selector, compile_rules, computed_methods, parse_condition
from monitor.cli.worker_process import Worker
from monitor.config import Config, ConfigError, ModelConfig, MonitorConfig, parse_config
from monitor.runs.evaluation import evaluate, fit_baseline
from monitor.runs.windows import Batch
from monitor.store.engine import make_engine, upgrade
from tests.alert_support import make_config

T = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "selector", "op", "rhs"),
    [
        ("drift.share_drifted > 0.3", Selector("drift", "share_drifted"), ">", 0.3),
        ("drift.ks.p_value < 0.01", Selector("drift", "ks", "p_value"), "<", 0.01),
        ("drift.value > threshold", Selector("drift", None, "value"), ">", "threshold"),
        ("performance.roc_auc<0.7", Selector("performance", "roc_auc"), "<", 0.7),
        ("estimated.roc_auc <= 0.7", Selector("estimated", "roc_auc"), "<=", 0.7),
        ("quality.missing_share >= 1e-1", Selector("quality", "missing_share"), ">=", 0.1),
        ("labels.coverage < 0.5", Selector("labels", "coverage"), "<", 0.5),
        ("metric.p99_latency > 0.5", Selector("metric", "p99_latency"), ">", 0.5),
        ("staleness.minutes > 90", Selector("staleness", None, "minutes"), ">", 90.0),
        ("quality.volume.ratio != 1", Selector("quality", "volume", "ratio"), "!=", 1.0),
        ("drift.breached", Selector("drift", None, "breached"), None, None),
    ],
)
def test_parse_condition(text: str, selector: Selector, op: str | None, rhs: object) -> None:
    condition = parse_condition(text)
    assert (condition.selector, condition.op, condition.rhs) == (selector, op, rhs)


def test_estimated_reads_estimated_performance_scores() -> None:
    assert parse_condition("estimated.roc_auc < 0.7").selector.score_kind == "estimated_performance"
    assert parse_condition("metric.x > 1").selector.score_kind is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("drfit.share_drifted > 0.3", "unknown source 'drfit'"),
        ("drift.share_drifted", "missing comparison"),
        ("drift.share_drifted > lots", "expected a number or 'threshold'"),
        ("drift.share_drifted > nan", "finite number"),
        ("metric.p99 > threshold", "metric has none"),
        ("drift.breached > 0", "is a flag"),
        ("staleness.hours > 2", "staleness.minutes"),
        ("metric.a.b > 1", "metric.NAME"),
        ("drift.a.b.c > 1", "expected drift.METHOD"),
        ("share_drifted > 0.3 and x", "expected 'SELECTOR OP NUMBER'"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_condition(text)


def test_compile_rules_lists_every_problem_with_its_key_path() -> None:
    config = make_config(
        [
            {"name": "ok", "when": "drift.share_drifted > 0.3"},
            {"name": "bad when", "when": "drift.share_drifted >> 0.3"},
            {"name": "bad resolve", "when": "drift.share_drifted > 0.3", "resolve_when": "drift.count_drifted < 1"},
            {"name": "stale", "when": "staleness.minutes > 90", "for": 3},
            {"name": "ok", "when": "labels.coverage < 0.5"},
        ]
    )
    with pytest.raises(RuleError) as caught:
        compile_rules(config)
    paths = [path for path, _ in caught.value.errors]
    assert paths == [
        "alerts.rules[1].when",
        "alerts.rules[2].resolve_when",
        "alerts.rules[3].for",
        "alerts.rules[4].name",
    ]
    assert "same selector as when (drift.share_drifted)" in str(caught.value)
    assert "duplicate rule name 'ok'" in str(caught.value)


def test_holds_compares_value_with_number_or_own_threshold() -> None:
    above = parse_condition("drift.share_drifted > 0.3")
    own = parse_condition("drift.value > threshold")
    flag = parse_condition("drift.breached")
    assert above.holds(Observation(0.31, T)) is True
    assert above.holds(Observation(0.3, T)) is False
    assert above.holds(Observation(None, T)) is None
    assert own.holds(Observation(0.2, T, threshold=0.1)) is True
    assert own.holds(Observation(0.2, T, threshold=None)) is None
    assert flag.holds(Observation(0.9, T, breached=True)) is True
    assert flag.holds(Observation(0.9, T, breached=False)) is False


def test_resolution_uses_resolve_when_for_hysteresis() -> None:
    config = make_config(
        [{"name": "r", "when": "drift.share_drifted > 0.3", "resolve_when": "drift.share_drifted < 0.2"}]
    )
    (rule,) = compile_rules(config)
    assert not rule.resolved_by(Observation(0.25, T))  # between the two: stays firing
    assert rule.resolved_by(Observation(0.19, T))
    (plain,) = compile_rules(make_config([{"name": "r", "when": "drift.share_drifted > 0.3"}]))
    assert plain.resolved_by(Observation(0.25, T))
    assert not plain.resolved_by(Observation(None, T))  # no value: undecided, not resolved


# --- selectors checked against what the monitors compute ---------------------------------------------


def churn_config(rules: list[dict[str, object]]) -> Config:
    """Two models: churn with a monitor computing ROC AUC and CBPE, fraud with a drift-only monitor."""
    return parse_config(
        {
            "sources": {"prom": {"kind": "prometheus", "url": "http://prometheus.test:9090"}},
            "models": {
                "churn": {
                    "task": "binary",
                    "features": {"tenure": "numeric", "plan": "categorical"},
                    "metrics": {"p99_latency": {"source": "prom", "query": "q"}},
                },
                "fraud": {"task": "binary", "features": {"amount": "numeric"}},
            },
            "monitors": {
                "churn-5m": {
                    "model": "churn",
                    "reference": {"previous_windows": 3},
                    "performance": ["roc_auc", "f1"],
                    "estimated_performance": True,
                    "drift": {"columns": {"plan": {"method": "psi"}}, "multivariate": True},
                },
                "fraud-1h": {"model": "fraud", "reference": {"previous_windows": 3}, "quality": {"enabled": False}},
            },
            "alerts": {"rules": rules},
        },
        env={},
    )


@pytest.mark.parametrize(
    "when",
    [
        "drift.share_drifted > 0.3",
        "drift.ks.p_value < 0.01",
        "drift.psi > 0.2",
        "drift.pca_reconstruction_error > threshold",
        "drift.value > threshold",
        "drift.breached",
        "quality.missing_share > 0.1",
        "quality.volume.ratio < 0.5",
        "performance.roc_auc < 0.7",
        "estimated.roc_auc.ci_lower < 0.7",
        "labels.coverage < 0.5",
        "metric.p99_latency > 0.5",
        "staleness.minutes > 90",
    ],
)
def test_selectors_the_monitors_compute_compile(when: str) -> None:
    (rule,) = compile_rules(churn_config([{"name": "r", "when": when}]))
    assert rule.when.text == when


def test_selectors_nothing_computes_are_refused_all_at_once_with_did_you_mean() -> None:
    rules = [
        ("performance.rocauc < 0.7", "unknown performance method 'rocauc'; did you mean 'roc_auc'?"),
        ("estimated.rocauc < 0.7", "unknown estimated method 'rocauc'; did you mean 'roc_auc'?"),
        ("quality.missing > 0.1", "unknown quality method 'missing'; did you mean 'missing_share'?"),
        ("drift.shared_drifted > 0.3", "unknown drift method 'shared_drifted'; did you mean 'share_drifted'?"),
        (
            "performance.log_loss > 0.5",
            "not computed (performance computed by monitors churn-5m, fraud-1h: f1, roc_auc)",
        ),
        ("drift.wasserstein.p_value < 0.1", "wasserstein is not a p-value test"),
        ("drift.chi2.p_value < 0.1", "write drift.chisquare"),
        ("drift.ks.pvalue < 0.1", "unknown field 'pvalue'; did you mean 'p_value'?"),
        ("performance.value < 0.5", "performance scores are not per feature"),
        ("metric.p99_latncy > 0.5", "no model of this rule (churn, fraud) defines metrics.p99_latncy; did you mean"),
    ]
    config = churn_config([{"name": f"r{i}", "when": when} for i, (when, _) in enumerate(rules)])
    with pytest.raises(RuleError) as caught:
        compile_rules(config)
    assert [path for path, _ in caught.value.errors] == [f"alerts.rules[{i}].when" for i in range(len(rules))]
    for (when, expected), (_, message) in zip(rules, caught.value.errors, strict=True):
        assert message.startswith(when.split()[0] + ": ") and expected in message, message


def test_a_rule_is_checked_against_the_monitors_of_its_own_models_and_monitors() -> None:
    config = churn_config(
        [
            {"name": "fraud auc", "when": "performance.roc_auc < 0.7", "models": ["fraud"]},
            {"name": "fraud quality", "when": "quality.missing_share > 0.1", "monitors": ["fraud-1h"]},
            {"name": "typo", "when": "drift.share_drifted > 0.3", "monitors": ["churn-5"]},
            {"name": "churn psi", "when": "drift.psi > 0.2", "models": ["churn"]},
        ]
    )
    with pytest.raises(RuleError) as caught:
        compile_rules(config)
    errors = dict(caught.value.errors)
    assert list(errors) == ["alerts.rules[0].when", "alerts.rules[1].when", "alerts.rules[2].monitors"]
    assert "not computed (performance computed by monitor fraud-1h: none)" in errors["alerts.rules[0].when"]
    assert "set quality.enabled: true" in errors["alerts.rules[1].when"]
    assert errors["alerts.rules[2].monitors"] == "unknown monitor 'churn-5'; did you mean 'churn-5m'?"


def test_min_label_coverage_only_on_rules_that_read_labelled_scores() -> None:
    ok = [
        {"name": "auc", "when": "performance.roc_auc < 0.7", "min_label_coverage": 0.8},
        {"name": "lag", "when": "labels.lag_p95_seconds > 3600", "min_label_coverage": 1},
    ]
    compiled = compile_rules(churn_config(ok))
    assert [r.rule.min_label_coverage for r in compiled] == [0.8, 1.0]
    refused = [
        {"name": "drift", "when": "drift.share_drifted > 0.3", "min_label_coverage": 0.8},
        {"name": "cbpe", "when": "estimated.roc_auc < 0.7", "min_label_coverage": 0.8},
        {"name": "latency", "when": "metric.p99_latency > 0.5", "min_label_coverage": 0.5},
    ]
    with pytest.raises(RuleError) as caught:
        compile_rules(churn_config(ok + refused))
    assert [path for path, _ in caught.value.errors] == [f"alerts.rules[{i}].min_label_coverage" for i in (2, 3, 4)]
    assert "estimated.roc_auc does not depend on labels" in caught.value.errors[1][1]
    assert "(performance.*, labels.*)" in caught.value.errors[0][1]


@pytest.mark.parametrize("value", [0, -0.1, 1.01, "most"])
def test_min_label_coverage_is_a_share_above_0_up_to_1(value: object) -> None:
    with pytest.raises(ConfigError, match=r"alerts\.rules\[0\]\.min_label_coverage"):
        churn_config([{"name": "auc", "when": "performance.roc_auc < 0.7", "min_label_coverage": value}])


def test_a_typo_in_resolve_when_is_named_instead_of_a_selector_mismatch() -> None:
    config = churn_config(
        [{"name": "r", "when": "drift.share_drifted > 0.3", "resolve_when": "drift.shared_drifted < 0.2"}]
    )
    with pytest.raises(RuleError) as caught:
        compile_rules(config)
    ((path, message),) = caught.value.errors
    assert path == "alerts.rules[0].resolve_when"
    assert "did you mean 'share_drifted'?" in message and "same selector" not in message


def _batch(n: int, seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    tenure = rng.normal(0.0, 1.0, n)
    proba = 1 / (1 + np.exp(-tenure))
    ts = np.datetime64("2026-03-02T00:00:00", "us") + np.arange(n) * np.timedelta64(1, "s")
    return Batch(
        n=n,
        features={
            "tenure": tenure.astype(object),
            "seats": rng.integers(0, 3, n).astype(object),  # numeric with few values: auto picks χ² or Z
            "plan": rng.choice(["a", "b", "c"], n).astype(object),
        },
        ids=np.array([str(i) for i in range(n)], dtype=object),
        ts=ts,
        prediction=(proba >= 0.5).astype(int).astype(object),
        score=proba,
        label=(rng.random(n) < proba).astype(int).astype(object),
        label_ts=ts + np.timedelta64(60, "s"),
    )


@pytest.mark.parametrize("slow_drift", ["cusum", "page_hinkley"])
@pytest.mark.parametrize("reference_rows", [400, 1500])  # auto picks other tests above 1000 reference rows
def test_every_score_an_evaluation_writes_is_one_the_rules_know(reference_rows: int, slow_drift: str) -> None:
    model = ModelConfig(task="binary", features={"tenure": "numeric", "seats": "numeric", "plan": "categorical"})
    monitor = MonitorConfig(
        model="churn",
        reference={"previous_windows": 1},
        performance=["roc_auc", "accuracy", "log_loss"],
        estimated_performance=True,
        drift={
            "multivariate": True,
            "columns": {"plan": {"method": "hellinger"}},
            "slow_drift": {"method": slow_drift, "min_windows": 1},
        },
    )
    baseline = fit_baseline(model, monitor, _batch(reference_rows, 0), reference_seconds=3600.0)
    scores = evaluate(model, monitor, baseline, _batch(300, 1), window_seconds=600.0).scores
    written = {(s.kind, s.method) for s in scores if s.status == "ok"}
    sources = {kind: source for source, kind in SCORE_KINDS.items()}
    known = {
        (kind, method) for source, kind in SCORE_KINDS.items() for method in computed_methods(model, monitor)[source]
    }
    assert written - known == set()
    assert {sources[kind] for kind, _ in written} == set(SCORE_KINDS)


def test_the_worker_refuses_to_start_with_a_rule_that_can_never_fire(tmp_path: Path) -> None:
    config = make_config([{"name": "r", "when": "drift.shared_drifted > 0.3"}])
    config = config.model_copy(update={"worker": config.worker.model_copy(update={"metrics_port": None})})
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    worker = Worker(config, engine)
    try:
        with pytest.raises(RuleError, match=r"alerts.rules\[0\].when: drift.shared_drifted: unknown drift method"):
            worker.start()
    finally:
        worker.shutdown(wait=False)
