"""Generic webhook: the notification payload as JSON, signed with HMAC-SHA256.

Headers: ``X-Driftscope-Signature: sha256=<hex>`` (HMAC of ``<timestamp>.<body>`` with the
channel's secret, as Stripe does), ``X-Driftscope-Timestamp`` (when the notification was created; the
same on every retry, so the signature is stable and a receiver may refuse stale ones) and
``Idempotency-Key`` (the notification's key: a receiver that stores it can drop the one duplicate a
worker killed mid-delivery may cause). Sent by :func:`alerts.http.post`, behind the SSRF guard.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from alerts.http import encode_json, post
from monitor.config import WebhookChannel

SIGNATURE_HEADER = "X-Driftscope-Signature"
TIMESTAMP_HEADER = "X-Driftscope-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does with the headers (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookNotifier:
    def send(self, channel: WebhookChannel, payload: Mapping[str, Any], idempotency_key: str) -> None:
        body = encode_json(payload)
        timestamp = str(payload.get("sent_at"))
        headers = {"Idempotency-Key": idempotency_key, TIMESTAMP_HEADER: timestamp}
        if channel.secret is not None:
            headers[SIGNATURE_HEADER] = sign(channel.secret.get_secret_value(), timestamp, body)
        url = channel.url.get_secret_value()
        post(url, body, allow_private=channel.allow_private, what="webhook", headers=headers)
