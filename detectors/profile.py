"""Reference profiles: the reference data reduced once to what drift tests need.

A reference is profiled once (sorted finite values for numeric columns, category counts for
categorical ones) and cached by the scheduler as bytes; every window then only touches its own
data. ``to_bytes``/``from_bytes`` use NumPy's ``.npz`` format with ``allow_pickle=False``, so a
cached profile can never execute code when loaded.

Missing values (NaN, None and ±inf) are dropped before profiling, as Evidently drops them
before testing; their count is kept so the scores can report it.

Categorical values are compared by their string form (``str(value)``): a reference of ``1``
and a window of ``"1"`` hold the same category. That makes the profile serializable without
pickle and keeps category matching independent of the dtype a source happened to produce.

>>> import numpy as np
>>> p = profile_reference({"x": np.array([3.0, np.nan, 1.0]), "c": np.array(["a", "b", "a"])},
...                       {"x": "numeric", "c": "categorical"})
>>> p["x"].values.tolist(), p["x"].n_missing
([1.0, 3.0], 1)
>>> ReferenceProfile.from_bytes(p.to_bytes())["c"].counts.tolist()
[2, 1]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from detectors.npz import pack, unpack
from detectors.types import ColumnKind, ProfileError

# Evidently's get_binned_data switches from quantile-free histograms to per-value counts when
# the reference has at most this many distinct values; the profile keeps those counts ready.
FEW_UNIQUE_LIMIT = 20

_FORMAT_VERSION = 1


def clean_numeric(values: np.ndarray, column: str) -> tuple[np.ndarray, int]:
    """Finite float64 values of ``values`` and the number of missing ones dropped."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iufb":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"column {column!r}: numeric column holds non-numeric values") from exc
    arr = arr.astype(np.float64, copy=False).ravel()
    finite = np.isfinite(arr)
    n_missing = int(arr.size - np.count_nonzero(finite))
    return (arr if n_missing == 0 else arr[finite]), n_missing


def category_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Sorted category strings, their counts, and the number of missing values dropped.

    pandas' hash-based ``value_counts`` does the counting: NumPy has no hash table, and sorting
    100,000 strings costs several times more. Only the few distinct values are then turned into
    strings (values whose strings coincide, like ``1`` and ``"1"``, are merged).
    """
    arr = np.asarray(values).ravel()
    counted = pd.Series(arr, copy=False).value_counts(dropna=True, sort=False)
    keys = counted.index.to_numpy()
    counts = counted.to_numpy()
    # Evidently turns ±inf into NaN before dropping missing values; do the same.
    infinite = np.fromiter((isinstance(k, float) and not np.isfinite(k) for k in keys), bool, keys.size)
    if infinite.any():
        keys, counts = keys[~infinite], counts[~infinite]
    categories, inverse = np.unique(keys.astype(str), return_inverse=True)
    merged = np.bincount(inverse, weights=counts, minlength=categories.size).astype(np.int64)
    return categories, merged, int(arr.size - merged.sum())


class Sample:
    """One window's non-missing values of one column, ready for the drift tests.

    Numeric samples keep their finite float64 ``values``; categorical samples keep only their
    distinct values and counts (no categorical test needs more). ``counts()`` is computed at
    most once, however many tests and helpers ask for it.
    """

    __slots__ = ("_categories", "_counts", "_sorted", "integer", "n", "n_missing", "values")

    def __init__(
        self,
        values: np.ndarray | None,
        n_missing: int,
        integer: bool = False,
        categories: np.ndarray | None = None,
        counts: np.ndarray | None = None,
    ):
        self.values = values
        self.n_missing = n_missing
        self.integer = integer
        self._categories = categories
        self._counts = counts
        self._sorted: np.ndarray | None = None
        self.n = int(values.size) if values is not None else int(counts.sum())  # type: ignore[union-attr]

    @property
    def numeric(self) -> np.ndarray:
        """The values of a numeric sample; a categorical one keeps only its counts."""
        if self.values is None:
            raise TypeError("a categorical sample has no numeric values")
        return self.values

    def sorted(self) -> np.ndarray:
        """Numeric values in ascending order (sorted once, shared by tests and histograms)."""
        if self._sorted is None:
            self._sorted = np.sort(self.numeric)
        return self._sorted

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values (sorted) and their counts."""
        if self._categories is None or self._counts is None:
            self._categories, self._counts = np.unique(self.numeric, return_counts=True)
        return self._categories, self._counts


def make_sample(kind: ColumnKind, values: np.ndarray, column: str) -> Sample:
    """Drop missing values (NaN, None, ±inf) from a window's column, as Evidently does."""
    if kind == "numeric":
        clean, n_missing = clean_numeric(values, column)
        return Sample(clean, n_missing, integer=np.asarray(values).dtype.kind in "iu")
    categories, counts, n_missing = category_counts(values)
    return Sample(None, n_missing, categories=categories, counts=counts)


