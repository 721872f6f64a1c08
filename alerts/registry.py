"""The one registry of delivery: channel kind (``kind:`` in the config) → its :class:`~alerts.base.Notifier`."""

from __future__ import annotations

from collections.abc import Mapping

from alerts.alertmanager import AlertmanagerNotifier
from alerts.base import DeliveryError, Notifier
from alerts.console import ConsoleNotifier
from alerts.email import EmailNotifier
from alerts.slack import SlackNotifier
from alerts.webhook import WebhookNotifier

NOTIFIERS: Mapping[str, Notifier] = {
    "slack": SlackNotifier(),
    "email": EmailNotifier(),
    "webhook": WebhookNotifier(),
    "alertmanager": AlertmanagerNotifier(),
    "console": ConsoleNotifier(),
}


def notifier_for(kind: str) -> Notifier:
    try:
        return NOTIFIERS[kind]
    except KeyError:
        raise DeliveryError(
            f"no notifier for channel kind {kind!r} (known: {', '.join(NOTIFIERS)})", transient=False
        ) from None
