"""E-mail over SMTP: multipart text + HTML, STARTTLS or SMTPS, optional login, several recipients.

Every notification has a stable ``Message-ID`` derived from its idempotency key, so a message re-sent
after a worker died between the server's acceptance and our commit carries the same id and mail clients
or a dedupe filter can drop the copy. Retries: connection errors, timeouts and 4xx replies are
transient; 5xx replies (unknown recipient, authentication refused) are final.
"""

from __future__ import annotations

import html
import logging
import smtplib
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from alerts.base import DeliveryError
from alerts.message import alert_lines, render_text, title
from monitor.config import EmailChannel

log = logging.getLogger(__name__)

MESSAGE_ID_DOMAIN = "driftscope"
SMTP_PORTS = {"smtp": 25, "smtps": 465}


def message_id(idempotency_key: str) -> str:
    # 40 hex digits (160 bits) keep the header on one line: folded, some parsers keep a leading space.
    return f"<{idempotency_key[:40]}@{MESSAGE_ID_DOMAIN}>"


def _html(payload: Mapping[str, Any]) -> str:
    parts = [f"<h2>{html.escape(title(payload))}</h2>"]
    for alert in payload["alerts"]:
        lines = alert_lines(alert)
        link = alert["annotations"].get("link")
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines[1:] if line != link)
        anchor = f'<p><a href="{html.escape(link, quote=True)}">Open in Driftscope</a></p>' if link else ""
        parts.append(f"<h3>{html.escape(lines[0])}</h3><ul>{items}</ul>{anchor}")
    return "<html><body>" + "".join(parts) + "</body></html>"


def build_message(channel: EmailChannel, payload: Mapping[str, Any], idempotency_key: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = title(payload)
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Message-ID"] = message_id(idempotency_key)
    message["Date"] = format_datetime(datetime.fromisoformat(str(payload["sent_at"]).replace("Z", "+00:00")))
    message["X-Driftscope-Event"] = str(payload["event"])
    message.set_content(render_text(payload))
    message.add_alternative(_html(payload), subtype="html")
    return message


def _classify(exc: Exception) -> DeliveryError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        transient = all(400 <= code < 500 for code in codes)
        return DeliveryError(f"smtp: recipients refused (codes {sorted(set(codes))})", transient=transient)
    if isinstance(exc, smtplib.SMTPResponseException):
        # The server's reply text is left out: it can quote what we sent (the AUTH exchange included).
        return DeliveryError(f"smtp: server replied {exc.smtp_code}", transient=400 <= exc.smtp_code < 500)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError("smtp: the server does not support a required extension (STARTTLS/AUTH)", transient=False)
    if isinstance(exc, TimeoutError):
        return DeliveryError("smtp: timed out", transient=True)
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(f"smtp: TLS failed ({type(exc).__name__})", transient=True)
    return DeliveryError(f"smtp: connection failed ({type(exc).__name__})", transient=True)


class EmailNotifier:
    def send(self, channel: EmailChannel, payload: Mapping[str, Any], idempotency_key: str) -> None:
        target = urlsplit(channel.smtp)
        if target.scheme not in SMTP_PORTS or not target.hostname:
            raise DeliveryError("smtp: expected smtp://host:port or smtps://host:port", transient=False)
        port = target.port or SMTP_PORTS[target.scheme]
        timeout = channel.timeout.total_seconds()
        message = build_message(channel, payload, idempotency_key)
        try:
            if target.scheme == "smtps":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    target.hostname, port, timeout=timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(target.hostname, port, timeout=timeout)
            with client:
                if channel.starttls:
                    client.starttls(context=ssl.create_default_context())
                if channel.username is not None:
                    password = channel.password.get_secret_value() if channel.password else ""
                    client.login(channel.username, password)
                refused = client.send_message(message, from_addr=channel.sender, to_addrs=list(channel.to))
            if refused:  # accepted for some recipients: delivered; retrying would duplicate it for the others
                log.warning("smtp: some recipients refused", extra={"refused": sorted(refused)})
        except (smtplib.SMTPException, OSError) as exc:
            raise _classify(exc) from None
