"""The ``driftscope.yaml`` configuration: frozen, validated data.

Loading goes: YAML text → ``${ENV}`` interpolation (secrets never live in the file) →
pydantic validation → cross-reference checks (a model's source exists, a monitor's model
exists, ...). Every problem is reported with its key path, all at once, so a user fixes a
broken file in one pass::

    models.churn.features.tenure: expected numeric|categorical, got 'nmeric'

Unknown keys are errors that list the valid ones: a typo never silently becomes a default.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor import methods
from monitor.errors import DriftscopeError, redact

DEFAULT_STORE_URL = "sqlite:///driftscope.db"
CONFIG_ENV = "DRIFTSCOPE_CONFIG"
STORE_ENV = "DRIFTSCOPE_STORE"


class ConfigError(DriftscopeError):
    """A configuration that cannot be used; ``errors`` holds one ``(key path, message)`` per problem.

    The messages are :func:`~monitor.errors.redact`-ed: one that quotes a URL never shows its password.
    """

    def __init__(self, errors: list[tuple[str, str]], source: str = "config") -> None:
        self.errors = [(path, redact(message)) for path, message in errors]
        self.source = source
        super().__init__("\n".join(f"{path}: {message}" for path, message in errors))


# --- small value types --------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"7d"`` or a number of seconds → ``timedelta``; never negative."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf:
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
    raise ValueError(f"expected a duration like 30s, 5m, 1h or 7d, got {value!r}")


def _parse_windows(value: Any) -> int:
    """``for: 2 windows`` / ``for: 2`` → 2."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (match := re.fullmatch(r"\s*(\d+)\s*(windows?)?\s*", value)):
        return int(match[1])
    raise ValueError(f"expected a number of windows like '2 windows', got {value!r}")


def _at_least_a_millisecond(value: timedelta) -> timedelta:
    if value < timedelta(milliseconds=1):
        raise ValueError(f"expected a step of at least 1ms, got {value.total_seconds():g}s")
    return value


