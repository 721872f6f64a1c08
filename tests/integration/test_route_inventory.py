"""Every route of the dashboard over real HTTP, without credentials and as each role (issue 12).

The dashboard is served on a socket with its store in SQLite, behind basic login and behind proxy login.
Every rule of its Flask URL map is listed here with the URL that exercises it, so a new route fails
:func:`test_every_route_is_listed` until it is classified; every page of :data:`dashboard.pages.PAGES`
and every Dash callback (``/_dash-update-component``, one request per entry of ``app.callback_map``) is
called too. Without credentials everything is 401 except the probes; every role reads everything; only
operators and admins change the store, which is compared whole before and after. Together with the
API's inventory (``tests/integration/test_api.py``) this covers every route Driftscope serves
(docs/security.md#routes-that-answer-without-credentials).
"""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from werkzeug.serving import make_server

from dashboard import create_app
from dashboard.app import ASSETS
from dashboard.auth import hash_password
from dashboard.pages import PAGES
from dashboard.state import format_time
from monitor.config import ROLES, Config
from monitor.store.engine import make_engine, upgrade
from monitor.store.tables import Alert, Silence
from tests.seed import SeedInfo, seed_store

PASSWORD = "correct horse battery staple"
USERS = {"viewer": "vera", "operator": "otto", "admin": "ada"}  # role → user
PUBLIC = {"/healthz", "/readyz"}  # probes: a status word, nothing from the store
ASSET = sorted(p.name for p in ASSETS.iterdir() if p.is_file())[0]
# Every rule of the Flask URL map → the URL that exercises it and what a logged-in user gets.
ROUTES: dict[str, tuple[str, int]] = {
    "/": ("/", 200),
    "/<path:path>": ("/alerts", 200),  # every page but the overview; each one is rendered below
    "/_dash-layout": ("/_dash-layout", 200),
    "/_dash-dependencies": ("/_dash-dependencies", 200),
    "/_reload-hash": ("/_reload-hash", 200),
    "/_favicon.ico": ("/_favicon.ico", 200),
    "/assets/<path:filename>": (f"/assets/{ASSET}", 200),
    "/static/<path:filename>": ("/static/nothing.css", 404),  # Flask's own; the dashboard has no static folder
    "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>": ("", 200),  # read from the page
    "/_report/<monitor>/<window_start>": ("", 200),  # a seeded window, set by the fixture
    "/healthz": ("/healthz", 200),
    "/readyz": ("/readyz", 200),
    "/_dash-update-component": ("/_dash-update-component", 0),  # POSTs, one per callback (below)
}


@dataclass(frozen=True)
class Served:
    url: str
    app: Any  # the Dash app, for its callback map
    engine: Engine
    db: Path
    seed: SeedInfo
    callers: dict[str, dict[str, str]]  # "anonymous" or a role → the request headers that log it in
    urls: dict[str, str]  # rule → URL, the fixture's values filled in

    def get(self, caller: str, path: str, method: str = "GET") -> httpx.Response:
        return httpx.request(method, self.url + path, headers=self.callers[caller], timeout=30)

    def callback(self, caller: str, key: str, values: Mapping[str, Any]) -> httpx.Response:
        body = dash_request(key, self.app.callback_map[key], values)
        return httpx.post(f"{self.url}/_dash-update-component", json=body, headers=self.callers[caller], timeout=30)


