"""Reference and current files (CSV, optionally gzipped, or Parquet) as :class:`~monitor.runs.windows.Batch` es.

Kept apart from :mod:`monitor.runs.references` (profiles cached in the store) so that
``driftscope check``, which reads two files and writes nothing, imports no store and no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.config import ModelConfig
from monitor.errors import DriftscopeError
from monitor.runs.windows import Batch, score_matrix

Progress = Callable[[int, int | None], None]


class ReferenceError(DriftscopeError):
    """A reference that cannot be read or built; the message names the monitor or file."""


def _parquet_table(path: Path, progress: Progress | None) -> pa.Table:
    parquet = pq.ParquetFile(path)
    total, done, parts = parquet.metadata.num_rows, 0, []
    for i in range(parquet.num_row_groups):
        parts.append(parquet.read_row_group(i))
        done += parts[-1].num_rows
        if progress:
            progress(done, total)
    return pa.concat_tables(parts) if parts else parquet.schema_arrow.empty_table()


def read_table(path: Path, progress: Progress | None = None) -> pd.DataFrame:
    """A CSV (optionally .gz) or Parquet file as a frame; any failure is a :class:`ReferenceError` naming it."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            # One conversion, each column its own array (split_blocks: no 2-D block to copy into;
            # a column of one chunk without nulls is not copied at all), each Arrow column freed
            # once converted (self_destruct: the table is referenced by nothing else): about one
            # copy of the data at the peak, where converting row groups and concatenating made two.
            frame = _parquet_table(path, progress).to_pandas(split_blocks=True, self_destruct=True)
        elif ".csv" in suffixes:
            # Lazily: monitor.ingest imports the store, which a Parquet check does without.
            from monitor.ingest.files import open_counted

            with open_counted(path, progress) as source:
                frame = pd.read_csv(source)
        else:
            raise ReferenceError(f"{path}: unknown file type (expected .csv, .csv.gz or .parquet)")
    except ReferenceError:
        raise
    except FileNotFoundError as exc:
        raise ReferenceError(f"{path}: no such file") from exc
    except Exception as exc:  # pyarrow, pandas and gzip raise many unrelated types for a bad file
        raise ReferenceError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    return frame


def _column(frame: pd.DataFrame, *candidates: str | None) -> str | None:
    for name in candidates:
        if name is None:
            continue
        for option in (name, name.rsplit(".", 1)[-1]):
            if option in frame.columns:
                return option
    return None


def _typed(series: pd.Series) -> np.ndarray | None:
    """A column of a NumPy float, integer or bool dtype as its array, without a copy; None for any other.

    Nullable extension dtypes (``Int64``, ``boolean``) are not typed here: their missing values
    are ``pd.NA``, which the object path handles.
    """
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiub":
        return series.to_numpy(copy=False)
    return None


def _feature(series: pd.Series) -> np.ndarray:
    typed = _typed(series)
    return series.to_numpy(dtype=object) if typed is None else typed


def _objects(series: pd.Series) -> np.ndarray:
    values = series.to_numpy(dtype=object)
    values[pd.isna(values)] = None
    return values


def frame_to_batch(frame: pd.DataFrame, model: ModelConfig, *, source: str, classes: Any = None) -> Batch:
    """A file's rows as a :class:`Batch` by the model's schema.

    Columns are found by the model's ``fields`` (their last path segment, e.g. ``output.label``
    → ``label``) or the canonical names ``id``, ``timestamp``, ``prediction``, ``score``,
    ``label``. Multiclass per-class scores are columns ``<score>_<class>``.

    Features of a float, integer or bool column stay typed arrays, views of the frame's columns
    (a boxed Python object per value cost ≈ 1.5 GB at a million rows × 20 floats, only for the
    detectors to unbox it again); any other column becomes an object array (see :class:`Batch`).
    """
    missing = [name for name in model.features if name not in frame.columns]
    if missing:
        raise ReferenceError(f"{source}: feature columns {missing} missing (columns: {list(frame.columns)})")
    fields = model.fields
    id_col = _column(frame, fields.id, "id")
    ts_col = _column(frame, fields.timestamp, "timestamp")
    pred_col = _column(frame, fields.prediction, "prediction")
    label_col = _column(frame, fields.label, "label")
    score_base = fields.score.rsplit(".", 1)[-1] if fields.score else "score"
    score = None
    if model.task == "multiclass" and classes is not None:
        per_class = [f"{score_base}_{c}" for c in classes]
        if all(c in frame.columns for c in per_class):
            score = frame[per_class].to_numpy(dtype=np.float64)
    else:
        score_col = _column(frame, fields.score, "score")
        if score_col is not None:
            typed = _typed(frame[score_col])
            # A bool is no score (score_matrix makes it NaN); floats and integers convert as they are.
            if typed is not None and typed.dtype.kind != "b":
                score = typed.astype(np.float64, copy=False)
            else:
                score = score_matrix(frame[score_col].tolist(), None)
    ts = None
    if ts_col is not None:
        try:
            ts = pd.to_datetime(frame[ts_col], utc=True).dt.tz_convert(None).to_numpy().astype("datetime64[us]")
        except (ValueError, TypeError) as exc:
            raise ReferenceError(f"{source}: column {ts_col!r} does not hold timestamps ({exc})") from exc
    return Batch(
        n=len(frame),
        features={name: _feature(frame[name]) for name in model.features},
        ids=None if id_col is None else frame[id_col].to_numpy(dtype=object),
        ts=ts,
        prediction=None if pred_col is None else _objects(frame[pred_col]),
        score=score,
        label=None if label_col is None else _objects(frame[label_col]),
    )
