"""Page state that lives in the URL, so a link (from a Slack alert, a colleague) opens exactly that view.

- ``/models/<name>?from=…&to=…&window=…&monitor=…`` — time range (ISO 8601, UTC), a highlighted window
  and the monitor whose scores are shown (default: the model's primary monitor);
- ``/models/<name>/features/<feature>?from=…&to=…&window=…&monitor=…``;
- ``/models/<name>/compare?candidate=…&baseline=…&from=…&to=…`` — two versions side by side;
- ``/alerts?state=firing&model=…``;
- ``/reports/<monitor>/<window_start>``.

Everything here is pure: parse a query string into typed values, build a URL back from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode

from monitor.config import parse_time as parse_iso

# Presets of the time-range picker: label → length. "all" is resolved against the data.
RANGE_PRESETS: dict[str, timedelta | None] = {
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
DEFAULT_PRESET = "7d"
# A link to one window (from an alert) shows this many windows each side of it, within the data.
CONTEXT_WINDOWS = 24
# A chart with more columns than this gets windows merged into buckets (aggregated in SQL).
MAX_COLUMNS = 240
_BUCKET_STEPS = (1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 168)  # hours


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time from the URL (``Z`` or an offset; naive means UTC), or None if absent/invalid."""
    if not text:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


def format_time(value: datetime) -> str:
    """UTC, second precision, ``Z`` suffix: short, unambiguous and safe in a URL."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_input_time(value: datetime) -> str:
    """What the range fields show: UTC to the minute; :func:`parse_time` reads it back."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    preset: str | None = None  # which picker button made it, None for a custom range

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class PageQuery:
    """The query-string part of the state; unknown or malformed values are ignored, never an error page."""

    start: datetime | None = None
    end: datetime | None = None
    preset: str | None = None
    window: datetime | None = None
    state: str | None = None
    model: str | None = None
    monitor: str | None = None
    candidate: str | None = None  # model versions compared on the version comparison page
    baseline: str | None = None

    @classmethod
    def parse(cls, search: str | None) -> PageQuery:
        params = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items() if v}
        preset = params.get("range")
        return cls(
            start=parse_time(params.get("from")),
            end=parse_time(params.get("to")),
            preset=preset if preset in RANGE_PRESETS else None,
            window=parse_time(params.get("window")),
            state=params.get("state"),
            model=params.get("model"),
            monitor=params.get("monitor"),
            candidate=params.get("candidate"),
            baseline=params.get("baseline"),
        )

    def time_range(self, first: datetime | None, last: datetime | None, window: timedelta) -> TimeRange:
        """The range to show given the data's first and last window start.

        Explicit ``from``/``to`` win; otherwise a preset ends at the newest data (not at "now", so a model
        that stopped sending shows its last week, not an empty chart). A ``window`` alone frames that window
        with :data:`CONTEXT_WINDOWS` windows each side, clipped to the data: what a link from an alert wants,
        at a scale where the window is a column, not a pixel, even on a deployment minutes old.
        """
        if self.start and self.end and self.start < self.end:
            return TimeRange(self.start, self.end)
        preset = self.preset or DEFAULT_PRESET
        length = RANGE_PRESETS[preset]
        last_end = (last + window) if last else datetime.now(UTC)
        if self.preset is None and not self.window and first and length and last_end - first <= length:
            preset, length = "all", None  # less history than the default range: show all of it
        if length is None:
            return TimeRange(first or last_end - timedelta(days=7), last_end, preset)
        if self.window and not self.preset:
            context = CONTEXT_WINDOWS * window
            start = max(first, self.window - context) if first else self.window - context
            end = min(last_end, self.window + window + context) if last else self.window + window + context
            return TimeRange(min(start, self.window), max(end, self.window + window))
        if self.start:
            return TimeRange(self.start, self.start + length, preset)
        return TimeRange(last_end - length, last_end, preset)


