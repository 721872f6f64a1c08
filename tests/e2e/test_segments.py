"""'Where is it worst' in headless Chromium: windows computed by the scheduler on a real store, one channel's
tenure shifted; the model page and the feature page name that channel first, and a channel whose name is
markup shows as text. Screenshots in test-artifacts/."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from dashboard import create_app
from monitor.runs.scheduler import Scheduler
from monitor.store.engine import make_engine, upgrade
from tests.integration.test_segments import HOUR, T0, add_hour, make_config

pytestmark = pytest.mark.e2e
WAIT_S = 30
HOSTILE = '<img src=x onerror="window.pwned=1">fax'


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('e2e-segments') / 'store.db'}")
    upgrade(engine)
    # every channel its own segment: the hostile one too (too few rows to score, so it shows with its count)
    config = make_config(segment_top=6)
    for hour in range(3):
        add_hour(engine, config, hour, fax=HOSTILE)
    add_hour(engine, config, 3, partner_shift=1.0, fax=HOSTILE)
    assert Scheduler(config, engine, clock=lambda: T0 + 5 * HOUR).tick() == 4
    app = create_app(config, engine, refresh_seconds=60)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    engine.dispose()


def _rows(browser: Any) -> list[list[str]]:
    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#worst-segments tbody tr")
    ]


def test_model_and_feature_pages_name_the_worst_segment(
    browser: Any, base_url: str, screenshot: Callable[[str], Path]
) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1440, "height": 1800, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        browser.get(base_url + "/models/churn")
        wait = WebDriverWait(browser, WAIT_S)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#worst-segments tbody tr")))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#model-timeline .main-svg")))
        rows = _rows(browser)
        assert rows[0][0] == "channel = partner"
        assert rows[0][4].startswith("tenure drift: wasserstein")
        assert float(rows[0][2].rstrip("×")) > 5
        # the markup is text: shown as written, never an element, never run
        hostile = [r for r in rows if r[0] == f"channel = {HOSTILE}"]
        assert hostile and hostile[0][4].startswith("window has ") and hostile[0][2] == "—"
        assert browser.find_elements(By.CSS_SELECTOR, "#worst-segments img") == []
        assert browser.execute_script("return window.pwned === undefined")
        card = browser.find_element(By.ID, "worst-segments")
        browser.execute_script("arguments[0].scrollIntoView()", card)
        assert screenshot("model").stat().st_size > 0
        # the worst feature links to its page, in that window; there, the card ranks by that feature's drift
        card.find_element(By.LINK_TEXT, "tenure").click()
        wait.until(ec.url_contains("/features/tenure"))
        # the page's content follows the URL when the feature page's card has rendered
        wait.until(ec.text_to_be_present_in_element((By.ID, "worst-segments"), "tenure's drift"))
        rows = _rows(browser)
        moved = [float(r[2].rstrip("×")) for r in rows if r[2] != "—"]
        assert rows[0][0] == "channel = partner" and moved[0] > 3 * moved[1]
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "worst-segments"))
        assert screenshot("feature").stat().st_size > 0
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
