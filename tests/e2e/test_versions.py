"""Deployments and versions on the model page in headless Chromium: a vertical line with the version over the
timeline per deployment (who, what, when in its hover), the "Deployments" card linking each pipeline run
safely, and the "Versions" card with rows per version. Hostile values (markup in a version, a
``javascript:`` URL written around the store's checks) stay text. Screenshot in test-artifacts/."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine
from werkzeug.serving import make_server

from dashboard import create_app
from monitor.config import Config, parse_config
from monitor.ingest import ingest_predictions
from monitor.store.deployments import record_deployment
from monitor.store.engine import make_engine, transaction, upgrade
from monitor.store.queries import sync_models
from monitor.store.tables import Deployment
from tests.alert_support import FEATURES, HOUR, MONITOR, T0, add_window

pytestmark = pytest.mark.e2e
WAIT_S = 30
WINDOWS = 20
HOSTILE_VERSION = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine: Engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('e2e-versions') / 'store.db'}")
    upgrade(engine)
    config = parse_config(
        {
            "models": {"churn": {"task": "binary", "features": {f: "numeric" for f in FEATURES}}},
            "monitors": {MONITOR: {"model": "churn", "reference": {"range": ["2026-01-01", "2026-02-01"]}}},
        },
        env={},
    )
    model = sync_models(engine, config)["churn"]
    for i in range(WINDOWS):
        add_window(
            engine, model, T0 + i * HOUR, 0.1 if i < 14 else 0.6, {f: 0.5 if i < 14 else 0.001 for f in FEATURES}
        )
    record = record_deployment
    record(engine, "churn", "2.0", deployed_by="ana", at=T0 + 4 * HOUR, commit="1a2b3c4",
           url="https://ci.example.com/runs/811")  # fmt: skip
    record(engine, "churn", "2.1", deployed_by="apikey:ci", at=T0 + 14 * HOUR, traffic="10%", commit="9f2c1ab",
           url="https://ci.example.com/runs/812", note="canary <b>not bold</b>")  # fmt: skip
    record(engine, "churn", HOSTILE_VERSION, deployed_by="mallory", at=T0 + 17 * HOUR)
    with transaction(engine) as session:  # a row written around the store's checks: never an href
        session.add(Deployment(model_id=model, version="9.9", deployed_at=T0 + 18 * HOUR, deployed_by="sql",
                               url="javascript:alert(document.domain)"))  # fmt: skip
    records = [
        {"id": f"r{i}", "timestamp": (T0 + i * HOUR / 4).isoformat(), "features": dict.fromkeys(FEATURES, 1.0),
         "prediction": 1, **({"model_version": "2.1"} if i % 10 == 0 and i >= 56 else {})}
        for i in range(WINDOWS * 4)
    ]  # fmt: skip
    assert ingest_predictions(engine, config, "churn", records, "test", shape="canonical").accepted == len(records)
    app = create_app(Config(), engine, refresh_seconds=1)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    engine.dispose()


def test_deployments_are_lines_on_the_timeline_and_rows_with_their_runs(
    browser: Any, base_url: str, screenshot: Callable[[str], Path]
) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1440, "height": 2000, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        browser.get(base_url + "/models/churn?range=7d")
        wait = WebDriverWait(browser, WAIT_S)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#model-timeline .main-svg")))
        wait.until(ec.presence_of_element_located((By.ID, "deployments")))
        labels = browser.execute_script(
            "return document.querySelector('#model-timeline .js-plotly-plot').layout.annotations"
            ".filter(a => a.font && a.font.color === '#009E73').map(a => [a.x, a.text, a.hovertext]);"
        )
        assert [(x[:16], text) for x, text, _ in labels] == [
            ("2026-03-02T12:00", "2.0"),
            ("2026-03-02T22:00", "2.1"),
            ("2026-03-03T01:00", "&lt;img src=x oner…"),
            ("2026-03-03T02:00", "9.9"),
        ]
        assert labels[1][2] == "<b>deployed 2.1</b> (10% canary)<br>commit 9f2c1ab<br>Mar 02 22:00 UTC by apikey:ci"
        assert labels[2][2].startswith("<b>deployed &lt;img src=x onerror=alert(1)&gt;</b> (all traffic)")
        # One vertical line per deployment over every panel.
        lines = browser.execute_script(
            "return document.querySelector('#model-timeline .js-plotly-plot').layout.shapes"
            ".filter(s => s.type === 'line' && s.line.color === '#009E73').map(s => [s.x0, s.yref]);"
        )
        assert len(lines) == 4 and {yref for _, yref in lines} == {"paper"}
        # The version labels are drawn, as text, markup and all.
        drawn = browser.execute_script(
            "return Array.from(document.querySelectorAll('#model-timeline .annotation-text'))"
            ".filter(e => e.getBoundingClientRect().width > 0).map(e => e.textContent);"
        )
        assert {"2.0", "2.1", "<img src=x oner…", "9.9"} <= set(drawn), drawn
        assert not browser.find_elements(By.CSS_SELECTOR, "#model-timeline img")

        rows = [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "#deployments tbody tr")
        ]
        assert [r[0] for r in rows] == ["9.9", HOSTILE_VERSION, "2.1", "2.0"]
        assert rows[2][1:6] == ["Mar 02 22:00 UTC", "10 % canary", "9f2c1ab", "apikey:ci", "pipeline run"]
        assert rows[2][6] == "canary <b>not bold</b>"
        links = [
            (a.get_attribute("href"), a.get_attribute("rel"), a.get_attribute("target"))
            for a in browser.find_elements(By.CSS_SELECTOR, "#deployments a")
        ]
        assert links == [
            ("https://ci.example.com/runs/812", "noopener noreferrer", "_blank"),
            ("https://ci.example.com/runs/811", "noopener noreferrer", "_blank"),
        ]
        assert rows[0][5] == ""  # the javascript: URL is no link
        assert not browser.find_elements(By.CSS_SELECTOR, "#deployments img, #deployments b")

        versions = [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
        ]
        assert versions[0][:2] == ["2.0", "51"] and versions[0][3] == "51"  # none named it: 51 in its time
        assert {v[0] for v in versions} == {"2.0", "2.1", HOSTILE_VERSION, "9.9", "no version"}
        browser.execute_script("document.getElementById('deployments').scrollIntoView({block: 'center'})")
        screenshot("deployments")
        browser.execute_script("window.scrollTo(0, 0)")
        path = screenshot("model")
        assert path.stat().st_size > 0
        browser.get(base_url + "/models/churn?range=24h")  # a day: the lines apart, each with its version
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#model-timeline .main-svg")))
        screenshot("model-24h")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
