"""The one HTTP POST of the HTTP channels (Slack, webhook, Alertmanager), with their retry rules.

Every request passes the SSRF guard (:func:`alerts.ssrf.check_target`) and goes to the address the
guard checked (Host header and TLS SNI keep the name): there is no unguarded way out. Redirects are
never followed (a redirect could lead a webhook to an internal address after the SSRF check). 2xx is
success; 5xx, 408, 429, timeouts and connection errors are transient (429 honours ``Retry-After``); any
other status is final. Every failure is a :class:`DeliveryError` written here from a status code or an
exception type: never a response body (a target must not be able to echo anything back through
Driftscope), never third-party text that could quote the URL (for Slack and webhooks it is the secret).

httpx logs every request URL at INFO; for webhooks the URL is the credential, so its request log lines
are dropped (:class:`_DropRequestLines`).
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from alerts.base import DeliveryError
from alerts.ssrf import check_target

TIMEOUT_S = 10.0
MAX_RETRY_AFTER_S = 3600.0
USER_AGENT = "driftscope-alerts"


class _DropRequestLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("HTTP Request:")


_FILTER = _DropRequestLines()


def _quiet_httpx() -> None:
    logger = logging.getLogger("httpx")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle), built once: loading it costs ~50 ms a request."""
    return httpx.create_ssl_context()


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER_S)


def encode_json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def post(
    url: str,
    content: bytes,
    *,
    allow_private: bool,
    what: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_S,
) -> None:
    """POST the JSON bytes ``content`` to ``url`` once the guard allows it, pinned to the checked address,
    and classify the outcome (see the module docstring)."""
    target = check_target(url, allow_private=allow_private, what=what)
    _quiet_httpx()
    send_headers = {
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
        **(headers or {}),
        "Host": target.host_header,
    }
    try:
        # A client per request: pooled connections must not be shared across targets pinned by address.
        with httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False, verify=_tls_context()) as client:
            request = client.build_request(
                "POST",
                target.url,
                content=content,
                headers=send_headers,
                extensions={"sni_hostname": target.sni_hostname},
            )
            response = client.send(request)
    except httpx.InvalidURL:  # e.g. a control character in the path: retrying cannot help
        raise DeliveryError(f"{what}: not a valid URL; correct the channel's url", transient=False) from None
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"{what}: timed out ({type(exc).__name__})", transient=True) from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"{what}: connection failed ({type(exc).__name__})", transient=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        raise DeliveryError(f"{what}: HTTP 429 rate limited", transient=True, retry_after=wait)
    if status >= 500 or status == 408:
        raise DeliveryError(f"{what}: HTTP {status}", transient=True)
    if 300 <= status < 400:
        raise DeliveryError(f"{what}: HTTP {status} redirect (redirects are not followed)", transient=False)
    raise DeliveryError(f"{what}: HTTP {status} (rejected; not retried)", transient=False)