def dash_request(key: str, spec: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The body the Dash renderer posts for callback ``key``: each input and state its value in ``values``
    (keyed ``id.property``, None when absent); a wildcard input (``ALL``) matches no component."""
    multi = key.startswith("..")
    outputs = [dict(zip(("id", "property"), part.split(".", 1), strict=True)) for part in key.strip(".").split("...")]

    def item(dependency: Mapping[str, str]) -> Any:
        if dependency["id"].startswith("{"):
            return []
        return {**dependency, "value": values.get(f"{dependency['id']}.{dependency['property']}")}

    inputs = [item(d) for d in spec["inputs"]]
    return {
        "output": key,
        "outputs": outputs if multi else outputs[0],
        "inputs": inputs,
        "state": [item(d) for d in spec["state"]],
        "changedPropIds": [f"{d['id']}.{d['property']}" for d in spec["inputs"] if not d["id"].startswith("{")][:1],
    }


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


@pytest.fixture(scope="module", params=["basic", "proxy"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("inventory") / "store.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    seed = seed_store(engine, days=2, n_features=3)
    if request.param == "basic":
        hashed = hash_password(PASSWORD, iterations=1000)
        users = {user: {"password_hash": hashed, "role": role} for role, user in USERS.items()}
        dashboard: dict[str, Any] = {"auth": "basic", "users": users}
        callers = {role: basic(user) for role, user in USERS.items()}
    else:  # the proxy maps groups to roles; viewers are in no mapped group (the default role)
        dashboard = {"auth": "proxy", "proxy_group_roles": {"sre": "operator", "platform": "admin"}}
        groups = {"viewer": "data-science", "operator": "data-science, sre", "admin": "platform"}
        callers = {role: {"X-Forwarded-User": user, "X-Forwarded-Groups": groups[role]} for role, user in USERS.items()}
    callers["anonymous"] = {}
    app = create_app(Config.model_validate({"dashboard": dashboard}), engine, render_report=lambda m, w: "<p>r</p>")
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    index = httpx.get(url + "/", headers=callers["admin"]).text
    suite = re.search(r'src="(/_dash-component-suites/[^"]+)"', index)
    assert suite is not None, index[:500]
    urls = {rule: path for rule, (path, _) in ROUTES.items()}
    urls["/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>"] = suite.group(1)
    urls["/_report/<monitor>/<window_start>"] = f"/_report/{seed.churn.monitor}/{format_time(seed.churn.last_window)}"
    try:
        yield Served(url, app, engine, db, seed, callers, urls)
    finally:
        server.shutdown()
        thread.join()
        engine.dispose()


def store_digest(db: Path) -> str:
    """A digest of every row of the store: equal before and after means nothing was written."""
    with sqlite3.connect(db) as connection:
        return hashlib.sha256("\n".join(connection.iterdump()).encode()).hexdigest()


def test_every_route_is_listed(served: Served) -> None:
    assert {rule.rule for rule in served.app.server.url_map.iter_rules()} == set(ROUTES)


def test_without_credentials_only_the_probes_answer(served: Served) -> None:
    for rule in served.app.server.url_map.iter_rules():
        for method in sorted(rule.methods or ()):
            answer = served.get("anonymous", served.urls[rule.rule], method)
            if rule.rule in PUBLIC and method != "OPTIONS":
                assert answer.status_code == 200, (method, rule.rule)
                if method == "GET":
                    assert set(answer.json()) == {"status"}, rule.rule
            elif rule.rule not in PUBLIC:
                assert answer.status_code == 401, (method, rule.rule, answer.status_code)
    before = store_digest(served.db)
    for key in served.app.callback_map:
        assert served.callback("anonymous", key, {}).status_code == 401, key
    assert store_digest(served.db) == before


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_every_route(served: Served, role: str) -> None:
    for rule, (_, status) in ROUTES.items():
        if rule != "/_dash-update-component":
            answer = served.get(role, served.urls[rule])
            assert answer.status_code == status, (rule, answer.status_code, answer.text[:300])


def page_urls(seed: SeedInfo) -> dict[str, str]:
    """A URL of every page, its ``<param>``s filled from the seeded store."""
    values = {
        "model": seed.churn.name,
        "feature": next(iter(seed.churn.features)),
        "monitor": seed.churn.monitor,
        "window": format_time(seed.churn.last_window),
    }
    return {page.path: re.sub(r"<(\w+)>", lambda m: values[m.group(1)], page.path) for page in PAGES}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_every_page_and_calls_every_callback_without_writing(served: Served, role: str) -> None:
    before = store_digest(served.db)
    router = next(key for key in served.app.callback_map if "page.children" in key)
    for path, url in page_urls(served.seed).items():
        assert served.get(role, url).status_code == 200, url
        answer = served.callback(role, router, {"url.pathname": url, "url.search": ""})
        assert answer.status_code == 200, (url, answer.text[:300])
        assert "Page not found" not in answer.text, path
        assert f"signed in as {USERS[role]} · {role}" in answer.text
    for key in served.app.callback_map:
        # Empty inputs: each callback answers (or declines: 204) without an error, and writes nothing.
        answer = served.callback(role, key, {})
        assert answer.status_code in (200, 204), (key, answer.status_code, answer.text[:300])
    assert store_digest(served.db) == before


def act(served: Served, role: str, action: str, alert_id: int) -> httpx.Response:
    confirm = next(key for key in served.app.callback_map if "alerts-list.children" in key)
    values = {
        "action-target.data": {"action": action, "alert": alert_id},
        "action-comment.value": f"{action} by {role}",
        "silence-duration.value": "4h",
        "url.search": "",
        "action-confirm.n_clicks": 1,
    }
    return served.callback(role, confirm, values)


def acted(engine: Engine, alert_id: int) -> tuple[str | None, list[str]]:
    """Who acknowledged the alert, and who created each silence."""
    with engine.connect() as conn:
        acknowledged_by = conn.scalar(select(Alert.acknowledged_by).where(Alert.id == alert_id))
        silenced_by = list(conn.scalars(select(Silence.created_by).order_by(Silence.id)))
    return acknowledged_by, silenced_by


def test_only_operators_and_admins_acknowledge_and_silence(served: Served) -> None:
    """The viewer's page has no buttons (tests/unit/test_dashboard_auth.py); a forged callback POST is
    refused with a message and leaves the store as it was."""
    first, second = served.seed.firing_alert_ids[:2]
    before = store_digest(served.db)
    for action in ("ack", "silence"):
        refused = act(served, "viewer", action, first)
        assert refused.status_code == 200 and "Your role is viewer" in refused.text, refused.text[:300]
    assert store_digest(served.db) == before
    assert act(served, "operator", "ack", first).status_code == 200
    assert act(served, "admin", "silence", second).status_code == 200
    assert act(served, "operator", "silence", first).status_code == 200
    assert acted(served.engine, first) == (USERS["operator"], [USERS["admin"], USERS["operator"]])
