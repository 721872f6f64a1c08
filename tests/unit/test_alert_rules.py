"""Rule expressions: parsing, errors that name the rule and field, and deciding one observation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.rules import Observation, RuleError, Selector, compile_rules, parse_condition
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
            {"name": "ok", "when": "performance.f1 < 0.5"},
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