def _positive(value: timedelta) -> timedelta:
    # A zero window, interval or timeout would divide by zero, spin, or give up at once.
    if value <= timedelta(0):
        raise ValueError(f"expected a duration greater than 0, got {value.total_seconds():g}s")
    return value


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why ``url`` cannot be used, or None; the message never repeats it (it may be a secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "not a valid URL"
    try:
        port = parts.port
    except ValueError:
        return "the port is not a number from 1 to 65535"
    if parts.scheme.lower() not in schemes:
        return f"expected a URL starting with {' or '.join(f'{s}://' for s in schemes)}"
    if not parts.hostname:
        return "the URL has no host"
    return "the port is not a number from 1 to 65535" if port == 0 else None


def _url(*schemes: str) -> AfterValidator:
    def check(value: Any) -> Any:
        secret = isinstance(value, SecretStr)
        text = value.get_secret_value() if secret else value
        if problem := _url_problem(text, schemes):
            raise ValueError(problem if secret else f"{problem}, got {text!r}")
        return value

    return AfterValidator(check)


def as_utc(moment: datetime) -> datetime:
    """A time without an offset is UTC, like every time Driftscope stores."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``Z``, an offset, or none for UTC) as an aware UTC datetime; ValueError if not one."""
    return as_utc(datetime.fromisoformat(text.strip()))


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
HttpUrl = Annotated[str, _url("http", "https")]
SecretHttpUrl = Annotated[SecretStr, _url("http", "https")]
UtcTime = Annotated[datetime, AfterValidator(as_utc)]
Step = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_at_least_a_millisecond)]
WindowCount = Annotated[int, BeforeValidator(_parse_windows), Field(ge=1)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A URL with user:password@ in it (a source's) must not reach a log line or traceback via repr.
        for name, value in super().__repr_args__():
            yield name, redact(value) if isinstance(value, str) else value


# --- sources ------------------------------------------------------------------------------------


class ElasticsearchSource(Frozen):
    kind: Literal["elasticsearch"] = Field(
        description="Reads the prediction (and label) documents of models from Elasticsearch.",
    )
    url: HttpUrl = Field(
        description="The cluster, e.g. `https://es.example.com` or `http://localhost:9200` (http needs the port).",
    )
    index: str = Field(
        description="Index, alias or pattern holding the predictions of the models that use this source.",
    )
    username: str | None = Field(None, description="HTTP basic auth user (with `password`).")
    password: SecretStr | None = Field(None, description="HTTP basic auth password, e.g. `${ES_PASSWORD}`.")
    api_key: SecretStr | None = Field(
        None,
        description="Elasticsearch API key, instead of username/password, e.g. `${ES_API_KEY}`.",
    )
    verify_certs: bool = Field(True, description="Check the cluster's TLS certificate; false only for a test cluster.")
    ingest_time_field: str | None = Field(
        None,
        description="Field an ingest pipeline sets to the time a document was indexed: reading by it collects "
        "documents that became searchable late; null: read by the event timestamp.",
    )
    overlap: Duration = Field(
        timedelta(minutes=10),
        description="Each read starts this far before where the last one ended, for documents that became searchable "
        "late (read twice, stored once).",
    )
    safety_lag: Duration = Field(
        timedelta(seconds=30),
        description="Read only documents older than this: newer ones may not be searchable yet.",
    )
    page_size: int = Field(
        10_000,
        ge=1,
        le=10_000,
        description="Documents per search page; fewer, larger pages are faster (docs/benchmarks.md).",
    )
    interval: PositiveDuration = Field(timedelta(minutes=1), description="Time between two reads.")
    timeout: PositiveDuration = Field(timedelta(seconds=30), description="Time limit of one request.")

    @field_validator("url")
    @classmethod
    def _port_of_an_http_url(cls, url: str) -> str:
        # The Elasticsearch client takes no default port for http (only 443 for https).
        if urlsplit(url).port is None and url.lower().startswith("http:"):
            raise ValueError(f"give the port of an http URL, e.g. http://localhost:9200, got {url!r}")
        return url


class PrometheusSource(Frozen):
    kind: Literal["prometheus"] = Field(description="Reads the `metrics` of models from Prometheus (range queries).")
    url: HttpUrl = Field(description="The Prometheus server, e.g. `http://prometheus:9090`.")
    step: Step = Field(
        timedelta(minutes=1),
        description="Resolution of the queries: one point per step, on multiples of it since the epoch.",
    )
    interval: PositiveDuration = Field(timedelta(minutes=1), description="Time between two reads.")
    timeout: PositiveDuration = Field(timedelta(seconds=30), description="Time limit of one request.")
    max_points_per_request: int = Field(
        10_000,
        ge=1,
        le=11_000,
        description="Points per series in one query; longer ranges are split (Prometheus refuses more than 11,000).",
    )
    safety_lag: Duration = Field(
        timedelta(seconds=30),
        description="Read only points older than this: one whose samples are still being scraped would change later.",
    )
    username: str | None = Field(None, description="HTTP basic auth user (with `password`).")
    password: SecretStr | None = Field(None, description="HTTP basic auth password, e.g. `${PROMETHEUS_PASSWORD}`.")
    bearer_token: SecretStr | None = Field(
        None, description="Sent as `Authorization: Bearer`, e.g. `${PROMETHEUS_TOKEN}`; instead of username/password."
    )

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> PrometheusSource:
        problems = []
        if self.password is not None and self.username is None:
            problems.append(("username", "a password needs its username"))
        if self.bearer_token is not None and self.username is not None:
            problems.append(("bearer_token", "give username/password or bearer_token, not both"))
        if problems:
            raise _Problems(problems)
        return self


Source = Annotated[ElasticsearchSource | PrometheusSource, Field(discriminator="kind")]


# --- models -------------------------------------------------------------------------------------

ColumnKind = Literal["numeric", "categorical"]
Task = Literal["binary", "multiclass", "regression"]


class FieldMap(Frozen):
    """Where each part of a prediction record lives in the source document (dotted paths)."""

    id: str = Field("id", description="Path of the prediction's unique id; labels are joined on it.")
    timestamp: str = Field(
        "timestamp",
        description="Path of the prediction's time; it decides the prediction's window.",
    )
    prediction: str = Field(
        "prediction",
        description="Path of the predicted class (classification) or value (regression).",
    )
    score: str | None = Field(
        None,
        description="Path of the model's score (binary: the probability of the positive class), needed by roc_auc, "
        "pr_auc, log_loss and brier and by estimated performance; null: no score.",
    )
    label: str | None = Field(
        None,
        description="Path of the true label, in the prediction documents or in those of `label_index`; null: no "
        "labels from the source.",
    )
    features: str | None = Field(
        None, description="Path of the object holding the features; None means the features are top-level."
    )
    model_version: str | None = Field(
        "model_version",
        description="Path of the version of the model that made the prediction (a string, docs/versions.md); a "
        "record without one belongs to the version deployed at its time; null: never read a version.",
    )


class MetricQuery(Frozen):
    source: Name = Field(description="Name of a `kind: prometheus` source.")
    query: str = Field(
        description="PromQL expression, evaluated as a range query; each series it returns is scored per window.",
    )
    step: Step | None = Field(None, description="Default: the source's step.")


class Retention(Frozen):
    """How long a model's rows are kept, each kind apart; null (the default) keeps them forever (docs/operations.md)."""

    predictions: PositiveDuration | None = Field(
        None,
        description="Predictions (with their labels), waiting labels and rejected records older than this are "
        "deleted, except those a reference range, a window still to compute or a recompute needs.",
    )
    scores: PositiveDuration | None = Field(
        None,
        description="Runs whose window ended longer ago than this are deleted with their scores (a monitor's newest "
        "run, and runs still to compute, are kept).",
    )
    alerts: PositiveDuration | None = Field(
        None,
        description="Alerts resolved longer ago than this are deleted with their delivered or failed notifications.",
    )
    metrics: PositiveDuration | None = Field(
        None,
        description="Prometheus samples (metric_point) of the model's series older than this are deleted.",
    )


class CanarySettings(Frozen):
    """How `driftscope canary` compares a candidate version with a baseline (docs/versions.md, Canary gate)."""

    min_rows: int = Field(200, ge=2, description="Rows each version needs in the time range; fewer: exit 2.")
    min_labels: int = Field(
        100, ge=2, description="Labelled rows each version needs before realized performance is compared."
    )
    require_labels: bool = Field(
        False,
        description="Exit 2 (not 0) while either version has fewer than `min_labels` labels: promote only on "
        "realized performance.",
    )
    alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="Significance of the distribution tests (KS, chi-square), Bonferroni-corrected over the tests "
        "of each family (the whole rows; the slices).",
    )
    min_effect: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Smallest difference of distributions that fails the gate: KS D or total variation distance.",
    )
    margin: float = Field(
        0.02,
        ge=0,
        description="Performance loss tolerated (absolute, in the metric's units) before the candidate is worse.",
    )
    confidence: float = Field(
        0.95, gt=0, lt=1, description="Confidence of the bootstrap interval of realized performance differences."
    )
    n_resamples: int = Field(2000, ge=100, le=100_000, description="Bootstrap resamples (seeded: reruns agree).")
    metrics: list[str] = Field(
        [],
        description="Metrics compared; default: the first monitor's `performance`, else ROC AUC (binary with "
        "scores), accuracy (classification) or MAE (regression).",
    )
    slices: list[Name] | None = Field(
        None,
        description="Categorical features whose values are compared one by one (a slice where the candidate is "
        "worse); default: every categorical feature with at most `max_slice_categories` values.",
    )
    max_slice_categories: int = Field(20, ge=1, description="Default slicing skips features with more values.")
    min_slice_rows: int = Field(30, ge=2, description="Rows (and labels) each version needs in a slice to test it.")
    service_metrics: list[Name] = Field(
        [],
        description="Service metrics (names under the model's `metrics`, higher is worse: errors, latency) "
        "compared per version through the series label `version_label`; empty: not compared.",
    )
    version_label: str = Field("version", description="Label of the service metrics' series naming the version.")
    service_margin: float = Field(
        0.1, ge=0, description="Relative increase of a service metric's mean that makes the candidate worse."
    )


