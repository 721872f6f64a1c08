"""The dashboard against script from data and framing (issue 12), in headless Chromium and over real HTTP.

Category values, labels and class names are whatever the model's callers send. Here they carry script,
pushed through the real ingestion path and scored by the real scheduler; Evidently inlines them in a
``<script>`` of the window report. The report must run in an opaque origin (its
``Content-Security-Policy: sandbox allow-scripts`` and the iframe's ``sandbox``), so that the script
can neither read nor act on the logged-in dashboard. Every dashboard response carries the framing,
CSP, ``nosniff`` and referrer headers, and the pages still work under that CSP.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine, insert
from werkzeug.serving import make_server

from dashboard import create_app
from dashboard.auth import hash_password
from dashboard.state import format_time
from monitor.cli.dashboard import report_renderer
from monitor.config import Config
from monitor.ingest import ingest_labels, ingest_predictions
from monitor.runs.scheduler import Scheduler
from monitor.store.engine import make_engine, upgrade
from monitor.store.tables import Alert

pytestmark = pytest.mark.e2e
WAIT_S = 30
T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
USER, PASSWORD = "alice", "correct horse battery staple"
USERS = {USER: {"password_hash": hash_password(PASSWORD, iterations=1000), "role": "operator"}}  # may act on alerts


def payload(who: str) -> str:
    """A value that closes Evidently's ``<script>`` and opens its own. It reports to the page above it
    (postMessage crosses origins, so it arrives either way) and then tries what an attacker wants: write
    into the dashboard's window, retitle it, read its cookie, read a page of the dashboard. Single quotes
    only: the value travels inside JSON strings."""
    return (
        "</script><script>parent.postMessage({who:'" + who + "',origin:self.origin},'*');"
        "try{window.top.__pwned='" + who + "';parent.document.title='pwned';"
        "parent.postMessage({who:'" + who + "',cookie:parent.document.cookie},'*')}catch(e){}"
        "fetch('/_dash-layout').then(function(r){return r.text()}).then(function(t){"
        "parent.postMessage({who:'" + who + "',layout:t.length},'*')},function(){})</script>"
    )


CATEGORY = payload("category")
CLASS = payload("class")  # a label, a predicted class and a key of the per-class scores


def model_config(features: dict[str, str]) -> dict[str, Any]:
    return {"task": "multiclass", "features": features}


def monitor_config(model: str) -> dict[str, Any]:
    reference = {"range": [T0.isoformat(), (T0 + HOUR).isoformat()]}
    return {"model": model, "window": "1h", "min_rows": 10, "reference": reference}


CONFIG = {
    "models": {
        "m": model_config({"x": "numeric", "plan": "categorical"}),
        "clean": model_config({"x": "numeric", "plan": "categorical"}),
    },
    "monitors": {"m-hourly": monitor_config("m"), "clean-hourly": monitor_config("clean")},
    "dashboard": {"auth": "basic", "users": USERS},
}
REPORT_WINDOW = T0 + HOUR


def records(model: str, hostile: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two hours of predictions (the reference hour, then the reported one) and their labels."""
    classes = ["a", "b", CLASS] if hostile else ["a", "b", "c"]
    plans = ["basic", "pro", CATEGORY] if hostile else ["basic", "pro", "team"]
    predictions, labels = [], []
    for hour in range(2):
        for i in range(60):
            rid = f"{model}-{hour}-{i}"
            predicted = classes[i % 3]
            predictions.append(
                {
                    "id": rid,
                    "timestamp": (T0 + hour * HOUR + timedelta(seconds=55 * i)).isoformat(),
                    "features": {"x": float(i % 7 + hour), "plan": plans[(i + hour) % 3]},
                    "prediction": predicted,
                    "score": {c: 0.6 if c == predicted else 0.2 for c in classes},
                }
            )
            labels.append({"id": rid, "label": classes[(i // 2) % 3]})
    return predictions, labels


@dataclass(frozen=True)
class Served:
    url: str  # without credentials
    engine: Engine
    alert_id: int

    def open(self, browser: Any, path: str) -> None:
        """Open ``path`` logged in. A page whose own URL carries credentials cannot ``fetch()`` (Dash could
        not start): one request with them fills the browser's login cache, which answers later challenges."""
        with_credentials = self.url.replace("http://", f"http://{USER}:{PASSWORD.replace(' ', '%20')}@")
        browser.get(with_credentials + "/_dash-dependencies")
        browser.get(self.url + path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    config = Config.model_validate(CONFIG)
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('security') / 'store.db'}")
    upgrade(engine)
    for model, hostile in (("m", True), ("clean", False)):
        predictions, labels = records(model, hostile)
        assert ingest_predictions(engine, config, model, predictions, "test", shape="canonical").rejected == ()
        assert ingest_labels(engine, config, model, labels, "test", shape="canonical").rejected == ()
    assert Scheduler(config, engine, clock=lambda: T0 + 3 * HOUR).tick() == 4  # two windows per monitor
    with engine.begin() as conn:  # an alert to act on, for the alerts page under the CSP
        alert_id = conn.execute(
            insert(Alert).returning(Alert.id),
            {
                "rule": "feature drift",
                "fingerprint": "fp-security",
                "labels": {"model": "clean", "rule": "feature drift"},
                "annotations": {"summary": "plan drifted"},
                "severity": "warning",
                "state": "firing",
                "started_at": REPORT_WINDOW,
                "fired_at": REPORT_WINDOW,
                "window_start": REPORT_WINDOW,
            },
        ).scalar_one()
    app = create_app(config, engine, render_report=report_renderer(config, engine))
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    yield Served(f"http://127.0.0.1:{server.server_port}", engine, alert_id)
    server.shutdown()
    thread.join()
    engine.dispose()


# Messages posted to the page, recorded before its own scripts run. (Not in a sandboxed frame: Chromium
# runs those in a process of their own, which this script does not reach.)
RECORDER = """
window.__dsMessages = [];
window.addEventListener('message', e => window.__dsMessages.push({origin: e.origin, data: e.data}));
"""
# The Content-Security-Policy violations of the current document since it loaded (buffered reports).
VIOLATIONS = """
const done = arguments[arguments.length - 1], seen = [];
const keep = reports => reports.forEach(r => seen.push(r.body.effectiveDirective + ' ' + r.body.blockedURL));
const observer = new ReportingObserver(keep, {types: ['csp-violation'], buffered: true});
observer.observe();
setTimeout(() => { keep(observer.takeRecords()); done(seen); }, 200);
"""


def csp_violations(browser: Any) -> list[str]:
    return browser.execute_async_script(VIOLATIONS)  # type: ignore[no-any-return]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """The shared browser, recording the messages posted to each page it opens."""
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER})
    yield browser
    browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]})


