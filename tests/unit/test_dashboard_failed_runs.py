"""The model page shows the windows of a monitor that ended failed (issue 17): a banner for the selected
monitor only (another monitor's are a note on its picker button), its newest error as text, and the
command that starts them again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dash import html
from dash.development.base_component import Component
from sqlalchemy import Engine, insert

from dashboard.app import route
from dashboard.context import Context
from dashboard.pages import model
from monitor.config import Config
from monitor.store.tables import Model, Run

WS, HOUR = datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1)
HOSTILE = "<img src=x onerror=alert(1)> value '<b>x</b>' not in reference " + "y" * 400


def _seed(engine: Engine) -> None:
    runs = [  # model, monitor, window length, window index, status, error
        ("m", "m-hourly", HOUR, 0, "succeeded", None),
        ("m", "m-hourly", HOUR, 1, "failed", "the older error"),
        ("m", "m-hourly", HOUR, 2, "failed", HOSTILE),
        ("m", "m-daily", 24 * HOUR, 0, "succeeded", None),
        ("m", "m-daily", 24 * HOUR, 1, "failed", "daily's error"),
        ("m", "m-broken", HOUR, 0, "failed", "broken's error"),  # never computed a window: no picker button
        ("clean", "clean-hourly", HOUR, 0, "succeeded", None),
        ("new", "new-hourly", HOUR, 0, "failed", "reference never uploaded"),
    ]
    with engine.begin() as conn:
        ids = dict(
            conn.execute(
                insert(Model).returning(Model.name, Model.id),
                [{"name": name, "task": "binary", "feature_schema": {}} for name in ("m", "clean", "new")],
            ).all()
        )
        conn.execute(
            insert(Run),
            [
                {
                    "monitor": monitor,
                    "model_id": ids[name],
                    "window_start": WS + i * length,
                    "window_end": WS + (i + 1) * length,
                    "status": status,
                    "attempts": 3 if status == "failed" else 1,
                    "error": error,
                }
                for name, monitor, length, i, status, error in runs
            ],
        )


def _page(engine: Engine, url: str) -> Component:
    path, _, search = url.partition("?")
    found = route(path, "?" + search)
    assert found is not None and found[0] is model.PAGE
    return found[0].layout(Context(Config(), engine), found[1])


def _banners(page: Component) -> dict[str, Component]:
    return {
        c.id["monitor"]: c
        for c in page._traverse()
        if isinstance(getattr(c, "id", None), dict) and c.id["type"] == "failed-runs"
    }


def _text(component: Any) -> str:
    """What the browser shows: every string child, in order (Dash renders strings as text)."""
    if isinstance(component, str):
        return component
    if isinstance(component, list | tuple):
        return "".join(_text(c) for c in component)
    return _text(getattr(component, "children", None) or "")


def _picker_notes(page: Component) -> dict[str, str]:
    picker = next(c for c in page._traverse() if getattr(c, "id", None) == "monitor-picker")
    buttons = picker.children[1].children
    return {b.children[0]: _text(b.children[1]) for b in buttons if b.children[1] is not None}


def test_banner_for_the_selected_monitor_only(sqlite_engine: Engine) -> None:
    _seed(sqlite_engine)
    primary = _page(sqlite_engine, "/models/m")
    banners = _banners(primary)
    # The primary (shortest window) is selected; m-broken has no button to select, so its banner shows too.
    assert sorted(banners) == ["m-broken", "m-hourly"]
    hourly = _text(banners["m-hourly"])
    assert "2 window(s) of monitor m-hourly failed" in hourly
    assert "newest: Jan 01 02:00 UTC, after 3 attempt(s)" in hourly
    assert "driftscope runs retry --monitor m-hourly --all-failed" in hourly
    assert "the older error" not in hourly
    # The error is a plain string child, cut to ERROR_CHARS: Dash escapes it, nothing parses it as HTML.
    error = next(c for c in banners["m-hourly"]._traverse() if getattr(c, "className", None) == "ds-run-error")
    assert isinstance(error, html.Span) and isinstance(error.children, str)
    assert error.children == HOSTILE[: model.ERROR_CHARS - 1] + "…"
    assert _picker_notes(primary) == {"m-hourly": " · 2 failed", "m-daily": " · 1 failed"}

    daily = _banners(_page(sqlite_engine, "/models/m?monitor=m-daily"))
    assert sorted(daily) == ["m-broken", "m-daily"]
    assert "1 window(s) of monitor m-daily failed" in _text(daily["m-daily"])
    assert "daily's error" in _text(daily["m-daily"])


def test_no_banner_without_failed_runs(sqlite_engine: Engine) -> None:
    _seed(sqlite_engine)
    assert _banners(_page(sqlite_engine, "/models/clean")) == {}


def test_banner_on_a_model_without_a_computed_window(sqlite_engine: Engine) -> None:
    """Every window failed: the page has nothing to plot, and says why rather than only "no windows yet"."""
    _seed(sqlite_engine)
    page = _page(sqlite_engine, "/models/new")
    banners = _banners(page)
    assert list(banners) == ["new-hourly"]
    assert "reference never uploaded" in _text(banners["new-hourly"])
    assert "No windows computed yet" in _text(page)
