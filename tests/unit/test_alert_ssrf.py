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
        # Special ranges, and the addresses that wrap an IPv4 one.
        ("http://[2002:a9fe:a9fe::1]/x", "6to4"),  # 169.254.169.254 inside
        ("http://[2002:5db8:d70e::1]/x", "6to4"),  # even wrapping a public address: no reason to go there
        ("http://[fec0::1]/x", "site-local"),
        ("http://192.0.0.1/x", "IETF protocol assignment"),
        ("http://192.0.0.9/x", "IETF protocol assignment"),
        ("http://192.0.0.170/x", "IETF protocol assignment"),
        ("http://[::ffff:10.0.0.1]/x", "private"),
        ("http://[::ffff:169.254.169.254]/x", "cloud metadata"),
        ("http://[64:ff9b::a9fe:a9fe]/x", "cloud metadata"),
        ("http://[64:ff9b::a00:1]/x", "private"),
        ("http://[64:ff9b::7f00:1]/x", "loopback"),
        ("http://[64:ff9b:1::a00:1]/x", "local-use NAT64"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x", "Teredo"),
        ("http://[::1.2.3.4]/x", "reserved"),  # IPv4-compatible, deprecated
        ("http://0.1.2.3/x", "this network"),
        ("http://240.0.0.1/x", "reserved"),
        ("http://255.255.255.255/x", "reserved"),
        ("http://198.18.0.1/x", "benchmarking"),
        ("http://198.19.255.254/x", "benchmarking"),
        ("http://[2001:2::1]/x", "reserved"),  # IPv6 benchmarking
        ("http://192.0.2.1/x", "documentation"),
        ("http://198.51.100.7/x", "documentation"),
        ("http://203.0.113.9/x", "documentation"),
        ("http://[2001:db8::1]/x", "documentation"),
        ("http://[3fff::1]/x", "documentation"),
        ("http://[fd00::1]/x", "private"),
        ("http://[fd00:ec2::254]/x", "cloud metadata"),
        ("http://[100::1]/x", "discard-only"),
        ("http://[ff02::1]/x", "multicast"),
        ("http://192.88.99.1/x", "6to4 relay"),
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
    final = "scheme" in reason or "metadata" in reason
    fix = "no setting allows" if final else "set allow_private: true on the channel"
    assert fix in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/x",
        "http://8.8.8.8/x",
        "http://192.0.1.1/x",  # next to 192.0.0/24
        "http://198.20.0.1/x",  # next to 198.18/15
        "http://[2606:4700:4700::1111]/x",
        "http://[64:ff9b::5db8:d70e]/x",  # NAT64 of a public address: what DNS64 answers on IPv6-only networks
        "http://[::ffff:93.184.215.14]/x",
    ],
)
def test_public_addresses_pass(url: str) -> None:
    check_target(url, allow_private=False)


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


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://[::ffff:169.254.169.254]/"]
)
def test_cloud_metadata_is_refused_even_with_allow_private(url: str) -> None:
    """allow_private opens internal receivers, never the instance's credentials endpoint."""
    with pytest.raises(DeliveryError, match="cloud metadata address; no setting allows it"):
        check_target(url, allow_private=True)


def test_credentials_in_the_url_are_refused_not_silently_dropped() -> None:
    """The request goes to the pinned address, so user:password@ would never be sent: say so."""
    with pytest.raises(DeliveryError, match="credentials in the URL are not sent") as caught:
        check_target("http://alice:s3cret@127.0.0.1:9093/", allow_private=True)
    assert "s3cret" not in str(caught.value)
