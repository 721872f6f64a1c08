"""Dashboard login: every route of the Flask server refuses a request without credentials."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask.testing import FlaskClient
from plotly.utils import PlotlyJSONEncoder
from sqlalchemy import Engine, select

from dashboard import create_app
from dashboard.auth import (
    ACT_ON_ALERTS,
    ITERATIONS,
    OPEN_ROLE,
    PROBE_PATHS,
    allows,
    current_role,
    dummy_hash,
    hash_password,
    role_of_groups,
    verify_password,
)
from dashboard.context import Context
from dashboard.pages import alerts
from dashboard.state import Location, PageQuery
from monitor.config import ROLES, Config, ConfigError, parse_config
from monitor.store.engine import make_engine
from monitor.store.tables import Alert
from tests.seed import seed_store
from tests.servers import free_port

PASSWORD = "correct horse battery staple"
# Cheap hashes keep the test fast; the iteration count is part of the hash, so verification still runs it.
ALICE = hash_password(PASSWORD, iterations=1000)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


def config(auth: str) -> Config:
    users = {"alice": {"password_hash": ALICE}} if auth == "basic" else {}
    return Config.model_validate({"dashboard": {"auth": auth, "users": users}})


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def client_for(sqlite_engine: Engine) -> Iterator[object]:
    def make(auth: str) -> tuple[FlaskClient, list[str]]:
        app = create_app(config(auth), sqlite_engine, render_report=lambda monitor, window: "<html>report</html>")
        server = app.server
        # A concrete URL for every rule: each converter gets a plausible value.
        urls = sorted({re.sub(r"<[^>]+>", "x", rule.rule) for rule in server.url_map.iter_rules()})
        return server.test_client(), urls

    yield make


def test_password_hashes() -> None:
    encoded = hash_password("s3cret", iterations=1000)
    assert encoded.startswith("pbkdf2_sha256$1000$")
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret!", encoded)
    assert not verify_password("s3cret", "md5$abc")
    assert not verify_password("s3cret", "pbkdf2_sha256$notanumber$x$y")
    assert hash_password("s3cret") != hash_password("s3cret")  # salted
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_the_dummy_hash_is_as_dear_as_the_dearest_user_and_matches_nothing() -> None:
    """An unknown username is verified against it: it must cost what a real user's hash costs."""
    encoded = dummy_hash([hash_password("a", iterations=1000), hash_password("b", iterations=3000)])
    assert encoded.startswith("pbkdf2_sha256$3000$")
    assert not verify_password("", encoded) and not verify_password("a", encoded)
    assert dummy_hash([]).startswith(f"pbkdf2_sha256${ITERATIONS}$")


@pytest.mark.parametrize("auth", ["basic", "proxy"])
def test_every_route_refuses_anonymous_requests(client_for, auth: str) -> None:
    client, urls = client_for(auth)
    # Dash's own endpoints must be among them, or this test would prove little.
    for expected in ("/_dash-layout", "/_dash-dependencies", "/_dash-update-component", "/_report/x/x", "/assets/x"):
        assert expected in urls
    assert {"/healthz", "/readyz"} <= set(urls)
    for url in urls:
        if url in PROBE_PATHS:
            # Probes cannot log in; they answer a status word and nothing from the store.
            response = client.get(url)
            assert response.status_code == 200 and set(response.get_json()) == {"status"}, url
            continue
        for method in METHODS:
            response = client.open(url, method=method)
            assert response.status_code == 401, f"{method} {url} answered {response.status_code} without credentials"
            if auth == "basic":
                assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    wrong = basic("alice", "wrong") if auth == "basic" else {"X-Forwarded-User": ""}
    assert client.get("/_dash-layout", headers=wrong).status_code == 401
    if auth == "basic":
        assert client.get("/_dash-layout", headers=basic("mallory", PASSWORD)).status_code == 401


