"""Label files (CSV, CSV.gz, Parquet) read as a stream of batches and ingested batch by batch.

A file of any size is read in batches of :data:`BATCH_ROWS` rows — ``csv`` line by line, Parquet
with ``ParquetFile.iter_batches`` — so memory stays flat. The csv module rather than pandas' chunks:
it knows the line each record starts on, even when a quoted cell spans lines. Each row becomes a canonical label record
``{"id", "label", "timestamp"}`` named by where it is in the file (``labels.csv line 17``, the header
being line 1; ``labels.parquet row 16``, from 0), which is the ``record_ref`` of its rejection in
``rejected_record``. A bad row never rejects its batch-mates.

CSV has no types: a cell that reads as an integer is an integer class, as a number a number,
anything else text, so a label column means the same whatever other rows sit in its batch (a
type guessed per chunk would store ``"1"`` beside ``1``). Empty cells are missing values.

Re-uploading a file changes nothing: each batch is ingested under an idempotency key derived from
its content and its place in the file, so a batch already stored is replayed without a write (its
labels, and its rejections, are not written twice); a batch with one corrected label is a new
batch and is written.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Engine

from monitor.config import Config
from monitor.errors import DriftscopeError
from monitor.ingest import IngestResult, ingest_labels, model_id

Progress = Callable[[int, int | None], None]  # (done, total or None): bytes for CSV, rows for Parquet
BATCH_ROWS = 10_000
MAX_REPORTED = 20  # rejections kept in a BulkResult to show; all of them are in rejected_record
_INTEGER = re.compile(r"[+-]?\d+")


class LabelFileError(DriftscopeError):
    """A label file that cannot be read as a whole (missing, unknown type, missing column)."""


@dataclass(frozen=True, slots=True)
class LabelColumns:
    """Which column of the file holds what; ``time`` is optional (then the label's time is its reception)."""

    id: str = "id"
    label: str = "label"
    time: str | None = "timestamp"
    time_required: bool = field(default=False, compare=False)  # --time-column given: a missing column is an error


@dataclass(slots=True)
class BulkResult:
    """What an upload did: rows read, labels accepted, rows rejected, rows of batches already stored."""

    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    replayed: int = 0
    first_rejections: list[str] = field(default_factory=list)

    def add(self, result: IngestResult, rows: int) -> None:
        self.rows += rows
        if result.replayed:
            self.replayed += rows
            return
        self.accepted += result.accepted
        self.rejected += len(result.rejected)
        for rejection in result.rejected[: MAX_REPORTED - len(self.first_rejections)]:
            problems = "; ".join(f"{p.field or 'row'}: {p.reason}" for p in rejection.problems)
            self.first_rejections.append(f"{rejection.record_ref}: {problems}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "replayed": self.replayed,
            "first_rejections": self.first_rejections,
        }


class _CountingReader(io.RawIOBase):
    """A file that reports how many bytes were read, for a progress bar over big files."""

    def __init__(self, raw: BinaryIO, progress: Progress, total: int) -> None:
        self._raw, self._progress, self._total, self._done = raw, progress, total, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self._done += n or 0
        self._progress(self._done, self._total)
        return n or 0


@contextmanager
def open_counted(path: Path, progress: Progress | None) -> Iterator[BinaryIO]:
    """``path`` open for reading (decompressed if .gz), reporting compressed bytes read to ``progress``."""
    with ExitStack() as stack:
        source: BinaryIO = stack.enter_context(path.open("rb"))
        if progress is not None:
            source = stack.enter_context(io.BufferedReader(_CountingReader(source, progress, path.stat().st_size)))
        if path.suffix.lower() == ".gz":
            # GzipFile is a binary file object, but typeshed does not derive it from BinaryIO.
            source = stack.enter_context(gzip.GzipFile(fileobj=source))  # type: ignore[assignment]
        yield source


def csv_cell(text: str) -> Any:
    """A CSV cell as the JSON value it would be: None if empty, an int, a float, else the text."""
    if not text:
        return None
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _text(row: list[str], at: int | None) -> str:
    return row[at] if at is not None and at < len(row) else ""


def _time_cell(row: list[str], at: int | None) -> Any:
    return csv_cell(_text(row, at)) if at is not None else None


def _record(id_: Any, label: Any, time: Any) -> dict[str, Any]:
    record = {"id": id_, "label": label}
    if time is not None:
        record["timestamp"] = time
    return record


def _pick(available: Sequence[str], wanted: str | None, required: bool, option: str, source: str) -> int | None:
    if wanted is not None and wanted in available:
        return list(available).index(wanted)
    if required:
        raise LabelFileError(f"{source}: no column {wanted!r} ({option}); columns: {list(available)}")
    return None


def _csv_batches(path: Path, columns: LabelColumns, progress: Progress | None) -> Iterator[tuple[list[Any], list[str]]]:
    with open_counted(path, progress) as binary:
        reader = csv.reader(codecs.getreader("utf-8-sig")(binary))
        header = next(reader, None)
        if header is None:
            return
        at_id = _pick(header, columns.id, True, "--id-column", str(path))
        at_label = _pick(header, columns.label, True, "--label-column", str(path))
        at_time = _pick(header, columns.time, columns.time_required, "--time-column", str(path))
        records: list[Any] = []
        refs: list[str] = []
        line = reader.line_num + 1  # where the next record starts (a quoted cell may span lines)
        for row in reader:
            if row:  # blank lines are no records, as in every CSV reader
                label = csv_cell(_text(row, at_label))
                records.append(_record(_text(row, at_id) or None, label, _time_cell(row, at_time)))
                refs.append(f"{path.name} line {line}")
                if len(records) == BATCH_ROWS:
                    yield records, refs
                    records, refs = [], []
            line = reader.line_num + 1
        if records:
            yield records, refs


def _plain(value: Any) -> Any:
    # Validation reads times as ISO text or epoch numbers; Parquet gives datetime objects (naive = UTC).
    return value.isoformat() if isinstance(value, datetime | date) else value


def _parquet_batches(
    path: Path, columns: LabelColumns, progress: Progress | None
) -> Iterator[tuple[list[Any], list[str]]]:
    import pyarrow.parquet as pq  # only for Parquet files: the API's NDJSON route never needs it

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    wanted = [columns.id, columns.label]
    if _pick(names, columns.time, columns.time_required, "--time-column", str(path)) is not None:
        wanted.append(str(columns.time))
    _pick(names, columns.id, True, "--id-column", str(path))
    _pick(names, columns.label, True, "--label-column", str(path))
    total, done = parquet.metadata.num_rows, 0
    if progress is not None:
        progress(0, total)
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
        data = [batch.column(name).to_pylist() for name in wanted]
        times = data[2] if len(data) == 3 else [None] * batch.num_rows
        records = [_record(_plain(i), _plain(v), _plain(t)) for i, v, t in zip(data[0], data[1], times, strict=True)]
        refs = [f"{path.name} row {done + n}" for n in range(batch.num_rows)]
        done += batch.num_rows
        if progress is not None:
            progress(done, total)
        yield records, refs


def label_batches(
    path: Path, columns: LabelColumns = LabelColumns(), progress: Progress | None = None
) -> Iterator[tuple[list[Any], list[str]]]:
    """Batches of (canonical label records, where each is in the file) of a CSV, CSV.gz or Parquet file."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if not path.is_file():
        raise LabelFileError(f"{path}: no such file")
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            yield from _parquet_batches(path, columns, progress)
        elif ".csv" in suffixes:
            yield from _csv_batches(path, columns, progress)
        else:
            raise LabelFileError(f"{path}: unknown file type (expected .csv, .csv.gz or .parquet)")
    except DriftscopeError:
        raise
    except Exception as exc:  # pyarrow, csv, gzip and codecs raise many unrelated types for a bad file
        raise LabelFileError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc


def ingest_label_batch(
    engine: Engine, config: Config, model: str, records: list[Any], refs: list[str], source: str
) -> IngestResult:
    """Ingest one batch of a bulk upload under a key of its content and place: a re-sent batch is a no-op."""
    digest = hashlib.sha256(orjson.dumps([records, refs], option=orjson.OPT_NON_STR_KEYS, default=str)).hexdigest()
    key = f"bulk-labels:{model_id(engine, config, model)}:{source}:{digest}"
    return ingest_labels(
        engine, config, model, records, source, shape="canonical", refs=refs, idempotency_key=key[:200]
    )


def upload_labels(
    engine: Engine,
    config: Config,
    model: str,
    path: Path,
    columns: LabelColumns = LabelColumns(),
    progress: Progress | None = None,
) -> BulkResult:
    """Stream a label file into the store batch by batch (see the module's docstring)."""
    model_id(engine, config, model)  # an unknown model fails before the file is read
    result = BulkResult()
    for records, refs in label_batches(path, columns, progress):
        result.add(ingest_label_batch(engine, config, model, records, refs, "file"), len(records))
    return result
