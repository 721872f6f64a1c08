"""Rendering a stored payload: Slack blocks, e-mail, Alertmanager alerts; secret scrubbing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from alerts.alertmanager import am_alerts
from alerts.base import REDACTED, redact
from alerts.email import build_message, message_id
from alerts.message import probe_payload, render_text, title
from alerts.slack import MAX_ALERT_SECTIONS, blocks
from monitor.config import Channel

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
