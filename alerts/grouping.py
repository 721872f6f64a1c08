"""When a group of alerts is notified: Alertmanager's group_wait / group_interval / repeat_interval.

Alerts are grouped per channel by the labels of their rule's ``group_by`` (default rule and model); one
notification covers a group. The timing, as in Alertmanager:

- a new group (nothing sent yet, or everything sent so far has resolved) waits ``group_wait`` after its
  first alert fired, so alerts that fire together arrive in one message;
- after a notification, a changed group (a new alert firing, or a notified alert resolved) is notified
  again no sooner than ``group_interval`` after it;
- an unchanged group still firing is re-notified every ``repeat_interval`` (unless every alert in it is
  acknowledged).

A silenced or inhibited alert is simply not part of the group. An alert that fires and resolves before
its group was ever notified sends nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Member:
    """One alert as the group timing sees it."""

    id: int
    fired_at: datetime
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class Timing:
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta


def group_key(channel: str, group_labels: Mapping[str, str]) -> str:
    """Stable 64-hex key of one group on one channel."""
    text = json.dumps([channel, sorted(group_labels.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def due_event(
    firing: Sequence[Member],
    resolved_ids: Collection[int],
    last_sent_at: datetime | None,
    last_firing_ids: Collection[int],
    timing: Timing,
    now: datetime,
) -> str | None:
    """The event to notify now (``firing``, ``update``, ``resolved``, ``repeat``) or None.

    ``firing``: the group's notifiable firing alerts; ``resolved_ids``: alerts the last notification
    announced as firing that have resolved since; ``last_*``: the group's latest notification.

    >>> from datetime import UTC, datetime, timedelta as td
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> timing = Timing(td(seconds=30), td(minutes=5), td(hours=4))
    >>> due_event([Member(1, t0)], (), None, (), timing, t0 + td(seconds=10)) is None
    True
    >>> due_event([Member(1, t0)], (), None, (), timing, t0 + td(seconds=30))
    'firing'
    """
    if not firing and not resolved_ids:
        return None
    if last_sent_at is None or not last_firing_ids:
        if not firing:
            return None
        first = min(m.fired_at for m in firing)
        return "firing" if now >= first + timing.group_wait else None
    new = {m.id for m in firing} - set(last_firing_ids)
    if new or resolved_ids:
        if now < last_sent_at + timing.group_interval:
            return None
        if not firing:
            return "resolved"
        return "firing" if new else "update"
    if all(m.acknowledged for m in firing):
        return None
    return "repeat" if now >= last_sent_at + timing.repeat_interval else None
