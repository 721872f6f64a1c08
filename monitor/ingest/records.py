"""Validation of incoming records (pure): the two record shapes, the per-field checks, and the
:class:`Rejection` that names the record and lists every problem of it, each with its field."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from monitor.config import FieldMap, ModelConfig
from monitor.store.deployments import check_version
from monitor.store.tables import utcnow

log = logging.getLogger(__name__)

Shape = Literal["native", "canonical"]

# The canonical shape, expressed as a field map so both shapes share one validator.
CANONICAL_FIELDS = FieldMap(
    id="id",
    timestamp="timestamp",
    prediction="prediction",
    score="score",
    label="label",
    features="features",
    model_version="model_version",
)
CANONICAL_KEYS = frozenset({"id", "timestamp", "features", "prediction", "score", "label", "model_version"})
CANONICAL_LABEL_KEYS = frozenset({"id", "timestamp", "label"})

MAX_ID_LENGTH = 200  # prediction.prediction_id is VARCHAR(200)
MAX_STRING_LENGTH = 1024  # categories and class names; a 10 MB string is a bug upstream, not a category
MAX_PAYLOAD_CHARS = 2000  # how much of a rejected record is kept for debugging
CHUNK = 2000  # records per statement: bounds statement size, not round trips per row
# Epoch numbers at or above this are milliseconds (1e11 seconds is the year 5138).
EPOCH_MILLIS_FROM = 1e11
# Class labels are stored as JSON integers, which the stores and orjson hold in 64 bits.
INT64_RANGE = range(-(2**63), 2**63)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a record; ``field`` is the offending path ("" = the whole record)."""

    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why record ``index`` of a batch was not stored: all its problems (at least one), in check order."""

    index: int
    problems: tuple[Problem, ...]
    record_ref: str | None = None

    @property
    def fields(self) -> str:
        """The offending paths, comma-separated (``rejected_record.field``)."""
        return ", ".join(p.field for p in self.problems if p.field)

    @property
    def message(self) -> str:
        """``[3].features.age: unknown feature …; [3].prediction: required field is null``."""
        return "; ".join(
            f"[{self.index}].{p.field}: {p.reason}" if p.field else f"[{self.index}]: {p.reason}" for p in self.problems
        )

    def to_dict(self) -> dict[str, Any]:
        first = self.problems[0]
        return {
            "index": self.index,
            # The first problem, as answered before ``problems`` existed (clients may read these two).
            "field": first.field,
            "reason": first.reason,
            "record_ref": self.record_ref,
            "message": self.message,
            "problems": [{"field": p.field, "reason": p.reason} for p in self.problems],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rejection:
        # An answer stored for an Idempotency-Key before ``problems`` existed holds the first problem only.
        problems = data.get("problems") or [data]
        return cls(data["index"], tuple(Problem(p["field"], p["reason"]) for p in problems), data.get("record_ref"))


@dataclass(frozen=True, slots=True)
class UnparsableRecord:
    """A batch element that was not even valid JSON (e.g. one NDJSON line); it is rejected with ``reason``."""

    reason: str
    raw: str


@dataclass(slots=True)
class ValidPrediction:
    id: str
    ts: datetime
    features: dict[str, Any]
    prediction: Any
    score: Any
    label: Any
    model_version: str | None = None  # None: the version deployed at ``ts``


@dataclass(slots=True)
class ValidLabel:
    id: str
    label: Any
    ts: datetime


class _Invalid(Exception):
    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason


class _Checks:
    """Runs every check of one record and keeps each failure, so its rejection lists them all."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def run(self, check: Callable[..., Any], *args: Any) -> Any:
        """``check(*args)``, or None when it failed (the record is then rejected, so None is never stored)."""
        try:
            return check(*args)
        except _Invalid as exc:
            self.problems.append(Problem(exc.field, exc.reason))
            return None


# --- validation (pure) --------------------------------------------------------------------------

_MISSING: Any = object()


def resolve_path(record: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path``: a flat key containing dots, or nested objects; ``_MISSING`` if absent."""
    if path in record:
        return record[path]
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _show(value: Any) -> str:
    """A short, JSON-looking rendering of a bad value for an error message."""
    if isinstance(value, str) and len(value) > 40:
        return orjson.dumps(value[:40]).decode()[:-1] + f'…" ({len(value)} characters)'
    try:
        shown = orjson.dumps(value).decode()
    except TypeError:
        shown = repr(value)
    except orjson.JSONEncodeError:
        shown = repr(value)
    return shown if len(shown) <= 60 else shown[:60] + "…"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def parse_json(data: bytes) -> Any:
    """``data`` parsed as JSON (UTF-8), except that ``NaN`` and ``±Infinity`` literals become floats.

    They are not JSON, but Python's json and pandas write them; read, they are rejected by the field
    checks, which name the field, and the batch's other records are kept. Raises ValueError (orjson's
    message) for anything else that is not JSON, including what the stores cannot hold (lone
    surrogates, integers past 64 bits) and nesting past orjson's depth limit.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        error = exc
    # Only bodies orjson refused pay for the slower parser.
    try:
        parsed = json.loads(data)
        orjson.dumps(parsed)
    except (ValueError, TypeError, RecursionError):
        raise error from None
    return parsed


