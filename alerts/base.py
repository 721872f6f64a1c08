"""The one extension point of delivery: a :class:`Notifier` per channel kind, one module each.

A notifier turns a stored, channel-neutral payload (:mod:`alerts.message`) into its channel's format
and sends it. It reports failure only by raising :class:`DeliveryError`, which says whether a retry may
help (``transient``) and, for a 429, how long the channel asked us to wait (``retry_after``). The
outbox (:mod:`alerts.outbox`) owns retries; notifiers never retry or sleep.

Errors and log lines never carry a secret: messages are written by us from status codes and exception
types, and :func:`redact` scrubs the channel's secrets from anything that came from elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from pydantic import BaseModel, SecretStr

from alerts.payload import NotificationPayload
from monitor.errors import DriftscopeError

REDACTED = "[redacted]"


class DeliveryError(DriftscopeError):
    """A notification could not be delivered; ``transient`` tells whether a retry may succeed."""

    def __init__(self, reason: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after


class Notifier(Protocol):
    """Sends one notification to one channel of its kind."""

    def send(self, channel: Any, payload: NotificationPayload, idempotency_key: str) -> None:
        """Deliver ``payload``; return on success, raise :class:`DeliveryError` otherwise."""
        ...


def secrets_of(channel: BaseModel) -> Iterator[str]:
    """Every secret value of a channel config, and the parts of secret URLs that identify them."""
    for name in type(channel).model_fields:
        value = getattr(channel, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if secret:
                yield secret
                # A webhook URL's path or query is the credential even when printed apart from the host.
                tail = secret.partition("://")[2]
                rest = tail.partition("/")[2]
                if rest and len(rest) >= 8:
                    yield rest


def redact(text: str, channel: BaseModel) -> str:
    """``text`` with every secret of ``channel`` replaced by ``[redacted]``."""
    for secret in sorted(secrets_of(channel), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