def wait(browser: Any, condition: Callable[[Any], Any]) -> Any:
    return WebDriverWait(browser, WAIT_S).until(condition)


def report_path(monitor: str) -> str:
    return f"/{monitor}/{format_time(REPORT_WINDOW)}"


def test_script_in_the_data_cannot_touch_the_dashboard(page: Any, served: Served) -> None:
    served.open(page, "/reports" + report_path("m-hourly"))
    frame = wait(page, ec.presence_of_element_located((By.ID, "report-frame")))

    def reports() -> list[dict[str, Any]]:
        return page.execute_script("return window.__dsMessages")  # type: ignore[no-any-return]

    # Both payloads did run (else this test proves nothing), inside the frame...
    wait(page, lambda _: {m["data"].get("who") for m in reports()} >= {"category", "class"})
    page.execute_script("return new Promise(r => setTimeout(r, 1500))")  # let their fetches settle
    messages = reports()
    # ...in an opaque origin, never the dashboard's: no write into its window, no cookie, no page read.
    assert {m["origin"] for m in messages} == {"null"}, messages
    assert {m["data"].get("origin") for m in messages if "origin" in m["data"]} == {"null"}
    assert [m for m in messages if "cookie" in m["data"] or "layout" in m["data"]] == []
    assert page.execute_script("return window.__pwned") is None
    assert page.title == "Driftscope"
    page.switch_to.frame(frame)
    try:  # the payload's fetch was refused by the report's policy, before CORS had a say
        assert any(v.startswith("connect-src ") for v in csp_violations(page))
    finally:
        page.switch_to.default_content()
    assert "allow-scripts" in frame.get_attribute("sandbox").split()
    assert "allow-same-origin" not in frame.get_attribute("sandbox").split()


