"""Optional login for the dashboard: HTTP basic auth against pbkdf2 hashes from the config, or a
trusted reverse proxy's user header.

The check is a Flask ``before_request`` hook on the server Dash runs on, so it guards every route the
server has — pages, Dash's ``/_dash-layout``, ``/_dash-dependencies``, ``/_dash-update-component``,
component suites, ``/assets`` and the report route — including routes added after :func:`install`.
The one exception is :data:`PROBE_PATHS`: an orchestrator's liveness/readiness probe cannot log in, and
those two answer a status word and nothing from the store.

Hashes look like ``pbkdf2_sha256$600000$<salt>$<hash>`` (salt and hash base64), as printed by
``driftscope dashboard hash-password``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading

from flask import Flask, Response, g, request

from monitor.config import DashboardSettings

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256
REALM = "Driftscope"
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """A ``pbkdf2_sha256$iterations$salt$hash`` string for the config's ``password_hash``."""
    if not password:
        raise ValueError("password must not be empty")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{ALGORITHM}${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches ``encoded``; a malformed hash never matches."""
    try:
        algorithm, iterations, salt, expected = encoded.split("$")
        if algorithm != ALGORITHM:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(digest, base64.b64decode(expected))
    except (ValueError, TypeError):
        return False


class _VerifiedCache:
    """Remembers credentials that verified, keyed by a digest, so a page's dozens of Dash requests
    do not each pay 600k PBKDF2 rounds. Only successes are cached; a changed hash misses."""

    def __init__(self) -> None:
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)

    def check(self, username: str, password: str, encoded: str) -> bool:
        key = hmac.new(self._key, f"{username}\0{password}\0{encoded}".encode(), hashlib.sha256).digest()
        with self._lock:
            if key in self._ok:
                return True
        if not verify_password(password, encoded):
            return False
        with self._lock:
            self._ok.add(key)
        return True


def install(server: Flask, settings: DashboardSettings) -> None:
    """Guard every route of ``server`` according to ``settings.auth`` (``none`` installs nothing)."""
    if settings.auth == "none":
        return
    if settings.auth == "basic":  # the config refuses basic without users at load
        cache = _VerifiedCache()
        users = {name: user.password_hash for name, user in settings.users.items()}

        def basic() -> Response | None:
            if request.path in PROBE_PATHS:
                return None
            credentials = request.authorization
            if credentials is not None and credentials.type == "basic":
                username, password = credentials.username or "", credentials.password or ""
                encoded = users.get(username)
                if encoded is not None and cache.check(username, password, encoded):
                    g.driftscope_user = username
                    return None
            return Response(
                "Login required.\n",
                401,
                {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
                mimetype="text/plain",
            )

        server.before_request(basic)
        return

    header = settings.proxy_user_header

    def proxy() -> Response | None:
        if request.path in PROBE_PATHS:
            return None
        user = (request.headers.get(header) or "").strip()
        if user:
            g.driftscope_user = user
            return None
        return Response(f"Login required: the reverse proxy did not send {header}.\n", 401, mimetype="text/plain")

    server.before_request(proxy)


def current_user() -> str | None:
    """The logged-in user of this request, or None when login is off."""
    return g.get("driftscope_user")
