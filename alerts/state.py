"""The alert state machine, as pure functions (the store glue lives in :mod:`alerts.engine`).

One alert per (rule, series): ``pending`` while its condition has held for fewer than ``for`` consecutive
windows, ``firing`` once it held for ``for`` windows, ``resolved`` when the resolve condition holds
(``resolve_when``, or else ``when`` no longer holding). A pending alert whose condition stops holding is
dropped, as Prometheus does: nothing was ever sent for it. A breach after a resolve is a new alert.

Hysteresis: with ``when: x > 0.3`` and ``resolve_when: x < 0.2`` a value wandering between 0.2 and 0.3
neither fires nor resolves, so a noisy feature gives one alert instead of one per crossing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from alerts.rules import CompiledRule, Observation


class Step(Enum):
    NOTHING = "nothing"  # no alert and none needed
    PENDING = "pending"  # create or update a pending alert
    FIRE = "fire"  # create a firing alert or promote the pending one
    KEEP = "keep"  # firing and still firing: refresh value and window
    RESOLVE = "resolve"
    DROP = "drop"  # a pending alert whose condition no longer holds


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    consecutive: int = 0
    first_window: datetime | None = None  # start of the first window of the current breach


def decide(rule: CompiledRule, observations: Sequence[Observation], state: str | None) -> Decision:
    """Next step for one series, given its newest observations (newest first) and its alert's state.

    ``observations`` holds at least ``for`` entries when that many exist; ``state`` is the state of the
    series' active alert (``pending``/``firing``) or None.

    >>> from datetime import UTC, datetime
    >>> from monitor.config import AlertRule
    >>> from alerts.rules import CompiledRule, parse_condition
    >>> rule = CompiledRule(0, AlertRule(name="r", when="drift.share_drifted > 0.3", **{"for": 2}),
    ...                     parse_condition("drift.share_drifted > 0.3"), None)
    >>> obs = [Observation(v, datetime(2026, 1, 1, h, tzinfo=UTC)) for h, v in ((2, 0.5), (1, 0.4))]
    >>> decide(rule, obs, None).step, decide(rule, obs[:1], None).step
    (<Step.FIRE: 'fire'>, <Step.PENDING: 'pending'>)
    """
    if not observations:
        return Decision(Step.NOTHING)
    if state == "firing":
        return Decision(Step.RESOLVE if rule.resolved_by(observations[0]) else Step.KEEP)
    streak = 0
    for observation in observations:
        if rule.when.holds(observation) is not True:
            break
        streak += 1
    if streak == 0:
        return Decision(Step.DROP if state == "pending" else Step.NOTHING)
    first = observations[streak - 1].window_start
    if streak >= rule.rule.for_:
        return Decision(Step.FIRE, streak, first)
    return Decision(Step.PENDING, streak, first)


@dataclass(frozen=True, slots=True)
class SilenceView:
    matchers: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime


def silenced(labels: Mapping[str, str], silences: Iterable[SilenceView], now: datetime) -> bool:
    """True when an active silence's matchers all equal the alert's labels (a matcher of ``*`` matches any)."""
    return any(
        s.starts_at <= now < s.ends_at
        and all(labels.get(k) == v or (v == "*" and k in labels) for k, v in s.matchers.items())
        for s in silences
    )


def inhibited(
    rule: str,
    labels: Mapping[str, str],
    firing: Iterable[tuple[str, Mapping[str, str]]],
    inhibits: Mapping[str, Iterable[str]],
) -> bool:
    """True when a firing alert of a rule that lists ``rule`` in its ``inhibits`` concerns the same model.

    ``firing`` holds (rule, labels) of the firing alerts; ``inhibits`` maps rule → rules it mutes.
    """
    return any(
        rule in inhibits.get(other_rule, ()) and other_labels.get("model") == labels.get("model")
        for other_rule, other_labels in firing
    )
