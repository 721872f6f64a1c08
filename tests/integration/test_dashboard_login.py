"""Dashboard login over real HTTP: the dashboard served by werkzeug on a socket, its store in SQLite.

Basic login: a limiter per username tried, and an unknown username verified against a hash as dear
as a real one. Proxy login: the user header believed only from a trusted proxy or with the proxy's
secret, and `driftscope dashboard` refusing to serve proxy login to anyone who can reach it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select
from werkzeug.serving import make_server

from dashboard import auth, create_app
from dashboard.auth import MAX_LOGIN_FAILURES, PROXY_SECRET_HEADER, UNKNOWN_USERS_BUCKET, hash_password
from monitor.config import Config
from monitor.store.engine import make_engine, upgrade
from monitor.store.tables import AuthFailure

PASSWORD = "correct horse battery staple"
ITERATIONS = 1000  # cheap, and part of the hash: verification still runs exactly these rounds


@contextmanager
def served(tmp_path: Path, dashboard: dict[str, Any]) -> Iterator[str]:
    """The dashboard for ``dashboard:`` settings, listening on 127.0.0.1 until the block ends."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    app = create_app(Config.model_validate({"dashboard": dashboard}), engine)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        engine.dispose()


@pytest.fixture
def basic_dashboard(tmp_path: Path) -> Iterator[str]:
    users = {name: {"password_hash": hash_password(PASSWORD, iterations=ITERATIONS)} for name in ("alice", "bob")}
    with served(tmp_path, {"auth": "basic", "users": users}) as url:
        yield url


def login(url: str, user: str, password: str) -> httpx.Response:
    return httpx.get(f"{url}/_dash-layout", auth=(user, password))


def test_wrong_passwords_lock_that_username_only(basic_dashboard: str) -> None:
    for _ in range(MAX_LOGIN_FAILURES):
        assert login(basic_dashboard, "alice", "guess").status_code == 401
    locked = login(basic_dashboard, "alice", PASSWORD)  # the right password no longer answers either
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert login(basic_dashboard, "bob", PASSWORD).status_code == 200
    assert login(basic_dashboard, "bob", "guess").status_code == 401


def test_an_unknown_username_is_locked_like_a_real_one(basic_dashboard: str) -> None:
    """A lockout must not tell which usernames exist."""
    for _ in range(MAX_LOGIN_FAILURES):
        assert login(basic_dashboard, "mallory", "guess").status_code == 401
    assert login(basic_dashboard, "mallory", "guess").status_code == 429


@pytest.fixture
def pbkdf2_rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The iteration count of every PBKDF2 run in this process (the server thread's included)."""
    rounds: list[int] = []
    real: Callable[..., bytes] = hashlib.pbkdf2_hmac

    def counting(name: str, password: bytes, salt: bytes, iterations: int, *args: Any) -> bytes:
        rounds.append(iterations)
        return real(name, password, salt, iterations, *args)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counting)
    return rounds


def test_an_unknown_username_costs_the_same_pbkdf2_as_a_wrong_password(
    basic_dashboard: str, pbkdf2_rounds: list[int]
) -> None:
    assert login(basic_dashboard, "alice", "guess").status_code == 401
    assert pbkdf2_rounds == [ITERATIONS]
    pbkdf2_rounds.clear()
    assert login(basic_dashboard, "mallory", "guess").status_code == 401
    assert pbkdf2_rounds == [ITERATIONS]


def test_a_spray_of_usernames_adds_a_bounded_number_of_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "UNKNOWN_USERS_CAP", 3)
    users = {"alice": {"password_hash": hash_password(PASSWORD, iterations=ITERATIONS)}}
    with served(tmp_path, {"auth": "basic", "users": users}) as url:
        for n in range(10):
            assert login(url, f"user{n}", "guess").status_code == 401
        assert login(url, "alice", "guess").status_code == 401  # real users are still counted
        engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        with engine.connect() as connection:
            per_name = connection.scalar(
                select(func.count()).where(
                    AuthFailure.bucket.like("login:%"), AuthFailure.bucket != UNKNOWN_USERS_BUCKET
                )
            )
        engine.dispose()
    assert per_name == 3 + 1


def as_proxy(url: str, source: str = "127.0.0.1", **headers: str) -> int:
    """The status of a page asked for alice by a proxy connecting from ``source`` (a loopback address)."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source)) as client:
        return client.get(f"{url}/_dash-layout", headers={"X-Forwarded-User": "alice", **headers}).status_code


def test_the_user_header_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    # All of 127.0.0.0/8 is this machine: the test connects from two real, different peer addresses.
    with served(tmp_path, {"auth": "proxy", "trusted_proxies": ["127.0.0.2/32"]}) as url:
        assert as_proxy(url, source="127.0.0.1") == 401
        assert as_proxy(url, source="127.0.0.2") == 200


def test_the_user_header_is_believed_only_with_the_proxy_secret(tmp_path: Path) -> None:
    secret = "s3cret-shared-with-the-proxy"
    with served(tmp_path, {"auth": "proxy", "proxy_secret": secret}) as url:
        assert as_proxy(url) == 401
        assert as_proxy(url, **{PROXY_SECRET_HEADER: secret + "x"}) == 401
        assert as_proxy(url, **{PROXY_SECRET_HEADER: secret}) == 200


def start_dashboard(tmp_path: Path, dashboard: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "driftscope.yaml"
    config.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp_path / 'store.db'}", "dashboard": dashboard}))
    return subprocess.run(
        [sys.executable, "-m", "monitor", "dashboard", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("dashboard", "args"),
    [
        ({"auth": "proxy", "host": "0.0.0.0"}, ()),  # refused when the config loads
        ({"auth": "proxy"}, ("--host", "0.0.0.0")),  # refused when --host overrides the checked address
    ],
)
def test_proxy_login_on_an_open_address_without_a_guard_does_not_start(
    tmp_path: Path, dashboard: dict[str, Any], args: tuple[str, ...]
) -> None:
    result = start_dashboard(tmp_path, dashboard, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "dashboard.trusted_proxies" in message and "dashboard.proxy_secret" in message
