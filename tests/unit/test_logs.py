"""Log lines as ``configure_logging`` renders them: one record is one line, and no URL keeps its password."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from alerts.console import ConsoleNotifier
from alerts.message import probe_payload, render_text
from monitor.config import ConsoleChannel
from monitor.logs import LogFormat, configure_logging

# Every character that ends a line for str.splitlines, plus ESC (drives the terminal) and a C1 control.
FORGERS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029\x1b\x9b"
FORGED = "\nINFO  [monitor.api.app] api key accepted admin=true"


def _logged(capsys: pytest.CaptureFixture[str], fmt: LogFormat, message: str, *args: object, **extra: object) -> str:
    configure_logging("INFO", fmt)
    logging.getLogger("monitor.test").warning(message, *args, extra=extra)
    return capsys.readouterr().err


def test_console_escapes_control_characters_in_values_keys_and_the_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _logged(
        capsys, "console", "unknown field %s", "f" + FORGED, **{"field": "x" + FORGED + FORGERS, "k" + FORGED: 1}
    )
    assert len(out.splitlines()) == 1, out
    assert out.count("INFO  [monitor.api.app]") == 3  # still there for a reader, escaped
    assert r"\n" in out and r"\x1b" in out and r"\u2028" in out and r"\x85" in out and r"\x9b" in out


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_an_exception_keeps_its_traceback_lines(capsys: pytest.CaptureFixture[str], fmt: LogFormat) -> None:
    configure_logging("INFO", fmt)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("monitor.test").exception("failed")
    out = capsys.readouterr().err
    assert "Traceback" in out and "ValueError: boom" in out


def test_json_keeps_each_record_on_one_line_with_the_value_intact(capsys: pytest.CaptureFixture[str]) -> None:
    out = _logged(capsys, "json", "unknown field", field="x" + FORGED + FORGERS)
    assert len(out.splitlines()) == 1, out
    assert json.loads(out)["field"] == "x" + FORGED + FORGERS


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_urls_lose_their_credentials_in_messages_and_values(capsys: pytest.CaptureFixture[str], fmt: LogFormat) -> None:
    out = _logged(
        capsys,
        fmt,
        "prometheus at %s unreachable",
        "http://admin:hunter2@prometheus:9090",
        error="GET https://es:9200/_search?api_key=hunter3&size=1 failed",
    )
    assert "hunter2" not in out and "hunter3" not in out and "admin" not in out
    assert "http://[redacted]@prometheus:9090" in out
    assert "api_key=[redacted]&size=1" in out


def test_a_multiline_message_keeps_its_lines_indented_under_the_record(capsys: pytest.CaptureFixture[str]) -> None:
    out = _logged(capsys, "console", "%s", "[FIRING:1] drift\n\nfeature f" + FORGED + "\r\x1b[2J", multiline=True)
    first, *rest = out.splitlines()
    assert "[FIRING:1] drift" in first and len(rest) == 3, out
    assert all(line.startswith("    ") for line in rest), out
    assert rest[2].startswith("    INFO  [monitor.api.app]") and r"\r\x1b[2J" in out and "multiline" not in out


def test_json_drops_the_multiline_flag(capsys: pytest.CaptureFixture[str]) -> None:
    record = json.loads(_logged(capsys, "json", "%s", "a\nb", multiline=True))
    assert record["event"] == "a\nb" and "multiline" not in record


def test_the_console_channel_prints_its_alert_text_as_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "console")
    payload = probe_payload("console", datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    ConsoleNotifier().send(ConsoleChannel(kind="console"), payload, "k")
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.split("] ", 1)[1].startswith(render_text(payload).splitlines()[0])
    assert len(rest) == render_text(payload).count("\n") and all(line.startswith("    ") for line in rest)