class ModelConfig(Frozen):
    task: Task = Field(
        description="What the model predicts: it decides the metrics and how prediction and label drift are tested.",
    )
    source: Name | None = Field(
        None,
        description="Elasticsearch source the predictions are collected from; null: they come through the API or the "
        "SDK.",
    )
    label_index: str | None = Field(None, description="Elasticsearch index holding late labels, if separate.")
    fields: FieldMap = Field(FieldMap(), description="Where each part of a prediction is in the source's documents.")
    features: dict[Name, ColumnKind] = Field(
        description="The model's input columns and their kind; ingestion refuses others.",
    )
    classes: list[str] | None = Field(
        None,
        description="Class labels (binary: exactly 2); ingestion refuses others. Default: 0/1 for binary, the "
        "reference's labels for multiclass.",
    )
    positive_class: str | None = Field(
        None,
        description="Binary: the class the score is the probability of, the one precision, recall and F1 count. "
        "Default: the second of `classes`, else 1.",
    )
    metrics: dict[Name, MetricQuery] = Field(
        {},
        description="Service metrics (latency, errors...) from Prometheus, scored per window; alert on them as "
        "`metric.NAME`.",
    )
    retention: Retention = Field(
        Retention(),
        description="How long this model's rows are kept (`driftscope prune`, and the worker hourly); absent: forever.",
    )
    mode: Literal["copy", "pushdown"] = Field(
        "copy",
        description="copy: the collector copies the documents into the store and windows are computed from them. "
        "pushdown (an Elasticsearch `source`): nothing is copied; each window's drift, data-quality counts and "
        "volume are computed by Elasticsearch aggregations (no drill-down, row-level quality, performance or "
        "labels; docs/detectors.md, Push-down mode).",
    )
    canary: CanarySettings = Field(
        CanarySettings(), description="How `driftscope canary` compares two versions of this model."
    )

    @field_validator("features")
    @classmethod
    def _at_least_one_feature(cls, value: dict[str, ColumnKind]) -> dict[str, ColumnKind]:
        if not value:
            raise ValueError("a model needs at least one feature")
        return value

    @model_validator(mode="after")
    def _classes_fit_the_task(self) -> ModelConfig:
        problems: list[tuple[str, str]] = []
        if self.task == "regression":
            problems += [(key, "a regression model has no classes") for key in ("classes", "positive_class")
                         if getattr(self, key) is not None]  # fmt: skip
        if self.classes is not None:
            if len(set(self.classes)) != len(self.classes):
                problems.append(("classes", f"classes must be distinct, got {self.classes}"))
            if self.task == "binary" and len(self.classes) != 2:
                problems.append(("classes", f"a binary model has 2 classes, got {len(self.classes)}"))
            if self.positive_class is not None and self.positive_class not in self.classes:
                problems.append(("positive_class", f"{self.positive_class!r} is not one of classes {self.classes}"))
        if problems:
            raise _Problems(problems)
        return self

    @model_validator(mode="after")
    def _canary_fits_the_model(self) -> ModelConfig:
        canary, problems = self.canary, []
        allowed = methods.metrics_for(self.task)
        for i, m in enumerate(canary.metrics):
            if m not in allowed:
                problems.append((f"canary.metrics[{i}]", f"unknown {self.task} metric {m!r}"
                                 f"{methods.did_you_mean(m, allowed)} (valid: {', '.join(allowed)})"))  # fmt: skip
        categorical = [name for name, kind in self.features.items() if kind == "categorical"]
        for i, name in enumerate(canary.slices or []):
            if name not in categorical:
                hint = methods.did_you_mean(name, categorical)
                problems.append((f"canary.slices[{i}]", f"not a categorical feature{hint} "
                                 f"(categorical features: {', '.join(categorical) or 'none'})"))  # fmt: skip
        for i, name in enumerate(canary.service_metrics):
            if name not in self.metrics:
                hint = methods.did_you_mean(name, self.metrics)
                problems.append((f"canary.service_metrics[{i}]", f"{name!r} is not one of the model's metrics{hint} "
                                 f"(metrics: {_known(self.metrics)})"))  # fmt: skip
        if problems:
            raise _Problems(problems)
        return self

    def column_kind(self, column: str) -> ColumnKind | None:
        """Kind of a column whose drift is scored: a feature, or ``prediction``/``label``/``score``."""
        if column in self.features:
            return self.features[column]
        if column in ("prediction", "label"):
            return "numeric" if self.task == "regression" else "categorical"
        return "numeric" if column == "score" else None


# --- monitors -----------------------------------------------------------------------------------


class ReferenceSpec(Frozen):
    """Exactly one of: a fixed time range, an uploaded dataset, the previous N windows, or the reference of the
    version that served the rows."""

    range: tuple[UtcTime, UtcTime] | None = Field(
        None,
        description="[start, end) of stored predictions to compare with.",
    )
    dataset: str | None = Field(
        None,
        description="A dataset uploaded with `driftscope reference upload`, by its file name.",
    )
    previous_windows: int | None = Field(
        None,
        ge=1,
        description="The N windows before the one computed: a rolling reference. Until each of the N windows "
        "holds rows, the window is insufficient_data ('reference has k of N previous windows').",
    )
    version: Literal["current"] | None = Field(
        None,
        description="current: a baseline per model version (docs/versions.md). The whole window is compared "
        "with the latest approved reference uploaded for the model's current version (its latest full "
        "deployment, `driftscope deploy record`); each version's own scores with that version's reference "
        "(`driftscope reference upload --model M --version V FILE`). A version without one is "
        "insufficient_data, saying which command to run; nothing falls back to another version's reference.",
    )
    approval: Literal["required", "none"] | None = Field(
        None,
        description="With `version: current` only. required: use only references approved with `driftscope "
        "reference approve`; none (the default): a reference counts as approved when uploaded without "
        "--require-approval. A reference waiting for approval is never used.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ReferenceSpec:
        given = [k for k in ("range", "dataset", "previous_windows", "version") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of range, dataset, previous_windows, version (got {given or 'none'})")
        if self.range is not None and self.range[0] >= self.range[1]:
            raise ValueError("range start must be before its end")
        if self.approval is not None and self.version is None:
            raise ValueError("approval applies to `version: current` references only")
        return self


def _drift_method(name: str) -> str:
    """An alias becomes our key; an unknown name stays, for MonitorConfig to report beside the
    kind checks of the other columns (a field error here would hide them)."""
    try:
        return methods.resolve_drift_method(name)
    except methods.UnknownMethodError:
        return name


_METHOD_HELP = (
    f"auto or one of {', '.join(sorted(methods.DRIFT_METHODS))}; NannyML's, Evidently's and SciPy's names "
    "for them are accepted and stored as ours (see docs/detectors.md)."
)
DriftMethodName = Annotated[str, AfterValidator(_drift_method)]


def _drift_method_problem(name: str, kind: str | None) -> str | None:
    try:
        key = methods.resolve_drift_method(name)
    except methods.UnknownMethodError as exc:
        return str(exc)
    return None if kind is None else methods.kind_mismatch(key, kind)


class ColumnPolicy(Frozen):
    """Per-column override of the drift method and threshold."""

    method: DriftMethodName = Field("auto", description=_METHOD_HELP + " It must apply to the column's kind.")
    threshold: FiniteFloat | None = Field(
        None,
        description="This column's drift threshold; null: the monitor's `drift.threshold`.",
    )


class FalseAlarms(NamedTuple):
    """A false-alarm budget: ``alarms`` dataset-windows flagged without drift per ``per``."""

    alarms: float  # not "count": a NamedTuple field may not shadow tuple.count
    per: timedelta


_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+per\s+(\d+(?:\.\d+)?)\s*(minutes?|hours?|days?|weeks?)\s*$")
_BUDGET_UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}


def parse_false_alarms(value: str) -> FalseAlarms:
    """``"1 per 30 days"`` (minutes, hours, days, weeks) → ``FalseAlarms(1.0, 30 days)``."""
    if match := _BUDGET.match(value):
        count, per = float(match[1]), float(match[2]) * _BUDGET_UNITS[match[3].rstrip("s")]
        if count > 0 and per > 0:
            return FalseAlarms(count, timedelta(seconds=per))
    raise ValueError(f"expected a budget like '1 per 30 days' (minutes, hours, days or weeks), got {value!r}")


class SlowDriftSettings(Frozen):
    """A sequential detector over each feature's per-window input (docs/detectors.md, Slow drift)."""

    method: Literal["cusum", "page_hinkley"] = Field(
        "cusum",
        description="cusum: the tabular CUSUM against the reference; page_hinkley: the Page–Hinkley test against "
        "the monitored period's own running mean. Each writes one drift score per feature under this method name.",
    )
    allowance: FiniteFloat = Field(
        0.5,
        ge=0,
        description="CUSUM's k (Page–Hinkley's delta), in standard deviations of the per-window input: half the "
        "shift detected fastest.",
    )
    threshold: FiniteFloat = Field(
        5.0,
        gt=0,
        description="CUSUM's h (Page–Hinkley's lambda): the statistic breaches above it. With allowance 0.5, 5 gives "
        "about one false alarm per 465 windows per feature, 4 one per 168.",
    )
    reset: bool = Field(True, description="Restart the statistic after it breached, as the textbook scheme.")
    lookback: int = Field(
        200,
        ge=1,
        le=5000,
        description="Windows of the monitor's stored history the statistic is recomputed from, each window.",
    )
    min_windows: int = Field(
        10, ge=1, description="Page–Hinkley only: windows seen before it may breach (river's min_instances)."
    )


class DriftSettings(Frozen):
    method: DriftMethodName = Field(
        "auto", description=_METHOD_HELP + " Columns of a kind it does not apply to keep auto."
    )
    threshold: FiniteFloat | Literal["auto", "calibrated"] = Field(
        "auto",
        description="Drift threshold of every column tested with `method`: a p-value test flags drift below it, a "
        "distance above it; auto: each test's default (docs/detectors.md); calibrated: each column's threshold at "
        "the window's size, fitted on the reference to keep `false_alarms` (docs/detectors.md, Calibrated "
        "thresholds).",
    )
    # Kept as written (it reads better in the docs and in `config show`); false_alarm_budget parses it.
    false_alarms: Annotated[str, AfterValidator(lambda text: parse_false_alarms(text) and text)] = Field(
        "1 per 30 days",
        description="With threshold: calibrated, how many windows without drift may flag a feature, e.g. "
        "'1 per 30 days'; converted to α per feature with the window length and the number of features.",
    )
    multiple_testing: Literal["none", "holm", "bh"] = Field(
        "none",
        description="Correct the dataset-level decision across features: holm (family-wise error) or bh "
        "(Benjamini–Hochberg, false discovery rate) over the p-values or calibrated tail probabilities; "
        "share_drifted and count_drifted then count the corrected decisions. none: as Evidently.",
    )
    min_effect: FiniteFloat | None = Field(
        None,
        ge=0,
        description="A p-value test flags drift only when the effect size (normed Wasserstein for numeric "
        "columns, PSI for categories) is at least this; the size is reported beside the p-value.",
    )

    @property
    def false_alarm_budget(self) -> FalseAlarms:
        return parse_false_alarms(self.false_alarms)

    drift_share: float = Field(0.5, gt=0, le=1, description="Share of drifted columns that makes the dataset drift.")
    columns: dict[Name, ColumnPolicy] = Field(
        {},
        description="Per-column method and threshold: a feature, `prediction`, `label` or `score`.",
    )
    multivariate: bool = Field(
        False,
        description="Also score drift over all features at once: PCA reconstruction error and a domain classifier's "
        "AUC.",
    )
    slow_drift: SlowDriftSettings | None = Field(
        None,
        description="Also track each feature with a sequential detector that raises on a gradual shift no single "
        "window shows, e.g. {method: cusum, threshold: 5}; null: off.",
    )


class QualitySettings(Frozen):
    enabled: bool = Field(
        True,
        description="Score data quality: missing values, type errors, out-of-range values, unseen categories, volume,"
        " duplicate ids.",
    )
    missing_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="A feature's missing share breaches when it exceeds the reference's by more than this.",
    )
    out_of_range_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Breached when more of a numeric feature's values than this fall outside the reference's [min, "
        "max].",
    )
    unseen_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Breached when more of a categorical feature's values than this were never seen in the reference.",
    )


