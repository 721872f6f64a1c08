"""The dashboard in headless Chromium against a seeded store (two monitors per model): every page,
the monitor selector, heatmap → feature, acknowledge, silence, the window report. Screenshots (1440×900,
a laptop screen) go to test-artifacts/."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine, insert, select
from werkzeug.serving import make_server

from dashboard import create_app
from monitor.config import Config
from monitor.store.engine import make_engine, upgrade
from monitor.store.tables import Alert, Silence
from tests.seed import MONITOR, ROLLING_MONITOR, SeedInfo, seed_store

pytestmark = pytest.mark.e2e
WAIT_S = 30
LAST_WINDOW = "2026-11-24T23:00:00Z"
REFRESH_S = 1


def report_html(monitor: str, window_start: datetime) -> str:
    # The real renderer (Evidently, in monitor/cli/dashboard.py) is covered by its own test; here the
    # page only has to embed whatever the injected callable returns for that monitor and window.
    return f"<!DOCTYPE html><html><body><h1 id='title'>{monitor} {window_start:%Y-%m-%d %H:%M}</h1></body></html>"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, SeedInfo]]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'store.db'}")
    upgrade(engine)
    info = seed_store(engine)
    yield engine, info
    engine.dispose()


@pytest.fixture(scope="module")
def base_url(store: tuple[Engine, SeedInfo]) -> Iterator[str]:
    app = create_app(Config(), store[0], render_report=report_html, refresh_seconds=REFRESH_S)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """The shared browser with a 1440×900 viewport for this test."""
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1440, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    )
    yield browser
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def wait(browser: Any, condition: Callable[[Any], Any]) -> Any:
    return WebDriverWait(browser, WAIT_S).until(condition)


def wait_for_text(browser: Any, css: str, text: str) -> None:
    wait(browser, ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def wait_for_graph(browser: Any, graph_id: str) -> Any:
    return wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, f"#{graph_id} .main-svg")))


def full_page(browser: Any, screenshot: Callable[[str], Path], name: str) -> None:
    """A screenshot of the whole page height, then back to 900 px."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1440, "height": max(900, int(height)), "deviceScaleFactor": 1, "mobile": False},
    )
    screenshot(name)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1440, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    )


