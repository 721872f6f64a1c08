"""Log lines as ``configure_logging`` renders them: no URL keeps its password."""

from __future__ import annotations

import logging

import pytest

from monitor.logs import LogFormat, configure_logging


def _logged(capsys: pytest.CaptureFixture[str], fmt: LogFormat, message: str, *args: object, **extra: object) -> str:
    configure_logging("INFO", fmt)
    logging.getLogger("monitor.test").warning(message, *args, extra=extra)
    return capsys.readouterr().err


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