# Checks that need the monitor's model (a method that applies to the column's kind, metrics of
# the model's task) read it from the validation context that parse_config passes, so they are
# reported together with every other error of the file rather than after those are fixed.
class MonitorConfig(Frozen):
    model: Name = Field(description="The model (under `models`) this monitor watches.")
    window: PositiveDuration = Field(
        timedelta(hours=1),
        description="Length of the tumbling windows, each scored against the reference; aim for 1,000 rows or more "
        "(docs/scheduler.md, Choosing the window size).",
    )
    lateness: Duration = Field(timedelta(minutes=5), description="How long after a window closes it is computed.")
    start: UtcTime | None = Field(None, description="First window to compute; default: the first prediction.")
    reference: ReferenceSpec = Field(description="What each window is compared with.")
    drift: DriftSettings = Field(DriftSettings(), description="Drift tests and thresholds.")
    quality: QualitySettings = Field(QualitySettings(), description="Data-quality checks and thresholds.")
    performance: list[str] = Field(
        [],
        description=f"Classification: {', '.join(methods.CLASSIFICATION_METRICS)}; "
        f"regression: {', '.join(methods.REGRESSION_METRICS)}.",
    )
    estimated_performance: bool = Field(
        False,
        description="Estimate without labels the metrics of `performance` that can be estimated; all of them "
        f"when `performance` is empty. Classifiers with scores (CBPE): {', '.join(methods.ESTIMATED_METRICS)}; "
        f"regression (DLE): {', '.join(methods.ESTIMATED_REGRESSION_METRICS)}.",
    )
    min_rows: int = Field(30, ge=1, description="Fewer rows in a window → status insufficient_data.")
    segments: list[Name] = Field(
        [],
        description="Categorical features whose values split each window into segments, e.g. [channel, region]: "
        "drift, quality and performance are scored per segment as well, against the same reference, and the "
        "segments ranked by how far they moved (docs/detectors.md, Segments).",
    )
    segment_top: int = Field(
        10,
        ge=1,
        le=100,
        description="Per segment feature, the values with the most rows in the window are scored on their own; "
        "the rest are pooled into one segment, '(other)'.",
    )
    segment_min_rows: int | None = Field(
        None,
        ge=1,
        description="A segment with fewer rows is insufficient_data (with its row count) instead of a noisy score; "
        "null: min_rows.",
    )
    recompute_within: Duration = Field(
        timedelta(days=7),
        description="Predictions received after their window was computed recompute it if the window started "
        "within this long before now; older windows are not recomputed, their late rows are counted "
        "(a warning, driftscope_late_rows_not_recomputed_total).",
    )

    @property
    def segment_rows(self) -> int:
        """The fewest rows a segment is scored with."""
        return self.min_rows if self.segment_min_rows is None else self.segment_min_rows

    def estimated_metrics(self, task: str) -> tuple[str, ...]:
        """The metrics estimated for this monitor of a ``task`` model (none when estimation is off)."""
        if not self.estimated_performance:
            return ()
        estimable = methods.estimated_metrics_for(task)
        if not self.performance:
            return estimable
        return tuple(m for m in estimable if m in self.performance)

    @field_validator("drift")
    @classmethod
    def _methods_exist_and_apply(cls, drift: DriftSettings, info: ValidationInfo) -> DriftSettings:
        model = _context_model(info)
        problems = []
        if message := _drift_method_problem(drift.method, None):
            problems.append(("method", message))
        for column, policy in drift.columns.items():
            kind = None if model is None else model.column_kind(column)
            if model is not None and kind is None:
                problems.append((f"columns.{column}", f"not a column of model {info.data['model']!r} "
                                 f"(features: {_known(model.features)}; also prediction, label, score)"))  # fmt: skip
            elif message := _drift_method_problem(policy.method, kind):
                problems.append((f"columns.{column}.method", message))
        if problems:
            raise _Problems(problems)
        return drift

    @field_validator("segments")
    @classmethod
    def _segments_are_categorical_features(cls, segments: list[str], info: ValidationInfo) -> list[str]:
        model = _context_model(info)
        if model is None:
            return segments
        problems = []
        for i, name in enumerate(segments):
            kind = model.features.get(name)
            if kind is None:
                hint = methods.did_you_mean(name, model.features)
                problems.append((f"[{i}]", f"not a feature of model {info.data['model']!r}{hint} "
                                 f"(features: {_known(model.features)})"))  # fmt: skip
            elif kind != "categorical":
                problems.append((f"[{i}]", f"{name} is {kind}: segments split by the values of a categorical "
                                 "feature (a numeric one has as many segments as rows)"))  # fmt: skip
            elif name in segments[:i]:
                problems.append((f"[{i}]", f"{name} is listed twice"))
            elif name == "model_version":  # monitor.store.segments.VERSION
                problems.append((f"[{i}]", "model_version is the name of the per-version segments, scored on their "
                                 "own when several versions serve a window; rename the feature"))  # fmt: skip
        if problems:
            raise _Problems(problems)
        return segments

    @field_validator("performance")
    @classmethod
    def _metrics_exist_and_fit_the_task(cls, metrics: list[str], info: ValidationInfo) -> list[str]:
        model = _context_model(info)
        allowed = methods.PERFORMANCE_METRICS if model is None else methods.metrics_for(model.task)
        problems = []
        for i, m in enumerate(metrics):
            if m not in methods.PERFORMANCE_METRICS:
                hint = methods.did_you_mean(m, allowed)
                problems.append((f"[{i}]", f"unknown metric {m!r}{hint} (valid: {', '.join(allowed)})"))
            elif m not in allowed and model is not None:
                problems.append((f"[{i}]", f"{m} does not apply to a {model.task} model (valid: {', '.join(allowed)})"))
        if model is not None and model.source is not None and model.fields.score is None:
            problems += [
                (f"[{i}]", f"{m} needs the model's scores: set models.{info.data['model']}.fields.score")
                for i, m in enumerate(metrics)
                if m in methods.SCORE_METRICS
            ]
        if problems:
            raise _Problems(problems)
        return metrics

    @field_validator("estimated_performance")
    @classmethod
    def _estimation_possible(cls, enabled: bool, info: ValidationInfo) -> bool:
        if not enabled:
            return enabled
        model = _context_model(info)
        problems = []
        # CBPE reads the classifier's scores; DLE learns the regression error from features and predictions.
        if model is not None and model.task != "regression" and model.source is not None and model.fields.score is None:
            problems.append(f"needs the model's scores: set models.{info.data['model']}.fields.score")
        estimable = (
            methods.ESTIMATED_METRICS + methods.ESTIMATED_REGRESSION_METRICS
            if model is None
            else methods.estimated_metrics_for(model.task)
        )
        performance = info.data.get("performance") or []
        if performance and not set(performance) & set(estimable):
            problems.append(f"none of performance ({', '.join(performance)}) can be estimated "
                            f"(estimable: {', '.join(estimable)})")  # fmt: skip
        if problems:
            raise _Problems([("", message) for message in problems])
        return enabled


