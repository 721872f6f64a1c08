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

A rule on labelled scores (``performance``, ``labels``) may set ``min_label_coverage``: windows with a
smaller share of labelled predictions are not observed at all (:mod:`alerts.observe`), so they leave
the alert's state as it is. Any other rule setting it is refused at load.

:func:`compile_rules` also checks every score selector against what the monitors in the rule's scope
(its ``models`` and ``monitors``) compute, and every ``metric.NAME`` against the metrics its models
define: a misspelt or unconfigured selector would otherwise validate and never fire.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from monitor import methods
from monitor.config import AlertRule, Config, ConfigError, ModelConfig, MonitorConfig

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


class RuleError(ConfigError):
    """An alert rule that cannot be evaluated; ``errors`` holds one ``(key path, message)`` per problem."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__(errors, "alert rules")


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
        return observation.threshold if self.rhs == "threshold" else self.rhs

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
        close = methods.did_you_mean(source, SOURCES)
        raise ValueError(f"unknown source {source!r} in {text!r}{close} (known: {', '.join(SOURCES)})")
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


# --- what the monitors compute ---------------------------------------------------------------------
# The score methods monitor.runs.evaluation writes; tests/unit/test_alert_rules.py runs a real evaluation
# and checks every method it writes is listed here, so the two cannot drift apart.

# What method "auto" may pick per column kind (detectors.stattests.auto_method).
AUTO_DRIFT_METHODS: Mapping[str, tuple[str, ...]] = {
    "numeric": ("ks", "wasserstein", "chisquare", "z", "jensenshannon"),
    "categorical": ("chisquare", "z", "jensenshannon"),
}
DATASET_DRIFT_METHODS = ("share_drifted", "count_drifted")
MULTIVARIATE_METHODS = ("pca_reconstruction_error", "domain_classifier_auc")
QUALITY_METHODS: Mapping[str, tuple[str, ...]] = {
    "numeric": ("missing_share", "type_error_share", "out_of_range_share"),
    "categorical": ("missing_share", "type_error_share", "unseen_category_share"),
}
QUALITY_DATASET_METHODS = ("volume", "duplicate_ids", "late_rows")
LABEL_METHODS = ("coverage", "lag_median_seconds", "lag_p95_seconds", "label_corrections")
# Sources computed from labels: the only ones a rule's min_label_coverage applies to.
LABELLED_SOURCES = ("performance", "labels")
# Sources whose scores carry a feature: the only ones SOURCE.value / SOURCE.breached can read.
PER_FEATURE_SOURCES = ("drift", "quality")
# Columns beside the features whose drift is scored (monitor.runs.evaluation.drift_columns).
EXTRA_DRIFT_COLUMNS = ("prediction", "label", "score")

_HOW_TO_COMPUTE: Mapping[str, str] = {
    "drift": "choose it with drift.method or drift.columns.<column>.method (multivariate: drift.multivariate: true; "
    "cusum, page_hinkley: drift.slow_drift.method)",
    "quality": "set quality.enabled: true",
    "performance": "list it in the monitor's performance",
    "estimated": "set estimated_performance: true and list it in performance (or leave performance empty)",
}


def _drift_methods(model: ModelConfig, monitor: MonitorConfig) -> set[str]:
    def chosen(column: str, kind: str) -> tuple[str, ...]:
        override = monitor.drift.columns.get(column)
        method = override.method if override is not None else monitor.drift.method
        if method == methods.AUTO or (override is None and kind not in methods.DRIFT_METHODS[method].kinds):
            return AUTO_DRIFT_METHODS[kind]  # a dataset-wide method leaves the kinds it does not apply to on auto
        return (method,)

    found = set(DATASET_DRIFT_METHODS)
    if monitor.drift.multivariate:
        found.update(MULTIVARIATE_METHODS)
    if monitor.drift.slow_drift is not None:
        found.add(monitor.drift.slow_drift.method)
    for column in (*model.features, *EXTRA_DRIFT_COLUMNS):
        if (kind := model.column_kind(column)) is not None:
            found.update(chosen(column, kind))
    return found


def computed_methods(model: ModelConfig, monitor: MonitorConfig) -> dict[str, set[str]]:
    """Score methods ``monitor`` may write, by selector source (``drift``, ``quality``, ``performance``...)."""
    kinds = set(model.features.values())
    quality = {m for kind in kinds for m in QUALITY_METHODS[kind]} | set(QUALITY_DATASET_METHODS)
    return {
        "drift": _drift_methods(model, monitor),
        "quality": quality if monitor.quality.enabled else set(),
        "performance": set(monitor.performance),
        "estimated": set(monitor.estimated_metrics(model.task)),
        "labels": set(LABEL_METHODS),
    }


# Every method a monitor could compute, whatever the config, by selector source.
KNOWN_METHODS: Mapping[str, frozenset[str]] = {
    "drift": frozenset(
        (*methods.DRIFT_METHODS, *DATASET_DRIFT_METHODS, *MULTIVARIATE_METHODS, *methods.SEQUENTIAL_METHODS)
    ),
    "quality": frozenset((*QUALITY_METHODS["numeric"], *QUALITY_METHODS["categorical"], *QUALITY_DATASET_METHODS)),
    "performance": frozenset(methods.PERFORMANCE_METRICS),
    "estimated": frozenset((*methods.ESTIMATED_METRICS, *methods.ESTIMATED_REGRESSION_METRICS)),
    "labels": frozenset(LABEL_METHODS),
}


def _is_p_value(method: str) -> bool:
    from detectors.stattests import get_stattest  # scipy: imported only when a rule reads a p-value

    return method in methods.DRIFT_METHODS and get_stattest(method).is_p_value


def _drift_key(name: str) -> str | None:
    try:
        return methods.resolve_drift_method(name)
    except methods.UnknownMethodError:
        return None


@dataclass(frozen=True, slots=True)
class _RuleScope:
    """The monitors and models a rule looks at."""

    monitors: Mapping[str, MonitorConfig]
    models: Mapping[str, ModelConfig]
    only: tuple[str, ...] | None  # the rule's ``monitors``, if it names some

    @classmethod
    def of(cls, rule: AlertRule, config: Config) -> _RuleScope:
        monitors = {
            name: monitor
            for name, monitor in config.monitors.items()
            if (rule.monitors is None or name in rule.monitors)
            and (rule.models is None or monitor.model in rule.models)
        }
        models = {name: model for name, model in config.models.items() if rule.models is None or name in rule.models}
        return cls(monitors, models, None if rule.monitors is None else tuple(rule.monitors))

    def describe(self) -> str:
        return f"monitor{'s' if len(self.monitors) > 1 else ''} {', '.join(sorted(self.monitors))}"


def _check_selector(selector: Selector, scope: _RuleScope, config: Config) -> str | None:
    """Why ``selector`` can never match what the rule's monitors write, or None if it can."""
    if selector.source == "metric":
        defined = {name for model in scope.models.values() for name in model.metrics}
        if selector.method in defined:
            return None
        where = ", ".join(sorted(scope.models)) or "none"
        return (
            f"no model of this rule ({where}) defines metrics.{selector.method}"
            f"{methods.did_you_mean(str(selector.method), defined)} (defined: {', '.join(sorted(defined)) or 'none'})"
        )
    if selector.score_kind is None:
        return None
    source, method = selector.source, selector.method
    if not scope.monitors:
        models = ", ".join(sorted(scope.models)) or "none"
        among = "" if scope.only is None else f" among {', '.join(scope.only)}"
        return f"no monitor{among} watches this rule's models ({models}): nothing computes its scores"
    if method is None:
        if source not in PER_FEATURE_SOURCES:
            example = sorted(KNOWN_METHODS[source])[0]
            return f"{source} scores are not per feature: name one, e.g. {source}.{example}.{selector.field}"
        return None
    computed = {
        name: computed_methods(config.models[monitor.model], monitor)[source]
        for name, monitor in scope.monitors.items()
    }
    everything = set().union(*computed.values())
    if method not in everything:
        computed_by = f"{source} computed by {scope.describe()}: {', '.join(sorted(everything)) or 'none'}"
        if source == "drift" and (key := _drift_key(method)) not in (None, method):
            return f"scores of {method} are stored under its key: write {selector.source}.{key}"
        if method not in KNOWN_METHODS[source]:
            close = methods.did_you_mean(method, everything | KNOWN_METHODS[source])
            return f"unknown {source} method {method!r}{close} ({computed_by})"
        how = _HOW_TO_COMPUTE.get(source, "")
        return f"not computed ({computed_by}); {how}"
    if selector.field == "p_value" and not (source == "drift" and _is_p_value(method)):
        return f"{method} is not a p-value test (its value is a distance or a rate): compare {source}.{method}"
    if selector.field not in SCORE_FIELDS and (close := methods.did_you_mean(selector.field, SCORE_FIELDS)):
        return f"unknown field {selector.field!r}{close}"
    return None


