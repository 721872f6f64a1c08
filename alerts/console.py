"""Console channel: the notification as text on the worker's log (for trying Driftscope out)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from alerts.message import render_text
from monitor.config import ConsoleChannel
from monitor.logs import MULTILINE

log = logging.getLogger(__name__)


class ConsoleNotifier:
    def send(self, channel: ConsoleChannel, payload: Mapping[str, Any], idempotency_key: str) -> None:
        log.warning("%s", render_text(payload), extra={"idempotency_key": idempotency_key, MULTILINE: True})
