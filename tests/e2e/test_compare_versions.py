"""The version comparison page in headless Chromium, on windows the scheduler computed with a baseline per
version: the canary gate's verdict, each version's rows, references (with approval) and deployments side by
side, drift per feature from each version's own scores, performance over time; reached from the model page's
Versions card. A version named with markup stays text, in the page and in its URL. Screenshot in
test-artifacts/."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine
from werkzeug.serving import make_server

from dashboard import create_app
from monitor.config import Config, parse_config
from monitor.runs.references import upload_dataset
from monitor.runs.scheduler import Scheduler
from monitor.store.engine import make_engine, upgrade
from monitor.store.queries import sync_models
from monitor.store.references import approve_reference
from tests.integration.test_version_references import HOUR, T0, add_hour, deploy, training_file

pytestmark = pytest.mark.e2e
WAIT_S = 60
HOSTILE = "<img src=x onerror=alert(1)>"


def computed_store(folder: Path) -> tuple[Engine, Config]:
    """Six hours of 1.0 and 2.0 traffic, each version's reference uploaded (2.0's approved by ana), windows
    computed by the scheduler."""
    engine: Engine = make_engine(f"sqlite:///{folder / 'store.db'}")
    upgrade(engine)
    config = parse_config(
        {
            "models": {
                "churn": {
                    "task": "binary",
                    "features": {"tenure": "numeric", "plan": "categorical"},
                    "fields": {"score": "score", "label": "label"},
                }
            },
            "monitors": {
                "churn-hourly": {
                    "model": "churn",
                    "window": "1h",
                    "lateness": "5m",
                    "min_rows": 100,
                    "segment_min_rows": 50,
                    "reference": {"version": "current"},
                    "drift": {"method": "ks"},
                    "performance": ["accuracy"],
                }
            },
            "worker": {"metrics_port": None, "run_lease": "10m"},
        },
        env={},
    )
    model_id = sync_models(engine, config)["churn"]
    deploy(engine, model_id, "1.0", T0 - HOUR, None)
    deploy(engine, model_id, "2.0", T0, 0.5)
    deploy(engine, model_id, HOSTILE, T0 + 3 * HOUR, 0.01)
    upload_dataset(engine, config, "churn", training_file(folder / "train.csv", "1.0", 1), version="1.0")
    upload_dataset(
        engine, config, "churn", training_file(folder / "train.csv", "2.0", 2), version="2.0", require_approval=True
    )
    approve_reference(engine, "churn", "train.csv@2.0", by="ana")
    for hour in range(6):
        add_hour(engine, model_id, hour)
    Scheduler(config, engine, clock=lambda: T0 + 6 * HOUR + 10 * HOUR / 60).tick()
    return engine, config


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine, config = computed_store(tmp_path_factory.mktemp("e2e-compare"))
    # The page runs the canary gate (a second or two here): a refresh tick faster than that would overtake
    # every render (Dash drops an answer overtaken by a newer call), so no tick within the test.
    app = create_app(config, engine, refresh_seconds=3600)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    engine.dispose()


def cells(browser: Any, selector: str) -> list[list[str]]:
    return [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in browser.find_elements(By.CSS_SELECTOR, f"{selector} tbody tr")
    ]


def test_two_versions_side_by_side(browser: Any, base_url: str, screenshot: Callable[[str], Path]) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1440, "height": 2200, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        wait = WebDriverWait(browser, WAIT_S)
        browser.get(base_url + "/models/churn?range=all")
        link = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#versions a.ds-compare-link")))
        assert link.text == "compare with 2.0"  # 1.0 served the most rows; its link compares with 2.0
        link.click()
        wait.until(ec.presence_of_element_located((By.ID, "compare-verdict-badge")))
        assert browser.current_url.endswith("/models/churn/compare?candidate=1.0&baseline=2.0")
        swap = browser.find_element(By.LINK_TEXT, "swap").get_attribute("href")
        assert swap.endswith("candidate=2.0&baseline=1.0")
        browser.get(swap)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#compare-performance .main-svg")))

        candidate = browser.find_element(By.ID, "compare-candidate").text
        baseline = browser.find_element(By.ID, "compare-baseline").text
        assert "2.0" in candidate and "3,600" in candidate  # half of 6 × 1,200 rows named 2.0
        assert "train.csv@2.0 · 3,000 rows · approved by ana" in candidate
        assert "train.csv@1.0 · 3,000 rows · at upload" in baseline
        assert "50 % canary" in candidate and "all traffic" in baseline
        # The canary gate's verdict as `driftscope canary` gives it: 2.0 serves higher scores (its traffic moved)
        assert browser.find_element(By.ID, "compare-verdict-badge").text.lower() == "worse"
        assert "score distribution of 2.0 differs from 1.0's" in browser.find_element(By.ID, "compare-verdict").text
        # Each version against its own reference: 2.0's tenure (1.5 sd above 1.0's) breached in none of its
        # windows; both columns count the six windows.
        drift = {row[0]: row for row in cells(browser, "#compare-drift")}
        assert drift["tenure"][2] == "0 of 6" and drift["tenure"][4].endswith(" of 6"), drift
        assert drift["tenure"][1].endswith("(ks)") and drift["tenure"][3].endswith("(ks)")
        traces = browser.execute_script(
            "return document.querySelector('#compare-performance .js-plotly-plot').data.map(t => t.name);"
        )
        assert set(traces) == {"2.0 · accuracy (realized)", "1.0 · accuracy (realized)"}
        screenshot("compare")

        assert {row[0] for row in cells(browser, "#compare-versions")} == {"1.0", "2.0"}
        # A version named with markup (deployed, serving no rows yet): quoted in the URL, text on the page.
        browser.get(base_url + f"/models/churn/compare?candidate={quote(HOSTILE, safe='')}&baseline=1.0")
        wait.until(ec.presence_of_element_located((By.ID, "compare-candidate")))
        assert HOSTILE in browser.find_element(By.CSS_SELECTOR, ".ds-page-header h3").text
        assert not browser.find_elements(By.CSS_SELECTOR, "#page img")
        assert (
            "driftscope reference upload --model churn --version " + shlex.quote(HOSTILE)
            in browser.find_element(By.ID, "compare-candidate").text
        )
        screenshot("compare-hostile")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
