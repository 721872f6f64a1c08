"""The pure state machine: for N windows, hysteresis, silences and inhibition."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np

from alerts.rules import Observation, compile_rules
from alerts.state import SilenceView, Step, decide, inhibited, silenced
from tests.alert_support import make_config

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _rule(**spec: object):  # type: ignore[no-untyped-def]
    (rule,) = compile_rules(make_config([{"name": "r", "when": "drift.share_drifted > 0.3", **spec}]))
    return rule


def _newest_first(values: list[float]) -> list[Observation]:
    return [Observation(v, T0 + timedelta(hours=i)) for i, v in enumerate(values)][::-1]


def test_for_counts_consecutive_windows_and_since_is_the_first_of_them() -> None:
    rule = _rule(**{"for": 3})
    assert decide(rule, _newest_first([0.5]), None).step is Step.PENDING
    decision = decide(rule, _newest_first([0.1, 0.5, 0.6]), "pending")
    assert (decision.step, decision.consecutive, decision.first_window) == (Step.PENDING, 2, T0 + timedelta(hours=1))
    fired = decide(rule, _newest_first([0.5, 0.6, 0.7]), "pending")
    assert (fired.step, fired.first_window) == (Step.FIRE, T0)
    assert decide(rule, _newest_first([0.5, 0.6, 0.1]), "pending").step is Step.DROP
    assert decide(rule, _newest_first([0.5, 0.6, 0.1]), None).step is Step.NOTHING
    assert decide(rule, [], None).step is Step.NOTHING


def test_firing_alert_resolves_only_past_the_resolve_threshold() -> None:
    rule = _rule(resolve_when="drift.share_drifted < 0.2")
    assert decide(rule, _newest_first([0.25]), "firing").step is Step.KEEP
    assert decide(rule, _newest_first([0.1]), "firing").step is Step.RESOLVE


def _simulate(rule, values: list[float]) -> int:  # type: ignore[no-untyped-def]
    """Feed windows one by one; count alerts that reached firing."""
    state, fired = None, 0
    for i in range(len(values)):
        decision = decide(rule, _newest_first(values[: i + 1])[: rule.rule.for_], state)
        if decision.step is Step.FIRE and state != "firing":
            fired += 1
            state = "firing"
        elif decision.step is Step.PENDING:
            state = "pending"
        elif decision.step in (Step.RESOLVE, Step.DROP):
            state = None
    return fired


def test_a_feature_flapping_around_its_threshold_gives_one_alert() -> None:
    rng = np.random.default_rng(7)
    # 0.52 ± noise: crosses 0.5 about every other window for two days, then clearly drops.
    values = [*(0.52 + rng.normal(0, 0.08, 48)).tolist(), 0.1, 0.1]
    crossings = sum(1 for a, b in itertools.pairwise(values) if (a > 0.5) != (b > 0.5))
    assert crossings > 10
    naive = _rule(when="drift.share_drifted > 0.5")
    assert _simulate(naive, values) > 5  # what one alert per crossing would look like
    damped = _rule(when="drift.share_drifted > 0.5", resolve_when="drift.share_drifted < 0.2", **{"for": 2})
    assert _simulate(damped, values) == 1


def test_silences_match_all_their_labels_while_active() -> None:
    labels = {"rule": "r", "model": "churn", "feature": "tenure"}
    window = SilenceView({"model": "churn", "feature": "tenure"}, T0, T0 + timedelta(hours=2))
    assert silenced(labels, [window], T0)
    assert not silenced(labels, [window], T0 + timedelta(hours=2))  # ends is exclusive
    assert not silenced(labels, [window], T0 - timedelta(seconds=1))
    assert not silenced({**labels, "feature": "plan"}, [window], T0)
    assert silenced(labels, [SilenceView({"feature": "*"}, T0, T0 + timedelta(hours=1))], T0)
    assert not silenced({"rule": "r"}, [SilenceView({"feature": "*"}, T0, T0 + timedelta(hours=1))], T0)


def test_inhibition_mutes_listed_rules_of_the_same_model() -> None:
    inhibits = {"no data": ["feature drift"], "feature drift": []}
    firing = [("no data", {"model": "churn"})]
    assert inhibited("feature drift", {"model": "churn"}, firing, inhibits)
    assert not inhibited("feature drift", {"model": "fraud"}, firing, inhibits)
    assert not inhibited("no data", {"model": "churn"}, firing, inhibits)
