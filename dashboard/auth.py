"""Optional login for the dashboard: HTTP basic auth against pbkdf2 hashes from the config, or a
trusted reverse proxy's user header.

The check is a Flask ``before_request`` hook on the server Dash runs on, so it guards every route the
server has — pages, Dash's ``/_dash-layout``, ``/_dash-dependencies``, ``/_dash-update-component``,
component suites, ``/assets`` and the report route — including routes added after :func:`install`.
The one exception is :data:`PROBE_PATHS`: an orchestrator's liveness/readiness probe cannot log in, and
those two answer a status word and nothing from the store.

Hashes look like ``pbkdf2_sha256$600000$<salt>$<hash>`` (salt and hash base64), as printed by
``driftscope dashboard hash-password``.

Basic login is limited per username tried (:class:`LoginLimiter`), counted in the store like the API's
failed keys, so every dashboard process shares the count. A username nobody has costs the same
PBKDF2 run as a real user's wrong password: the answer's timing does not tell which users exist.

Proxy login believes the user header only from ``dashboard.trusted_proxies`` and, when
``dashboard.proxy_secret`` is set, only with that secret in :data:`PROXY_SECRET_HEADER` (both when
both are set); the config refuses proxy login on a non-loopback address with neither.

Every logged-in request also has a role (:func:`current_role`): a basic user's from the config, a proxy
user's from the groups the proxy sends (``dashboard.proxy_group_roles``, else ``proxy_default_role``).
Pages hide what the role may not do, and the callbacks that act check it again (docs/security.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address

from flask import Flask, Response, g, request
from sqlalchemy import Engine

from monitor.config import ROLES, DashboardSettings, Role
from monitor.store.api_keys import FailureLimiter

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256
REALM = "Driftscope"
PROXY_SECRET_HEADER = "X-Driftscope-Proxy-Secret"
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
MAX_LOGIN_FAILURES = 5  # per username tried, within the API limiter's window (one minute)
# Failures of made-up usernames recorded per window, all names together: bounds the rows a spray adds.
UNKNOWN_USERS_CAP = 200
UNKNOWN_USERS_BUCKET = "login:unknown-users"  # never a login:<hex> bucket, nor an API key prefix
ACT_ON_ALERTS: Role = "operator"  # acknowledge and silence
# auth: none has no users, so no roles: whoever reaches the dashboard acts on alerts, as before roles.
OPEN_ROLE: Role = "operator"


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


def dummy_hash(encoded: Iterable[str]) -> str:
    """A hash no password matches, costing as many rounds as the dearest of ``encoded``: what an unknown
    username is verified against, so that it takes as long as a real user's wrong password."""
    iterations = max((int(e.split("$")[1]) for e in encoded), default=ITERATIONS)
    never = base64.b64encode(secrets.token_bytes(32)).decode()
    return f"{ALGORITHM}${iterations}${base64.b64encode(secrets.token_bytes(16)).decode()}${never}"


def _bucket(username: str) -> str:
    # auth_failure.bucket holds 32 characters and a username can be anything: a digest fits.
    return "login:" + hashlib.sha256(username.encode()).hexdigest()[:24]


class LoginLimiter:
    """Refuses a username after :data:`MAX_LOGIN_FAILURES` failed logins within the window, whatever
    the password (a correct one included: otherwise the lockout would still answer guesses).

    Every username tried gets its own count, real or not, so a lockout does not tell which exist. Made-up
    names are also counted together, and past :data:`UNKNOWN_USERS_CAP` per window they are no longer
    recorded: a spray of names cannot grow the table, it only stops locking the names it invents.
    """

    def __init__(self, engine: Engine, known: Collection[str], max_failures: int = MAX_LOGIN_FAILURES) -> None:
        self._per_user = FailureLimiter(engine, max_failures)
        self._unknown = FailureLimiter(engine, UNKNOWN_USERS_CAP)
        self._known = frozenset(known)

    def retry_after(self, username: str) -> float | None:
        """Seconds until ``username`` may try again, or None if it is not locked."""
        return self._per_user.retry_after(_bucket(username))

    def record_failure(self, username: str) -> None:
        if username not in self._known:
            if self._unknown.retry_after(UNKNOWN_USERS_BUCKET) is not None:
                return
            self._unknown.record_failure(UNKNOWN_USERS_BUCKET)
        self._per_user.record_failure(_bucket(username))


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


