"""What a new user saw in their first hour (issue 18): the range an alert's link opens, the health card
against the current alerts, the drifting-features card against its own count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dash import dcc, html

from dashboard.pages.model import feature_list
from dashboard.state import CONTEXT_WINDOWS, PageQuery, bucket_for

T0 = datetime(2026, 11, 1, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def test_alert_link_frames_a_young_deployment() -> None:
    """A deep link (``?window=`` alone) on a deployment 30 minutes old with 5-minute windows opened 7 days
    in 1-hour buckets, the data a one-pixel sliver at the right edge: it frames the data around the window."""
    first, last = T0, T0 + timedelta(minutes=25)
    tr = PageQuery(window=last).time_range(first, last, FIVE)
    assert (tr.start, tr.end) == (first, last + FIVE)
    assert bucket_for(tr.length, FIVE) == FIVE


def test_alert_link_shows_the_windows_around_it_within_the_data() -> None:
    middle, last = T0 + timedelta(days=1), T0 + timedelta(days=2)
    tr = PageQuery(window=middle).time_range(T0, last, FIVE)
    assert (tr.start, tr.end) == (middle - CONTEXT_WINDOWS * FIVE, middle + (CONTEXT_WINDOWS + 1) * FIVE)
    newest = PageQuery(window=last).time_range(T0, last, FIVE)
    assert (newest.start, newest.end) == (last - CONTEXT_WINDOWS * FIVE, last + FIVE)
    # A window after the newest data (the store lags the link) is still in the range.
    ahead = PageQuery(window=last + timedelta(hours=1)).time_range(T0, last, FIVE)
    assert ahead.start <= last + timedelta(hours=1) < ahead.end


def test_default_range_frames_a_short_history() -> None:
    """The demo: 3 hours of data are the range, not the right edge of a longer one."""
    tr = PageQuery().time_range(T0, T0 + timedelta(hours=3), FIVE)
    assert (tr.start, tr.end) == (T0, T0 + timedelta(hours=3) + FIVE)


def test_drifting_feature_list_names_every_counted_feature() -> None:
    """ "Drifting features 6 of 8" named four: the links and the "… and N more" tooltip name all six."""
    names = [f"f{i}" for i in range(8)]
    for count in range(len(names) + 1):
        parts = feature_list(names[:count], lambda name: f"/f/{name}", shown=5)
        links = [p.children for p in parts if isinstance(p, dcc.Link)]
        more = [p for p in parts if isinstance(p, html.Span)]
        hidden = more[0].title.split(", ") if more else []
        assert links + hidden == names[:count]
        assert len(links) == min(count, 5) and (not more or f"and {len(hidden)} more" in more[0].children)