def click_heatmap_cell(browser: Any, row: int, rows: int) -> None:
    """Click the rightmost (newest) cell of heatmap row ``row`` and wait for the feature page.

    Plotly may still be laying the figure out (autosize) when the first click lands, in which case the
    click hits nothing: such a click is repeated. A click Plotly did register (its ``plotly_click``
    event) is never repeated, however long the server takes to answer it on a loaded machine — a
    repeated click would land on a page that is being replaced.
    """
    registered = (
        "const gd = arguments[0]; gd.__dsClicked = false;"
        "if (!gd.__dsWatching) { gd.__dsWatching = true; gd.on('plotly_click', () => { gd.__dsClicked = true; }); }"
    )
    for _ in range(5):
        graph = browser.find_element(By.CSS_SELECTOR, "#model-timeline .js-plotly-plot")
        browser.execute_script(registered, graph)
        heatmap = graph.find_element(By.CSS_SELECTOR, '.nsewdrag[data-subplot="x2y2"]')
        width, height = heatmap.size["width"], heatmap.size["height"]
        offset_y = -height // 2 + (2 * row + 1) * height // (2 * rows)
        ActionChains(browser).move_to_element_with_offset(heatmap, width // 2 - 3, offset_y).click().perform()
        with suppress(TimeoutException):
            WebDriverWait(browser, 3, ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda b, gd=graph: (
                    "/features/" in b.current_url or b.execute_script("return arguments[0].__dsClicked", gd)
                )
            )
            wait(browser, lambda b: "/features/" in b.current_url)
            return
    raise AssertionError("clicking the heatmap never opened a feature page")


def grid_rows(browser: Any) -> list[str]:
    """The text of each row of the overview table, in display order."""
    rows = browser.find_elements(By.CSS_SELECTOR, "#overview-table .ag-center-cols-container .ag-row")
    return [r.text for r in sorted(rows, key=lambda r: int(r.get_attribute("row-index")))]


def test_overview_lists_models_by_health(page: Any, base_url: str, screenshot: Callable[[str], Path]) -> None:
    page.get(base_url + "/")
    wait_for_text(page, "#overview-table", "fraud-detector")
    grid = page.find_element(By.ID, "overview-table").text
    assert grid.index("churn") < grid.index("fraud-detector") < grid.index("pricing")  # worst first
    assert "critical" in grid and "no data" in grid
    assert page.find_element(By.ID, "nav-firing").text == "2"
    screenshot("overview")
    page.find_element(By.ID, "overview-search").send_keys("fraud")
    wait(page, lambda b: "churn" not in b.find_element(By.ID, "overview-table").text)
    page.find_element(By.LINK_TEXT, "fraud-detector").click()
    wait_for_graph(page, "model-timeline")
    assert page.current_url.endswith("/models/fraud-detector?monitor=fraud-detector-hourly")  # the row's monitor


def test_model_page_heatmap_click_opens_feature_window(
    page: Any, base_url: str, store: tuple[Engine, SeedInfo], screenshot: Callable[[str], Path]
) -> None:
    _, info = store
    page.get(base_url + "/models/churn")
    wait_for_graph(page, "model-timeline")
    wait_for_text(page, "#kpi-health", "CRITICAL")
    wait_for_text(page, "#kpi-verdict", "Data")
    # The seeded newest window was computed 5 minutes after it closed, before any of its labels arrived.
    wait_for_text(page, "#performance-recomputed", "Performance last computed Nov 25 00:05 UTC")
    assert "0 of" in page.find_element(By.ID, "performance-recomputed").text
    loaded = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and [url for url in loaded if not url.startswith(base_url)] == []  # nothing from the internet
    # Plotly leaves a point outside its axis range undrawn (no path): the alert markers once sat there.
    drawn = page.execute_script(
        "const gd = document.querySelector('#model-timeline .js-plotly-plot');"
        "const i = gd._fullData.findIndex(t => t.name === 'alerts');"
        "return Array.from(document.querySelectorAll('#model-timeline .scatterlayer .trace'))"
        ".filter(t => t.__data__[0].trace.index === i)"
        ".flatMap(t => Array.from(t.querySelectorAll('path.point')))"
        ".map(p => p.getBoundingClientRect().width);"
    )
    assert len(drawn) == 2 and min(drawn) > 0, drawn  # the firing and the resolved alert (test_dashboard_figures)
    screenshot("model")

    click_heatmap_cell(page, row=0, rows=len(info.churn.features))  # newest window, most drifted feature
    feature = page.current_url.split("/features/")[1].split("?")[0]
    assert feature in info.drifting_features
    assert f"window={LAST_WINDOW}" in page.current_url.replace("%3A", ":")
    wait_for_graph(page, "feature-distribution")
    wait_for_text(page, "#kpi-drift", "DRIFT")
    screenshot("feature")

    # The time-range picker rewrites the URL, and the URL alone reproduces the page.
    page.find_element(By.ID, "range-24h").click()
    wait(page, lambda b: "range=24h" in b.current_url)
    wait_for_graph(page, "feature-drift")
    url = page.current_url
    page.get(url)
    wait_for_graph(page, "feature-drift")
    assert page.current_url == url

    page.get(base_url + "/models/churn?range=all")
    wait_for_graph(page, "model-timeline")
    full_page(page, screenshot, "model-full")


def test_overview_numbers_come_from_the_named_monitor(
    page: Any, base_url: str, store: tuple[Engine, SeedInfo], screenshot: Callable[[str], Path]
) -> None:
    """One row per monitor: the share of drifted features is the one the monitor's alert reports, and
    "Rows, 24 h" counts the stored predictions once (not once per monitor)."""
    engine, info = store
    churn = info.churn
    page.get(base_url + "/")
    wait_for_text(page, "#overview-table", ROLLING_MONITOR)
    rows = grid_rows(page)
    hourly = next(r for r in rows if MONITOR in r)
    rolling = next(r for r in rows if ROLLING_MONITOR in r)
    with engine.connect() as conn:
        alert_value = conn.scalar(select(Alert.value).where(Alert.rule == "feature drift"))
    assert alert_value == churn.last_share[ROLLING_MONITOR]
    assert f"{alert_value:.0%}" in rolling.split("\n") and "feature drift" in rolling
    assert f"{churn.last_share[MONITOR]:.0%}" in hourly.split("\n") and "feature drift" not in hourly
    for row in (hourly, rolling):
        assert f"{churn.predictions_24h:,}" in row.split("\n")
    assert rows.index(hourly) < rows.index(rolling)  # primary first
    full_page(page, screenshot, "overview")


def test_model_page_monitor_selector(
    page: Any, base_url: str, store: tuple[Engine, SeedInfo], screenshot: Callable[[str], Path]
) -> None:
    """The model page shows one monitor at a time, the primary by default; the selector switches it
    through the URL, and links onward keep it."""
    page.get(base_url + "/models/churn")
    wait_for_graph(page, "model-timeline")
    picker = page.find_element(By.ID, "monitor-picker")
    assert picker.find_element(By.CSS_SELECTOR, ".active").text.startswith(MONITOR)
    assert f"scores of monitor {MONITOR}" in page.find_element(By.CSS_SELECTOR, ".ds-page-header").text
    assert "1 firing" in picker.find_element(By.PARTIAL_LINK_TEXT, ROLLING_MONITOR).text
    picker.find_element(By.PARTIAL_LINK_TEXT, ROLLING_MONITOR).click()
    wait(page, lambda b: f"monitor={ROLLING_MONITOR}" in b.current_url)
    wait_for_text(page, ".ds-page-header", f"scores of monitor {ROLLING_MONITOR}")
    wait_for_graph(page, "model-timeline")
    assert f"/reports/{ROLLING_MONITOR}/" in page.find_element(By.ID, "report-link").get_attribute("href")
    screenshot("rolling")
    # The heatmap of the rolling monitor opens the rolling monitor's feature page.
    click_heatmap_cell(page, row=0, rows=len(store[1].churn.features))
    assert f"monitor={ROLLING_MONITOR}" in page.current_url
    wait_for_text(page, "#kpi-drift", "wasserstein")


def test_feature_page_shows_one_monitor(
    page: Any, base_url: str, store: tuple[Engine, SeedInfo], screenshot: Callable[[str], Path]
) -> None:
    """One card per quality check, and a drift line of one monitor and one method, each labelled."""
    page.get(base_url + f"/models/churn/features/monthly_charges?window={LAST_WINDOW}")
    wait_for_graph(page, "feature-drift")
    wait_for_text(page, "#kpi-drift", "DRIFT")
    labels = [e.get_attribute("textContent") for e in page.find_elements(By.CSS_SELECTOR, ".ds-kpis .ds-kpi-label")]
    assert labels.count("Missing") == 1 and labels.count("Type errors") == 1, labels
    assert labels.count("Out of reference range") == 1, labels
    drift_chart = page.find_element(By.CSS_SELECTOR, "#feature-drift .js-plotly-plot")
    traces = page.execute_script("return arguments[0].data.map(t => t.name)", drift_chart)
    assert traces == ["ks"]
    assert MONITOR in page.find_element(By.ID, "feature-drift").text
    wait_for_graph(page, "feature-quality")
    # No time label on a y axis label: "0.00%" sat over "00:00" at the quality chart's bottom left.
    overlaps = page.execute_script(
        "const out = [];"
        "for (const gd of document.querySelectorAll('.js-plotly-plot')) {"
        "  const boxes = s => Array.from(gd.querySelectorAll(s)).map(e => e.getBoundingClientRect());"
        "  for (const a of boxes('.xtick text')) for (const b of boxes('.ytick text'))"
        "    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)"
        "      out.push(gd.parentElement.id);"
        "}"
        "return out;"
    )
    assert overlaps == []
    screenshot("feature")
    page.find_element(By.ID, "monitor-picker").find_element(By.PARTIAL_LINK_TEXT, ROLLING_MONITOR).click()
    wait(page, lambda b: f"monitor={ROLLING_MONITOR}" in b.current_url)
    wait_for_text(page, "#kpi-drift", "wasserstein")
    wait_for_text(page, "#feature-drift", ROLLING_MONITOR)
    drift_chart = page.find_element(By.CSS_SELECTOR, "#feature-drift .js-plotly-plot")
    assert page.execute_script("return arguments[0].data.map(t => t.name)", drift_chart) == ["wasserstein"]


def test_acknowledge_and_silence_from_the_alerts_page(
    page: Any, base_url: str, store: tuple[Engine, SeedInfo], screenshot: Callable[[str], Path]
) -> None:
    engine, info = store
    drift_alert, perf_alert = info.firing_alert_ids
    page.get(base_url + "/alerts")
    wait_for_text(page, f"#alert-{drift_alert}", "FIRING")
    screenshot("alerts")

    page.find_element(By.CSS_SELECTOR, f"#alert-{drift_alert}").find_element(
        By.XPATH, ".//button[text()='Acknowledge']"
    ).click()
    wait(page, ec.visibility_of_element_located((By.ID, "action-confirm")))
    page.find_element(By.ID, "action-confirm").click()  # without a name: refused
    wait_for_text(page, "#action-error", "Enter your name")
    page.find_element(By.ID, "action-author").send_keys("dana")
    page.find_element(By.ID, "action-comment").send_keys("looking at the pricing change")
    screenshot("ack-dialog")
    page.find_element(By.ID, "action-confirm").click()
    wait_for_text(page, f"#alert-{drift_alert}", "Acknowledged by dana")
    with engine.connect() as conn:
        row = conn.execute(select(Alert.acknowledged_by, Alert.ack_comment).where(Alert.id == drift_alert)).one()
    assert tuple(row) == ("dana", "looking at the pricing change")

    wait(page, ec.invisibility_of_element_located((By.ID, "action-confirm")))
    page.find_element(By.CSS_SELECTOR, f"#alert-{perf_alert}").find_element(
        By.XPATH, ".//button[text()='Silence…']"
    ).click()
    wait(page, ec.visibility_of_element_located((By.ID, "action-confirm")))
    assert page.find_element(By.ID, "action-comment").get_attribute("value") == ""  # not the previous comment
    page.find_element(By.ID, "action-comment").send_keys("known: retraining tonight")
    assert page.find_element(By.ID, "action-author").get_attribute("value") == "dana"  # remembered
    page.find_element(By.ID, "action-confirm").click()
    wait_for_text(page, "#action-toast", "Silenced")
    with engine.connect() as conn:
        silence = conn.execute(select(Silence.matchers, Silence.created_by, Silence.comment)).one()
    assert tuple(silence) == ({"rule": "performance drop", "model": "churn"}, "dana", "known: retraining tonight")
    wait(page, ec.invisibility_of_element_located((By.ID, "action-confirm")))
    wait_for_text(page, "#silences", "rule=performance drop, model=churn")
    screenshot("alerts-after")


def test_window_report_is_embedded(page: Any, base_url: str, screenshot: Callable[[str], Path]) -> None:
    page.get(base_url + "/models/churn")
    wait_for_graph(page, "model-timeline")
    page.find_element(By.ID, "report-link").click()
    wait(page, lambda b: f"/reports/{MONITOR}/" in b.current_url)
    frame = wait(page, ec.presence_of_element_located((By.ID, "report-frame")))
    page.switch_to.frame(frame)
    try:
        wait_for_text(page, "#title", f"{MONITOR} 2026-11-24 23:00")
    finally:
        page.switch_to.default_content()
    assert (
        page.find_element(By.LINK_TEXT, "← churn").get_attribute("href").endswith(f"/models/churn?window={LAST_WINDOW}")
    )
    screenshot("report")


def test_empty_states_say_what_to_do(
    page: Any, base_url: str, store: tuple[Engine, SeedInfo], screenshot: Callable[[str], Path]
) -> None:
    page.get(base_url + f"/models/{store[1].empty_model}")
    wait_for_text(page, ".ds-empty", "No windows computed yet")
    assert "POST /v1/predictions" in page.find_element(By.CSS_SELECTOR, ".ds-empty").text
    screenshot("empty-model")


def test_open_page_follows_the_store(page: Any, base_url: str, store: tuple[Engine, SeedInfo]) -> None:
    """A new firing alert shows up on an open overview without a reload (the auto-refresh)."""
    engine, info = store
    page.get(base_url + "/")
    wait_for_text(page, "#overview-table", "fraud-detector")
    firing_before = int(page.find_element(By.ID, "nav-firing").text)
    with engine.begin() as conn:
        conn.execute(
            insert(Alert),
            [
                {
                    "rule": "volume drop",
                    "fingerprint": "fp-e2e-refresh",
                    "labels": {"model": info.healthy.name, "rule": "volume drop"},
                    "annotations": {"summary": "volume at 20% of the expected rate"},
                    "severity": "warning",
                    "state": "firing",
                    "started_at": info.healthy.last_window,
                    "fired_at": info.healthy.last_window,
                }
            ],
        )
    wait_for_text(page, "#nav-firing", str(firing_before + 1))
    wait_for_text(page, "#overview-table", "volume drop")
