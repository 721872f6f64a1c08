"""Store writes for what people do about alerts: acknowledge, silence, expire a silence.

The CLI, the API and the dashboard (read-only otherwise) call these; they live in ``monitor/`` because the
dashboard may not import ``alerts/``. Each is one transaction; bad input raises :class:`ActionError`
naming the field.

- Acknowledging a firing alert stops its repeat notifications (it still resolves and says so).
- A silence mutes every alert whose labels equal all its matchers (``*`` matches any value) between
  ``starts`` and ``ends``; silenced alerts keep their state but notify no one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from monitor.errors import DriftscopeError
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Silence


class ActionError(DriftscopeError):
    """A human action that cannot be applied (unknown alert, bad silence...)."""


def acknowledge(engine: Engine, alert_id: int, user: str, comment: str = "", *, now: datetime | None = None) -> None:
    """Mark alert ``alert_id`` acknowledged by ``user`` (at ``now``, default the current time).

    Acknowledging twice keeps the first acknowledgement.
    """
    now = now or datetime.now(UTC)
    if not user.strip():
        raise ActionError("acknowledge: user must not be empty")
    with transaction(engine) as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise ActionError(f"acknowledge: alert {alert_id} does not exist")
        if alert.state == "resolved":
            raise ActionError(f"acknowledge: alert {alert_id} is already resolved")
        if alert.acknowledged_at is None:
            alert.acknowledged_by, alert.acknowledged_at, alert.ack_comment = user, now, comment or None


def create_silence(
    engine: Engine,
    matchers: Mapping[str, str],
    starts: datetime,
    ends: datetime,
    author: str,
    comment: str,
) -> int:
    """Store a silence; returns its id."""
    if not matchers:
        raise ActionError("silence.matchers: give at least one label=value (an empty silence would mute everything)")
    for key, value in matchers.items():
        if not key or not isinstance(value, str) or not value:
            raise ActionError(f"silence.matchers.{key or '(empty)'}: expected a non-empty label value")
    if starts.tzinfo is None or ends.tzinfo is None:
        raise ActionError("silence.starts/ends: give timezone-aware times")
    if ends <= starts:
        raise ActionError(f"silence.ends: {ends.isoformat()} is not after starts {starts.isoformat()}")
    if not author.strip():
        raise ActionError("silence.author: must not be empty")
    if not comment.strip():
        raise ActionError("silence.comment: say why (it is what the next on-call reads)")
    with transaction(engine) as session:
        silence = Silence(matchers=dict(matchers), starts_at=starts, ends_at=ends, created_by=author, comment=comment)
        session.add(silence)
        session.flush()
        return silence.id


def expire_silence(engine: Engine, silence_id: int, *, now: datetime | None = None) -> None:
    """End silence ``silence_id`` at ``now`` (default the current time); one already over stays as it was."""
    now = now or datetime.now(UTC)
    with transaction(engine) as session:
        silence = session.get(Silence, silence_id)
        if silence is None:
            raise ActionError(f"expire: silence {silence_id} does not exist")
        if silence.ends_at > now:
            silence.ends_at = max(now, silence.starts_at)


def active_silences(engine: Engine, now: datetime) -> list[Silence]:
    with transaction(engine) as session:
        return list(
            session.scalars(select(Silence).where(Silence.ends_at > now).order_by(Silence.starts_at, Silence.id))
        )
