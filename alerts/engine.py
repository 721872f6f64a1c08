"""``evaluate``: rules → alert state → outbox rows, in one transaction.

Each pass reads every rule's series (:mod:`alerts.observe`), moves each series' alert through the state
machine (:mod:`alerts.state`), then decides which groups are due a notification (:mod:`alerts.grouping`)
and writes those to the outbox — all in the same transaction, so an alert change and its notification
commit together or not at all. Several workers may call it: on Postgres a transaction-scoped advisory
lock serialises passes; every notification's idempotency key is derived from its group and sequence
number, so a racing duplicate would violate the unique key instead of being sent twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from alerts.grouping import Member, Timing, due_event, group_key
from alerts.message import explain, group_payload
from alerts.observe import Scope, Series, observe
from alerts.payload import to_stored
from alerts.rules import CompiledRule, compile_rules
from alerts.state import SilenceView, Step, decide, inhibited, silenced
from monitor.config import Config, parse_time
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Notification, Silence

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the evaluation pass ("driftscope alerts" as 63-bit integer).
EVALUATE_LOCK = int.from_bytes(hashlib.sha256(b"driftscope.alerts.evaluate").digest()[:8], "big") >> 1


def lock(session: Session, key: int) -> None:
    """Serialise this transaction with others taking the same lock, before it reads anything.

    Postgres: a transaction-scoped advisory lock on ``key``. SQLite: take the database's write lock now
    (what BEGIN IMMEDIATE does), so a pass that read a snapshot never fails to write because another
    writer committed in between.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        session.execute(text("UPDATE alert SET id = id WHERE 0 = 1"))


def _route(rule: CompiledRule) -> dict[str, Any]:
    """Where an alert's notifications go, kept on the alert so its resolve still routes if the rule is removed."""
    return {
        "channels": list(rule.rule.notify),
        "group_by": list(rule.rule.group_by),
        "repeat_interval_s": rule.rule.repeat_interval.total_seconds(),
    }


def _since(alert: Alert) -> datetime | None:
    text = (alert.annotations or {}).get("since")
    return parse_time(text) if text else None


def _apply(
    session: Session, config: Config, rule: CompiledRule, series: Series, alert: Alert | None, now: datetime
) -> None:
    decision = decide(rule, series.observations, alert.state if alert else None)
    latest = series.observations[0] if series.observations else None
    if decision.step is Step.NOTHING or latest is None:
        return
    if decision.step is Step.DROP:
        assert alert is not None
        session.delete(alert)
        return
    if alert is None:
        alert = Alert(
            rule=rule.name,
            fingerprint=series.fingerprint,
            labels=dict(series.labels),
            severity=rule.rule.severity,
            state="pending",
            started_at=now,
        )
        session.add(alert)
    moved = alert.window_start != latest.window_start or alert.value != latest.value
    alert.value = latest.value
    alert.window_start = latest.window_start
    if decision.step is Step.RESOLVE:
        alert.state, alert.resolved_at = "resolved", now
        since = _since(alert)
        alert.annotations = {
            **explain(session, config, rule, series, latest, since, resolved=True),
            "route": _route(rule),
        }
        log.info("alert resolved", extra={"rule": rule.name, "alert_id": alert.id, "labels": alert.labels})
        return
    if decision.step in (Step.PENDING, Step.FIRE):
        alert.consecutive = decision.consecutive
        since = decision.first_window
    else:  # KEEP: still firing; the breach started when it started
        since = _since(alert)
    if decision.step is Step.FIRE and alert.state != "firing":
        alert.state, alert.fired_at = "firing", now
        log.info("alert firing", extra={"rule": rule.name, "labels": alert.labels, "value": latest.value})
        moved = True
    if moved or not alert.annotations:
        alert.annotations = {**explain(session, config, rule, series, latest, since), "route": _route(rule)}


@dataclass
class _Group:
    channel: str
    labels: dict[str, str]
    repeat_interval: timedelta
    firing: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)


def _groups(alerts: Iterable[Alert], rules: Mapping[str, CompiledRule]) -> dict[str, _Group]:
    groups: dict[str, _Group] = {}
    for alert in alerts:
        rule = rules.get(alert.rule)
        route = _route(rule) if rule else (alert.annotations or {}).get("route", {})
        repeat = timedelta(seconds=route.get("repeat_interval_s", 4 * 3600))
        for channel in route.get("channels", ()):
            labels = {k: alert.labels.get(k, "") for k in route.get("group_by", ())}
            key = group_key(channel, labels)
            group = groups.setdefault(key, _Group(channel, labels, repeat))
            group.repeat_interval = min(group.repeat_interval, repeat)
            (group.firing if alert.state == "firing" else group.resolved).append(alert)
    return groups


