"""Structured logging for every Driftscope process.

Library code logs through the standard library (``logging.getLogger(__name__)``) and passes
fields with ``extra={"model": name, ...}``; this module renders them as readable key=value
lines on a terminal or one JSON object per line (``--log-format json``) for log shippers.

Values often come from outside (a client's field names, a source's error text): every record is
one line whatever they hold. The JSON renderer escapes control characters itself; the console
renderer gets them escaped first (``\\n``, ``\\x1b``, ``\\u2028``), so a value cannot forge a line or
drive the terminal. URLs in values lose their credentials (:func:`monitor.errors.redact`).
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


# C0, DEL, C1 (NEL among them) and the Unicode line and paragraph separators: each would start a
# new line or drive the terminal. Escaped the way Python spells them in a repr.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
# Rendered by the console renderer as blocks of their own, kept multi-line on purpose.
_MULTILINE = frozenset({"exception", "stack"})
# Logged with extra={MULTILINE: True}, a message written to be read as lines (the console alert
# channel's text) keeps them: each line is escaped as above, and every line after the first is
# indented under the record, so nothing in the message can pass for a record of its own.
MULTILINE = "multiline"
_CONTINUATION = "\n    "


def escape_control(text: str) -> str:
    """``text`` on one line: control characters and line separators as escapes.

    >>> escape_control("id\\nINFO forged line\\x1b[2J")
    'id\\\\nINFO forged line\\\\x1b[2J'
    """
    return text.translate(_CONTROL)


def _clean(*, one_line: bool) -> structlog.types.Processor:
    def clean(_logger: object, _method: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        cleaned = {}
        lines = bool(event.pop(MULTILINE, False))
        for key, value in event.items():
            if isinstance(value, str):
                value = redact(value)
                if one_line and lines and key == "event":
                    value = _CONTINUATION.join(escape_control(line) for line in value.split("\n"))
                elif one_line and key not in _MULTILINE:
                    value = escape_control(value)
            cleaned[escape_control(key) if one_line else key] = value
        return cleaned

    return clean


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
            _clean(one_line=fmt == "console"),
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
