"""Data quality of one window against a reference profile.

Per column (``kind="quality"``, ``feature=<column>``):

- ``missing_share`` — share of missing values (None, NaN, NaT, pd.NA, and empty/blank strings).
  Breached when it exceeds the reference's missing share by more than ``missing_share_increase``.
- ``type_error_share`` — share of non-missing values that do not parse as the declared kind.
  Numeric: anything :func:`pandas.to_numeric` rejects, booleans, and ±inf (an infinite measurement
  cannot be compared or binned). Categorical: anything that is not a string, bool or integer
  (an integral float such as ``3.0`` is the integer 3; containers and fractional floats are errors).
- ``out_of_range_share`` (numeric) — share of valid values outside the reference ``[min, max]``.
- ``unseen_category_share`` (categorical) — share of valid values never seen in the reference.

Per window (``feature=None``):

- ``volume`` — row count; ``details`` hold the expected count (reference rate × window length)
  and the ratio; breached outside ``[volume_ratio_low, volume_ratio_high]``.
- ``duplicate_ids`` — number of rows whose prediction id repeats an earlier row.

Shares are computed over the values that can carry them (out-of-range over valid values, etc.);
when there are none the score is ``Score.insufficient`` with the reason.

Typed columns (float, integer, bool) are parsed with vectorized NumPy and categorical columns of
strings and numbers once per distinct value; only object columns that truly mix types go value by
value. All paths count exactly alike.

Example
-------
>>> import numpy as np
>>> ref = QualityReference.fit({"x": np.array([1.0, 2.0, 3.0])}, {"x": "numeric"})
>>> [s.value for s in quality_scores(ref, {"x": np.array([2.0, 5.0, None, "oops"], dtype=object)})][:3]
[0.25, 0.3333333333333333, 0.5]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors.types import ColumnKind, Score


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    """When a quality score is breached. All shares are fractions in [0, 1]."""

    missing_share_increase: float = 0.05
    type_error_share: float = 0.0
    out_of_range_share: float = 0.05
    unseen_category_share: float = 0.05
    volume_ratio_low: float = 0.5
    volume_ratio_high: float = 2.0
    duplicate_ids: int = 0


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    kind: ColumnKind
    missing_share: float
    # numeric: valid range; None when the reference had no valid value
    minimum: float | None = None
    maximum: float | None = None
    # categorical: canonical category strings seen in the reference
    categories: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class QualityReference:
    """What a window is compared with; fitted once, cached in the store via :meth:`to_dict`."""

    columns: Mapping[str, ColumnProfile]
    n_rows: int
    rate_per_second: float | None = None

    @classmethod
    def fit(
        cls,
        reference: Mapping[str, Any],
        kinds: Mapping[str, ColumnKind],
        *,
        reference_seconds: float | None = None,
    ) -> QualityReference:
        """Profile the reference columns named in ``kinds``.

        ``reference_seconds`` is the length of the time range the reference covers; with it the
        reference's row rate is kept so windows can be checked for volume.
        """
        columns = {}
        n_rows = None
        for name, kind in kinds.items():
            if name not in reference:
                raise ValueError(f"reference has no column {name!r}")
            parsed = _parse(reference[name], kind, name)
            if n_rows is None:
                n_rows = parsed.n
            elif parsed.n != n_rows:
                raise ValueError(f"reference column {name!r} has {parsed.n} rows, expected {n_rows}")
            missing = parsed.n_missing / parsed.n if parsed.n else 0.0
            if kind == "numeric":
                valid = parsed.numbers
                columns[name] = ColumnProfile(
                    kind,
                    float(missing),
                    minimum=float(valid.min()) if len(valid) else None,
                    maximum=float(valid.max()) if len(valid) else None,
                )
            else:
                columns[name] = ColumnProfile(kind, float(missing), categories=frozenset(parsed.categories))
        n = n_rows or 0
        rate = None
        if reference_seconds is not None:
            if reference_seconds <= 0:
                raise ValueError(f"reference_seconds must be > 0, got {reference_seconds}")
            rate = n / reference_seconds
        return cls(columns=columns, n_rows=n, rate_per_second=rate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "rate_per_second": self.rate_per_second,
            "columns": {
                name: {
                    "kind": p.kind,
                    "missing_share": p.missing_share,
                    "minimum": p.minimum,
                    "maximum": p.maximum,
                    "categories": sorted(p.categories),
                }
                for name, p in self.columns.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityReference:
        columns = {
            name: ColumnProfile(
                kind=c["kind"],
                missing_share=float(c["missing_share"]),
                minimum=c["minimum"],
                maximum=c["maximum"],
                categories=frozenset(c["categories"]),
            )
            for name, c in data["columns"].items()
        }
        rate = data.get("rate_per_second")
        return cls(columns=columns, n_rows=int(data["n_rows"]), rate_per_second=None if rate is None else float(rate))


@dataclass(frozen=True, slots=True)
class _Parsed:
    """One column reduced to what the scores need: counts, the valid numbers, the valid categories."""

    n: int
    n_missing: int
    n_type_error: int
    numbers: np.ndarray  # numeric kind: the valid values as float64, in row order
    categories: Mapping[str, int]  # categorical kind: canonical string -> how many valid values

    @property
    def n_valid(self) -> int:
        return self.n - self.n_missing - self.n_type_error


_NO_NUMBERS = np.empty(0, dtype=np.float64)
# Object columns whose values are only of these types are factorized exactly: two values of them
# that compare equal (1 == 1.0, "a" == np.str_("a")) have the same canonical category, and pandas'
# missing sentinel (None, NaN, pd.NA) is exactly ``pd.isna``. bool is left out: True == 1, but
# their categories are "True" and "1".
_FLOATS_OR_NONE = frozenset({float, np.float64, type(None)})
_FACTORIZABLE = frozenset({str, np.str_, int, float, np.float64, type(None), type(pd.NA)})


def _as_column(values: Any) -> np.ndarray:
    """A 1-D array; typed (float, integer, bool) when it already was one, else of Python objects.

    Lists go straight to objects: NumPy would turn ``[True, 2]`` into integers and ``[1, "a"]``
    into strings, hiding the type errors this detector counts.
    """
    if isinstance(values, np.ndarray | pd.Series | pd.Index):
        array = np.asarray(values)
        if array.dtype.kind in "fiub":
            return array
    return np.asarray(values, dtype=object)


def _blank(values: np.ndarray) -> np.ndarray:
    return np.fromiter((isinstance(v, str) and not v.strip() for v in values), dtype=bool, count=len(values))


def _is_missing(values: np.ndarray, types: set[type]) -> np.ndarray:
    """None, NaN, NaT, pd.NA and blank strings; ``types`` are the types present in ``values``."""
    missing = np.asarray(pd.isna(values), dtype=bool)
    if any(issubclass(t, str) for t in types):
        missing |= _blank(values)
    return missing


def _canonical_category(value: Any) -> str | None:
    """The category a value stands for, or None when it is not a category."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return None


