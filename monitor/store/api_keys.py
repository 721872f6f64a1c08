"""API keys for the API: created once, stored only as a hash, with scopes and optionally limited to models.

A key's scopes say what it may do: ``ingest`` (push predictions and labels), ``read`` (the read
routes), ``operate`` (acknowledge, silence), ``admin`` (API keys, references). Each is granted on its
own; none implies another.

A key looks like ``dsk_<prefix>_<secret>``: the prefix finds the row, the SHA-256 of the whole key
is compared in constant time. The secret is 256 random bits, so a fast hash is enough (a slow
password hash protects low-entropy passwords, not random keys), and guessing one is hopeless.
:class:`FailureLimiter` bounds what failed attempts cost the store and makes them visible: it counts
them per presented prefix, in the store so that every API process shares the count.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import Engine, Row, delete, func, select, update

from monitor.errors import DriftscopeError
from monitor.store.engine import transaction
from monitor.store.tables import ApiKey, AuthFailure, utcnow

KEY_PREFIX = "dsk_"
Scope = Literal["ingest", "read", "operate", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
# Every presented prefix that no key has shares this bucket, so a spray of made-up prefixes adds at most
# one bucket's worth of rows (a real prefix is hex, so it never collides with this one).
UNKNOWN_BUCKET = "unknown"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is a hint; do not write it on every request


class ApiKeyError(DriftscopeError):
    pass


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    models: tuple[str, ...] | None  # None: every model
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


def _info(row: ApiKey | Row[Any]) -> KeyInfo:
    models = None if row.models is None else tuple(row.models)
    scopes = tuple(row.scopes)
    return KeyInfo(row.id, row.name, row.prefix, models, scopes, row.created_at, row.revoked_at, row.last_used_at)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    engine: Engine, name: str, models: Sequence[str] | None = None, scopes: Sequence[str] = ("ingest",)
) -> tuple[str, KeyInfo]:
    """Store a new key named ``name`` and return it in clear text: the only time it is ever shown."""
    if not scopes:
        raise ApiKeyError(f"a key needs at least one scope ({', '.join(SCOPES)})")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)} (scopes: {', '.join(SCOPES)})")
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction(engine) as session:
        if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
            raise ApiKeyError(f"an API key named {name!r} already exists")
        row = ApiKey(
            name=name,
            prefix=prefix,
            key_hash=_hash(key),
            models=list(models) if models else None,
            scopes=[s for s in SCOPES if s in scopes],
        )
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


@dataclass(frozen=True, slots=True)
class Verification:
    """What a presented key turned out to be."""

    key: KeyInfo | None  # None: not a valid, unrevoked key
    bucket: str | None  # where a failure counts: the key's prefix, UNKNOWN_BUCKET, or None (no key-shaped value)


def verify_api_key(engine: Engine, presented: str) -> Verification:
    """Check ``presented``; the answer never says why a key failed, only where the failure counts."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return Verification(None, None)
    prefix = presented[len(KEY_PREFIX) :].split("_", 1)[0]
    with engine.connect() as connection:
        row = connection.execute(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if row is None:
        _hash(presented)  # same work as a hit, so timing does not tell a known prefix from an unknown one
        return Verification(None, UNKNOWN_BUCKET)
    if not hmac.compare_digest(row.key_hash, _hash(presented)) or row.revoked_at is not None:
        return Verification(None, row.prefix)
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        with transaction(engine) as session:
            session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    return Verification(replace(_info(row), last_used_at=now), row.prefix)


class FailureLimiter:
    """Refuses a bucket's failures after ``max_failures`` of them within ``window``, counted in the store.

    A bucket is a key prefix (see :class:`Verification`), not a client address: behind an ingress every
    client has the same address, and ``X-Forwarded-For`` is whatever the client says. Only failures are
    limited; the API accepts a valid key before it asks the limiter, so nobody can lock a key's owner out
    by sending bad secrets under its (not secret) prefix. A bucket at its limit is not written to, and
    each write deletes the rows past the window, so the table stays at (keys + 1) × ``max_failures`` rows.
    Concurrent processes may each record one failure past the limit; the bound still holds within that.
    """

    def __init__(self, engine: Engine, max_failures: int = 10, window: timedelta = timedelta(minutes=1)) -> None:
        self.engine, self.max_failures, self.window = engine, max_failures, window

    def retry_after(self, bucket: str) -> float | None:
        """Seconds until ``bucket`` may fail again, or None if it is not blocked."""
        now = utcnow()
        with self.engine.connect() as connection:
            failures, oldest = connection.execute(
                select(func.count(), func.min(AuthFailure.failed_at)).where(
                    AuthFailure.bucket == bucket, AuthFailure.failed_at > now - self.window
                )
            ).one()
        if failures < self.max_failures:
            return None
        return max((oldest + self.window - now).total_seconds(), 0.0)

    def record_failure(self, bucket: str) -> None:
        now = utcnow()
        with transaction(self.engine) as session:
            session.execute(delete(AuthFailure).where(AuthFailure.failed_at <= now - self.window))
            session.add(AuthFailure(bucket=bucket, failed_at=now))
