"""The compare page's range: a URL's from/to longer than the canary gate's limit is shortened to the last
MAX_CANARY_SPAN ending at its end, and the page says so (the gate loads every row in the range on each render)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.pages.compare import CompareData, _shortened, clamp
from dashboard.state import TimeRange
from monitor.runs.canary import MAX_CANARY_SPAN

END = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_a_range_longer_than_the_limit_keeps_its_end_and_the_limit_before_it() -> None:
    asked = TimeRange(END - timedelta(days=3650), END)
    assert clamp(asked) == TimeRange(END - timedelta(days=31), END)


def test_a_range_within_the_limit_is_kept_as_asked() -> None:
    for asked in (TimeRange(END - MAX_CANARY_SPAN, END), TimeRange(END - timedelta(hours=1), END, preset="1h")):
        assert clamp(asked) is asked


def test_the_page_says_when_and_from_when_it_shortened_the_range() -> None:
    shortened = CompareData(
        None, (), range=TimeRange(END - MAX_CANARY_SPAN, END), asked_start=END - timedelta(days=3650)
    )
    note = _shortened(shortened)
    assert note is not None and note.id == "compare-range-shortened"
    assert note.children == (
        "Range shortened to the last 31 days before Dec 02 08:00 UTC, the longest the canary gate compares "
        "(asked: 3,650 days)."
    )
    assert _shortened(CompareData(None, (), range=TimeRange(END - timedelta(hours=1), END))) is None