def _parse_floats(x: np.ndarray) -> _Parsed:
    valid = np.isfinite(x)
    n_valid = int(valid.sum())
    n_missing = 0 if n_valid == len(x) else int(np.isnan(x).sum())
    # Read only (ranges and counts): an all-valid column is not copied.
    numbers = x if n_valid == len(x) else x[valid]
    return _Parsed(len(x), n_missing, len(x) - n_missing - n_valid, numbers, {})


def _parse_numeric(values: np.ndarray) -> _Parsed:
    n = len(values)
    if values.dtype.kind == "b":
        return _Parsed(n, 0, n, _NO_NUMBERS, {})
    if values.dtype.kind in "iu":
        return _Parsed(n, 0, 0, values.astype(np.float64), {})
    if values.dtype.kind == "f":
        return _parse_floats(values.astype(np.float64, copy=False))
    types = set(map(type, values))
    if types <= _FLOATS_OR_NONE:
        # Python floats and None (JSON numbers with gaps, a file's column as objects) convert
        # exactly; None becomes NaN, missing either way.
        return _parse_floats(np.array(values.tolist(), dtype=np.float64))
    missing = _is_missing(values, types)
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    type_error = ~missing & ~np.isfinite(numbers)
    if any(issubclass(t, bool | np.bool_) for t in types):
        is_bool = np.fromiter((isinstance(v, bool | np.bool_) for v in values), dtype=bool, count=n)
        type_error |= ~missing & is_bool
    valid = ~missing & ~type_error
    return _Parsed(n, int(missing.sum()), int(type_error.sum()), numbers[valid], {})