def _context_model(info: ValidationInfo, name: str | None = None) -> ModelConfig | None:
    """The monitor's model from the validation context, when :func:`parse_config` gave one."""
    models = (info.context or {}).get("models") or {}
    return models.get(name if name is not None else info.data.get("model"))


# --- alerts -------------------------------------------------------------------------------------

Severity = Literal["info", "warning", "critical"]


class AlertRule(Frozen):
    name: str = Field(description="Names the rule's alerts in messages and the dashboard; `inhibits` uses it.")
    when: str = Field(description="Selector, comparison and threshold, e.g. 'drift.share_drifted > 0.3'.")
    resolve_when: str | None = Field(None, description="Hysteresis: the condition that resolves a firing alert.")
    for_: WindowCount = Field(
        1,
        alias="for",
        description="Windows in a row the condition must hold before the alert fires (pending until then).",
    )
    severity: Severity = Field(
        "warning",
        description="Shown in messages, orders a group's alerts, a label for Alertmanager.",
    )
    models: list[Name] | None = Field(None, description="Only these models; null: every model.")
    monitors: list[Name] | None = Field(
        None,
        description="Only these monitors; null: every monitor of the rule's models.",
    )
    labels: dict[str, str] = Field(
        {},
        description="Extra labels on the rule's alerts, e.g. `{team: ml}`, for routing and `group_by`.",
    )
    group_by: list[str] = Field(
        ["rule", "model"],
        description="Alerts with the same values of these labels are notified together, per channel.",
    )
    notify: list[Name] = Field(
        [],
        description="Channels (under `alerts.channels`) to notify; empty: the dashboard only.",
    )
    repeat_interval: Duration = Field(
        timedelta(hours=4),
        description="A group still firing is notified again after this long (0: at every evaluation).",
    )
    inhibits: list[str] = Field([], description="Names of rules this one mutes (same model) while it fires.")
    min_label_coverage: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Rules on performance.* or labels.* only: windows with a smaller share of labelled predictions "
        "are skipped, so a half-labelled window neither fires, resolves nor breaks a streak; null: every window.",
    )


class SlackChannel(Frozen):
    kind: Literal["slack"] = Field(description="Posts to a Slack incoming webhook.")
    webhook: SecretHttpUrl = Field(description="The incoming webhook's URL, e.g. `${SLACK_WEBHOOK_URL}`.")
    allow_private: bool = Field(False, description="Allow loopback/private targets (refused by default: SSRF).")


class EmailChannel(Frozen):
    kind: Literal["email"] = Field(description="Sends e-mail through an SMTP server.")
    smtp: Annotated[str, _url("smtp", "smtps")] = Field(description="smtp://host:port or smtps://host:port")
    to: list[str] = Field(min_length=1, description="Recipient addresses.")
    sender: str = Field("driftscope@localhost", alias="from", description="Sender address.")
    starttls: bool = Field(False, description="Upgrade an `smtp://` connection to TLS with STARTTLS.")
    username: str | None = Field(None, description="SMTP login (with `password`); null: no login.")
    password: SecretStr | None = Field(None, description="SMTP password, e.g. `${SMTP_PASSWORD}`.")
    timeout: PositiveDuration = Field(timedelta(seconds=10), description="Time limit of one delivery.")

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> EmailChannel:
        if self.starttls and self.smtp.lower().startswith("smtps:"):
            raise _Problems([("starttls", "smtps:// is TLS from the first byte: use starttls with smtp:// only")])
        return self


class WebhookChannel(Frozen):
    kind: Literal["webhook"] = Field(description="POSTs each notification as JSON (docs/alerts.md).")
    url: SecretHttpUrl = Field(description="Where to POST, e.g. `${WEBHOOK_URL}`: secret, as it may carry a token.")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for the X-Driftscope-Signature header.")
    allow_private: bool = Field(False, description="Allow loopback/private targets (refused by default: SSRF).")