def _compile(index: int, rule: AlertRule, config: Config) -> Iterator[tuple[str, str] | CompiledRule]:
    path = f"alerts.rules[{index}]"
    scope = _RuleScope.of(rule, config)
    unknown = [name for name in rule.monitors or () if name not in config.monitors]
    for name in unknown:
        yield f"{path}.monitors", f"unknown monitor {name!r}{methods.did_you_mean(name, config.monitors)}"
    parsed: dict[str, Condition] = {}
    # A selector's problem is reported once, at the first key that uses it; when none of the rule's monitors
    # exists, the error on ``monitors`` says why nothing could match.
    checked: set[Selector] = set()
    check = not (unknown and not scope.monitors)
    for key, text in (("when", rule.when), ("resolve_when", rule.resolve_when)):
        if text is None:
            continue
        try:
            condition = parse_condition(text)
        except ValueError as exc:
            yield f"{path}.{key}", str(exc)
            continue
        if check and condition.selector not in checked:
            checked.add(condition.selector)
            if (problem := _check_selector(condition.selector, scope, config)) is not None:
                yield f"{path}.{key}", f"{condition.selector}: {problem}"
                continue
        parsed[key] = condition
    when, resolve = parsed.get("when"), parsed.get("resolve_when")
    if when is None or (rule.resolve_when is not None and resolve is None):
        return
    if resolve is not None and resolve.selector != when.selector:
        yield f"{path}.resolve_when", f"must use the same selector as when ({when.selector}), got {resolve.selector}"
        return
    if rule.min_label_coverage is not None and when.selector.source not in LABELLED_SOURCES:
        yield (
            f"{path}.min_label_coverage",
            f"only rules on labelled scores ({', '.join(f'{s}.*' for s in LABELLED_SOURCES)}) can require label "
            f"coverage; {when.selector} does not depend on labels",
        )
        return
    if when.selector.source == "staleness" and rule.for_ > 1:
        yield f"{path}.for", "staleness rules are evaluated on every pass, not per window: the minutes are the 'for'"
        return
    yield CompiledRule(index, rule, when, resolve)


def compile_rules(config: Config) -> list[CompiledRule]:
    """Every rule of the config, parsed and checked against what its monitors compute.

    Raises :class:`RuleError` listing every problem of every rule, each with its key path.
    """
    compiled: list[CompiledRule] = []
    errors: list[tuple[str, str]] = []
    for index, rule in enumerate(config.alerts.rules):
        for item in _compile(index, rule, config):
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
