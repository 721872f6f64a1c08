"""What a new user saw in their first hour (issue 18), in headless Chromium against the seeded store of
:mod:`tests.e2e.test_dashboard`: the health card against the alerts firing now, the range an alert's
link opens, the drifting-features card against its own count."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import Engine, update

from dashboard.state import CONTEXT_WINDOWS, format_input_time, format_time
from monitor.store.tables import Score
from tests.e2e import test_dashboard as shared
from tests.e2e.test_dashboard import wait_for_graph, wait_for_text
from tests.seed import WINDOW, SeedInfo

pytestmark = pytest.mark.e2e
# The seeded store, the server on it and the browser viewport of the main dashboard tests (a store of
# this module's own: the drifting-features test rewrites scores).
store, base_url, page = shared.store, shared.base_url, shared.page


def test_health_is_the_state_now_whatever_the_range(page: Any, base_url: str, store: tuple[Engine, SeedInfo]) -> None:
    """A range that ends before the alerts fired said "Health OK — no alert firing" while the navbar
    counted them."""
    _, info = store
    start = info.churn.first_window + timedelta(days=1)
    page.get(f"{base_url}/models/churn?from={format_time(start)}&to={format_time(start + timedelta(days=1))}")
    wait_for_graph(page, "model-timeline")
    wait_for_text(page, "#kpi-health", "firing")
    firing = int(page.find_element(By.ID, "nav-firing").text)
    health = page.find_element(By.ID, "kpi-health").text
    assert firing > 0 and "OK" not in health and "no alert firing" not in health, health


def test_alert_link_frames_its_window(page: Any, base_url: str, store: tuple[Engine, SeedInfo]) -> None:
    """``?window=`` alone (an alert's link) opened a week; it shows the window and its neighbours."""
    _, info = store
    last = info.churn.last_window
    page.get(f"{base_url}/models/churn?window={format_time(last)}")
    wait_for_graph(page, "model-timeline")
    shown = page.find_element(By.ID, "range-from").get_attribute("value")
    assert shown == format_input_time(last - CONTEXT_WINDOWS * WINDOW)
    assert page.find_element(By.ID, "range-to").get_attribute("value") == format_input_time(last + WINDOW)


def test_drifting_features_card_names_what_it_counts(page: Any, base_url: str, store: tuple[Engine, SeedInfo]) -> None:
    """ "Drifting features 6 of 8" listed four names: every counted feature is named, the ones beyond the
    card's room as "… and N more" with their names in its tooltip."""
    engine, info = store
    calm = [f for f in info.churn.features if f not in info.drifting_features]
    with engine.begin() as conn:  # more drifting inputs than the card has room for
        conn.execute(
            update(Score)
            .where(
                Score.model_id == info.churn.id,
                Score.kind == "drift",
                Score.feature.in_(calm),
                Score.window_start >= info.churn.last_window - 3 * WINDOW,
            )
            .values(value=1e-6, breached=True)
        )
    page.get(f"{base_url}/models/churn")
    wait_for_graph(page, "model-timeline")
    card = page.find_element(By.ID, "kpi-drifting")
    counted = int(re.search(r"(\d+) of \d+", card.text).group(1))  # type: ignore[union-attr]
    assert counted == len(info.churn.features)
    named = [link.text for link in card.find_elements(By.TAG_NAME, "a")]
    more = card.find_element(By.CSS_SELECTOR, ".ds-more")
    hidden = more.get_attribute("title").split(", ")
    assert f"and {len(hidden)} more" in more.text
    assert sorted(named + hidden) == sorted(info.churn.features)


def test_each_alert_names_its_monitor_and_opens_its_view(
    page: Any, base_url: str, store: tuple[Engine, SeedInfo]
) -> None:
    """Two monitors of one model alerting under one rule gave two rows with the same summary and no way
    to tell them apart, and "View on timeline" opened the primary monitor's view for both (the walk)."""
    _, info = store
    page.get(f"{base_url}/alerts?state=firing")
    wait_for_text(page, "body", "feature drift")
    items = page.find_elements(By.CSS_SELECTOR, ".ds-alert-item")
    # The seed's one alert on the rolling monitor (its "feature drift"); the others are the primary's.
    (item,) = [el for el in items if f"monitor {info.churn.rolling_monitor}" in el.text]
    link = item.find_element(By.LINK_TEXT, "View on timeline").get_attribute("href")
    assert f"monitor={info.churn.rolling_monitor}" in link, link
