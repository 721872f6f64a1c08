"""The webhook SSRF guard on literal addresses (no DNS needed), and Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.base import DeliveryError
from alerts.http import retry_after_seconds
from alerts.ssrf import check_target


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://172.16.5.5/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("http://169.254.10.1/x", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://[::ffff:127.0.0.1]/x", "loopback"),
        ("http://100.64.0.1/x", "shared"),
        ("http://0.0.0.0/x", "unspecified"),
        ("http://224.0.0.1/x", "multicast"),
        ("http://localhost/x", "loopback"),
        ("ftp://93.184.215.14/x", "scheme 'ftp' not allowed"),
        ("file:///etc/passwd", "scheme 'file' not allowed"),
        ("http://93.184.215.14:22/x", "port 22 not allowed"),
    ],
)
def test_refused_targets(url: str, reason: str) -> None:
    with pytest.raises(DeliveryError, match=reason) as caught:
        check_target(url, allow_private=False)
    assert caught.value.transient is False
    assert url not in str(caught.value)  # a webhook URL is a secret: never repeated in errors
    # Every refusal says how to get past it: the setting that allows it, or that none does.
    fix = "no setting allows" if "scheme" in reason else "set allow_private: true on the channel"
    assert fix in str(caught.value)


@pytest.mark.parametrize("url", ["http://[::1/x", "http:///x", "http://93.184.215.14:99999/x"])
def test_malformed_urls_point_at_the_url_key(url: str) -> None:
    with pytest.raises(DeliveryError, match="correct the channel's url"):
        check_target(url, allow_private=True)


def test_public_targets_are_pinned_to_the_checked_address() -> None:
    target = check_target("https://93.184.215.14/hooks/abc?x=1", allow_private=False)
    assert (target.url, target.host_header, target.sni_hostname) == (
        "https://93.184.215.14:443/hooks/abc?x=1",
        "93.184.215.14",
        "93.184.215.14",
    )
    assert check_target("http://93.184.215.14:8080/h", allow_private=False).host_header == "93.184.215.14:8080"


def test_allow_private_lifts_address_and_port_checks_but_not_the_scheme() -> None:
    assert check_target("http://127.0.0.1:9/x", allow_private=True).url == "http://127.0.0.1:9/x"
    with pytest.raises(DeliveryError, match="scheme"):
        check_target("gopher://127.0.0.1/x", allow_private=True)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Mon, 02 Mar 2026 08:01:30 GMT", now) == 90.0
    assert retry_after_seconds("Mon, 02 Mar 2026 07:00:00 GMT", now) == 0.0
    assert retry_after_seconds("999999") == 3600.0  # capped
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
