"""The page interface: URL patterns route to their page, and every callback a page registers finds the
elements it listens to in some rendered page."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from dash import dcc
from dash.development.base_component import Component
from sqlalchemy import Engine, select

from dashboard import create_app, queries
from dashboard.app import route
from dashboard.context import Context
from dashboard.pages import PAGES, alerts, feature, model, overview, report
from dashboard.state import PageQuery, format_time, match_path, with_params
from monitor.config import Config
from monitor.store.engine import make_engine, upgrade
from monitor.store.tables import Score
from tests.seed import SeedInfo, seed_store

URLS = (
    "/",
    "/models/churn",
    "/models/churn/features/contract?window=2026-11-24T20:00:00Z",
    "/alerts",
    "/reports/churn-hourly/2026-11-24T20:00:00Z",
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, SeedInfo]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('pages') / 'store.db'}")
    upgrade(engine)
    return engine, seed_store(engine)


def test_match_path_reads_named_segments() -> None:
    assert match_path("/", "/") == {} and match_path("/", None) == {}
    assert match_path("/models/<model>", "/models/churn/") == {"model": "churn"}
    assert match_path("/models/<model>/features/<feature>", "/models/a%2Fb/features/monthly%20charges") == {
        "model": "a/b",
        "feature": "monthly charges",
    }
    assert match_path("/models/<model>", "/models") is None
    assert match_path("/models/<model>", "/alerts/churn") is None
    assert match_path("/alerts", "/alerts/extra") is None


def test_each_url_routes_to_its_page() -> None:
    expected = (overview.PAGE, model.PAGE, feature.PAGE, alerts.PAGE, report.PAGE)
    for url, page in zip(URLS, expected, strict=True):
        path, _, search = url.partition("?")
        found = route(path, "?" + search)
        assert found is not None and found[0] is page, url
    found = route("/models/churn/features/contract", "?window=2026-11-24T20:00:00Z&range=24h")
    assert found is not None
    assert found[1].params == {"model": "churn", "feature": "contract"}
    assert found[1].query == PageQuery.parse("?window=2026-11-24T20:00:00Z&range=24h")
    assert route("/nowhere", "") is None
    assert len({page.path for page in PAGES}) == len(PAGES)


def test_with_params_changes_only_the_named_keys() -> None:
    assert with_params("?range=7d&window=2026-11-24T20:00:00Z", window=None, model="churn") == "?range=7d&model=churn"
    assert with_params(None, window=None) == ""


def _ids(component: Component) -> list[Any]:
    return [c.id for c in (component, *component._traverse()) if getattr(c, "id", None) is not None]


def test_every_callback_listens_to_rendered_elements(seeded: tuple[Engine, SeedInfo]) -> None:
    """An element id renamed in a page but not in its callback (or the reverse) would leave a control dead."""
    engine, _ = seeded

    def report_html(monitor: str, window: datetime) -> str:
        return f"<html>{monitor} {window}</html>"

    app = create_app(Config(), engine, render_report=report_html)
    ctx = Context(Config(), engine, report_html)
    rendered = _ids(app.layout)
    for url in URLS:
        path, _, search = url.partition("?")
        found = route(path, "?" + search)
        assert found is not None
        rendered += _ids(found[0].layout(ctx, found[1]))
    plain = {i for i in rendered if isinstance(i, str)}
    pattern_types = {i["type"] for i in rendered if isinstance(i, dict)}
    listened = [d["id"] for cb in app.callback_map.values() for d in (*cb["inputs"], *cb["state"])]
    assert listened
    for element in listened:
        if element.startswith("{"):  # a pattern-matching id, serialised
            assert json.loads(element)["type"] in pattern_types, element
        else:
            assert element in plain, element


def test_navigation_during_a_refresh_tick_renders_the_new_page(seeded: tuple[Engine, SeedInfo]) -> None:
    """The browser merges a pending auto-refresh tick and a click on a link into one router call; the
    unchanged data must not swallow the navigation (it did when the tick was listed first)."""
    engine, _ = seeded
    client = create_app(Config(), engine).server.test_client()
    with queries.read_only(engine) as conn:
        version = queries.data_version(conn)

    def router(path: str, changed: list[str], shown: str | None = None) -> int:
        """``shown``: the URL the page in the browser was rendered for (default: ``path``)."""
        outputs = [("page", "children"), ("nav-firing", "children"), ("nav-user", "children"), ("data-version", "data")]
        payload = {
            "output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
            "outputs": [{"id": i, "property": p} for i, p in outputs],
            "inputs": [
                {"id": "url", "property": "pathname", "value": path},
                {"id": "url", "property": "search", "value": ""},
                {"id": "refresh", "property": "n_intervals", "value": 3},
            ],
            "state": [{"id": "data-version", "property": "data", "value": {"version": version, "url": shown or path}}],
            "changedPropIds": changed,
        }
        return client.post("/_dash-update-component", json=payload).status_code

    assert router("/models/churn/features/contract", ["refresh.n_intervals", "url.pathname"]) == 200
    assert router("/reports/churn-hourly/2026-11-24T20:00:00Z", ["refresh.n_intervals", "url.pathname"]) == 200
    assert router("/models/churn", ["refresh.n_intervals"]) == 204  # a tick alone, nothing new: no render
    assert router("/alerts", []) == 200  # the first render of a page without auto-refresh
    # A tick that superseded a slow navigation in the browser (Dash keeps only the newest call's answer)
    # while the page still shows the previous URL: it renders the new one, whatever the data.
    assert router("/models/churn", ["refresh.n_intervals"], shown="/") == 200
    assert router("/reports/churn-hourly/2026-11-24T20:00:00Z", ["refresh.n_intervals"], shown="/models/churn") == 200


def _text(component: Any) -> str:
    """What the browser shows: every string child, in order."""
    if isinstance(component, str):
        return component
    if isinstance(component, list | tuple):
        return "".join(_text(c) for c in component)
    return _text(getattr(component, "children", None) or "")


def test_model_page_cards_describe_the_selected_window(seeded: tuple[Engine, SeedInfo]) -> None:
    """An alert's link opens the model page on a past window: the drifting-features and data-or-service
    cards describe that window (they described the end of the range: "0 of 10" beside a window with 6)."""
    engine, info = seeded
    churn = info.churn
    incident = info.incident[0] + timedelta(hours=1)  # inputs stable; error rate and latency up
    for window in (incident, info.drift_start - timedelta(hours=10), churn.last_window):
        with queries.read_only(engine) as conn:
            breached = conn.execute(
                select(Score.feature).where(
                    Score.model_id == churn.id,
                    Score.monitor == churn.monitor,
                    Score.kind == "drift",
                    Score.window_start == window,
                    Score.breached.is_(True),
                    Score.feature.not_in(queries.OUTPUT_COLUMNS),
                )
            )
            expected = sorted(breached.scalars())
        found = route("/models/churn", f"?window={format_time(window)}")
        assert found is not None
        layout = found[0].layout(Context(Config(), engine), found[1])
        cards = {c.id: c for c in layout._traverse() if getattr(c, "id", None) in ("kpi-drifting", "kpi-verdict")}
        drifting = cards["kpi-drifting"]
        named = sorted(c.children for c in drifting._traverse() if isinstance(c, dcc.Link))
        assert _text(drifting.children[1]) == f"{len(expected)} of {len(churn.features)}", window
        assert named == expected, window
        assert f"in the window {window:%b %d %H:%M}" in _text(drifting), window
        if window == incident:
            assert not expected
            verdict = _text(cards["kpi-verdict"])
            assert "error_rate" in verdict and "drifting" not in verdict, verdict


def test_the_drift_kpi_says_which_threshold_judged_the_score() -> None:
    """The threshold's value right after its kind: after the calibration's parenthesis it read "calibrated
    threshold (α 2.3e-06 per window; the reference flags 0 of its own 60 windows) 0.117"."""
    threshold_text = feature.threshold_text
    calibrated = {"calibrated": {"alpha": 6.9e-05, "source": "resampled", "reference_flags": "0 of its own 60 windows"}}
    assert threshold_text(calibrated, 0.1174) == (
        "calibrated threshold 0.117 (α 6.9e-05 per window; the reference flags 0 of its own 60 windows)"
    )
    skipped = {"calibrated": {"skipped": "calibrated for ks, the window is tested by psi"}}
    assert threshold_text(skipped, 0.1) == threshold_text({}, 0.1) == "fixed threshold 0.1"