@dataclass(frozen=True, slots=True, eq=False)
class ColumnProfile:
    """One reference column, ready for any drift test.

    Numeric columns: ``values`` holds the sorted finite values; ``categories``/``counts`` hold
    the distinct values and their counts when there are at most ``FEW_UNIQUE_LIMIT`` of them
    (else both are empty). Categorical columns: ``values`` is empty, ``categories`` are the
    sorted category strings and ``counts`` their counts.
    """

    name: str
    kind: ColumnKind
    n_rows: int
    n_missing: int
    n_unique: int
    integer: bool
    std: float
    values: np.ndarray
    categories: np.ndarray
    counts: np.ndarray

    @property
    def n(self) -> int:
        """Number of non-missing reference values."""
        return self.n_rows - self.n_missing


def profile_column(name: str, values: np.ndarray, kind: ColumnKind) -> ColumnProfile:
    """Profile one reference column."""
    arr = np.asarray(values)
    if kind == "numeric":
        clean, n_missing = clean_numeric(arr, name)
        ordered = np.sort(clean)
        # Neighbours compared, not subtracted: a bool per value instead of a float (finite values
        # differ exactly when their difference is non-zero).
        n_unique = int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1 if ordered.size else 0
        if 0 < n_unique <= FEW_UNIQUE_LIMIT:
            categories, counts = np.unique(ordered, return_counts=True)
        else:
            categories, counts = np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64)
        with np.errstate(all="ignore"):
            std = float(np.std(ordered)) if ordered.size else 0.0
        return ColumnProfile(
            name=name,
            kind=kind,
            n_rows=int(arr.size),
            n_missing=n_missing,
            n_unique=n_unique,
            integer=arr.dtype.kind in "iu",
            std=std,
            values=ordered,
            categories=categories,
            counts=counts.astype(np.int64),
        )
    if kind == "categorical":
        categories, counts, n_missing = category_counts(arr)
        return ColumnProfile(
            name=name,
            kind=kind,
            n_rows=int(arr.size),
            n_missing=n_missing,
            n_unique=int(categories.size),
            integer=False,
            std=0.0,
            values=np.empty(0, dtype=np.float64),
            categories=categories,
            counts=counts.astype(np.int64),
        )
    raise ProfileError(f"column {name!r}: kind must be 'numeric' or 'categorical', got {kind!r}")


class ReferenceProfile(Mapping[str, ColumnProfile]):
    """The profiled reference: column name → :class:`ColumnProfile`."""

    def __init__(self, columns: Mapping[str, ColumnProfile]):
        self._columns = dict(columns)

    def __getitem__(self, name: str) -> ColumnProfile:
        return self._columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def to_bytes(self) -> bytes:
        """Serialize to ``.npz`` bytes (no pickle)."""
        columns: list[dict[str, Any]] = []
        arrays: dict[str, np.ndarray] = {}
        for i, col in enumerate(self._columns.values()):
            columns.append(
                {
                    "name": col.name,
                    "kind": col.kind,
                    "n_rows": col.n_rows,
                    "n_missing": col.n_missing,
                    "n_unique": col.n_unique,
                    "integer": col.integer,
                    "std": col.std,
                }
            )
            arrays[f"values_{i}"] = col.values
            arrays[f"categories_{i}"] = col.categories
            arrays[f"counts_{i}"] = col.counts
        return pack({"version": _FORMAT_VERSION, "columns": columns}, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """Load bytes written by :meth:`to_bytes`."""
        meta, arrays = unpack(data, "reference profile", version=_FORMAT_VERSION)
        return cls(
            {
                m["name"]: ColumnProfile(
                    name=m["name"],
                    kind=m["kind"],
                    n_rows=m["n_rows"],
                    n_missing=m["n_missing"],
                    n_unique=m["n_unique"],
                    integer=m["integer"],
                    std=m["std"],
                    values=arrays[f"values_{i}"],
                    categories=arrays[f"categories_{i}"],
                    counts=arrays[f"counts_{i}"],
                )
                for i, m in enumerate(meta["columns"])
            }
        )


def profile_reference(columns: Mapping[str, np.ndarray], kinds: Mapping[str, ColumnKind]) -> ReferenceProfile:
    """Profile every column named in ``kinds``; ``columns`` maps names to 1-D arrays."""
    missing = [name for name in kinds if name not in columns]
    if missing:
        raise ProfileError(f"reference: columns {missing} are missing (have {sorted(columns)})")
    return ReferenceProfile({name: profile_column(name, columns[name], kind) for name, kind in kinds.items()})
