"""Alert rule expressions: parsing ``when`` / ``resolve_when`` and deciding them on one observation.

An expression is a selector, optionally a comparison::

    drift.share_drifted > 0.3          dataset-level drift score (method share_drifted)
    drift.ks.p_value < 0.01            per-feature KS p-value (one alert per feature)
    drift.value > threshold            every per-feature drift score against its own threshold
    drift.breached                     every per-feature drift score its detector marked as breached
    performance.roc_auc < 0.7          realized performance
    estimated.roc_auc < 0.7            label-free estimated performance
    quality.missing_share > 0.1        per-feature data quality
    labels.coverage < 0.5              label coverage
    metric.p99_latency > 0.5           the model's Prometheus metric points (one alert per series)
    staleness.minutes > 90             minutes since the model's newest prediction

The grammar, source by source:

- score sources ``drift``, ``quality``, ``performance``, ``estimated`` (estimated_performance scores)
  and ``labels`` take ``SOURCE.METHOD[.FIELD]`` or ``SOURCE.FIELD``; METHOD is the score's method
  (``ks``, ``share_drifted``, ``roc_auc``...); FIELD is ``value`` (default), ``p_value`` (the value of
  a p-value method), ``threshold``, ``breached`` or a numeric key of the score's details. Without a
  METHOD (``drift.value``) the selector takes the per-feature scores of every method.
- ``metric.NAME``: points of the model's metric series NAME.
- ``staleness.minutes``: evaluated on every pass, not per window.

The right-hand side is a number or ``threshold`` (the score's own threshold). A selector ending in
``breached`` stands alone: the detector already knows the direction (a p-value below, a distance above).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from monitor.config import AlertRule, Config
from monitor.errors import DriftscopeError

# Selector source → Score.kind (None: not a score source).
SCORE_KINDS: Mapping[str, str] = {
    "drift": "drift",
    "quality": "quality",
    "performance": "performance",
    "estimated": "estimated_performance",
    "labels": "labels",
}
SOURCES = (*SCORE_KINDS, "metric", "staleness")
GENERIC_FIELDS = ("value", "breached")
SCORE_FIELDS = ("value", "p_value", "threshold", "breached")

_OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPRESSION = re.compile(
    r"""^\s*(?P<selector>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
        \s*(?:(?P<op><=|>=|==|!=|<|>)\s*(?P<rhs>\S+))?\s*$""",
    re.VERBOSE,
)


class RuleError(DriftscopeError):
    """An alert rule that cannot be evaluated; ``errors`` holds one ``(key path, message)`` per problem."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{path}: {message}" for path, message in errors))