def install(server: Flask, settings: DashboardSettings, engine: Engine) -> None:
    """Guard every route of ``server`` according to ``settings.auth`` (``none`` installs nothing); basic
    login counts its failures in ``engine``'s store."""
    if settings.auth == "none":
        return
    if settings.auth == "basic":  # the config refuses basic without users at load
        cache = _VerifiedCache()
        users = {name: user.password_hash for name, user in settings.users.items()}
        roles = {name: user.role for name, user in settings.users.items()}
        nobody = dummy_hash(users.values())
        limiter = LoginLimiter(engine, users)

        def basic() -> Response | None:
            if request.path in PROBE_PATHS:
                return None
            credentials = request.authorization
            if credentials is not None and credentials.type == "basic":
                username, password = credentials.username or "", credentials.password or ""
                # Asked before the cache too: a locked user's right password must not answer either.
                wait = limiter.retry_after(username)
                if wait is not None:
                    return Response(
                        "Too many failed logins for this user: try again later.\n",
                        429,
                        {"Retry-After": str(math.ceil(wait))},
                        mimetype="text/plain",
                    )
                if cache.check(username, password, users.get(username, nobody)) and username in users:
                    g.driftscope_user, g.driftscope_role = username, roles[username]
                    return None
                limiter.record_failure(username)
            return Response(
                "Login required.\n",
                401,
                {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
                mimetype="text/plain",
            )

        server.before_request(basic)
        return

    header = settings.proxy_user_header
    secret = settings.proxy_secret.get_secret_value().encode() if settings.proxy_secret is not None else None

    def proxy() -> Response | None:
        if request.path in PROBE_PATHS:
            return None
        if not _from_trusted_proxy(settings.trusted_proxies):
            return Response("Login required: not a trusted proxy.\n", 401, mimetype="text/plain")
        presented = request.headers.get(PROXY_SECRET_HEADER, "").encode()
        if secret is not None and not hmac.compare_digest(presented, secret):
            return Response(f"Login required: no valid {PROXY_SECRET_HEADER}.\n", 401, mimetype="text/plain")
        user = (request.headers.get(header) or "").strip()
        if user:
            groups = request.headers.get(settings.proxy_groups_header, "")
            g.driftscope_user = user
            g.driftscope_role = role_of_groups(groups, settings.proxy_group_roles, settings.proxy_default_role)
            return None
        return Response(f"Login required: the reverse proxy did not send {header}.\n", 401, mimetype="text/plain")

    server.before_request(proxy)


def _from_trusted_proxy(trusted: Sequence[IPv4Network | IPv6Network]) -> bool:
    """True if the peer of this request is one of ``trusted`` (anyone when the list is empty)."""
    if not trusted:
        return True
    try:
        peer = ip_address(request.remote_addr or "")
    except ValueError:  # a unix socket has no address
        return False
    if isinstance(peer, IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return any(peer in network for network in trusted)


def current_user() -> str | None:
    """The logged-in user of this request, or None when login is off."""
    return g.get("driftscope_user")


def role_of_groups(groups: str, group_roles: Mapping[str, Role], default: Role) -> Role:
    """The highest role that ``group_roles`` gives one of the comma-separated ``groups``, else ``default``.

    >>> role_of_groups("data, sre", {"sre": "operator", "admins": "admin"}, "viewer")
    'operator'
    >>> role_of_groups("", {"sre": "operator"}, "viewer")
    'viewer'
    """
    granted = [group_roles[name] for name in (part.strip() for part in groups.split(",")) if name in group_roles]
    return max(granted, key=ROLES.index, default=default)


def allows(role: Role, needed: Role) -> bool:
    """True if ``role`` may do what ``needed`` may: each role includes the ones before it in :data:`ROLES`."""
    return ROLES.index(role) >= ROLES.index(needed)


def current_role(settings: DashboardSettings) -> Role:
    """The role of this request's user; :data:`OPEN_ROLE` when login is off (also outside a request)."""
    if settings.auth == "none":
        return OPEN_ROLE
    # Login on: the hook has set it before any page or callback runs; the weakest role if it somehow did not.
    return g.get("driftscope_role", ROLES[0])