@dataclass(frozen=True)
class Location:
    """Where the browser is: the named segments of the path (``<model>`` in ``/models/<model>``) and the
    query string. A page builds itself from this alone."""

    params: dict[str, str]
    query: PageQuery


def match_path(pattern: str, pathname: str | None) -> dict[str, str] | None:
    """The ``<name>`` segments of ``pattern`` read from ``pathname`` (percent-decoded), or None when it
    does not match: ``match_path("/models/<model>", "/models/churn") == {"model": "churn"}``."""
    want = [p for p in pattern.strip("/").split("/") if p]
    got = [unquote(p) for p in (pathname or "/").strip("/").split("/") if p]
    if len(want) != len(got):
        return None
    params = {}
    for expected, actual in zip(want, got, strict=True):
        if expected.startswith("<") and expected.endswith(">"):
            params[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return params


def with_params(search: str | None, **changes: str | None) -> str:
    """``search`` with ``changes`` applied (None removes a key)."""
    params = dict(parse_qsl((search or "").lstrip("?")))
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return query_string(**params)


def query_string(**params: str | datetime | None) -> str:
    """``?a=1&b=…`` from the non-empty params (datetimes formatted as UTC ISO), or "" when none."""
    clean = {k: format_time(v) if isinstance(v, datetime) else v for k, v in params.items() if v}
    return "?" + urlencode(clean, safe=":") if clean else ""


def range_params(tr: TimeRange) -> dict[str, str | datetime | None]:
    """The URL params that reproduce ``tr``: a preset name when it came from one, else from/to."""
    if tr.preset:
        return {"range": tr.preset}
    return {"from": tr.start, "to": tr.end}


def model_url(
    model: str, tr: TimeRange | None = None, window: datetime | None = None, *, monitor: str | None = None
) -> str:
    params = range_params(tr) if tr else {}
    if tr and tr.preset and window:
        # A preset is relative to the newest data: pin the absolute range so the link keeps showing it.
        params = {"from": tr.start, "to": tr.end}
    return f"/models/{quote(model, safe='')}" + query_string(**params, window=window, monitor=monitor)


def feature_url(
    model: str,
    feature: str,
    window: datetime | None = None,
    tr: TimeRange | None = None,
    *,
    monitor: str | None = None,
) -> str:
    params: dict[str, str | datetime | None] = {"from": tr.start, "to": tr.end} if tr else {}
    path = f"/models/{quote(model, safe='')}/features/{quote(feature, safe='')}"
    return path + query_string(**params, window=window, monitor=monitor)


def compare_url(model: str, candidate: str | None, baseline: str | None, tr: TimeRange | None = None) -> str:
    """The version comparison page; versions are data, percent-encoded in the query string."""
    params: dict[str, str | datetime | None] = {"from": tr.start, "to": tr.end} if tr else {}
    path = f"/models/{quote(model, safe='')}/compare"
    return path + query_string(**params, candidate=candidate, baseline=baseline)


def report_url(monitor: str, window_start: datetime) -> str:
    return f"/reports/{quote(monitor, safe='')}/{format_time(window_start)}"


def alerts_url(state: str | None = None, model: str | None = None) -> str:
    return "/alerts" + query_string(state=state, model=model)


def bucket_for(length: timedelta, window: timedelta) -> timedelta:
    """Bucket size for a chart over ``length``: the window itself, or the smallest round multiple of it
    that keeps the chart under :data:`MAX_COLUMNS` columns (a laptop screen has ~1000 px for them)."""
    window = max(window, timedelta(minutes=1))
    columns = length / window
    if columns <= MAX_COLUMNS:
        return window
    for hours in _BUCKET_STEPS:
        bucket = timedelta(hours=hours)
        if bucket >= window and bucket % window == timedelta(0) and length / bucket <= MAX_COLUMNS:
            return bucket
    return window * math.ceil(columns / MAX_COLUMNS)
