"""monitor.errors.redact: the credentials of URLs, wherever they sit in a text, and only those."""

from __future__ import annotations

import pytest

from monitor.config import ConfigError, parse_config
from monitor.errors import DriftscopeError, SourceError, redact

URL = "http://admin:hunter2@prom:9090"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:pw@prometheus:9090", "http://[redacted]@prometheus:9090"),
        ("https://ghp_token@host/x", "https://[redacted]@host/x"),
        ("http://user:p@ss@host:1/a@b", "http://[redacted]@host:1/a@b"),  # a raw "@" in the password
        ("http://host:9090/api?query=up&Token=t0k", "http://host:9090/api?query=up&Token=[redacted]"),
        ("http://h/?api_key=a&apikey=b&access_token=c&password=d&key=e",
         "http://h/?api_key=[redacted]&apikey=[redacted]&access_token=[redacted]&password=[redacted]&key=[redacted]"),
        ("at 'http://u:p@h:1/x?sig=s' and http://v:q@k:2.", "at 'http://[redacted]@h:1/x?sig=[redacted]' and "
         "http://[redacted]@k:2."),
    ],
)  # fmt: skip
def test_credentials_are_replaced(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "http://prometheus:9090/api/v1/query?query=up&step=15",
        "mail ops@example.com about http://host/a@b",
        "no url here: user:pw@host",
        "http://h/path#token=fragment-is-not-sent",
    ],
)
def test_what_carries_no_credential_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_driftscope_errors_redact_their_message() -> None:
    error = SourceError("Prometheus at http://admin:hunter2@prom:9090 unreachable", transient=True)
    assert str(error) == "Prometheus at http://[redacted]@prom:9090 unreachable"
    assert "hunter2" not in repr(DriftscopeError("see http://a:hunter2@h:1"))


def test_config_errors_and_config_reprs_show_no_url_password() -> None:
    with pytest.raises(ConfigError) as caught:  # a URL pasted into the wrong key is echoed in its error
        parse_config({"sources": {"p": {"kind": "prometheus", "url": "http://prom:9090", "step": URL}}})
    assert "hunter2" not in str(caught.value)
    assert all("hunter2" not in message for _, message in caught.value.errors)
    config = parse_config({"sources": {"p": {"kind": "prometheus", "url": URL}}})
    source = config.sources["p"]
    assert "hunter2" not in repr(source) and "hunter2" not in str(source) and "hunter2" not in repr(config)
    assert source.url == URL  # the value itself is untouched
