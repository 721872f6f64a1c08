"""``deliver_due``: the outbox delivery loop.

Rows are written by :func:`alerts.evaluate` in the same transaction as the alert change. Delivery:

1. **Claim** (one short transaction, serialised by an advisory lock on Postgres): walk the undelivered
   rows in id order; per channel take the due prefix — stop at the first row that is not due (backing
   off, or claimed by a live worker), so a channel's notifications go out in the order they were
   written. Claimed rows become ``sending`` with ``claimed_until = now + worker.claim_ttl``.
2. **Send** each claimed row through its channel's notifier, outside any transaction.
3. **Record** the outcome: ``delivered``; or back to ``pending`` with exponential backoff and jitter
   (or the channel's ``Retry-After``) for a transient failure — the rest of that channel's batch is
   released untouched, keeping the order; or ``failed`` with the reason for a final failure or once
   transient failures have lasted ``max_age``.

A worker killed between 2 and 3 leaves its rows ``sending``; when the claim expires another worker
sends them again. Nothing is lost; a channel that cannot deduplicate may see that one notification
twice (e-mail keeps its Message-ID, webhooks their Idempotency-Key, Alertmanager dedupes by labels;
Slack shows it twice).
"""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from alerts.base import DeliveryError, redact
from alerts.engine import lock
from alerts.message import probe_payload
from alerts.payload import NotificationPayload, from_stored
from alerts.registry import notifier_for
from monitor.config import Config
from monitor.retry import Backoff
from monitor.store.engine import transaction
from monitor.store.tables import Notification

log = logging.getLogger(__name__)

CLAIM_LOCK = int.from_bytes(hashlib.sha256(b"driftscope.alerts.claim").digest()[:8], "big") >> 1
UNDELIVERED = ("pending", "sending")


# Retries are scheduled in the store across ticks, so only the delay comes from monitor.retry;
# RetryPolicy.max_age, not a number of attempts, decides when a transient failure becomes final.
DELIVERY_BACKOFF = Backoff(attempts=None, base=30.0, cap=1800.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    backoff: Backoff = DELIVERY_BACKOFF
    max_age: timedelta = timedelta(hours=24)  # transient failures are retried this long, then final
    batch: int = 100  # rows sent per call
    scan: int = 2000  # undelivered rows looked at per claim


DEFAULT_POLICY = RetryPolicy()
_rng = random.Random()


def _claim(engine: Engine, config: Config, now: datetime, policy: RetryPolicy) -> list[Notification]:
    with transaction(engine) as session:
        lock(session, CLAIM_LOCK)
        rows = session.execute(
            select(Notification.id, Notification.channel, Notification.status)
            .add_columns(Notification.next_attempt_at, Notification.claimed_until)
            .where(Notification.status.in_(UNDELIVERED))
            .order_by(Notification.id)
            .limit(policy.scan)
        ).all()
        blocked: set[str] = set()
        chosen: list[int] = []
        for row in rows:
            if row.channel in blocked:
                continue
            if row.status == "pending":
                due = row.next_attempt_at <= now
            else:
                due = row.claimed_until is None or row.claimed_until <= now
            if not due:
                blocked.add(row.channel)  # keep the channel's order: nothing overtakes this row
                continue
            chosen.append(row.id)
            if len(chosen) >= policy.batch:
                break
        if not chosen:
            return []
        session.execute(
            update(Notification)
            .where(Notification.id.in_(chosen))
            .values(status="sending", claimed_until=now + config.worker.claim_ttl)
        )
        return list(session.scalars(select(Notification).where(Notification.id.in_(chosen)).order_by(Notification.id)))


def _finish(engine: Engine, row_id: int, **values: object) -> None:
    with transaction(engine) as session:
        session.execute(
            update(Notification)
            .where(Notification.id == row_id, Notification.status == "sending")
            .values(attempts=Notification.attempts + 1, claimed_until=None, **values)
        )


def _release(engine: Engine, row_ids: list[int]) -> None:
    if row_ids:
        with transaction(engine) as session:
            session.execute(
                update(Notification)
                .where(Notification.id.in_(row_ids), Notification.status == "sending")
                .values(status="pending", claimed_until=None)
            )


def deliver_due(
    engine: Engine,
    config: Config,
    now: datetime,
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    rng: random.Random | None = None,
) -> int:
    """Deliver the notifications due at ``now``; returns how many were delivered."""
    rng = rng or _rng
    claimed = _claim(engine, config, now, policy)
    delivered = 0
    stalled: set[str] = set()
    for row in claimed:
        if row.channel in stalled:
            continue
        fields = {"channel": row.channel, "notification_id": row.id, "event": row.event}
        try:
            payload = from_stored(row.payload)
        except ValueError as exc:  # written by another release, or by hand: retrying cannot help
            error: DeliveryError | None = DeliveryError(str(exc), transient=False)
        else:
            error = _send(config, row.channel, payload, row.idempotency_key)
        if error is None:
            _finish(engine, row.id, status="delivered", delivered_at=now, last_error=None)
            delivered += 1
            log.info("notification delivered", extra=fields)
            continue
        age = now - row.created_at
        if error.transient and age < policy.max_age:
            wait = timedelta(seconds=policy.backoff.delay(row.attempts + 1, rng, retry_after=error.retry_after))
            _finish(engine, row.id, status="pending", next_attempt_at=now + wait, last_error=error.reason)
            stalled.add(row.channel)
            log.warning(
                "notification delivery failed, will retry",
                extra={**fields, "reason": error.reason, "retry_in_s": wait.total_seconds()},
            )
        else:
            reason = error.reason
            if error.transient:
                reason = f"gave up after {row.attempts + 1} attempts over {age}: {reason}"
            _finish(engine, row.id, status="failed", last_error=reason)
            log.error("notification failed", extra={**fields, "reason": reason})
    # The rest of a stalled channel's batch goes back untouched: it must not overtake the failed row.
    _release(engine, [row.id for row in claimed if row.channel in stalled])
    return delivered


def _send(config: Config, name: str, payload: NotificationPayload, key: str) -> DeliveryError | None:
    """Send one notification; the failure, with every secret of the channel redacted, or None."""
    channel = config.alerts.channels.get(name)
    if channel is None:
        known = ", ".join(sorted(config.alerts.channels)) or "none"
        return DeliveryError(f"channel {name!r} is not configured (known: {known})", transient=False)
    try:
        notifier_for(channel.kind).send(channel, payload, key)
    except DeliveryError as exc:
        return DeliveryError(redact(exc.reason, channel), transient=exc.transient, retry_after=exc.retry_after)
    except Exception as exc:  # a bug in one notifier must not stop the other channels; retried like an outage
        reason = f"{channel.kind}: unexpected {type(exc).__name__}: {redact(str(exc), channel)}"
        log.error("notifier raised", extra={"channel": name, "reason": reason})
        return DeliveryError(reason, transient=True)
    return None


def send_test(config: Config, channel: str, now: datetime) -> None:
    """Send a test notification to ``channel`` now, bypassing the outbox; raises :class:`DeliveryError`.

    The error says what failed (status code, connection error) and never repeats what the target answered.
    """
    key = f"test-{uuid.uuid4().hex}"
    error = _send(config, channel, probe_payload(channel, now), key)
    if error is not None:
        raise error
