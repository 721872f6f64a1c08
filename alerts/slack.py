"""Slack incoming webhook, Block Kit.

One message per notification: a coloured attachment (severity: red critical, orange warning, blue info,
green resolved) holding a header, one section per alert (what crossed which threshold, value vs
threshold, since when, window and reference, top drifting features) and a button to the dashboard page.
Slack cannot deduplicate: a worker killed between Slack's 200 and our commit sends it again once.
The webhook URL passes the SSRF guard like any other target (:func:`alerts.http.post`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.http import encode_json, post
from alerts.message import alert_lines, title
from monitor.config import SlackChannel

COLOURS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4", "resolved": "#2ca02c"}
HEADER_MAX = 150  # Block Kit limits
SECTION_MAX = 3000
MAX_ALERT_SECTIONS = 20  # a message holds at most 50 blocks


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def blocks(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The Slack message for ``payload``: ``text`` fallback plus Block Kit in a coloured attachment."""
    heading = title(payload)
    alerts = payload["alerts"]
    firing = [a for a in alerts if a["state"] == "firing"]
    worst = min((a["severity"] for a in firing), key=["critical", "warning", "info"].index, default=None)
    colour = COLOURS[worst] if worst else COLOURS["resolved"]
    body: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": heading[:HEADER_MAX]}}]
    for alert in alerts[:MAX_ALERT_SECTIONS]:
        lines = alert_lines(alert)
        text = f"*{_mrkdwn_escape(lines[0])}*\n" + "\n".join(_mrkdwn_escape(line) for line in lines[1:])
        body.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_MAX]}})
    if len(alerts) > MAX_ALERT_SECTIONS:
        more = f"… and {len(alerts) - MAX_ALERT_SECTIONS} more alerts"
        body.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    link = next((a["annotations"].get("link") for a in alerts if a["annotations"].get("link")), None)
    if link:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open in Driftscope"}, "url": link}
        body.append({"type": "actions", "elements": [button]})
    return {"text": heading, "attachments": [{"color": colour, "blocks": body}]}


class SlackNotifier:
    def send(self, channel: SlackChannel, payload: Mapping[str, Any], idempotency_key: str) -> None:
        url = channel.webhook.get_secret_value()
        post(url, encode_json(blocks(payload)), allow_private=channel.allow_private, what="slack webhook")
