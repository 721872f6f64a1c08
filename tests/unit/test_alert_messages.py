"""Rendering a stored payload: Slack blocks, e-mail, Alertmanager alerts; secret scrubbing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from alerts.alertmanager import am_alerts
from alerts.base import REDACTED, redact
from alerts.email import build_message, message_id
from alerts.message import TOP_FEATURES, alert_lines, explain, probe_payload, render_text, split_outputs, title
from alerts.observe import Series
from alerts.rules import Observation, compile_rules
from alerts.slack import MAX_ALERT_SECTIONS, blocks
from monitor.config import Channel, parse_config

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _payload(n: int = 1, feature: str = "tenure", state: str = "firing") -> dict[str, Any]:
    payload = probe_payload("c", NOW)
    payload["event"] = "firing"
    payload["group_labels"] = {"rule": "drift", "model": "churn"}
    alert = payload["alerts"][0]
    alert.update(
        rule="drift",
        severity="critical",
        state=state,
        resolved_at="2026-03-02T10:00:00Z" if state == "resolved" else None,
    )
    alert["annotations"] = {
        "summary": f"drift: drift.ks.p_value on churn ({feature}) = 0.001 < 0.01",
        "since": "2026-03-02T08:00:00Z",
        "link": "https://d.example/models/churn?window=2026-03-02T08%3A00%3A00Z",
        "route": {"repeat_interval_s": 3600},
    }
    payload["alerts"] = [{**alert, "id": i} for i in range(n)]
    return payload


def test_titles_follow_alertmanager() -> None:
    assert title(_payload(3)) == "[FIRING:3] drift · model=churn"
    assert title(_payload(1, state="resolved")) == "[RESOLVED] drift · model=churn"
    assert title(probe_payload("slack", NOW)).startswith("[TEST] driftscope test notification")


def test_slack_escapes_mrkdwn_and_caps_sections() -> None:
    message = blocks(_payload(MAX_ALERT_SECTIONS + 5, feature="<!channel> & co"))
    body = message["attachments"][0]["blocks"]
    sections = [b for b in body if b["type"] == "section"]
    assert len(sections) == MAX_ALERT_SECTIONS
    assert "&lt;!channel&gt; &amp; co" in sections[0]["text"]["text"] and "<!channel>" not in str(body)
    assert body[-2] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "… and 5 more alerts"}]}


def test_email_is_multipart_with_escaped_html_and_a_stable_message_id() -> None:
    channel = TypeAdapter(Channel).validate_python(
        {"kind": "email", "smtp": "smtp://x", "to": ["a@x.test", "b@x.test"]}
    )
    message = build_message(channel, _payload(feature="<script>"), "k" * 64)
    assert message["Message-ID"] == message_id("k" * 64) == f"<{'k' * 40}@driftscope>"
    assert message["To"] == "a@x.test, b@x.test"
    assert message["Date"] == "Mon, 02 Mar 2026 09:00:00 +0000"
    html = message.get_body(("html",)).get_content()
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "(<script>)" in message.get_body(("plain",)).get_content()


def test_alertmanager_alerts_end_in_the_future_while_firing_and_at_the_resolve_after() -> None:
    (firing,) = am_alerts(_payload())
    assert firing["endsAt"] == "2026-03-02T11:00:00Z"  # two repeat intervals after sending
    assert firing["labels"]["alertname"] == "drift" and firing["generatorURL"].startswith("https://d.example/")
    assert all(isinstance(v, str) for v in firing["annotations"].values())
    (resolved,) = am_alerts(_payload(state="resolved"))
    assert resolved["endsAt"] == "2026-03-02T10:00:00Z"


def test_redact_scrubs_secret_values_and_url_paths() -> None:
    channel = TypeAdapter(Channel).validate_python(
        {"kind": "webhook", "url": "https://hooks.example/T0/B0/sekrit-token", "secret": "hmac-key-1"}
    )
    text = "POST https://hooks.example/T0/B0/sekrit-token failed; path T0/B0/sekrit-token; key hmac-key-1"
    assert redact(text, channel) == f"POST {REDACTED} failed; path {REDACTED}; key {REDACTED}"


def test_text_rendering_lists_every_alert() -> None:
    text = render_text(_payload(2))
    assert text.count("FIRING (critical)") == 2 and "since 2026-03-02T08:00:00Z" in text


def _drift(feature: str, value: float, breached: bool = True) -> dict[str, Any]:
    return {
        "feature": feature,
        "method": "jensenshannon",
        "value": value,
        "threshold": 0.1,
        "breached": breached,
        "n_current": 300,
        "n_reference": 900,
    }


def test_model_outputs_never_push_a_feature_out_of_the_top() -> None:
    ranked = [_drift(c, 0.9) for c in ("prediction", "score", "label")] + [
        _drift(f"f{i}", 0.5 - i / 100) for i in range(TOP_FEATURES + 1)
    ]
    top, outputs = split_outputs(ranked, [f"f{i}" for i in range(TOP_FEATURES + 1)])
    assert [r["feature"] for r in top] == [f"f{i}" for i in range(TOP_FEATURES)]
    assert [r["feature"] for r in outputs] == ["prediction", "score", "label"]
    top, outputs = split_outputs(ranked[1:3], ["score"])  # a feature of the model that happens to be called score
    assert [r["feature"] for r in top] == ["score"] and [r["feature"] for r in outputs] == ["label"]


def _grouped_payload() -> dict[str, Any]:
    """One group (rule × model) holding the same rule's alerts from the model's two monitors."""
    payload = _payload(2)
    for alert, monitor in zip(payload["alerts"], ("churn-5m", "churn-rolling"), strict=True):
        alert["annotations"] = {
            **alert["annotations"],
            "summary": "feature drift: drift.share_drifted on churn = 0.75 > 0.3",
            "monitor": monitor,
            "window_start": "2026-03-02T08:00:00Z",
            "window_end": "2026-03-02T08:05:00Z",
            "top_features": [_drift(f"f{i}", 0.5 - i / 100) for i in range(TOP_FEATURES)],
            "output_drift": [_drift("prediction", 0.9), _drift("score", 0.8), _drift("label", 0.05, False)],
        }
    return payload


def _feature_rows(text: str) -> list[str]:
    return [line.split(":")[0].strip() for line in text.splitlines() if line.strip().startswith("f")]


def test_grouped_message_names_each_monitor_and_lists_features_before_the_outputs() -> None:
    text = render_text(_grouped_payload())
    first, second = text.split("\n\n")[1:3]
    assert "monitor churn-5m: window 2026-03-02T08:00:00Z – 2026-03-02T08:05:00Z" in first
    assert "monitor churn-rolling: window" in second
    for block in (first, second):
        assert _feature_rows(block) == [f"f{i}" for i in range(TOP_FEATURES)]
        assert block.index("top drifting features:") < block.index("  f4:") < block.index("model outputs:")
        assert "model outputs: prediction jensenshannon 0.9 (drifted), score jensenshannon 0.8 (drifted), " in block
        assert "label jensenshannon 0.05 (ok)" in block


def test_grouped_message_names_each_monitor_on_slack_and_in_email() -> None:
    payload = _grouped_payload()
    sections = [b["text"]["text"] for b in blocks(payload)["attachments"][0]["blocks"] if b["type"] == "section"]
    assert ["monitor churn-5m" in sections[0], "monitor churn-rolling" in sections[1]] == [True, True]
    assert all(_feature_rows(s) == [f"f{i}" for i in range(TOP_FEATURES)] for s in sections)
    channel = TypeAdapter(Channel).validate_python({"kind": "email", "smtp": "smtp://x", "to": ["a@x.test"]})
    message = build_message(channel, payload, "k" * 64)
    html = message.get_body(("html",)).get_content()
    plain = message.get_body(("plain",)).get_content()
    for body in (html, plain):
        assert "monitor churn-5m: window" in body and "monitor churn-rolling: window" in body
        assert body.index("f4:") < body.index("model outputs:")


def test_a_performance_alert_gives_the_labelled_rows_as_its_sample_size() -> None:
    config = parse_config(
        {
            "models": {"churn": {"task": "binary", "features": {"tenure": "numeric"}}},
            "monitors": {
                "churn-5m": {"model": "churn", "reference": {"previous_windows": 3}, "performance": ["roc_auc"]}
            },
            "alerts": {"rules": [{"name": "auc", "when": "performance.roc_auc < 0.7"}]},
        },
        env={},
    )
    (rule,) = compile_rules(config)
    latest = Observation(value=0.61, window_start=NOW, details={"n": 405})
    series = Series({"model": "churn"}, [latest], {"model": "churn", "monitor": "churn-5m", "row_count": 595})
    # The performance source reads nothing from the store: an unbound session proves it.
    notes = explain(Session(), config, rule, series, latest, NOW)
    assert (notes["sample_size"], notes["sample_unit"]) == (405, "labelled rows")
    lines = alert_lines({"state": "firing", "severity": "warning", "rule": "auc", "annotations": notes})
    assert "405 labelled rows in window" in lines
