"""Tumbling windows and the rows that fall into them.

Windows of one monitor are ``[origin + k·size, origin + (k+1)·size)``: the origin is the
monitor's ``start`` when configured, else the Unix epoch, so hourly windows start on the hour
and a restart never shifts them. A window is *due* once its end plus the allowed lateness has
passed.

:func:`load_window` reads one window with one SQL query (ordered by the ``(model_id, ts)``
index) and turns the JSON columns into NumPy arrays by the model's schema: this is the hot
path of every run, so JSON is parsed with orjson in as few calls as possible and never becomes
row objects. Postgres builds one JSON array per column (``json_agg``); SQLite returns each row's
JSON as text and the texts of a column are parsed as one array (docs/benchmarks.md, "Whole
window in the worker").

>>> from datetime import UTC, datetime, timedelta
>>> window_floor(datetime(2026, 1, 1, 10, 42, tzinfo=UTC), timedelta(hours=1))
datetime.datetime(2026, 1, 1, 10, 0, tzinfo=datetime.timezone.utc)
>>> [w.hour for w in due_windows(datetime(2026, 1, 1, 8, tzinfo=UTC), timedelta(hours=1),
...                              timedelta(minutes=5), datetime(2026, 1, 1, 11, 4, tzinfo=UTC))]
[8, 9]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from monitor.config import as_utc

if TYPE_CHECKING:
    from sqlalchemy import Connection

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_origin(start: datetime | None) -> datetime:
    """Where a monitor's windows are aligned: its ``start``, else the Unix epoch."""
    return EPOCH if start is None else as_utc(start)