@pytest.mark.parametrize("auth", ["basic", "proxy"])
def test_credentials_open_every_page(client_for, auth: str) -> None:
    client, _ = client_for(auth)
    headers = basic("alice", PASSWORD) if auth == "basic" else {"X-Forwarded-User": "alice"}
    for url in (
        "/",
        "/alerts",
        "/models/churn",
        "/_dash-layout",
        "/_dash-dependencies",
        "/_report/m/2026-11-24T10:00:00Z",
    ):
        assert client.get(url, headers=headers).status_code == 200, url
    # The user shows in the navigation bar (rendered by the router callback).
    body = {
        "output": "..page.children...nav-firing.children...nav-user.children...data-version.data..",
        "outputs": [
            {"id": "page", "property": "children"},
            {"id": "nav-firing", "property": "children"},
            {"id": "nav-user", "property": "children"},
            {"id": "data-version", "property": "data"},
        ],
        "inputs": [
            {"id": "url", "property": "pathname", "value": "/"},
            {"id": "url", "property": "search", "value": ""},
            {"id": "refresh", "property": "n_intervals", "value": None},
        ],
        "state": [{"id": "data-version", "property": "data", "value": None}],
        "changedPropIds": ["url.pathname"],
    }
    response = client.post("/_dash-update-component", json=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["response"]["nav-user"]["children"] == "signed in as alice · viewer"


def test_without_login_everything_is_open(client_for) -> None:
    client, _ = client_for("none")
    assert client.get("/").status_code == 200
    assert client.get("/_dash-layout").status_code == 200


def test_basic_auth_needs_users_at_load() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"dashboard": {"auth": "basic"}}, env={})
    assert [path for path, _ in caught.value.errors] == ["dashboard.users"]


@pytest.mark.parametrize(
    "dashboard",
    [
        {"auth": "proxy"},  # 127.0.0.1: only this machine can send the header
        {"auth": "proxy", "host": "::1"},
        {"auth": "proxy", "host": "0.0.0.0", "trusted_proxies": ["10.0.0.0/8"]},
        {"auth": "proxy", "host": "0.0.0.0", "proxy_secret": "0123456789abcdef"},
        {"auth": "basic", "host": "0.0.0.0", "users": {"alice": {"password_hash": ALICE}}},
    ],
)
def test_proxy_login_loads_on_loopback_or_with_a_guard(dashboard: dict[str, object]) -> None:
    parse_config({"dashboard": dashboard}, env={})


@pytest.mark.parametrize(
    ("dashboard", "path"),
    [
        ({"auth": "proxy", "host": "0.0.0.0"}, "dashboard"),
        ({"auth": "proxy", "host": "dashboard.internal"}, "dashboard"),
        ({"auth": "proxy", "proxy_secret": "short"}, "dashboard.proxy_secret"),
        ({"auth": "proxy", "trusted_proxies": ["10.0.0.1/8"]}, "dashboard.trusted_proxies[0]"),
    ],
)
def test_proxy_login_without_a_guard_or_with_a_bad_one_does_not_load(dashboard: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"dashboard": dashboard}, env={})
    assert [p for p, _ in caught.value.errors] == [path]