class AlertmanagerChannel(Frozen):
    kind: Literal["alertmanager"] = Field(description="Pushes the alerts to Alertmanager, which routes them.")
    url: HttpUrl = Field(description="Alertmanager's base URL; /api/v2/alerts is appended to its path.")
    allow_private: bool = Field(
        False, description="Allow loopback/private targets, as an Alertmanager inside the network is (SSRF)."
    )

    @field_validator("url")
    @classmethod
    def _a_base_url(cls, url: str) -> str:
        # A query or fragment would swallow the appended /api/v2/alerts: any path of the host could be POSTed.
        if "?" in url or "#" in url:
            raise ValueError("a base URL takes no query or fragment ('?' or '#'): /api/v2/alerts is appended to it")
        return url


class ConsoleChannel(Frozen):
    kind: Literal["console"] = Field(description="Prints each notification on the worker's output (demo, tests).")


Channel = Annotated[
    SlackChannel | EmailChannel | WebhookChannel | AlertmanagerChannel | ConsoleChannel,
    Field(discriminator="kind"),
]


class AlertsConfig(Frozen):
    rules: list[AlertRule] = Field([], description="When an alert fires and resolves (docs/alerts.md).")
    channels: dict[Name, Channel] = Field({}, description="Where notifications go, by the name rules give in `notify`.")
    group_wait: Duration = Field(
        timedelta(seconds=30),
        description="A new group waits this long for more alerts before its first notification.",
    )
    group_interval: Duration = Field(
        timedelta(minutes=5),
        description="A group that changed (alerts added or resolved) is notified at most this often (0: at once).",
    )


# --- processes ----------------------------------------------------------------------------------


class ApiSettings(Frozen):
    host: str = Field("127.0.0.1", description="Address the ingestion API listens on; 0.0.0.0 in a container.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the ingestion API.")
    max_body_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        description="Largest request body, in bytes; a larger one gets 413.",
    )


# What a dashboard user may do, each role including the ones before it (docs/security.md#roles-and-scopes).
Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = typing.get_args(Role)


class DashboardUser(Frozen):
    password_hash: str = Field(
        pattern=r"^pbkdf2_sha256\$[1-9][0-9]*\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$",
        description="pbkdf2_sha256$... as printed by `driftscope dashboard hash-password`.",
    )
    role: Role = Field(
        "viewer",
        description="viewer: reads every page; operator: also acknowledges and silences alerts; admin: as operator "
        "(the dashboard manages no keys or references yet). Default viewer: acting is granted, never assumed.",
    )


class DashboardSettings(Frozen):
    host: str = Field("127.0.0.1", description="Address the dashboard listens on; 0.0.0.0 in a container.")
    port: int = Field(8050, ge=1, le=65535, description="Port of the dashboard.")
    workers: int = Field(2, ge=1, description="Server processes of `driftscope dashboard` (`up` and `demo` use one).")
    threads: int = Field(4, ge=1, description="Threads per server process: requests each process serves at once.")
    public_url: HttpUrl = Field("http://127.0.0.1:8050", description="Base of the links in alert messages.")
    auth: Literal["none", "basic", "proxy"] = Field(
        "none",
        description="none: open to anyone who reaches it; basic: the `users` log in; proxy: a reverse proxy "
        "authenticates and sends the user in `proxy_user_header`.",
    )
    users: dict[str, DashboardUser] = Field(
        {}, validate_default=True, description="Required (at least one) with auth: basic."
    )
    proxy_user_header: str = Field(
        "X-Forwarded-User",
        min_length=1,
        description="With auth: proxy, the header holding the user's name.",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        [],
        description="With auth: proxy, the addresses (CIDR) whose user header is believed, "
        "e.g. your ingress controller's pod range; requests from elsewhere are refused.",
    )
    proxy_secret: SecretStr | None = Field(
        None,
        description="With auth: proxy, a secret the proxy sends in `X-Driftscope-Proxy-Secret`, "
        "e.g. `${DASHBOARD_PROXY_SECRET}`; requests without it are refused.",
    )
    proxy_groups_header: str = Field(
        "X-Forwarded-Groups",
        min_length=1,
        description="With auth: proxy, the header holding the user's groups, comma-separated (as oauth2-proxy "
        "sends them); the proxy must set it, never pass on a client's.",
    )
    proxy_group_roles: dict[str, Role] = Field(
        {},
        description="With auth: proxy, the role of each group, e.g. `{sre: operator}`; a user gets the highest "
        "role of their groups, or `proxy_default_role`.",
    )
    proxy_default_role: Role = Field(
        "viewer",
        description="With auth: proxy, the role of a user none of whose groups is in `proxy_group_roles`.",
    )

    @field_validator("proxy_secret")
    @classmethod
    def _proxy_secret_is_long(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 16:
            raise ValueError("give at least 16 characters, e.g. from `openssl rand -hex 32`")
        return secret

    @model_validator(mode="after")
    def _proxy_login_is_guarded(self) -> DashboardSettings:
        problem = self.unguarded_proxy(self.host)
        if problem:
            raise ValueError(problem)
        return self

    def unguarded_proxy(self, host: str) -> str | None:
        """Why proxy login listening on ``host`` would believe anyone's user header, or None."""
        if self.auth != "proxy" or self.trusted_proxies or self.proxy_secret is not None or _is_loopback(host):
            return None
        return (
            f"auth is proxy and the dashboard listens on {host}, so anyone who reaches it can send "
            f"{self.proxy_user_header}: set dashboard.trusted_proxies (the proxy's addresses) or "
            "dashboard.proxy_secret (a secret the proxy sends), or listen on 127.0.0.1"
        )

    @field_validator("users")
    @classmethod
    def _basic_auth_has_users(cls, users: dict[str, DashboardUser], info: ValidationInfo) -> dict[str, DashboardUser]:
        if info.data.get("auth") == "basic" and not users:
            raise ValueError(
                "auth is basic but no user is defined: add one with a password_hash "
                "(printed by `driftscope dashboard hash-password`)"
            )
        return users


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


class WorkerSettings(Frozen):
    metrics_port: int | None = Field(
        9108,
        ge=1,
        le=65535,
        description="Port of the worker's /metrics; null: no /metrics server.",
    )
    metrics_host: str = Field("127.0.0.1", description="Address /metrics binds to; 0.0.0.0 in a container.")
    tick: PositiveDuration = Field(
        timedelta(seconds=30),
        description="How often a worker plans due windows, computes them and evaluates the alert rules.",
    )
    claim_ttl: PositiveDuration = Field(
        timedelta(minutes=10),
        description="How long a worker holds a notification it is sending: another worker sends it after that (a "
        "worker that died).",
    )
    run_lease: PositiveDuration = Field(
        timedelta(minutes=1),
        description="Lease of a run being computed, renewed every third of it while the run computes: a run whose "
        "lease expired (its worker died) is retaken by another worker; also the wait before a failed run is retried.",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description="Claims of a run (or of a recompute) before it ends `failed` with its last error; "
        "`driftscope runs retry` starts it again.",
    )


# --- the store ----------------------------------------------------------------------------------

_URL_SCHEME = re.compile(r"^([A-Za-z0-9]+)(?:\+([A-Za-z0-9_]+))?://")
# The drivers Driftscope works with, and the module each needs; psycopg (3) is installed with it.
_STORE_DRIVERS = {("postgresql", "psycopg"): "psycopg", ("postgresql", "psycopg2"): "psycopg2",
                  ("sqlite", "pysqlite"): "sqlite3"}  # fmt: skip
_STORE_HELP = "postgresql://host:5432/db or sqlite:///driftscope.db"


def store_url(url: str) -> str:
    """The SQLAlchemy URL for a store URL as users write it: ``postgres://`` and ``postgresql://``
    become ``postgresql+psycopg://``; a database or driver that cannot work is a ValueError that
    gives the spelling to use. Messages never repeat the URL: it may carry a password.

    >>> store_url("postgres://driftscope@db/driftscope")
    'postgresql+psycopg://driftscope@db/driftscope'
    """
    match = _URL_SCHEME.match(url)
    if match is None:
        raise ValueError(f"not a database URL (expected e.g. {_STORE_HELP})")
    backend, driver = match[1].lower(), (match[2] or "").lower()
    backend = "postgresql" if backend == "postgres" else backend
    if backend not in ("postgresql", "sqlite"):
        raise ValueError(
            f"unsupported database {match[1]!r}: Driftscope stores in PostgreSQL or SQLite ({_STORE_HELP})"
        )
    driver = driver or ("psycopg" if backend == "postgresql" else "pysqlite")
    module = _STORE_DRIVERS.get((backend, driver))
    right = "sqlite:///..." if backend == "sqlite" else "postgresql+psycopg://... (psycopg 3, comes with Driftscope)"
    if module is None:
        raise ValueError(f"unsupported driver {match[0]!r}: write {right}")
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"driver {driver} is not installed: write {right}")
    try:
        urlsplit(url).port  # noqa: B018  (parsing the port is the check)
    except ValueError:
        raise ValueError(f"the port is not a number (expected e.g. {_STORE_HELP})") from None
    scheme = match[0] if backend == "sqlite" else f"postgresql+{driver}://"
    return scheme + url[match.end() :]