def test_report_opened_directly_runs_in_an_opaque_origin(page: Any, served: Served) -> None:
    """The report page's "Open in a new tab" loads the report on its own: its CSP sandboxes it there too."""
    served.open(page, "/_report" + report_path("m-hourly"))
    wait(page, lambda b: b.execute_script("return document.readyState") == "complete")
    assert page.execute_script("return self.origin") == "null"
    cookie = "try { document.cookie; return 'read'; } catch (e) { return e.name; }"
    assert page.execute_script(cookie) == "SecurityError"
    layout = page.execute_script("return fetch('/_dash-layout').then(r => r.status, e => 'refused: ' + e.name)")
    assert layout == "refused: TypeError"  # cross-origin from an opaque origin, and no CORS


def test_clean_report_draws_in_its_sandbox(page: Any, served: Served, screenshot: Callable[[str], Path]) -> None:
    """Evidently's own scripts still draw the report under the report's policy."""
    served.open(page, "/reports" + report_path("clean-hourly"))
    frame = wait(page, ec.presence_of_element_located((By.ID, "report-frame")))
    page.switch_to.frame(frame)
    try:
        wait(page, lambda b: b.find_elements(By.CSS_SELECTOR, ".js-plotly-plot, svg.main-svg"))
        assert page.execute_script("return self.origin") == "null"
        assert csp_violations(page) == []
    finally:
        page.switch_to.default_content()
    assert csp_violations(page) == []
    screenshot("report")


def test_every_page_works_under_the_csp(page: Any, served: Served, screenshot: Callable[[str], Path]) -> None:
    """Each page draws and no resource or script of Dash, Plotly or AG Grid is refused; acknowledging an
    alert (a dialog and a callback POST) works."""
    checks = {
        "/": "#overview-table .ag-row",
        "/models/clean": "#model-timeline .main-svg",
        "/models/m": "#model-timeline .main-svg",
        "/models/m/features/plan?window=" + format_time(REPORT_WINDOW): "#feature-distribution .main-svg",
        "/alerts": f"#alert-{served.alert_id}",
    }
    for path, marker in checks.items():
        served.open(page, path)
        wait(page, ec.presence_of_element_located((By.CSS_SELECTOR, marker)))
        assert csp_violations(page) == [], path
        assert page.execute_script("return window.__pwned") is None, path
    page.find_element(By.CSS_SELECTOR, f"#alert-{served.alert_id}").find_element(
        By.XPATH, ".//button[text()='Acknowledge']"
    ).click()
    wait(page, ec.visibility_of_element_located((By.ID, "action-confirm")))
    page.find_element(By.ID, "action-confirm").click()
    wait(page, ec.text_to_be_present_in_element((By.ID, f"alert-{served.alert_id}"), f"Acknowledged by {USER}"))
    assert csp_violations(page) == []
    screenshot("alerts")


# ------------------------------------------------------------------------------------ over real HTTP


