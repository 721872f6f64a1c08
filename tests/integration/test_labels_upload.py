"""Bulk labels (issue 17): ``driftscope labels upload`` streams a CSV, CSV.gz or Parquet file into the
store; bad rows are rejected with their line, the rest kept, and a re-run changes nothing."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from click.testing import Result
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from monitor.cli import main as cli
from monitor.config import parse_config
from monitor.ingest import ingest_predictions
from monitor.store.tables import PendingLabel, Prediction, RejectedRecord

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MODEL = {
    "task": "binary",
    "features": {"tenure": "numeric"},
    "fields": {"label": "label"},
}


def driftscope(*args: str) -> Result:
    cli._register_commands()
    return CliRunner().invoke(cli.app, list(args))


def setup_store(engine: Engine, tmp_path: Path, predictions: int = 100) -> Path:
    config = {"store": engine.url.render_as_string(hide_password=False), "models": {"churn": MODEL}}
    path = tmp_path / "driftscope.yaml"
    path.write_text(yaml.safe_dump(config))
    records = [
        {"id": f"r{i}", "timestamp": T0.timestamp() + 60 * i, "features": {"tenure": i}, "prediction": 1}
        for i in range(predictions)
    ]
    result = ingest_predictions(engine, parse_config(config), "churn", records, "test", shape="canonical")
    assert result.accepted == predictions
    return path


def state(engine: Engine) -> dict[str, Any]:
    """Everything an upload may change, to compare two runs."""
    with engine.connect() as connection:
        return {
            "labels": sorted(
                connection.execute(
                    select(Prediction.prediction_id, Prediction.label, Prediction.label_ts).where(
                        Prediction.label.is_not(None)
                    )
                ).all()
            ),
            "pending": sorted(connection.execute(select(PendingLabel.prediction_id, PendingLabel.label)).all()),
            "rejected": sorted(
                connection.execute(select(RejectedRecord.record_ref, RejectedRecord.field, RejectedRecord.reason)).all()
            ),
        }


def test_csv_upload_rejects_bad_rows_by_line_keeps_the_rest_and_a_rerun_changes_nothing(
    store_engine: Engine, tmp_path: Path
) -> None:
    config = setup_store(store_engine, tmp_path)
    lines = ["id,label,timestamp"]  # line 1
    lines += [f"r{i},{i % 2},{(T0 + timedelta(days=3)).isoformat()}" for i in range(40)]  # lines 2-41
    lines += [
        "r40,,2026-03-04T00:00:00Z",  # line 42: no label
        'r41,1,"2026-03-04\nT00:00"',  # lines 43-44: a quoted time over two lines, not a time
        "r42,1,yesterday",  # line 45: the line counts the quoted newline
        "",  # line 46: blank, no record
        ",1,2026-03-04T00:00:00Z",  # line 47: no id
        "r500,0,2026-03-04T00:00:00Z",  # line 48: no prediction yet: waits
        "r43,1",  # line 49: no time: received now
        "r0,1,2026-03-05T00:00:00Z",  # line 50: r0 again, corrected (the later row wins)
    ]
    file = tmp_path / "labels.csv"
    file.write_text("\n".join(lines) + "\n")

    first = driftscope("labels", "upload", "--model", "churn", "-c", str(config), str(file))
    assert first.exit_code == 0, first.output
    assert "47 rows, 43 stored, 4 rejected, 0 already uploaded" in first.output
    after = state(store_engine)
    assert [(ref, field) for ref, field, _ in after["rejected"]] == [
        ("labels.csv line 42", "label"),
        ("labels.csv line 43", "timestamp"),
        ("labels.csv line 45", "timestamp"),
        ("labels.csv line 47", "id"),
    ]
    assert "required field is null" in dict((r, m) for r, _, m in after["rejected"])["labels.csv line 42"]
    assert "rejected labels.csv line 45: timestamp: expected an ISO-8601 time" in first.output
    labelled = {pid: label for pid, label, _ in after["labels"]}
    assert len(labelled) == 41 and labelled["r0"] == 1 and labelled["r1"] == 1 and labelled["r2"] == 0
    assert after["pending"] == [("r500", 0)]

    second = driftscope("labels", "upload", "--model", "churn", "-c", str(config), str(file))
    assert second.exit_code == 0, second.output
    assert "47 rows, 0 stored, 0 rejected, 47 already uploaded" in second.output
    assert state(store_engine) == after  # not a label, a time or a rejection more


def test_gzip_and_parquet_with_mapped_columns_and_row_numbers(sqlite_engine: Engine, tmp_path: Path) -> None:
    config = setup_store(sqlite_engine, tmp_path)
    gz = tmp_path / "outcomes.csv.gz"
    with gzip.open(gz, "wt") as out:
        out.write("request,outcome\n" + "".join(f"r{i},{i % 2}\n" for i in range(10)))
    parquet = tmp_path / "outcomes.parquet"
    table = pa.table(
        {
            "request": [f"r{i}" for i in range(10, 20)],
            "outcome": [1, 0, None, 1, 0, 1, 0, 1, 0, 7.5],
            "known_at": [T0 + timedelta(days=2)] * 10,
        }
    )
    pq.write_table(table, parquet, row_group_size=4)
    mapping = ["--id-column", "request", "--label-column", "outcome"]
    result = driftscope("labels", "upload", "-m", "churn", "-c", str(config), *mapping, str(gz))
    assert result.exit_code == 0, result.output
    assert "10 rows, 10 stored, 0 rejected" in result.output
    result = driftscope("labels", "upload", "-m", "churn", "-c", str(config), *mapping, "--time-column", "known_at",
                        str(parquet))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "10 rows, 8 stored, 2 rejected" in result.output
    with sqlite_engine.connect() as connection:
        rejected = connection.execute(select(RejectedRecord.record_ref, RejectedRecord.field)).all()
        assert sorted(rejected) == [("outcomes.parquet row 2", "label"), ("outcomes.parquet row 9", "label")]
        label_ts = connection.scalar(select(Prediction.label_ts).where(Prediction.prediction_id == "r11"))
        assert label_ts == T0 + timedelta(days=2)  # the file's time, not the upload's
        assert connection.scalar(select(func.count()).where(Prediction.label.is_not(None))) == 18

    missing = driftscope("labels", "upload", "-m", "churn", "-c", str(config), "--time-column", "when", str(parquet))
    assert missing.exit_code == 2
    assert "no column 'when' (--time-column); columns: ['request', 'outcome', 'known_at']" in missing.output
    unmapped = driftscope("labels", "upload", "-m", "churn", "-c", str(config), str(gz))
    assert unmapped.exit_code == 2
    assert "no column 'id' (--id-column); columns: ['request', 'outcome']" in unmapped.output


def test_a_file_of_only_bad_rows_exits_1(sqlite_engine: Engine, tmp_path: Path) -> None:
    config = setup_store(sqlite_engine, tmp_path)
    file = tmp_path / "bad.csv"
    file.write_text("id,label\nr1,\nr2,\n")
    result = driftscope("labels", "upload", "-m", "churn", "-c", str(config), str(file))
    assert result.exit_code == 1, result.output
    assert "2 rows, 0 stored, 2 rejected" in result.output


def test_api_takes_a_file_larger_than_a_body_as_ndjson_batches_and_a_resend_changes_nothing(
    store_engine: Engine, tmp_path: Path
) -> None:
    """The API's way for large label files (docs/ingestion.md): NDJSON batches, each under an
    Idempotency-Key of its content, so a whole re-send after a failure writes nothing twice."""
    from monitor.api.app import create_app
    from monitor.store.api_keys import create_api_key
    from tests.integration.test_api import client_for

    setup_store(store_engine, tmp_path)
    config = parse_config({"models": {"churn": MODEL}, "api": {"max_body_bytes": 4096}})
    key, _ = create_api_key(store_engine, "bulk")
    lines = [
        orjson.dumps({"id": f"r{i}", "label": i % 2, "timestamp": "2026-03-04T00:00:00Z"})
        for i in [*range(100), *range(1000, 1010)]
    ]
    lines[7] = orjson.dumps({"id": "r7", "label": None})
    headers = {"Content-Type": "application/x-ndjson"}
    with client_for(create_app(config, store_engine), key) as client:
        whole = client.post("/v1/models/churn/labels", content=b"\n".join(lines), headers=headers)
        assert whole.status_code == 413

        def send() -> list[dict[str, Any]]:
            answers = []
            for start in range(0, len(lines), 50):
                body = b"\n".join(lines[start : start + 50])
                batch_key = hashlib.sha256(body).hexdigest()
                answer = client.post(
                    "/v1/models/churn/labels", content=body, headers={**headers, "Idempotency-Key": batch_key}
                )
                assert answer.status_code == 200, answer.text
                answers.append(answer.json())
            return answers

        first = send()
        assert sum(a["accepted"] for a in first) == 109 and not any(a["replayed"] for a in first)
        assert [(r["index"], r["field"]) for a in first for r in a["rejected"]] == [(7, "label")]
        after = state(store_engine)
        assert len(after["labels"]) == 99 and len(after["pending"]) == 10 and len(after["rejected"]) == 1
        assert all(a["replayed"] for a in send())
    assert state(store_engine) == after
