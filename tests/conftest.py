"""Shared fixtures: real servers (see tests/servers.py), started lazily, once per session where they are costly.

A server binary that is not installed skips the test locally and fails it when ``CI`` is set, with a
message naming the package to install.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests import servers
from tests.fixtures_store import *  # noqa: F403

T = TypeVar("T")

ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "test-artifacts"


def _start(start: Callable[[], T]) -> T:
    try:
        return start()
    except servers.MissingServer as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(str(exc))


def unique_name(prefix: str) -> str:
    """A lowercase name no other test uses (valid as an index or database name)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """CLI tests run ``configure_logging``, which replaces the root handlers; put pytest's back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# ------------------------------------------------------------------------------------------- Postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    """Throw-away Postgres cluster: ``.host .port .admin_url .url(dbname)``, superuser ``driftscope``."""
    server = _start(servers.start_postgres)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: servers.PostgresServer) -> Iterator[str]:
    """``postgresql+psycopg://driftscope@127.0.0.1:PORT/DBNAME`` of a fresh, empty database, dropped after."""
    dbname = unique_name("test_")
    postgres_server.create_database(dbname)
    yield postgres_server.url(dbname)
    postgres_server.drop_database(dbname)


# -------------------------------------------------------------------------------------- Elasticsearch


@pytest.fixture(scope="session")
def elasticsearch_server() -> Iterator[servers.ElasticsearchServer]:
    server = _start(servers.start_elasticsearch)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def elasticsearch_url(elasticsearch_server: servers.ElasticsearchServer) -> str:
    """``http://127.0.0.1:PORT`` of noida-db's Elasticsearch 8 API (see tests/servers.py for coverage)."""
    return elasticsearch_server.url


@pytest.fixture
def es_client(elasticsearch_url: str) -> Iterator[Any]:
    """An elasticsearch 8.x client for ``elasticsearch_url``."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(elasticsearch_url, request_timeout=30)
    yield client
    client.close()


@pytest.fixture
def make_es_index(es_client: Any) -> Iterator[Callable[..., str]]:
    """``make_es_index(mappings=None, prefix="test-")`` creates a uniquely named index; all are deleted after."""
    created: list[str] = []

    def make(mappings: dict[str, Any] | None = None, prefix: str = "test-") -> str:
        name = unique_name(prefix)
        es_client.indices.create(index=name, mappings=mappings)
        created.append(name)
        return name

    yield make
    for name in created:
        es_client.options(ignore_status=404).indices.delete(index=name)


# ----------------------------------------------------------------------------------------- Prometheus


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[servers.PrometheusServer]:
    """Prometheus (1s scrape interval): ``.url .add_target(addr) .wait_target_up(addr) .query(expr)``."""
    server = _start(servers.start_prometheus)
    yield server
    server.stop()


@pytest.fixture
def prometheus_scrape(prometheus_server: servers.PrometheusServer) -> Iterator[Callable[..., None]]:
    """``prometheus_scrape("127.0.0.1:PORT", labels=None)``: scrape that target and wait until it is up.

    The targets are removed again after the test.
    """
    added: list[str] = []

    def scrape(address: str, labels: dict[str, str] | None = None) -> None:
        prometheus_server.add_target(address, labels)
        added.append(address)
        prometheus_server.wait_target_up(address)

    yield scrape
    for address in added:
        prometheus_server.remove_target(address)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool (e.g. to check generated rule files)."""
    return _start(servers.promtool_path)


# --------------------------------------------------------------------------------------- Alertmanager


@pytest.fixture(scope="session")
def alertmanager_server() -> Iterator[servers.AlertmanagerServer]:
    server = _start(servers.start_alertmanager)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def alertmanager_url(alertmanager_server: servers.AlertmanagerServer) -> str:
    """``http://127.0.0.1:PORT`` of a single-node Alertmanager (shared: filter alerts by a unique label)."""
    return alertmanager_server.url


# ------------------------------------------------------------------------------------ SMTP and webhooks


@pytest.fixture
def smtp_server() -> Iterator[servers.SmtpServer]:
    """aiosmtpd capturing mail: ``.host .port .messages`` (ReceivedMail), ``.stop()``/``.start()`` for outages."""
    server = servers.start_smtp()
    yield server
    server.stop()


@pytest.fixture
def http_receiver() -> Iterator[servers.HttpReceiver]:
    """Slack-like webhook endpoint: ``.url .requests .script(500, 429, ...) .wait_for_requests(n)``."""
    receiver = servers.HttpReceiver()
    yield receiver
    receiver.stop()


# -------------------------------------------------------------------------------------------- Browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian chromium driven by selenium (a ``webdriver.Chrome``), shared by the session."""
    started = _start(servers.start_browser)
    yield started.driver
    started.stop()


@pytest.fixture
def screenshot(browser: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``screenshot("name")`` saves the browser's current page as test-artifacts/<test>-<name>.png."""

    def save(name: str) -> Path:
        ARTIFACTS_DIR.mkdir(exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{request.node.name}-{name}")
        path = ARTIFACTS_DIR / f"{stem}.png"
        if not browser.save_screenshot(str(path)):
            raise RuntimeError(f"chromium could not write screenshot {path}")
        return path

    return save