def window_floor(ts: datetime, size: timedelta, origin: datetime = EPOCH) -> datetime:
    """Start of the window holding ``ts``."""
    return origin + ((ts - origin) // size) * size


def due_windows(first: datetime, size: timedelta, lateness: timedelta, now: datetime) -> list[datetime]:
    """Starts of the windows from ``first`` on whose end plus ``lateness`` is at or before ``now``."""
    count = (now - lateness - first) // size
    return [first + k * size for k in range(max(count, 0))]


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """Columns of one window (or one reference): NumPy arrays of equal length ``n``.

    ``features`` hold each column as its source typed it. Read from the store (JSON), a numeric
    column whose values are all numbers (or absent) is float64, NaN where absent; any other column
    is an object array of the raw values (``None`` where absent), so data quality can see type errors.
    Read from a file (:func:`monitor.runs.files.frame_to_batch`), a float, integer or bool column
    is a typed array — it has no type errors to see, NaN where missing — and any other column
    an object array. Detectors convert what they need and score a column alike in either form
    (``tests/unit/test_windows.py``). ``score`` is float64
    (``(n,)``, or ``(n, k)`` in ``classes`` order for multiclass), NaN where missing.
    ``ts``/``label_ts`` are ``datetime64[us]`` in UTC (NaT where missing). ``model_version`` holds
    the version that served each row (``None`` where the record named none: the version deployed then).
    """

    n: int
    features: Mapping[str, np.ndarray]
    ids: np.ndarray | None = None
    ts: np.ndarray | None = None
    prediction: np.ndarray | None = None
    score: np.ndarray | None = None
    label: np.ndarray | None = None
    label_ts: np.ndarray | None = None
    model_version: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> Batch:
        """The rows selected by ``rows`` (a boolean mask of length ``n``, or indices), every column alike."""

        def pick(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[rows]

        features = {name: values[rows] for name, values in self.features.items()}
        n = int(np.count_nonzero(rows)) if rows.dtype == bool else len(rows)
        return Batch(
            n=n,
            features=features,
            ids=pick(self.ids),
            ts=pick(self.ts),
            prediction=pick(self.prediction),
            score=pick(self.score),
            label=pick(self.label),
            label_ts=pick(self.label_ts),
            model_version=pick(self.model_version),
        )

    @property
    def label_count(self) -> int:
        if self.label is None:
            return 0
        return int(np.count_nonzero(self.label != None))  # noqa: E711  (element-wise on an object array)


def score_matrix(values: Sequence[Any], classes: Sequence[Any] | None) -> np.ndarray:
    """Scores as float64: ``(n,)`` for one number per row, ``(n, k)`` for per-class scores.

    A per-class score is a ``{class: probability}`` object or a list in ``classes`` order;
    anything missing or malformed becomes NaN (the detectors drop non-finite scores).
    """
    if classes is None:
        return np.array(
            [v if isinstance(v, int | float) and not isinstance(v, bool) else None for v in values], dtype=np.float64
        )
    keys = [str(c) for c in classes]
    out = np.full((len(values), len(keys)), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, dict):
            out[i] = [v.get(k, np.nan) if isinstance(v.get(k), int | float) else np.nan for k in keys]
        elif isinstance(v, list) and len(v) == len(keys):
            out[i] = [x if isinstance(x, int | float) else np.nan for x in v]
    return out


def _epoch_us(column: Any, dialect: str) -> Any:
    """A timestamp column as something NumPy parses in bulk: ISO text (SQLite) or epoch microseconds (Postgres).

    Reading it through the ORM type would build one timezone-aware ``datetime`` per row, the
    slowest part of loading a window.
    """
    from sqlalchemy import BigInteger, String, cast, func, type_coerce

    if dialect == "sqlite":
        return type_coerce(column, String)  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC)
    return cast(func.extract("epoch", column) * 1_000_000, BigInteger)


def _datetime64(values: Sequence[Any]) -> np.ndarray:
    if values and isinstance(next((v for v in values if v is not None), None), int):
        return np.array([np.iinfo(np.int64).min if v is None else v for v in values], dtype=np.int64).view(
            "datetime64[us]"
        )
    return np.array(values, dtype="datetime64[us]")


def load_window(
    connection: Connection,
    model_id: int,
    schema: Mapping[str, str],
    start: datetime,
    end: datetime,
    *,
    score_classes: Sequence[Any] | None = None,
) -> Batch:
    """All predictions of one model with ``start <= ts < end``, as a :class:`Batch`.

    ``score_classes`` is the class order of per-class scores (multiclass); ``None`` reads one
    number per row.
    """
    # The store is imported here, not at the top: driftscope check builds Batches from files and
    # needs neither SQLAlchemy nor the tables.
    from sqlalchemy import Text, cast, func, select

    from monitor.store.tables import Prediction

    p = Prediction
    dialect = connection.dialect.name
    in_window = (p.model_id == model_id, p.ts >= start, p.ts < end)
    if dialect == "postgresql":
        # One JSON array per column, built by the server over the window's rows (ordered by the
        # index): one orjson.loads per column instead of one per row and field, and no row objects.
        # Every aggregate reads the same rows in the same order, so the columns stay aligned.
        rows = (
            select(
                p.prediction_id,
                _epoch_us(p.ts, dialect).label("ts"),
                *(p.features.op("->")(name).label(f"f{i}") for i, name in enumerate(schema)),
                p.prediction,
                p.score,
                p.label,
                _epoch_us(p.label_ts, dialect).label("label_ts"),
                p.model_version,
            )
            .where(*in_window)
            .order_by(p.ts, p.id)
            .subquery()
        )
        texts = connection.execute(select(*(cast(func.json_agg(column), Text) for column in rows.c))).one()
        ids, ts, *rest = [orjson.loads(t) if t is not None else [] for t in texts]
        features = rest[: len(schema)]
        predictions, scores, labels, label_ts, versions = rest[len(schema) :]
        return batch_from_columns(
            schema, ids, ts, dict(zip(schema, features, strict=True)), predictions, scores, labels, label_ts,
            versions, score_classes=score_classes,
        )  # fmt: skip
    # SQLite would re-parse a row's features once per name (json_extract): rows are read as text instead.
    result = connection.execute(
        select(
            p.prediction_id,
            _epoch_us(p.ts, dialect),
            cast(p.features, Text),
            cast(p.prediction, Text),
            cast(p.score, Text),
            cast(p.label, Text),
            _epoch_us(p.label_ts, dialect),
            p.model_version,
        )
        .where(*in_window)
        .order_by(p.ts, p.id)
    )
    return batch_from_rows(result.partitions(_CHUNK_ROWS), schema, score_classes=score_classes)


# Rows parsed at a time from SQLite: a row's features as a dict costs ~2 KB, so the dicts of a whole
# million-row window would need gigabytes; only the columns are kept.
_CHUNK_ROWS = 20_000


def batch_from_rows(
    chunks: Iterable[Sequence[Sequence[Any]]], schema: Mapping[str, str], *, score_classes: Sequence[Any] | None = None
) -> Batch:
    """Chunks of rows of ``(prediction_id, ts, features JSON, prediction JSON, score JSON, label JSON, label_ts,
    model_version)``, the JSON as text; parsed a chunk at a time.

    Timestamps are ISO strings, epoch microseconds or ``None``.
    """
    names = list(schema)
    ids: list[Any] = []
    ts: list[Any] = []
    features: dict[str, list[Any]] = {name: [] for name in names}
    predictions: list[Any] = []
    scores: list[Any] = []
    labels: list[Any] = []
    label_ts: list[Any] = []
    versions: list[Any] = []
    for rows in chunks:
        if not rows:
            continue
        c_ids, c_ts, c_features, c_predictions, c_scores, c_labels, c_label_ts, c_versions = zip(*rows, strict=True)
        # One orjson call per row: faster for objects than one over the joined texts (a copy of them all).
        dicts = [{} if text is None else orjson.loads(text) for text in c_features]
        for name, values in _feature_lists(dicts, names).items():
            features[name] += values
        ids += c_ids
        ts += c_ts
        predictions += _json_list(c_predictions)
        scores += _json_list(c_scores)
        labels += _json_list(c_labels)
        label_ts += c_label_ts
        versions += c_versions
    return batch_from_columns(
        schema, ids, ts, features, predictions, scores, labels, label_ts, versions, score_classes=score_classes
    )


def batch_from_columns(
    schema: Mapping[str, str],
    ids: list[Any],
    ts: list[Any],
    features: Mapping[str, list[Any]],
    predictions: list[Any],
    scores: list[Any],
    labels: list[Any],
    label_ts: list[Any],
    versions: list[Any],
    *,
    score_classes: Sequence[Any] | None = None,
) -> Batch:
    """A :class:`Batch` from one list per column: JSON values parsed, timestamps as in :func:`batch_from_rows`."""
    return Batch(
        n=len(ids),
        features={name: _feature_array(features[name], schema[name]) for name in schema},
        ids=_object_array(ids),
        ts=_datetime64(ts),
        prediction=_object_array(predictions),
        score=score_matrix(scores, score_classes),
        label=_object_array(labels),
        label_ts=_datetime64(label_ts),
        model_version=_object_array(versions),
    )


def _json_list(texts: Sequence[str | None]) -> list[Any]:
    """Short JSON texts (``None`` for SQL NULL) parsed as one array: one orjson call instead of one per row."""
    return orjson.loads("[" + ",".join(["null" if t is None else t for t in texts]) + "]") if texts else []


def _feature_lists(dicts: list[dict[str, Any]], names: list[str]) -> dict[str, list[Any]]:
    try:
        # Ingestion stores every feature key (null when absent): one C-level lookup per row and name.
        return {name: list(map(itemgetter(name), dicts)) for name in names}
    except KeyError:
        return {name: [d.get(name) for d in dicts] for name in names}


_NUMBER_TYPES = frozenset({int, float, type(None)})  # not bool: true in a numeric column is a type error


def _feature_array(values: list[Any], kind: str) -> np.ndarray:
    """A numeric column of numbers (or missing values) as float64, NaN where missing; anything else as raw values.

    The typed form is what the detectors convert a column to anyway; a numeric column holding text
    or booleans stays raw so data quality counts them as type errors.
    """
    if kind == "numeric" and set(map(type, values)) <= _NUMBER_TYPES:
        try:
            return np.array(values, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: left for the detectors to judge
            pass
    return _object_array(values)


def _object_array(values: list[Any]) -> np.ndarray:
    # np.array(list_of_lists, dtype=object) would build a 2-D array; fill a 1-D one instead.
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