@dataclass(frozen=True, slots=True)
class Selector:
    source: str  # one of SOURCES
    method: str | None = None  # score method or metric name; None: every method (per-feature scores)
    field: str = "value"

    @property
    def score_kind(self) -> str | None:
        return SCORE_KINDS.get(self.source)

    def __str__(self) -> str:
        parts = [self.source, self.method] if self.method else [self.source]
        if self.source in SCORE_KINDS and (self.field != "value" or self.method is None):
            parts.append(self.field)
        return ".".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Observation:
    """One value a rule looks at: a score of one window, a metric point, or a staleness reading."""

    value: float | None
    window_start: datetime
    threshold: float | None = None
    breached: bool | None = None
    window_end: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Condition:
    """``selector op rhs``; ``rhs`` None with op None means the selector is a flag (``breached``)."""

    text: str
    selector: Selector
    op: str | None = None
    rhs: float | Literal["threshold"] | None = None

    def threshold_for(self, observation: Observation) -> float | None:
        return observation.threshold if self.rhs == "threshold" else self.rhs  # type: ignore[return-value]

    def holds(self, observation: Observation) -> bool | None:
        """True / False, or None when it cannot be decided (no value, no threshold to compare with)."""
        if self.op is None:
            return observation.breached
        value, limit = observation.value, self.threshold_for(observation)
        if value is None or limit is None or math.isnan(value):
            return None
        return _OPERATORS[self.op](value, limit)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A configured rule with its expressions parsed."""

    index: int
    rule: AlertRule
    when: Condition
    resolve_when: Condition | None

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def selector(self) -> Selector:
        return self.when.selector

    def resolved_by(self, observation: Observation) -> bool:
        """Hysteresis: a firing alert resolves when ``resolve_when`` holds, or else when ``when`` no longer does."""
        if self.resolve_when is not None:
            return self.resolve_when.holds(observation) is True
        return self.when.holds(observation) is False


def parse_selector(text: str) -> Selector:
    parts = text.split(".")
    source, rest = parts[0], parts[1:]
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r} in {text!r} (known: {', '.join(SOURCES)})")
    if source == "staleness":
        if rest != ["minutes"]:
            raise ValueError(f"staleness takes staleness.minutes, got {text!r}")
        return Selector(source, None, "minutes")
    if source == "metric":
        if len(rest) != 1:
            raise ValueError(f"expected metric.NAME (a metric of the model), got {text!r}")
        return Selector(source, rest[0])
    if len(rest) == 1 and rest[0] in GENERIC_FIELDS:
        return Selector(source, None, rest[0])
    if len(rest) == 1:
        return Selector(source, rest[0])
    if len(rest) == 2:
        return Selector(source, rest[0], rest[1])
    raise ValueError(f"expected {source}.METHOD, {source}.METHOD.FIELD or {source}.value, got {text!r}")


def parse_condition(text: str) -> Condition:
    """Parse one expression; raises ValueError saying what is wrong with it."""
    match = _EXPRESSION.match(text)
    if match is None:
        raise ValueError(f"expected 'SELECTOR OP NUMBER' such as 'drift.share_drifted > 0.3', got {text!r}")
    selector = parse_selector(match["selector"])
    op, rhs_text = match["op"], match["rhs"]
    if selector.field == "breached":
        if op is not None:
            raise ValueError(f"{selector} is a flag: write it alone, without a comparison, got {text!r}")
        return Condition(text.strip(), selector)
    if op is None:
        raise ValueError(f"missing comparison: expected e.g. '{selector} > 0.3', got {text!r}")
    rhs: float | Literal["threshold"]
    if rhs_text == "threshold":
        if selector.score_kind is None:
            raise ValueError(f"'threshold' compares a score with its own threshold; {selector.source} has none")
        rhs = "threshold"
    else:
        try:
            rhs = float(rhs_text)
        except ValueError:
            raise ValueError(f"expected a number or 'threshold' after {op!r}, got {rhs_text!r}") from None
        if not math.isfinite(rhs):
            raise ValueError(f"the threshold must be a finite number, got {rhs_text!r}")
    return Condition(text.strip(), selector, op, rhs)


def _compile(index: int, rule: AlertRule) -> Iterator[tuple[str, str] | CompiledRule]:
    path = f"alerts.rules[{index}]"
    when = resolve = None
    try:
        when = parse_condition(rule.when)
    except ValueError as exc:
        yield f"{path}.when", str(exc)
    if rule.resolve_when is not None:
        try:
            resolve = parse_condition(rule.resolve_when)
        except ValueError as exc:
            yield f"{path}.resolve_when", str(exc)
    if when is None:
        return
    if resolve is not None and resolve.selector != when.selector:
        yield f"{path}.resolve_when", f"must use the same selector as when ({when.selector}), got {resolve.selector}"
        return
    if when.selector.source == "staleness" and rule.for_ > 1:
        yield f"{path}.for", "staleness rules are evaluated on every pass, not per window: the minutes are the 'for'"
        return
    yield CompiledRule(index, rule, when, resolve)


def compile_rules(config: Config) -> list[CompiledRule]:
    """Every rule of the config, parsed; raises :class:`RuleError` listing every bad expression."""
    compiled: list[CompiledRule] = []
    errors: list[tuple[str, str]] = []
    for index, rule in enumerate(config.alerts.rules):
        for item in _compile(index, rule):
            if isinstance(item, CompiledRule):
                compiled.append(item)
            else:
                errors.append(item)
    names = [r.name for r in config.alerts.rules]
    for index, name in enumerate(names):
        if names.index(name) != index:
            errors.append((f"alerts.rules[{index}].name", f"duplicate rule name {name!r}"))
    if errors:
        raise RuleError(errors)
    return compiled
