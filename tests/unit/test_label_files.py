"""Label files are read as a stream of typed batches (issue 17, bulk labels)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.ingest.files import BATCH_ROWS, LabelColumns, LabelFileError, csv_cell, label_batches


@pytest.mark.parametrize(
    ("text", "value"),
    [("", None), ("1", 1), ("-12", -12), ("0.5", 0.5), ("1e3", 1000.0), ("nan", float("nan")), ("yes", "yes")],
)
def test_a_csv_cell_reads_as_the_json_value_it_would_be(text: str, value: object) -> None:
    read = csv_cell(text)
    assert type(read) is type(value)
    assert read == value or read != read  # nan


def test_csv_is_read_batch_by_batch_not_whole(tmp_path: Path) -> None:
    file = tmp_path / "labels.csv"
    file.write_text("id,label\n" + "".join(f"r{i},{i % 2}\n" for i in range(3 * BATCH_ROWS)))
    seen: list[tuple[int, int | None]] = []
    batches = label_batches(file, progress=lambda *p: seen.append(p))
    records, refs = next(batches)
    assert len(records) == BATCH_ROWS and records[0] == {"id": "r0", "label": 0}
    assert refs[0] == "labels.csv line 2" and refs[-1] == f"labels.csv line {BATCH_ROWS + 1}"
    done, total = seen[-1]
    assert total == file.stat().st_size and done < total / 2  # the rest of the file is not read yet
    assert sum(len(r) for r, _ in batches) == 2 * BATCH_ROWS
    assert seen[-1] == (total, total)


def test_parquet_is_read_batch_by_batch_with_row_numbers(tmp_path: Path) -> None:
    file = tmp_path / "labels.parquet"
    rows = 2 * BATCH_ROWS + 5
    pq.write_table(pa.table({"id": list(range(rows)), "y": ["a"] * rows}), file, row_group_size=BATCH_ROWS)
    seen: list[tuple[int, int | None]] = []
    batches = label_batches(file, LabelColumns(label="y"), progress=lambda *p: seen.append(p))
    records, refs = next(batches)
    assert records[1] == {"id": 1, "label": "a"} and refs[1] == "labels.parquet row 1"
    assert seen == [(0, rows), (BATCH_ROWS, rows)]
    last_records, last_refs = list(batches)[-1]
    assert len(last_records) == 5 and last_refs[-1] == f"labels.parquet row {rows - 1}"


def test_unknown_type_and_missing_file_are_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "labels.json").write_text("[]")
    with pytest.raises(LabelFileError, match=r"labels\.json: unknown file type"):
        next(label_batches(tmp_path / "labels.json"))
    with pytest.raises(LabelFileError, match=r"nothing\.csv: no such file"):
        next(label_batches(tmp_path / "nothing.csv"))