def _parse_categorical(values: np.ndarray) -> _Parsed:
    n = len(values)
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=False) == "string":
        types: set[type] = set()  # all str (the usual text column): no Python loop to find that out
    else:
        types = set(map(type, values))
    if types <= _FACTORIZABLE:
        # Canonical forms are computed once per distinct value, not once per row.
        codes, uniques = pd.factorize(values)
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques)).tolist()
        n_missing, n_type_error = int((codes < 0).sum()), 0
        categories: dict[str, int] = {}
        for value, count in zip(uniques.tolist(), counts, strict=True):
            if isinstance(value, str) and not value.strip():
                n_missing += count
            elif (category := _canonical_category(value)) is None:
                n_type_error += count
            else:
                categories[category] = categories.get(category, 0) + count
        return _Parsed(n, n_missing, n_type_error, _NO_NUMBERS, categories)
    # Objects that do not compare like their categories (True == 1, Decimal, containers): row by row.
    missing = _is_missing(values, types)
    canon = [None if m else _canonical_category(v) for v, m in zip(values.tolist(), missing.tolist(), strict=True)]
    valid = [c for c in canon if c is not None]
    n_missing = int(missing.sum())
    return _Parsed(n, n_missing, n - n_missing - len(valid), _NO_NUMBERS, dict(Counter(valid)))


def _parse(values: Any, kind: ColumnKind, name: str) -> _Parsed:
    column = _as_column(values)
    if column.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-D, got shape {column.shape}")
    if kind == "numeric":
        return _parse_numeric(column)
    if kind == "categorical":
        return _parse_categorical(column)
    raise ValueError(f"column {name!r}: kind must be 'numeric' or 'categorical', got {kind!r}")


def _share_score(method: str, feature: str, count: int, of: int, threshold: float, what: str, **details: Any) -> Score:
    if of == 0:
        return Score.insufficient("quality", method, f"no {what} values in window", feature=feature)
    share = count / of
    return Score(
        kind="quality",
        method=method,
        value=share,
        feature=feature,
        threshold=threshold,
        breached=share > threshold,
        details={"count": count, "of": of, **details},
    )


@dataclass(frozen=True, slots=True)
class ColumnCounts:
    """What the quality scores of one column need, counted: from its values (:func:`quality_scores`) or
    by the source (push-down mode's aggregations, :func:`counted_quality_scores`)."""

    n: int
    n_missing: int
    n_type_error: int
    n_out_of_range: int  # numeric: valid values outside the reference's [min, max]
    categories: Mapping[str, int]  # categorical: canonical category -> how many valid values

    @property
    def n_valid(self) -> int:
        return self.n - self.n_missing - self.n_type_error


def _counted(parsed: _Parsed, profile: ColumnProfile) -> ColumnCounts:
    outside = 0
    if profile.kind == "numeric" and profile.minimum is not None and profile.maximum is not None:
        x = parsed.numbers
        outside = int(((x < profile.minimum) | (x > profile.maximum)).sum())
    return ColumnCounts(parsed.n, parsed.n_missing, parsed.n_type_error, outside, parsed.categories)


def _column_scores(name: str, counts: ColumnCounts, profile: ColumnProfile, th: QualityThresholds) -> list[Score]:
    if counts.n == 0:
        reason = "empty window"
        methods = [
            "missing_share",
            "type_error_share",
            "out_of_range_share" if profile.kind == "numeric" else "unseen_category_share",
        ]
        return [Score.insufficient("quality", m, reason, feature=name) for m in methods]
    missing_threshold = min(profile.missing_share + th.missing_share_increase, 1.0)
    scores = [
        _share_score(
            "missing_share",
            name,
            counts.n_missing,
            counts.n,
            missing_threshold,
            "any",
            reference_missing_share=profile.missing_share,
        ),
        _share_score(
            "type_error_share",
            name,
            counts.n_type_error,
            counts.n - counts.n_missing,
            th.type_error_share,
            "non-missing",
        ),
    ]
    n_valid = counts.n_valid
    if profile.kind == "numeric":
        if profile.minimum is None or profile.maximum is None:
            scores.append(
                Score.insufficient("quality", "out_of_range_share", "reference has no valid values", feature=name)
            )
        else:
            scores.append(
                _share_score(
                    "out_of_range_share",
                    name,
                    counts.n_out_of_range,
                    n_valid,
                    th.out_of_range_share,
                    "valid",
                    reference_min=profile.minimum,
                    reference_max=profile.maximum,
                )
            )
    else:
        if not profile.categories:
            scores.append(
                Score.insufficient("quality", "unseen_category_share", "reference has no valid values", feature=name)
            )
        else:
            unseen = {c: count for c, count in counts.categories.items() if c not in profile.categories}
            # a few examples make the alert actionable without storing the whole column
            examples = sorted(unseen)[:10]
            scores.append(
                _share_score(
                    "unseen_category_share",
                    name,
                    sum(unseen.values()),
                    n_valid,
                    th.unseen_category_share,
                    "valid",
                    unseen_examples=examples,
                )
            )
    return scores


