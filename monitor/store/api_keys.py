"""API keys for the ingestion API: created once, stored only as a hash, optionally scoped to models.

A key looks like ``dsk_<prefix>_<secret>``: the prefix finds the row, the SHA-256 of the whole key
is compared in constant time. The secret is 256 random bits, so a fast hash is enough (a slow
password hash protects low-entropy passwords, not random keys). Verification failures are rate
limited per client by :class:`FailureLimiter`, so guessing is not an option either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from monitor.errors import DriftscopeError
from monitor.store.engine import transaction
from monitor.store.tables import ApiKey, utcnow

KEY_PREFIX = "dsk_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is a hint; do not write it on every request


class ApiKeyError(DriftscopeError):
    pass


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    models: tuple[str, ...] | None  # None: every model
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


def _info(row: ApiKey) -> KeyInfo:
    models = None if row.models is None else tuple(row.models)
    return KeyInfo(row.id, row.name, row.prefix, models, row.created_at, row.revoked_at, row.last_used_at)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(engine: Engine, name: str, models: Sequence[str] | None = None) -> tuple[str, KeyInfo]:
    """Store a new key named ``name`` and return it in clear text: the only time it is ever shown."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction(engine) as session:
        if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
            raise ApiKeyError(f"an API key named {name!r} already exists")
        row = ApiKey(name=name, prefix=prefix, key_hash=_hash(key), models=list(models) if models else None)
        session.add(row)
        session.flush()
        return key, _info(row)


def list_api_keys(engine: Engine) -> list[KeyInfo]:
    with transaction(engine) as session:
        return [_info(row) for row in session.scalars(select(ApiKey).order_by(ApiKey.name))]


def revoke_api_key(engine: Engine, name: str) -> KeyInfo:
    with transaction(engine) as session:
        row = session.scalar(select(ApiKey).where(ApiKey.name == name))
        if row is None:
            raise ApiKeyError(f"no API key named {name!r}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return _info(row)


def verify_api_key(engine: Engine, presented: str) -> KeyInfo | None:
    """The key's info if ``presented`` is a valid, unrevoked key; None otherwise (never says why)."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    prefix = presented[len(KEY_PREFIX) :].split("_", 1)[0]
    with engine.connect() as connection:
        row = connection.execute(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if row is None:
        _hash(presented)  # same work as a hit, so timing does not tell a known prefix from an unknown one
        return None
    if not hmac.compare_digest(row.key_hash, _hash(presented)) or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        with transaction(engine) as session:
            session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    models = None if row.models is None else tuple(row.models)
    return KeyInfo(row.id, row.name, row.prefix, models, row.created_at, row.revoked_at, now)


class FailureLimiter:
    """Blocks a client after ``max_failures`` failed authentications within ``window`` seconds.

    In-process state: with several API processes each enforces its own limit, which still bounds
    guessing to a handful of tries per minute per process.
    """

    def __init__(self, max_failures: int = 10, window: float = 60.0, max_clients: int = 10_000) -> None:
        self.max_failures, self.window, self.max_clients = max_failures, window, max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None if it is not blocked."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return None
            while failures and now - failures[0] > self.window:
                failures.popleft()
            if len(failures) < self.max_failures:
                return None
            return self.window - (now - failures[0])

    def record_failure(self, client: str) -> None:
        with self._lock:
            if client not in self._failures and len(self._failures) >= self.max_clients:
                # Forget the stalest client rather than grow without bound under a spray of addresses.
                del self._failures[next(iter(self._failures))]
            self._failures.setdefault(client, deque(maxlen=self.max_failures)).append(time.monotonic())