def test_actions_are_signed_by_the_logged_in_user(sqlite_engine: Engine) -> None:
    """With login on, the acknowledge dialog has no name field: the proxy's user signs the action."""
    info = seed_store(sqlite_engine, days=2, n_features=3)
    alert_id = info.firing_alert_ids[0]
    operators = {"dashboard": {"auth": "proxy", "proxy_group_roles": {"sre": "operator"}}}
    client = create_app(Config.model_validate(operators), sqlite_engine).server.test_client()
    headers = {"X-Forwarded-User": "carol", "X-Forwarded-Groups": "data, sre"}
    deps = client.get("/_dash-dependencies", headers=headers).get_json()
    confirm = next(d for d in deps if d["inputs"][0]["id"] == "action-confirm")
    assert [s["id"] for s in confirm["state"]] == ["action-target", "action-comment", "silence-duration", "url"]
    outputs = []
    for part in confirm["output"].strip(".").split("..."):
        component, prop = part.split(".", 1)
        outputs.append({"id": component, "property": prop})
    values = [{"action": "ack", "alert": alert_id}, "on it", "4h", ""]
    body = {
        "output": confirm["output"],
        "outputs": outputs,
        "inputs": [{"id": "action-confirm", "property": "n_clicks", "value": 1}],
        "state": [{**s, "value": v} for s, v in zip(confirm["state"], values, strict=True)],
        "changedPropIds": ["action-confirm.n_clicks"],
    }
    response = client.post("/_dash-update-component", json=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Acknowledged by carol" in json.dumps(response.get_json()["response"]["alerts-list"])
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(Alert.acknowledged_by, Alert.ack_comment).where(Alert.id == alert_id)).one()
    assert tuple(row) == ("carol", "on it")
    assert client.post("/_dash-update-component", json=body).status_code == 401


def test_readiness_says_when_the_store_is_unreachable(sqlite_engine: Engine) -> None:
    client = create_app(config("basic"), sqlite_engine).server.test_client()
    assert client.get("/readyz").get_json() == {"status": "ready"}
    closed_port = make_engine(f"postgresql+psycopg://driftscope@127.0.0.1:{free_port()}/none")
    response = create_app(config("basic"), closed_port).server.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json() == {"status": "unavailable"}


def test_a_user_is_a_viewer_unless_granted_more() -> None:
    user = parse_config({"dashboard": {"auth": "basic", "users": {"ann": {"password_hash": ALICE}}}}, env={})
    assert user.dashboard.users["ann"].role == "viewer"
    assert user.dashboard.proxy_default_role == "viewer"
    with pytest.raises(ConfigError) as caught:
        parse_config({"dashboard": {"auth": "proxy", "proxy_group_roles": {"sre": "root"}}}, env={})
    assert [path for path, _ in caught.value.errors] == ["dashboard.proxy_group_roles.sre"]


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        ("", "viewer"),  # no groups: the default
        ("data", "viewer"),  # no mapped group: the default
        ("sre", "operator"),
        (" data ,sre,", "operator"),  # spaces and empty items as proxies send them
        ("sre,platform-admins", "admin"),  # the highest of the mapped groups
        ("SRE", "viewer"),  # group names are compared exactly
    ],
)
def test_a_proxy_user_gets_the_highest_role_of_their_groups(groups: str, role: str) -> None:
    assert role_of_groups(groups, {"sre": "operator", "platform-admins": "admin"}, "viewer") == role


def test_each_role_includes_the_ones_before_it() -> None:
    assert [r for r in ROLES if allows(r, ACT_ON_ALERTS)] == ["operator", "admin"]
    assert all(allows(r, "viewer") for r in ROLES) and [r for r in ROLES if allows(r, "admin")] == ["admin"]
    assert current_role(config("none").dashboard) == OPEN_ROLE == "operator"  # no users, no request


@pytest.mark.parametrize(("role", "buttons"), [("viewer", False), ("operator", True), ("admin", True)])
def test_the_alerts_page_shows_acknowledge_and_silence_to_operators_only(
    sqlite_engine: Engine, role: str, buttons: bool
) -> None:
    seed_store(sqlite_engine, days=2, n_features=3)
    ctx = Context(config("none"), sqlite_engine)
    location = Location({}, PageQuery.parse(""))
    data = replace(alerts.query(ctx, location), role=role)
    page = json.dumps(alerts.render(location, data).to_plotly_json(), cls=PlotlyJSONEncoder)
    assert '"firing"' in page  # the alerts are listed either way
    for control in ('"ack-open"', '"silence-open"', '"action-modal"', '"action-confirm"'):
        assert (control in page) == buttons, control
    assert ("Your role is viewer" in page) == (not buttons)