def parse_timestamp(value: Any) -> datetime:
    """ISO-8601 text (no offset means UTC) or epoch seconds / milliseconds → aware UTC datetime."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected an ISO-8601 time or epoch seconds/milliseconds, got {_show(value)}")
    try:
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError(f"expected a finite epoch time, got {value}")
            seconds = value / 1000 if abs(value) >= EPOCH_MILLIS_FROM else value
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str) and len(value) <= 64:
            parsed = datetime.fromisoformat(value)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise ValueError(f"expected an ISO-8601 time or epoch seconds/milliseconds, got {_show(value)}")


def _number(value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(where, f"expected number, got {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(where, f"expected a finite number, got {value}")
    return value


def _check_text(value: str, where: str, limit: int = MAX_STRING_LENGTH) -> str:
    if len(value) > limit:
        raise _Invalid(where, f"string of {len(value)} characters is longer than {limit}")
    if "\x00" in value:
        # Postgres text and jsonb cannot hold NUL: accepting it would fail the whole batch there.
        raise _Invalid(where, "string contains a NUL (\\u0000) character")
    return value


def _category(value: Any, where: str) -> str:
    if isinstance(value, str):
        return _check_text(value, where)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise _Invalid(where, f"expected string, got {_show(value)}")


def _class_value(value: Any, where: str, model: ModelConfig) -> Any:
    """A class label (prediction or ground truth) for a classifier; a finite number for a regressor."""
    if model.task == "regression":
        return _number(value, where)
    sent = value
    if isinstance(value, bool) or (isinstance(value, float) and math.isfinite(value) and value.is_integer()):
        value = int(value)
    if isinstance(value, str):
        _check_text(value, where)
    elif not isinstance(value, int):
        raise _Invalid(where, f"expected a class (string or integer), got {_show(value)}")
    elif value not in INT64_RANGE:
        raise _Invalid(where, f"integer class {_show(sent)} is outside the 64-bit range")
    if model.classes is not None and str(value) not in model.classes:
        raise _Invalid(where, f"{_show(value)} is not one of the classes {model.classes}")
    return value


def _score(value: Any, where: str, model: ModelConfig) -> Any:
    if model.task == "multiclass" and isinstance(value, Mapping):
        return {_category(k, where): _number(v, f"{where}.{k}") for k, v in value.items()}
    number = _number(value, where)
    if model.task == "binary" and not 0 <= number <= 1:
        raise _Invalid(where, f"expected a probability in [0, 1], got {_show(value)}")
    return number


def _required(value: Any, where: str) -> Any:
    """``value`` if present; a sender must learn whether it left the key out or sent null for it."""
    if value is _MISSING:
        raise _Invalid(where, "required field is missing")
    if value is None:
        raise _Invalid(where, "required field is null")
    return value


def _record_id(value: Any, where: str) -> str:
    value = _required(value, where)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Invalid(where, f"expected string or integer id, got {_show(value)}")
    value = str(value)
    if not value or len(value) > MAX_ID_LENGTH:
        raise _Invalid(where, f"id must be 1 to {MAX_ID_LENGTH} characters, got {len(value)}")
    return _check_text(value, where, MAX_ID_LENGTH)


def _version(value: Any, where: str) -> str:
    try:
        return check_version(value)
    except ValueError as exc:
        raise _Invalid(where, str(exc)) from None


def _timestamp(value: Any, where: str) -> datetime:
    value = _required(value, where)
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise _Invalid(where, str(exc)) from None


def _unknown_keys(record: Mapping[str, Any], allowed: frozenset[str]) -> list[Problem]:
    expected = f"unknown field (expected {', '.join(sorted(allowed))})"
    return [Problem(str(key), expected) for key in record if key not in allowed]


def _object(value: Any, where: str) -> Mapping[str, Any]:
    value = _required(value, where)
    if not isinstance(value, Mapping):
        raise _Invalid(where, f"expected object, got {_type_name(value)}")
    return value


def _features(record: Mapping[str, Any], model: ModelConfig, fields: FieldMap, checks: _Checks) -> dict[str, Any]:
    if fields.features is None:
        source: Mapping[str, Any] = record
        prefix = ""
    else:
        found = checks.run(_object, resolve_path(record, fields.features), fields.features)
        if found is None:
            return {}
        known = ", ".join(model.features)
        checks.problems += [
            Problem(f"{fields.features}.{name}", f"unknown feature (known: {known})")
            for name in found
            if name not in model.features
        ]
        source, prefix = found, f"{fields.features}."
    values: dict[str, Any] = {}
    for name, kind in model.features.items():
        value = source.get(name)
        # Missing and null are the same thing for a feature: data quality counts them.
        if value is None:
            values[name] = None
        elif kind == "numeric":
            # Fast path for the common case (this loop runs for every feature of every record);
            # anything unusual goes through the checks that explain what is wrong.
            if type(value) is int or (type(value) is float and math.isfinite(value)):
                values[name] = value
            else:
                values[name] = checks.run(_number, value, prefix + name)
        elif type(value) is str and len(value) <= MAX_STRING_LENGTH and "\x00" not in value:
            values[name] = value
        else:
            values[name] = checks.run(_category, value, prefix + name)
    return values


def _not_an_object(record: Any) -> Problem | None:
    if isinstance(record, UnparsableRecord):
        return Problem("", record.reason)
    if not isinstance(record, Mapping):
        return Problem("", f"expected a JSON object, got {_type_name(record)}")
    return None


def _required_class(value: Any, where: str, model: ModelConfig) -> Any:
    return _class_value(_required(value, where), where, model)


def _validate_prediction(
    record: Any, model: ModelConfig, fields: FieldMap, canonical: bool
) -> ValidPrediction | list[Problem]:
    if (problem := _not_an_object(record)) is not None:
        return [problem]
    checks = _Checks()
    if canonical:
        checks.problems += _unknown_keys(record, CANONICAL_KEYS)
    id_ = checks.run(_record_id, resolve_path(record, fields.id), fields.id)
    ts = checks.run(_timestamp, resolve_path(record, fields.timestamp), fields.timestamp)
    features = _features(record, model, fields, checks)
    prediction = checks.run(_required_class, resolve_path(record, fields.prediction), fields.prediction, model)
    score = label = None
    if fields.score is not None and (raw := resolve_path(record, fields.score)) not in (_MISSING, None):
        score = checks.run(_score, raw, fields.score, model)
    if fields.label is not None and (raw := resolve_path(record, fields.label)) not in (_MISSING, None):
        label = checks.run(_class_value, raw, fields.label, model)
    version = None
    if fields.model_version is not None and (raw := resolve_path(record, fields.model_version)) not in (_MISSING, None):
        version = checks.run(_version, raw, fields.model_version)
    return checks.problems or ValidPrediction(id_, ts, features, prediction, score, label, version)


def _validate_label(
    record: Any, model: ModelConfig, fields: FieldMap, canonical: bool, now: datetime
) -> ValidLabel | list[Problem]:
    if (problem := _not_an_object(record)) is not None:
        return [problem]
    if fields.label is None:  # the config is wrong, not the record: its other problems would only distract
        return [Problem("", "the model's config maps no label field (models.<name>.fields.label)")]
    checks = _Checks()
    if canonical:
        checks.problems += _unknown_keys(record, CANONICAL_LABEL_KEYS)
    id_ = checks.run(_record_id, resolve_path(record, fields.id), fields.id)
    label = checks.run(_required_class, resolve_path(record, fields.label), fields.label, model)
    raw_ts = resolve_path(record, fields.timestamp)
    ts = now if raw_ts is _MISSING or raw_ts is None else checks.run(_timestamp, raw_ts, fields.timestamp)
    return checks.problems or ValidLabel(id_, label, ts)


def _reference(record: Any, index: int, fields: FieldMap, ref: str | None) -> str:
    if ref is not None:
        return ref
    if isinstance(record, Mapping):
        value = resolve_path(record, fields.id)
        if isinstance(value, str | int) and not isinstance(value, bool) and len(str(value)) <= 200:
            return f"id={value}"
    return f"index={index}"


def _split(
    records: Sequence[Any], fields: FieldMap, refs: Sequence[str] | None, validate: Callable[[Any], Any]
) -> tuple[list[Any], list[Rejection]]:
    good: list[Any] = []
    bad: list[Rejection] = []
    for index, record in enumerate(records):
        result = validate(record)
        if isinstance(result, list):
            bad.append(
                Rejection(index, tuple(result), _reference(record, index, fields, refs[index] if refs else None))
            )
        else:
            good.append(result)
    return good, bad


def validate_predictions(
    model: ModelConfig, records: Sequence[Any], shape: Shape = "native", refs: Sequence[str] | None = None
) -> tuple[list[ValidPrediction], list[Rejection]]:
    """Split ``records`` into valid predictions and rejections (pure: no I/O)."""
    fields = CANONICAL_FIELDS if shape == "canonical" else model.fields
    canonical = shape == "canonical"
    return _split(records, fields, refs, lambda record: _validate_prediction(record, model, fields, canonical))


def validate_labels(
    model: ModelConfig,
    records: Sequence[Any],
    shape: Shape = "native",
    refs: Sequence[str] | None = None,
    now: datetime | None = None,
) -> tuple[list[ValidLabel], list[Rejection]]:
    """Split label ``records`` into valid labels and rejections (pure: no I/O)."""
    fields = CANONICAL_FIELDS if shape == "canonical" else model.fields
    canonical, at = shape == "canonical", now or utcnow()
    return _split(records, fields, refs, lambda record: _validate_label(record, model, fields, canonical, at))
