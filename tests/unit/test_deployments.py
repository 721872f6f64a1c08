"""The checks of monitor.store.deployments (pure): traffic shares, pipeline URLs, versions."""

from __future__ import annotations

import pytest

from monitor.store.deployments import check_url, check_version, parse_traffic


@pytest.mark.parametrize(
    ("given", "share"),
    [
        ("10%", 0.1),
        (" 12.5 % ", 0.125),
        ("100%", 1.0),
        (".5%", 0.005),
        ("0.1", 0.1),
        ("1", 1.0),
        (0.25, 0.25),
        (1, 1.0),
        (None, None),
    ],
)
def test_traffic_is_a_share_or_a_percentage(given: str | float | None, share: float | None) -> None:
    assert parse_traffic(given) == share


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0%", 'must be more than 0 and at most 1 (100%), got "0%"'),
        ("150%", 'must be more than 0 and at most 1 (100%), got "150%"'),
        ("10", 'must be more than 0 and at most 1 (100%), got "10" (a percentage needs %: 10%)'),
        (10, "must be more than 0 and at most 1 (100%), got 10 (a percentage needs %: 10%)"),
        (0, "must be more than 0 and at most 1 (100%), got 0"),
        (-0.1, "must be more than 0 and at most 1 (100%), got -0.1"),
        ("nan", 'must be more than 0 and at most 1 (100%), got "nan"'),
        (float("inf"), "must be more than 0 and at most 1 (100%), got inf"),
        ("ten percent", 'expected a share like 0.1 or a percentage like 10%, got "ten percent"'),
        ("10%%", 'expected a share like 0.1 or a percentage like 10%, got "10%%"'),
        (True, "expected a share like 0.1 or a percentage like 10%, got True"),
    ],
)
def test_bad_traffic_says_what_is_expected(given: str | float, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_traffic(given)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "url", ["https://ci.example.com/runs/812", "http://jenkins:8080/job/x/7/", "HTTPS://gitlab.example.com/-/jobs/9"]
)
def test_pipeline_urls_are_http_or_https(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("javascript:alert(1)", 'expected an http(s) URL with a host, got "javascript:alert(1)"'),
        ("JavaScript://example.com/%0aalert(1)", "expected an http(s) URL with a host"),
        ("data:text/html,<script>alert(1)</script>", "expected an http(s) URL with a host"),
        ("//evil.example.com/x", "expected an http(s) URL with a host"),
        ("https:///path-only", "expected an http(s) URL with a host"),
        ("ci/runs/812", "expected an http(s) URL with a host"),
        ("https://ci.example.com/a b", "contains a space or a non-printable character"),
        ("https://ci.example.com/\u202ex", "contains a space or a non-printable character"),
        ("https://ci.example.com/\n", "contains a space or a non-printable character"),
        ("https://[::1", "not a URL: Invalid IPv6 URL"),
        ("https://ci.example.com/" + "x" * 2000, "longer than 2000 characters"),
    ],
)
def test_other_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_url(url)
    assert str(caught.value).startswith(message)


def test_versions_are_printable_strings_of_1_to_100_characters() -> None:
    assert check_version("2.1-canary+build.7") == "2.1-canary+build.7"
    assert check_version("v" * 100) == "v" * 100
    for bad, message in [
        ("", "version must be 1 to 100 characters, got 0"),
        ("v" * 101, "version must be 1 to 100 characters, got 101"),
        (2.1, "expected a version string, got 2.1"),
        (None, "expected a version string, got null"),
        ("2.1\r\n", 'version "2.1\\r\\n" contains a non-printable character (control, format or line separator)'),
        ("<\u2028>", 'version "<\\u2028>" contains a non-printable character (control, format or line separator)'),
    ]:
        with pytest.raises(ValueError) as caught:
            check_version(bad)
        assert str(caught.value) == message


def test_cli_tables_print_cells_as_text_not_rich_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    """`driftscope deploy list` prints notes and URLs from the store: on a terminal rich would read markup in
    them (styles, and OSC 8 hyperlinks from ``[link=…]``)."""
    import io

    from rich.console import Console

    import monitor.cli.alerts

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200, color_system=None)
    monkeypatch.setattr(monitor.cli.alerts, "out_console", console)
    monitor.cli.alerts._print_table(("note",), [("[link=javascript:alert(1)]run[/link] [bold]x[/bold]",)])
    assert "[link=javascript:alert(1)]run[/link] [bold]x[/bold]" in screen.getvalue()
    assert "\x1b]8;" not in screen.getvalue()  # no terminal hyperlink