def _queue(
    session: Session,
    key: str,
    group: _Group,
    event: str,
    resolved: list[Alert],
    last: Notification | None,
    now: datetime,
) -> None:
    sequence = (last.payload.get("sequence", 0) if last else 0) + 1
    payload = group_payload(event, group.channel, key, group.labels, group.firing, resolved, now)
    payload["sequence"] = sequence
    session.add(
        Notification(
            idempotency_key=hashlib.sha256(f"{key}:{sequence}".encode()).hexdigest(),
            alert_id=(group.firing or resolved)[0].id,
            group_key=key,
            channel=group.channel,
            event=event,
            payload=to_stored(payload),
            status="pending",
            next_attempt_at=now,
            created_at=now,
        )
    )
    log.info("notification queued", extra={"channel": group.channel, "event": event, "alerts": len(payload["alerts"])})


def _notify(session: Session, config: Config, rules: Mapping[str, CompiledRule], now: datetime) -> int:
    firing = list(session.scalars(select(Alert).where(Alert.state == "firing").order_by(Alert.id)))
    # Resolved alerts that were announced as firing and whose resolve is not announced yet.
    resolved = list(
        session.scalars(
            select(Alert)
            .where(Alert.state == "resolved", Alert.last_notified_at.is_not(None))
            .where(Alert.last_notified_at <= Alert.resolved_at)
            .order_by(Alert.id)
        )
    )
    silences = [
        SilenceView(s.matchers, s.starts_at, s.ends_at)
        for s in session.scalars(select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now))
    ]
    inhibits = {name: rule.rule.inhibits for name, rule in rules.items()}
    firing_pairs = [(a.rule, a.labels) for a in firing]
    notifiable = [
        a
        for a in firing
        if not silenced(a.labels, silences, now) and not inhibited(a.rule, a.labels, firing_pairs, inhibits)
    ]
    timing_base = (config.alerts.group_wait, config.alerts.group_interval)
    announced: set[int] = set()
    waiting: set[int] = set()  # resolved alerts whose resolve message is due later (group_interval)
    written = 0
    groups = _groups([*notifiable, *(a for a in resolved if not silenced(a.labels, silences, now))], rules)
    for key, group in groups.items():
        last = session.scalars(
            select(Notification).where(Notification.group_key == key).order_by(Notification.id.desc()).limit(1)
        ).first()
        last_firing = set((last.payload or {}).get("firing_ids", ())) if last else set()
        resolved_now = [a for a in group.resolved if a.id in last_firing]
        members = [Member(a.id, a.fired_at or a.started_at, a.acknowledged_at is not None) for a in group.firing]
        timing = Timing(*timing_base, group.repeat_interval)
        last_at = last.created_at if last else None
        event = due_event(members, [a.id for a in resolved_now], last_at, last_firing, timing, now)
        if event is None:
            waiting.update(a.id for a in resolved_now)
            continue
        _queue(session, key, group, event, resolved_now, last, now)
        written += 1
        announced.update(a.id for a in (*group.firing, *resolved_now))
    for alert in firing:
        if alert.id in announced:
            alert.last_notified_at = now
    # A resolved alert is settled once announced, or when no group still owes its resolve message
    # (it was silenced, or muted when the group was last notified).
    for alert in resolved:
        if alert.id not in waiting:
            alert.last_notified_at = now
    return written


def evaluate(engine: Engine, config: Config, now: datetime) -> None:
    """Read the newest scores and metric points, update alert state, write the due notifications."""
    rules = compile_rules(config)
    by_name = {rule.name: rule for rule in rules}
    with transaction(engine) as session:
        lock(session, EVALUATE_LOCK)
        scope = Scope.read(session, config, now)
        active = {
            (a.rule, a.fingerprint): a
            for a in session.scalars(select(Alert).where(Alert.state.in_(("pending", "firing"))))
        }
        seen: set[tuple[str, str]] = set()
        for rule in rules:
            for series in observe(session, rule, scope):
                key = (rule.name, series.fingerprint)
                seen.add(key)
                _apply(session, config, rule, series, active.get(key), now)
        for key, alert in active.items():
            if key in seen:
                continue
            # Its rule is gone from the config or its series from the store: it can no longer resolve itself.
            if alert.state == "pending":
                session.delete(alert)
            else:
                alert.state, alert.resolved_at = "resolved", now
                reason = "rule removed" if key[0] not in by_name else "series no longer observed"
                alert.annotations = {**alert.annotations, "resolved_by": {"reason": reason}}
        session.flush()
        _notify(session, config, by_name, now)
