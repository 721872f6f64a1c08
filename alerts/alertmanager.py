"""Prometheus Alertmanager, API v2: ``POST /api/v2/alerts``.

Each alert of the notification becomes an Alertmanager alert: labels (``alertname`` = the rule, plus the
alert's labels), string annotations (summary, description, value, threshold, since, window), the dashboard
link as ``generatorURL``, ``startsAt`` when it fired and ``endsAt``: the resolve time for a resolved alert,
and for a firing one twice the rule's repeat interval ahead — Driftscope re-sends a firing group every
repeat interval, which keeps it active; if Driftscope stops, Alertmanager resolves it on its own.
Alertmanager deduplicates by labels, so a re-sent notification is harmless. The endpoint passes the
SSRF guard (:func:`alerts.http.post`); an Alertmanager inside the network needs ``allow_private: true``,
set explicitly like any private target.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from alerts.http import encode_json, post
from alerts.message import alert_lines, iso
from monitor.config import AlertmanagerChannel

DEFAULT_REPEAT = timedelta(hours=4)
TEST_ALERT_LIFETIME = timedelta(minutes=5)


def endpoint(base_url: str) -> str:
    """``/api/v2/alerts`` under the path of ``base_url``; its query and fragment (refused at load) are dropped,
    so nothing in the base can turn the appended path into a query or fragment."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, f"{parts.path.rstrip('/')}/api/v2/alerts", "", ""))


def _annotation(value: Any) -> str:
    return "" if value is None else str(value)


def am_alerts(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    sent_at = datetime.fromisoformat(str(payload["sent_at"]).replace("Z", "+00:00"))
    result = []
    for alert in payload["alerts"]:
        notes = alert["annotations"]
        repeat = timedelta(seconds=notes.get("route", {}).get("repeat_interval_s", DEFAULT_REPEAT.total_seconds()))
        if alert["state"] == "resolved":
            ends = alert["resolved_at"]
        elif payload["event"] == "test":
            ends = iso(sent_at + TEST_ALERT_LIFETIME)
        else:
            ends = iso(sent_at + 2 * repeat)
        labels = {"alertname": alert["rule"], **alert["labels"]}
        entry = {
            "labels": {k: str(v) for k, v in labels.items()},
            "annotations": {
                "summary": _annotation(notes.get("summary")),
                "description": "\n".join(alert_lines(alert)),
                "value": _annotation(notes.get("value")),
                "threshold": _annotation(notes.get("threshold")),
                "since": _annotation(notes.get("since")),
                "window_start": _annotation(notes.get("window_start")),
            },
            "startsAt": alert["fired_at"] or alert["started_at"],
            "endsAt": ends,
        }
        if notes.get("link"):
            entry["generatorURL"] = notes["link"]
        result.append(entry)
    return result


class AlertmanagerNotifier:
    def send(self, channel: AlertmanagerChannel, payload: Mapping[str, Any], idempotency_key: str) -> None:
        body = encode_json(am_alerts(payload))
        post(endpoint(channel.url), body, allow_private=channel.allow_private, what="alertmanager")
