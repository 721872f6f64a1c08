"""evaluate() against a real store (SQLite and the Postgres fixture): lifecycle, grouping, timing, silences.

Scores are inserted as run + score rows, as the scheduler writes them; the clock is simulated (``now`` is
passed in), so group_wait / group_interval / repeat_interval are checked at exact times without sleeping.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from alerts import deliver_due, evaluate
from monitor.config import parse_config
from monitor.store.actions import acknowledge, create_silence, expire_silence
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Notification, Prediction, Run, Score
from tests.alert_support import HOUR, T0, add_metric_points, add_window, make_config, setup_models

S = timedelta(seconds=1)
CONSOLE = {"console": {"kind": "console"}}
DRIFT_RULE = {
    "name": "feature drift",
    "when": "drift.share_drifted > 0.3",
    "resolve_when": "drift.share_drifted < 0.2",
    "for": 2,
    "notify": ["console"],
}


def _alerts(engine: Engine) -> list[Alert]:
    with transaction(engine) as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def _notifications(engine: Engine) -> list[Notification]:
    with transaction(engine) as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_for_two_windows_goes_pending_then_firing_then_resolved(store_engine: Engine) -> None:
    config = make_config([DRIFT_RULE], CONSOLE, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    states = []
    for i, share in enumerate([0.1, 0.4, 0.5, 0.1]):
        add_window(store_engine, model, T0 + i * HOUR, share)
        evaluate(store_engine, config, T0 + (i + 1) * HOUR)
        states.append([a.state for a in _alerts(store_engine)])
    assert states == [[], ["pending"], ["firing"], ["resolved"]]
    (alert,) = _alerts(store_engine)
    assert alert.fired_at == T0 + 3 * HOUR and alert.resolved_at == T0 + 4 * HOUR
    assert alert.annotations["since"] == "2026-03-02T09:00:00Z"  # the first window of the breach
    assert [n.event for n in _notifications(store_engine)] == ["firing", "resolved"]


def test_a_pending_alert_that_clears_is_dropped_without_notifying(store_engine: Engine) -> None:
    config = make_config([DRIFT_RULE], CONSOLE, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    add_window(store_engine, model, T0, 0.6)
    evaluate(store_engine, config, T0 + HOUR)
    add_window(store_engine, model, T0 + HOUR, 0.1)
    evaluate(store_engine, config, T0 + 2 * HOUR)
    assert _alerts(store_engine) == [] and _notifications(store_engine) == []


def test_a_flapping_feature_gives_one_alert_not_one_per_window(store_engine: Engine) -> None:
    rule = {
        "name": "ks drift",
        "when": "drift.ks.p_value < 0.01",
        "resolve_when": "drift.ks.p_value > 0.2",
        "for": 2,
        "group_by": ["rule", "model", "feature"],
        "notify": ["console"],
        "repeat_interval": "7d",
    }
    config = make_config([rule], CONSOLE, group_wait="0s", group_interval="0s")
    model = setup_models(store_engine, config)["churn"]
    # tenure's p-value hovers around 0.01 for a day: below twice in a row early on, then back and forth.
    noisy = [0.02, 0.005, 0.004, 0.03, 0.008, 0.05, 0.002, 0.04, 0.009, 0.06, 0.003, 0.02] * 2 + [0.5]
    for i, p in enumerate(noisy):
        add_window(store_engine, model, T0 + i * HOUR, None, {"tenure": p, "plan": 0.6})
        evaluate(store_engine, config, T0 + (i + 1) * HOUR)
        deliver_due(store_engine, config, T0 + (i + 1) * HOUR)
    alerts = _alerts(store_engine)
    assert [(a.labels["feature"], a.state) for a in alerts] == [("tenure", "resolved")]
    assert (
        alerts[0].annotations["link"].startswith("https://driftscope.example.test/models/churn/features/tenure?window=")
    )
    assert [(n.event, n.status) for n in _notifications(store_engine)] == [
        ("firing", "delivered"),
        ("resolved", "delivered"),
    ]


def _run_clock(engine: Engine, config: Any, start: Any, end: Any, tick: timedelta, events: dict[Any, Any]) -> None:
    now = start
    while now <= end:
        if now in events:
            events[now]()
        evaluate(engine, config, now)
        now += tick


def test_group_wait_group_interval_and_repeat_interval_on_a_simulated_clock(store_engine: Engine) -> None:
    rule = {
        "name": "ks drift",
        "when": "drift.ks.p_value < 0.01",
        "notify": ["console"],
        "repeat_interval": "1h",
    }
    config = make_config([rule], CONSOLE, group_wait="30s", group_interval="5m")
    model = setup_models(store_engine, config)["churn"]
    a = T0 + HOUR  # the first window closed; the scheduler wrote its scores
    events = {
        a: lambda: add_window(store_engine, model, T0, None, {"tenure": 0.001, "plan": 0.001, "monthly_charges": 0.5}),
        a + 60 * S: lambda: add_window(
            store_engine, model, T0 + HOUR, None, {"tenure": 0.001, "plan": 0.001, "monthly_charges": 0.001}
        ),
        a + 3990 * S: lambda: add_window(
            store_engine, model, T0 + 2 * HOUR, None, {"tenure": 0.5, "plan": 0.5, "monthly_charges": 0.5}
        ),
    }
    _run_clock(store_engine, config, a, a + 4500 * S, 30 * S, events)
    sent = [(n.created_at - a, n.event, len(n.payload["alerts"])) for n in _notifications(store_engine)]
    assert sent == [
        (30 * S, "firing", 2),  # group_wait after the first alert: both features in one message
        (330 * S, "firing", 3),  # monthly_charges fired at +60s: waits for group_interval after the last send
        (3930 * S, "repeat", 3),  # unchanged for repeat_interval
        (4230 * S, "resolved", 3),  # everything resolved at +3990s: next group_interval boundary
    ]


def test_silenced_alerts_keep_state_but_notify_no_one(store_engine: Engine) -> None:
    config = make_config([{**DRIFT_RULE, "for": 1}], CONSOLE, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    silence = create_silence(store_engine, {"model": "churn"}, T0, T0 + 3 * HOUR, "ana", "deploying a fix")
    add_window(store_engine, model, T0, 0.6)
    evaluate(store_engine, config, T0 + HOUR)
    assert [a.state for a in _alerts(store_engine)] == ["firing"]
    assert _notifications(store_engine) == []
    expire_silence(store_engine, silence, now=T0 + 2 * HOUR)
    evaluate(store_engine, config, T0 + 2 * HOUR)
    assert [n.event for n in _notifications(store_engine)] == ["firing"]


def test_acknowledged_alerts_stop_repeating_but_still_resolve(store_engine: Engine) -> None:
    config = make_config([{**DRIFT_RULE, "for": 1, "repeat_interval": "1h"}], CONSOLE, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    add_window(store_engine, model, T0, 0.6)
    evaluate(store_engine, config, T0 + HOUR)
    (alert,) = _alerts(store_engine)
    acknowledge(store_engine, alert.id, "ana", "looking", now=T0 + HOUR)
    evaluate(store_engine, config, T0 + 5 * HOUR)
    add_window(store_engine, model, T0 + HOUR, 0.1)
    evaluate(store_engine, config, T0 + 6 * HOUR)
    assert [n.event for n in _notifications(store_engine)] == ["firing", "resolved"]
    assert _alerts(store_engine)[0].acknowledged_by == "ana"


def test_no_data_inhibits_drift_alerts_of_the_same_model(store_engine: Engine) -> None:
    rules = [
        {"name": "no data", "when": "staleness.minutes > 90", "inhibits": ["feature drift"], "notify": ["console"]},
        {**DRIFT_RULE, "for": 1},
    ]
    config = make_config(rules, CONSOLE, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    with transaction(store_engine) as session:
        session.add(Prediction(model_id=model, prediction_id="p1", ts=T0, features={}, source="test"))
    add_window(store_engine, model, T0, 0.6)
    evaluate(store_engine, config, T0 + 3 * HOUR)  # 180 minutes without data: both fire
    assert sorted((a.rule, a.state) for a in _alerts(store_engine)) == [
        ("feature drift", "firing"),
        ("no data", "firing"),
    ]
    assert [n.payload["group_labels"]["rule"] for n in _notifications(store_engine)] == ["no data"]
    no_data = next(a for a in _alerts(store_engine) if a.rule == "no data")
    assert no_data.value == 180.0 and no_data.annotations["since"] == "2026-03-02T08:00:00Z"


def test_messages_explain_themselves(store_engine: Engine) -> None:
    config = make_config([{**DRIFT_RULE, "for": 1}], CONSOLE, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    estimate = {"kind": "estimated_performance", "method": "roc_auc", "value": 0.71, "threshold": 0.75}
    add_window(store_engine, model, T0, 0.67, {"tenure": 0.2, "plan": 1e-9, "monthly_charges": 0.001}, extra=[estimate])
    evaluate(store_engine, config, T0 + HOUR)
    (notification,) = _notifications(store_engine)
    (alert,) = notification.payload["alerts"]
    notes = alert["annotations"]
    assert notes["summary"] == "feature drift: drift.share_drifted on churn = 0.67 > 0.3"
    assert [f["feature"] for f in notes["top_features"]] == ["plan", "monthly_charges", "tenure"]
    assert notes["top_features"][0] | {"value": None} == {
        "feature": "plan",
        "method": "ks",
        "value": None,
        "threshold": 0.05,
        "breached": True,
        "n_current": 1000,
        "n_reference": 5000,
    }
    assert notes["sample_size"] == 1000
    assert notes["window_start"] == "2026-03-02T08:00:00Z" and notes["window_end"] == "2026-03-02T09:00:00Z"
    assert notes["reference"] == "range 2026-01-01T00:00:00Z → 2026-02-01T00:00:00Z"
    assert notes["estimated_performance"] == [
        {"method": "roc_auc", "value": 0.71, "threshold": 0.75, "unreliable": None}  # no labelled window refutes it
    ]
    assert notes["link"] == (
        "https://driftscope.example.test/models/churn?window=2026-03-02T08%3A00%3A00Z&monitor=churn-hourly"
    )


def test_each_monitors_alert_links_to_that_monitors_view(store_engine: Engine) -> None:
    """Two monitors of one model alerted together and both links opened the primary monitor's page
    (issue 18's walk): the link names the monitor whose scores fired."""
    config = make_config([{**DRIFT_RULE, "for": 1}], CONSOLE, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    add_window(store_engine, model, T0, 0.67)
    add_window(store_engine, model, T0, 0.67, monitor="churn-rolling")
    evaluate(store_engine, config, T0 + HOUR)
    links = {a.labels["monitor"]: a.annotations["link"] for a in _alerts(store_engine)}
    assert links == {
        m: f"https://driftscope.example.test/models/churn?window=2026-03-02T08%3A00%3A00Z&monitor={m}"
        for m in ("churn-hourly", "churn-rolling")
    }


def test_metric_rules_fire_per_series_with_its_labels(store_engine: Engine) -> None:
    rule = {"name": "slow", "when": "metric.p99_latency > 0.5", "for": 2, "notify": ["console"]}
    config = make_config([rule], CONSOLE, metrics=("p99_latency",), group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    add_metric_points(store_engine, model, "p99_latency", [(T0 + i * 60 * S, v) for i, v in enumerate([0.2, 0.7, 0.8])])
    evaluate(store_engine, config, T0 + HOUR)
    (alert,) = _alerts(store_engine)
    assert (alert.state, alert.value, alert.labels["job"], alert.labels["metric"]) == (
        "firing",
        0.8,
        "churn",
        "p99_latency",
    )
    assert alert.annotations["since"] == "2026-03-02T08:01:00Z"


def test_alerts_of_a_removed_rule_resolve(store_engine: Engine) -> None:
    config = make_config([{**DRIFT_RULE, "for": 1}], CONSOLE, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    add_window(store_engine, model, T0, 0.6)
    evaluate(store_engine, config, T0 + HOUR)
    evaluate(store_engine, make_config([], CONSOLE), T0 + 2 * HOUR)
    (alert,) = _alerts(store_engine)
    assert alert.state == "resolved" and alert.annotations["resolved_by"] == {"reason": "rule removed"}
    assert [n.event for n in _notifications(store_engine)] == ["firing", "resolved"]  # routed by the stored route


def test_evaluate_is_idempotent(store_engine: Engine) -> None:
    config = make_config([{**DRIFT_RULE, "for": 1}], CONSOLE, group_wait="0s")
    model = setup_models(store_engine, config)["churn"]
    add_window(store_engine, model, T0, 0.6)
    for _ in range(3):
        evaluate(store_engine, config, T0 + HOUR)
    assert len(_alerts(store_engine)) == 1 and len(_notifications(store_engine)) == 1


@pytest.mark.integration
def test_concurrent_passes_write_each_notification_once(postgres_engine: Engine) -> None:
    config = make_config([{**DRIFT_RULE, "for": 1}], CONSOLE, group_wait="0s")
    model = setup_models(postgres_engine, config)["churn"]
    add_window(postgres_engine, model, T0, 0.6)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: evaluate(postgres_engine, config, T0 + HOUR), range(8)))
    assert len(_alerts(postgres_engine)) == 1 and len(_notifications(postgres_engine)) == 1


def _labelled_window(engine: Engine, model: int, index: int, auc: float, coverage: float) -> int:
    """A run whose roc_auc score was computed with ``coverage`` of its 1,000 predictions labelled."""
    score = {"kind": "performance", "method": "roc_auc", "value": auc, "threshold": 0.7, "breached": auc < 0.7}
    run_id = add_window(engine, model, T0 + index * HOUR, extra=[score], rows=1000)
    with transaction(engine) as session:
        session.execute(update(Run).where(Run.id == run_id).values(label_count=round(coverage * 1000)))
    return run_id


def test_min_label_coverage_leaves_the_state_alone_below_it(store_engine: Engine) -> None:
    """Windows labelled below the rule's minimum are not seen: a pending alert stays pending (the window
    neither counts towards ``for`` nor breaks the streak), a firing one keeps firing until a well-labelled
    window resolves it, however many half-labelled windows follow; a window recomputed with more labels
    counts from then on. The same rule without a minimum fires and resolves on the half-labelled windows."""
    monitor = {
        "model": "churn",
        "reference": {"range": ["2026-01-01", "2026-02-01"]},
        "performance": ["roc_auc"],
    }
    rule = {"when": "performance.roc_auc < 0.7", "for": 2, "notify": ["console"]}
    config = parse_config(
        {
            "models": {"churn": {"task": "binary", "features": {"tenure": "numeric"}}},
            "monitors": {"churn-hourly": monitor},
            "alerts": {
                "rules": [{"name": "auc", "min_label_coverage": 0.8, **rule}, {"name": "auc any", **rule}],
                "channels": CONSOLE,
                "group_wait": "0s",
            },
        },
        env={},
    )
    model = setup_models(store_engine, config)["churn"]

    def step(now_index: int) -> dict[str, tuple[str, int]]:
        evaluate(store_engine, config, T0 + now_index * HOUR)
        open_ = [a for a in _alerts(store_engine) if a.state != "resolved"] or _alerts(store_engine)
        return {a.rule: (a.state, a.consecutive) for a in open_}

    _labelled_window(store_engine, model, 0, auc=0.6, coverage=0.9)
    assert step(1) == {"auc": ("pending", 1), "auc any": ("pending", 1)}
    half = _labelled_window(store_engine, model, 1, auc=0.5, coverage=0.5)
    assert step(2) == {"auc": ("pending", 1), "auc any": ("firing", 2)}
    # Late labels: the window is recomputed with 85 % of its labels and still breaches.
    with transaction(store_engine) as session:
        session.execute(update(Run).where(Run.id == half).values(label_count=850))
        session.execute(update(Score).where(Score.run_id == half).values(value=0.65))
    assert step(3)["auc"] == ("firing", 2)
    (auc,) = [a for a in _alerts(store_engine) if a.rule == "auc"]
    assert auc.window_start == T0 + HOUR

    # Labels days behind: eight half-labelled windows that look healthy resolve the rule without a minimum,
    # not the one with it (more of them than the windows a pass ranks, 2 * for + 2).
    for i in range(2, 10):
        _labelled_window(store_engine, model, i, auc=0.9, coverage=0.3)
    evaluate(store_engine, config, T0 + 10 * HOUR)
    states = {a.rule: a.state for a in _alerts(store_engine)}
    assert states == {"auc": "firing", "auc any": "resolved"}
    (auc,) = [a for a in _alerts(store_engine) if a.rule == "auc"]
    assert auc.window_start == T0 + HOUR  # still the last window labelled enough

    _labelled_window(store_engine, model, 10, auc=0.9, coverage=0.95)
    evaluate(store_engine, config, T0 + 11 * HOUR)
    (auc,) = [a for a in _alerts(store_engine) if a.rule == "auc"]
    assert (auc.state, auc.window_start) == ("resolved", T0 + 10 * HOUR)