StoreUrl = Annotated[str, AfterValidator(store_url)]


class Config(Frozen):
    store: StoreUrl = Field(
        DEFAULT_STORE_URL,
        repr=False,  # may carry a password
        description="Where Driftscope keeps its data. SQLite, for one machine: `sqlite:///driftscope.db` "
        "(relative to the working directory) or `sqlite:////var/lib/driftscope/driftscope.db` (absolute: four "
        "slashes). PostgreSQL: `postgresql://user@host:5432/db`; `postgres://` and `postgresql+psycopg://` "
        "mean the same (the driver is psycopg 3), other databases and drivers are refused. Keep the password "
        "out of the file: `postgresql://driftscope:${PGPASSWORD}@db/driftscope` (percent-encode `@`, `:` and "
        "`/` in it), or leave it out of the URL and the driver reads `$PGPASSWORD` itself. `$DRIFTSCOPE_STORE` "
        "overrides this key.",
    )
    sources: dict[Name, Source] = Field(
        {},
        description="Where predictions (Elasticsearch) and metrics (Prometheus) are read from.",
    )
    models: dict[Name, ModelConfig] = Field(
        {},
        description="The monitored models: task, features, where their predictions are.",
    )
    monitors: dict[Name, MonitorConfig] = Field(
        {},
        description="What is computed for a model, window by window; a model may have several.",
    )
    alerts: AlertsConfig = Field(AlertsConfig(), description="Alert rules and notification channels.")
    api: ApiSettings = Field(ApiSettings(), description="The ingestion API (`driftscope api`).")
    dashboard: DashboardSettings = Field(DashboardSettings(), description="The dashboard (`driftscope dashboard`).")
    worker: WorkerSettings = Field(
        WorkerSettings(),
        description="The worker (`driftscope worker`): computes windows, sends alerts.",
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> Config:
        errors = [*_dangling_references(self), *_retention_too_short(self), *_pushdown_problems(self)]
        if errors:
            raise _Problems(errors)
        return self


def _kinds(union: Any) -> tuple[str, ...]:
    members = typing.get_args(typing.get_args(union)[0])
    return tuple(typing.get_args(member.model_fields["kind"].annotation)[0] for member in members)


# The ``kind:`` values of sources and channels; the collectors and alerts/registry.py implement
# exactly these (tests/unit/test_config.py checks both).
SOURCE_KINDS: tuple[str, ...] = _kinds(Source)
CHANNEL_KINDS: tuple[str, ...] = _kinds(Channel)


class _Problems(ValueError):
    """Several errors from one validator, each at a key path relative to where the validator runs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{p}: {m}" for p, m in errors))


def _known(names: Mapping[str, Any]) -> str:
    return ", ".join(sorted(names)) or "none defined"


def previous_windows_span(monitor: MonitorConfig) -> timedelta:
    """How far back from now a ``previous_windows`` monitor reads predictions when it computes its newest window:
    the N windows before it, the window itself and its lateness (zero for any other reference)."""
    count = monitor.reference.previous_windows
    return timedelta(0) if count is None else (count + 1) * monitor.window + monitor.lateness


def _retention_too_short(config: Config) -> Iterator[tuple[str, str]]:
    # Prune keeps these rows anyway; a retention shorter than them is a misreading of the config worth saying.
    for name, monitor in config.monitors.items():
        model = config.models.get(monitor.model)
        keep = None if model is None else model.retention.predictions
        needed = previous_windows_span(monitor)
        if keep is not None and keep < needed:
            yield (
                f"models.{monitor.model}.retention.predictions",
                f"{_span(keep)} is shorter than monitors.{name}.reference.previous_windows needs: "
                f"{monitor.reference.previous_windows} windows of {_span(monitor.window)} before the newest, the "
                f"window itself and its lateness ({_span(needed)})",
            )


def _pushdown_problems(config: Config) -> Iterator[tuple[str, str]]:
    # A pushdown model's predictions never reach the store: nothing there anchors a first window or holds a
    # stored reference range.
    for name, model in config.models.items():
        if model.mode == "pushdown" and model.source is None:
            yield f"models.{name}.mode", "pushdown needs an elasticsearch `source` (the aggregations run there)"
    for name, monitor in config.monitors.items():
        watched = config.models.get(monitor.model)
        if watched is None or watched.mode != "pushdown":
            continue
        if monitor.start is None:
            yield (
                f"monitors.{name}.start",
                f"required for pushdown model {monitor.model!r}: the store holds none of its predictions to start from",
            )
        if monitor.reference.dataset is None:
            yield (
                f"monitors.{name}.reference",
                f"pushdown model {monitor.model!r} needs a `dataset` reference (range and previous_windows read "
                "predictions from the store)",
            )


def _span(value: timedelta) -> str:
    """``timedelta`` → the largest whole unit a user writes: ``30d``, ``6h``, ``1805m``."""
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds / _UNIT_SECONDS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _dangling_references(config: Config) -> Iterator[tuple[str, str]]:
    for name, model in config.models.items():
        if model.source is not None:
            source = config.sources.get(model.source)
            if source is None:
                yield f"models.{name}.source", f"unknown source {model.source!r} (known: {_known(config.sources)})"
            elif source.kind != "elasticsearch":
                yield f"models.{name}.source", f"source {model.source!r} is {source.kind}, expected elasticsearch"
        for metric, query in model.metrics.items():
            source = config.sources.get(query.source)
            if source is None:
                yield (
                    f"models.{name}.metrics.{metric}.source",
                    f"unknown source {query.source!r} (known: {_known(config.sources)})",
                )
            elif source.kind != "prometheus":
                yield (
                    f"models.{name}.metrics.{metric}.source",
                    f"source {query.source!r} is {source.kind}, expected prometheus",
                )
    for name, monitor in config.monitors.items():
        if monitor.model not in config.models:
            yield f"monitors.{name}.model", f"unknown model {monitor.model!r} (known: {_known(config.models)})"
    rule_names = {rule.name for rule in config.alerts.rules}
    for index, rule in enumerate(config.alerts.rules):
        for channel in rule.notify:
            if channel not in config.alerts.channels:
                yield (
                    f"alerts.rules[{index}].notify",
                    f"unknown channel {channel!r} (known: {_known(config.alerts.channels)})",
                )
        for muted in rule.inhibits:
            if muted not in rule_names:
                yield f"alerts.rules[{index}].inhibits", f"unknown rule {muted!r}"
        for model_name in rule.models or ():
            if model_name not in config.models:
                yield (
                    f"alerts.rules[{index}].models",
                    f"unknown model {model_name!r} (known: {_known(config.models)})",
                )


# --- loading ------------------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, path: str, env: Mapping[str, str], errors: list[tuple[str, str]]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; an unset variable is an error at its key."""
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), env, errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", env, errors) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        name, default = match[1], match[2]
        if name in env:
            return env[name]
        if default is not None:
            return default
        errors.append((path, f"environment variable {name} is not set"))
        return ""

    return _ENV_REF.sub(substitute, node)


