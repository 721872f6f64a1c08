"""Structured logging for every Driftscope process.

Library code logs through the standard library (``logging.getLogger(__name__)``) and passes
fields with ``extra={"model": name, ...}``; this module renders them as readable key=value
lines on a terminal or one JSON object per line (``--log-format json``) for log shippers.
URLs in values lose their credentials (:func:`monitor.errors.redact`).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Literal

from monitor.errors import redact

if TYPE_CHECKING:
    import structlog

LogFormat = Literal["console", "json"]


def _drop_fields(*names: str) -> structlog.types.Processor:
    def drop(_logger: object, _method: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        for name in names:
            event.pop(name, None)
        return event

    return drop


def _redact(_logger: object, _method: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
    return {key: redact(value) if isinstance(value, str) else value for key, value in event.items()}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record, not at set-up.

    The CLI configures logging once per command; under a test runner that swaps stderr per
    call, a handler holding the old stream would write to a closed file.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _FormatterOnFirstRecord(logging.Formatter):
    """Imports structlog and builds its formatter when the first record comes: ``--help`` logs nothing."""

    def __init__(self, fmt: LogFormat) -> None:
        super().__init__()
        self._format = fmt
        self._formatter: logging.Formatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._formatter is None:
            self._formatter = _structlog_formatter(self._format)
        return self._formatter.format(record)


def _structlog_formatter(fmt: LogFormat) -> logging.Formatter:
    import structlog

    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_fields("color_message"),  # uvicorn's ANSI copy of the message
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
    )


def configure_logging(level: str = "INFO", fmt: LogFormat = "console") -> None:
    handler = _StderrHandler()
    handler.setFormatter(_FormatterOnFirstRecord(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter that drowns our own lines at INFO.
    for noisy in ("elastic_transport", "urllib3", "apscheduler", "werkzeug", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
