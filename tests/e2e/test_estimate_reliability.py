"""The unreliable-estimate marker in headless Chromium: the model page's performance card says since when the
estimate is not to be trusted and why, and the performance chart rings the refuted estimates with a legend
entry. The store holds the demo's drift episode: the estimated ROC AUC rises to 0.94 while the realized
one falls to 0.77. Screenshot in test-artifacts/."""

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
from monitor.store.engine import make_engine, upgrade
from monitor.store.queries import sync_models
from tests.alert_support import FEATURES, HOUR, MONITOR, T0, add_window

pytestmark = pytest.mark.e2e
WAIT_S = 30
CALM, EPISODE, UNLABELLED = 14, 6, 4  # windows: calm and labelled, drift with labels, drift before labels


def _scores(i: int) -> list[dict[str, Any]]:
    drifting = i >= CALM
    estimate, lo, hi = (0.94, 0.90, 0.97) if drifting else (0.86 + 0.002 * (i % 3), 0.83, 0.89)
    out: list[dict[str, Any]] = [
        {
            "kind": "estimated_performance",
            "method": "roc_auc",
            "value": estimate,
            "details": {"n": 480, "sampling_error": (hi - lo) / 6, "ci_lower": lo, "ci_upper": hi},
        }
    ]
    if i < CALM + EPISODE:
        realized = 0.77 if drifting else 0.85 + 0.004 * (i % 4)
        details = {"n": 400, "ci_lower": realized - 0.024, "ci_upper": realized + 0.024}
        out.append({"kind": "performance", "method": "roc_auc", "value": realized, "details": details})
    return out


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine: Engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('e2e-estimate') / 'store.db'}")
    upgrade(engine)
    config = parse_config(
        {
            "models": {"churn": {"task": "binary", "features": {f: "numeric" for f in FEATURES}}},
            "monitors": {
                MONITOR: {
                    "model": "churn",
                    "reference": {"range": ["2026-01-01", "2026-02-01"]},
                    "performance": ["roc_auc"],
                    "estimated_performance": True,
                }
            },
        },
        env={},
    )
    model = sync_models(engine, config)["churn"]
    for i in range(CALM + EPISODE + UNLABELLED):
        add_window(engine, model, T0 + i * HOUR, 0.0, {f: 0.5 for f in FEATURES}, extra=_scores(i))
    app = create_app(Config(), engine, refresh_seconds=1)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    engine.dispose()


def test_card_and_chart_mark_the_refuted_estimate(
    browser: Any, base_url: str, screenshot: Callable[[str], Path]
) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1440, "height": 1400, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        browser.get(base_url + "/models/churn")
        wait = WebDriverWait(browser, WAIT_S)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#model-timeline .main-svg")))
        wait.until(ec.presence_of_element_located((By.ID, "estimate-unreliable")))
        # The first drifting window (T0 + 14 h) started the stretch; the newest labelled one shows why.
        assert browser.find_element(By.ID, "estimate-unreliable").text == (
            "estimate unreliable since Mar 02 22:00 UTC (realized 0.77 outside 0.90–0.97)"
        )
        traces = browser.execute_script(
            "return document.querySelector('#model-timeline .js-plotly-plot').data"
            ".filter(t => t.name === 'estimate unreliable').map(t => [t.x.length, t.marker.symbol]);"
        )
        # Every drifting window, the unlabelled ones after the episode included; none of the calm ones.
        assert traces == [[EPISODE + UNLABELLED, "circle-open"]]
        path = screenshot("model")
        assert path.stat().st_size > 0
        legend = browser.execute_script(
            "return Array.from(document.querySelectorAll('#model-timeline text')).map(e => e.textContent);"
        )
        assert "estimate unreliable" in legend, legend
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
