"""Store writes for what people do about alerts (acknowledge, silence, expire a silence) and runs (retry).

The CLI, the API and the dashboard (read-only otherwise) call these; they live in ``monitor/`` because the
dashboard may not import ``alerts/``. Each is one transaction; bad input raises :class:`ActionError`
naming the field.

- Acknowledging a firing alert stops its repeat notifications (it still resolves and says so).
- A silence mutes every alert whose labels equal all its matchers (``*`` matches any value) between
  ``starts`` and ``ends``; silenced alerts keep their state but notify no one.
- Retrying a run makes it ``pending`` with no attempt spent, so the next worker tick computes it
  again from scratch; a run that ran out of attempts (``failed``) is otherwise never claimed again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from monitor.errors import DriftscopeError
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Run, Silence


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


# A run as planned: the next claim is its first attempt. Its last error stays until a new result replaces it.
_RESTARTED: dict[str, Any] = {
    "status": "pending",
    "attempts": 0,
    "claimed_by": None,
    "claimed_until": None,
    "claim_token": None,
}


def retry_run(engine: Engine, run_id: int, *, now: datetime | None = None) -> None:
    """Start run ``run_id`` again (pending, attempts reset); refused while a worker holds its lease."""
    now = now or datetime.now(UTC)
    with transaction(engine) as session:
        run = session.get(Run, run_id, with_for_update=True)  # a worker claiming it meanwhile waits
        if run is None:
            raise ActionError(f"retry: run {run_id} does not exist")
        if run.claim_token is not None and run.claimed_until is not None and run.claimed_until > now:
            raise ActionError(
                f"retry: run {run_id} is being computed by {run.claimed_by} (lease until "
                f"{run.claimed_until.isoformat()}); retry it if it fails"
            )
        for column, value in _RESTARTED.items():
            setattr(run, column, value)


def retry_window(engine: Engine, monitor: str, at: datetime, *, now: datetime | None = None) -> int:
    """Start again the run of ``monitor``'s window that contains ``at``; returns its id."""
    with engine.connect() as connection:
        run_id = connection.scalar(
            select(Run.id).where(Run.monitor == monitor, Run.window_start <= at, Run.window_end > at)
        )
    if run_id is None:
        raise ActionError(f"retry: monitor {monitor!r} has no run for a window containing {at.isoformat()}")
    retry_run(engine, run_id, now=now)
    return run_id


def retry_failed(engine: Engine, monitors: Collection[str] | None = None) -> int:
    """Start again every ``failed`` run (of ``monitors``, default all); returns how many."""
    statement = update(Run).where(Run.status == "failed").values(**_RESTARTED)
    if monitors is not None:
        statement = statement.where(Run.monitor.in_(list(monitors)))
    with engine.begin() as connection:
        return connection.execute(statement).rowcount