def volume_score(
    n_rows: int,
    *,
    window_seconds: float | None,
    reference_rate_per_second: float | None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> Score:
    """Row count of the window vs the reference rate scaled to the window length.

    Without an expected count (an uploaded dataset has no time span, so no rate) the row count is still
    the value, so the volume panel and a rule on the raw count work; nothing is compared, so nothing is
    breached, and the reason says why."""
    expected = (
        reference_rate_per_second * window_seconds
        if window_seconds is not None and reference_rate_per_second is not None
        else None
    )
    if expected is None or expected <= 0:
        return Score(
            kind="quality",
            method="volume",
            value=float(n_rows),
            breached=False,
            reason="no reference row rate (or window length) to compare the row count with",
        )
    ratio = n_rows / expected
    return Score(
        kind="quality",
        method="volume",
        value=float(n_rows),
        threshold=thresholds.volume_ratio_low if ratio < 1 else thresholds.volume_ratio_high,
        breached=not (thresholds.volume_ratio_low <= ratio <= thresholds.volume_ratio_high),
        details={
            "expected": expected,
            "ratio": ratio,
            "ratio_low": thresholds.volume_ratio_low,
            "ratio_high": thresholds.volume_ratio_high,
        },
    )


def duplicate_id_score(
    ids: Sequence[Any] | np.ndarray, *, thresholds: QualityThresholds = QualityThresholds()
) -> Score:
    """Rows whose prediction id already appeared earlier in the window (missing ids are ignored)."""
    series = pd.Series(np.asarray(ids, dtype=object))
    present = series[~series.isna()]
    if len(present) == 0:
        return Score.insufficient("quality", "duplicate_ids", "no prediction ids in window")
    duplicated = present.duplicated()
    count = int(duplicated.sum())
    examples = sorted({str(v) for v in present[duplicated].tolist()})[:10]
    return Score(
        kind="quality",
        method="duplicate_ids",
        value=float(count),
        threshold=float(thresholds.duplicate_ids),
        breached=count > thresholds.duplicate_ids,
        details={"share": count / len(present), "n_ids": len(present), "examples": examples},
    )


def quality_scores(
    reference: QualityReference,
    current: Mapping[str, Any],
    *,
    ids: Sequence[Any] | np.ndarray | None = None,
    window_seconds: float | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> list[Score]:
    """All quality scores of one window: per profiled column, then volume and (with ``ids``) duplicates.

    ``current`` maps column name to that window's values (any 1-D array-like, object arrays
    included, since features arrive as JSON). A profiled column absent from ``current`` is
    entirely missing. The volume is the number of rows of the first profiled column (or of
    ``ids`` when there are no columns).
    """
    lengths = {name: len(values) for name, values in current.items() if name in reference.columns}
    if ids is not None:
        lengths["<ids>"] = len(ids)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"window columns differ in length: {lengths}")
    n_rows = next(iter(lengths.values()), 0)
    counts = {}
    for name, profile in reference.columns.items():
        values = current[name] if name in current else np.full(n_rows, None, dtype=object)
        counts[name] = _counted(_parse(values, profile.kind, name), profile)
    scores = counted_quality_scores(reference, counts, n_rows, window_seconds=window_seconds, thresholds=thresholds)
    if ids is not None:
        scores.append(duplicate_id_score(ids, thresholds=thresholds))
    return scores


def counted_quality_scores(
    reference: QualityReference,
    counts: Mapping[str, ColumnCounts],
    n_rows: int,
    *,
    window_seconds: float | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> list[Score]:
    """The quality scores of a window known by its counts, then its volume; a profiled column without
    counts is entirely missing. (Duplicate ids need the ids: :func:`quality_scores` only.)"""
    scores: list[Score] = []
    for name, profile in reference.columns.items():
        column = counts.get(name, ColumnCounts(n_rows, n_rows, 0, 0, {}))
        scores.extend(_column_scores(name, column, profile, thresholds))
    scores.append(
        volume_score(
            n_rows,
            window_seconds=window_seconds,
            reference_rate_per_second=reference.rate_per_second,
            thresholds=thresholds,
        )
    )
    return scores
