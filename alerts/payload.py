"""The channel-neutral notification: what the engine queues, the outbox stores and every notifier renders.

Built by :func:`alerts.message.group_payload` (or :func:`~alerts.message.probe_payload` for a test),
stored as JSON in ``notification.payload`` and read back with :func:`from_stored`, so a row written by
an older or broken release fails once with a reason instead of in the middle of a notifier. It never
holds a secret: it is built from scores and labels only.
"""

# No "from __future__ import annotations": TypedDict must see NotRequired to leave it out of __required_keys__.
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, cast


class AlertView(TypedDict):
    """One alert inside a notification; ``annotations`` is its explanation (:func:`alerts.message.explain`)."""

    id: int
    rule: str
    state: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, Any]
    value: float | None
    started_at: str | None
    fired_at: str | None
    resolved_at: str | None
    acknowledged_by: str | None


class NotificationPayload(TypedDict):
    """One notification of one alert group to one channel (Alertmanager's group model)."""

    event: str  # firing, resolved, repeat... or "test"
    channel: str
    group_key: str
    group_labels: dict[str, str]
    firing_ids: list[int]
    sent_at: str | None
    alerts: list[AlertView]
    sequence: NotRequired[int]  # per group: makes each notification's idempotency key


def to_stored(payload: NotificationPayload) -> dict[str, Any]:
    """The JSON object written to ``notification.payload``."""
    return dict(payload)


def from_stored(data: Mapping[str, Any]) -> NotificationPayload:
    """A stored payload, checked; ``ValueError`` names what is missing."""
    missing = [key for key in sorted(NotificationPayload.__required_keys__) if key not in data]
    alerts = data.get("alerts", [])
    if not isinstance(alerts, list):
        raise ValueError("notification payload: alerts is not a list")
    for index, alert in enumerate(alerts):
        if not isinstance(alert, Mapping):
            raise ValueError(f"notification payload: alerts[{index}] is not an object")
        missing += [f"alerts[{index}].{key}" for key in sorted(AlertView.__required_keys__) if key not in alert]
    if missing:
        raise ValueError(f"notification payload lacks {', '.join(missing)}")
    return cast(NotificationPayload, dict(data))