def _format_location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif (i == 2 and loc[:1] == ("sources",)) or (i == 3 and loc[:2] == ("alerts", "channels")):
            continue  # pydantic's discriminated-union tag (the kind), not a key the user wrote
        elif part.startswith("function-") or part.endswith("]"):
            continue
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def _format_error(error: Mapping[str, Any]) -> str:
    kind, given = error["type"], error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = methods.did_you_mean(given, choices) if isinstance(given, str) else ""
        return f"expected {'|'.join(choices)}, got {given!r}{hint}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx.get('tag')!r}, expected {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"missing 'kind' (one of {ctx.get('expected_tags', '')})" if ctx else "missing 'kind'"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{message}, got {given!r}" if kind.endswith(("_type", "_parsing")) and given is not None else message


def _valid_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str] | None:
    """The keys allowed where ``loc`` points, to list them in an unknown-key error."""
    node: Any = model
    for part in loc[:-1]:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part)) or next(
                (f for f in node.model_fields.values() if f.alias == part), None
            )
            node = None if field is None else field.annotation
        else:
            node = _child_type(node, part)
        if node is None:
            return None
    if isinstance(node, type) and issubclass(node, BaseModel):
        return sorted(f.alias or name for name, f in node.model_fields.items())
    return None


def _child_type(annotation: Any, part: int | str) -> Any:
    """The type one step below ``annotation``: a dict's value, a list's item, a union's tagged member."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _child_type(args[0], part)
    if origin is dict:
        return args[1]
    if origin is list:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        for member in args:
            kind = getattr(member, "model_fields", {}).get("kind")
            if kind is not None and part in typing.get_args(kind.annotation):
                return member
    return None


# Pydantic names the member of a union that failed (``threshold.float``); the user wrote ``threshold``.
_UNION_MEMBER_ERRORS = ("finite_number", "float_parsing", "float_type")


def _join(where: str, path: str) -> str:
    if not where or not path:
        return where or path
    return f"{where}{path}" if path.startswith("[") else f"{where}.{path}"


def _models_that_validate(data: Mapping[str, Any]) -> dict[str, ModelConfig]:
    """Each model that is valid on its own: the monitors of a valid model are checked against it
    even when another part of the file has errors, so every error is reported in one pass."""
    raw = data.get("models")
    models: dict[str, ModelConfig] = {}
    for name, entry in raw.items() if isinstance(raw, dict) else ():
        try:
            models[name] = ModelConfig.model_validate(entry)
        except ValidationError:
            continue  # the full validation reports it
    return models


def parse_config(data: Any, source: str = "config", env: Mapping[str, str] | None = None) -> Config:
    """Validate already-parsed YAML/JSON data; raises :class:`ConfigError` listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("(top level)", f"expected a mapping of keys, got {type(data).__name__}")], source)
    errors: list[tuple[str, str]] = []
    data = _interpolate(data, "", os.environ if env is None else env, errors)
    unset = {path for path, _ in errors}
    try:
        config = Config.model_validate(data, context={"models": _models_that_validate(data)})
    except ValidationError as exc:
        for error in exc.errors():
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, _Problems):
                where = _format_location(error["loc"]) if error["loc"] else ""
                errors.extend((_join(where, path), message) for path, message in cause.errors)
                continue
            loc = error["loc"]
            if error["type"] in _UNION_MEMBER_ERRORS and loc and loc[-1] == "float":
                loc = loc[:-1]
            path, message = _format_location(loc), _format_error(error)
            if path in unset:
                continue  # the empty string left by an unset variable: its error says what to fix
            if error["type"] == "extra_forbidden" and (valid := _valid_keys(Config, error["loc"])):
                message += f" (valid keys: {', '.join(valid)})"
            errors.append((path, message))
    else:
        if not errors:
            return config
    raise ConfigError(errors, source)


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read ``driftscope.yaml`` (or ``$DRIFTSCOPE_CONFIG``); ``$DRIFTSCOPE_STORE`` overrides the store URL."""
    env = os.environ if env is None else env
    chosen = path or env.get(CONFIG_ENV)
    if chosen is None:
        data: Any = {}
        source = "(defaults)"
    else:
        file = Path(chosen)
        source = str(file)
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([("(file)", f"{file} does not exist")], source) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
            raise ConfigError([(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")], source) from None
    if isinstance(data, dict) and env.get(STORE_ENV):
        data = {**data, "store": env[STORE_ENV]}
    elif data is None and env.get(STORE_ENV):
        data = {"store": env[STORE_ENV]}
    else:
        return parse_config(data, source, env)
    try:
        return parse_config(data, source, env)
    except ConfigError as exc:
        # The file's store was replaced: point at where the value came from.
        errors = [(p, f"{m} (from ${STORE_ENV})" if p == "store" else m) for p, m in exc.errors]
        raise ConfigError(errors, source) from None