def dashboard_routes(client: httpx.Client) -> list[tuple[str, str]]:
    """``(method, path)`` of every kind of route the dashboard serves, read from the server itself."""
    index = client.get("/").text
    suite = index.split('src="', 2)[1].split('"')[0]  # the first of Dash's component bundles
    assert suite.startswith("/_dash-component-suites/"), suite
    pages = ("/", "/models/m", "/models/m/features/plan", "/alerts", "/reports" + report_path("m-hourly"))
    return [("GET", p) for p in pages] + [
        ("GET", "/no/such/page"),
        ("GET", "/_dash-layout"),
        ("GET", "/_dash-dependencies"),
        ("GET", suite),
        ("GET", "/assets/driftscope.css"),
        ("GET", "/_report" + report_path("m-hourly")),
        ("GET", "/_report/nope/" + format_time(REPORT_WINDOW)),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
    ]


def test_every_response_carries_the_security_headers(served: Served) -> None:
    with httpx.Client(base_url=served.url, auth=(USER, PASSWORD), timeout=60) as client:
        routes = dashboard_routes(client)
        unauthenticated = httpx.get(served.url + "/", timeout=30)
        answers = [(f"{m} {p}", client.request(m, p)) for m, p in routes] + [("GET / without login", unauthenticated)]
    assert unauthenticated.status_code == 401
    for name, response in answers:
        headers = response.headers
        assert headers.get("x-content-type-options") == "nosniff", name
        assert headers.get("referrer-policy") == "same-origin", name
        policy = {
            d.split()[0]: d.split()[1:] for d in headers.get("content-security-policy", "").split(";") if d.strip()
        }
        if name.startswith("GET /_report/"):
            # Framed by the dashboard only, and sandboxed: scripts run, in an opaque origin.
            assert headers.get("x-frame-options") == "SAMEORIGIN", name
            assert policy.get("frame-ancestors") == ["'self'"], name
            assert policy.get("sandbox") == ["allow-scripts"], name
        else:
            assert headers.get("x-frame-options") == "DENY", name
            assert policy.get("frame-ancestors") == ["'none'"], name
            assert "'unsafe-inline'" not in policy.get("script-src", ["'unsafe-inline'"]), name
            assert policy.get("object-src") == ["'none'"], name


def test_malformed_action_target_is_a_bad_request(served: Served) -> None:
    """The dialog's target (which alert, which action) lives in the browser: a forged one is refused with
    400 and says why, through the real callback endpoint; a well-formed one still acts."""
    with httpx.Client(base_url=served.url, auth=(USER, PASSWORD), timeout=60) as client:
        callback = next(
            c for c in client.get("/_dash-dependencies").json()
            if any(i["id"] == "action-confirm" for i in c["inputs"])
        )  # fmt: skip

        def confirm(target: Any) -> httpx.Response:
            values = {"action-target": target, "silence-duration": "4h", "url": ""}
            body = {
                "output": callback["output"],
                "outputs": [
                    {"id": part.split(".")[0], "property": part.split(".")[1]}
                    for part in callback["output"].strip(".").split("...")
                ],
                "inputs": [{"id": "action-confirm", "property": "n_clicks", "value": 1}],
                "changedPropIds": ["action-confirm.n_clicks"],
                "state": [{**s, "value": values.get(s["id"], "forged by a test")} for s in callback["state"]],
            }
            return client.post("/_dash-update-component", json=body)

        for forged in ({"action": "ack", "alert": "abc"}, {"action": "ack"}, ["ack", 1], "ack",
                       {"action": "delete", "alert": served.alert_id}, {"action": "ack", "alert": 1.5}):  # fmt: skip
            response = confirm(forged)
            assert response.status_code == 400, (forged, response.status_code, response.text[:300])
            assert "action-target" in response.text, response.text
        missing = confirm({"action": "ack", "alert": 10**9})
        assert missing.status_code == 200 and "does not exist" in missing.text, missing.text
        done = confirm({"action": "silence", "alert": served.alert_id})
        assert done.status_code == 200, done.text
        assert "Silenced rule=feature drift, model=clean" in json.dumps(done.json())
