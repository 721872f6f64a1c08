"""Writing validated records: one statement per batch, idempotent on (model, prediction id); pending
labels, rejections and collector checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.ingest.records import CHUNK, MAX_PAYLOAD_CHARS, Rejection, UnparsableRecord, ValidLabel, ValidPrediction
from monitor.store.queries import upsert_insert
from monitor.store.tables import Checkpoint, RejectedRecord, UtcDateTime, utcnow

log = logging.getLogger(__name__)
_KEY_RETRIES = 3


# --- writing ------------------------------------------------------------------------------------


def _sqlite_time(value: datetime) -> str:
    # The text format SQLAlchemy's SQLite DateTime reads back (naive UTC), so rows written here
    # read the same as rows written through the ORM.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _db_time(value: datetime, dialect: str) -> str:
    return _sqlite_time(value) if dialect == "sqlite" else value.isoformat()


def _without_none(row: dict[str, Any]) -> dict[str, Any]:
    # An absent key becomes SQL NULL in both jsonb_to_recordset and json_each; a JSON null would not.
    return {k: v for k, v in row.items() if v is not None}


# Postgres: prediction is partitioned by ts, so (model_id, prediction_id) is unique through prediction_key
# (monitor/store/partitions.py); a stored id's ts comes from there, so a record re-sent with another
# timestamp conflicts with its one row.
# A prediction already stored keeps its first version (its reception time and the model version that
# served it too): a replay changes nothing. A label it carries is received now (label_ts is its
# reception time too); it replaces a different one as a correction, and an equal one is left alone.
_UPSERT_PREDICTIONS = {
    "postgresql": """
        INSERT INTO prediction (model_id, prediction_id, ts, features, prediction, score, label, label_ts,
                                label_received_at, source, ingested_at, model_version)
        SELECT :model_id, r.id, COALESCE(k.ts, r.ts), r.features, r.prediction, r.score, r.label, r.label_ts,
               r.label_ts,
               :source, :now, r.model_version
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id text, ts timestamptz, features jsonb,
             prediction jsonb, score jsonb, label jsonb, label_ts timestamptz, model_version text)
        LEFT JOIN prediction_key k ON k.model_id = :model_id AND k.prediction_id = r.id
        ON CONFLICT (model_id, prediction_id, ts) DO UPDATE
            SET label = EXCLUDED.label, label_ts = EXCLUDED.label_ts, label_received_at = EXCLUDED.label_received_at,
                label_corrections = prediction.label_corrections + CASE WHEN prediction.label IS NULL THEN 0 ELSE 1 END
            WHERE EXCLUDED.label IS NOT NULL AND prediction.label IS DISTINCT FROM EXCLUDED.label
    """,
    "sqlite": """
        INSERT INTO prediction (model_id, prediction_id, ts, features, prediction, score, label, label_ts,
                                label_received_at, source, ingested_at, model_version)
        SELECT :model_id, r.value ->> '$.id', r.value ->> '$.ts', r.value -> '$.features',
               r.value -> '$.prediction', r.value -> '$.score', r.value -> '$.label',
               r.value ->> '$.label_ts', r.value ->> '$.label_ts', :source, :now, r.value ->> '$.model_version'
        FROM json_each(:rows) AS r WHERE true
        ON CONFLICT (model_id, prediction_id) DO UPDATE
            SET label = excluded.label, label_ts = excluded.label_ts, label_received_at = excluded.label_received_at,
                label_corrections = prediction.label_corrections + CASE WHEN prediction.label IS NULL THEN 0 ELSE 1 END
            WHERE excluded.label IS NOT NULL AND prediction.label IS NOT excluded.label
    """,
}

# Labels that were waiting for these predictions: move them onto the rows and out of pending_label.
_JOIN_PENDING = {
    "postgresql": [
        """
        WITH joined AS (
            DELETE FROM pending_label pl USING prediction p
            WHERE pl.model_id = :model_id
              AND pl.prediction_id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))
              AND p.model_id = :model_id AND p.prediction_id = pl.prediction_id
            RETURNING pl.prediction_id, pl.label, pl.label_ts, pl.label_received_at)
        UPDATE prediction p SET label = j.label, label_ts = j.label_ts, label_received_at = j.label_received_at
        FROM joined j WHERE p.model_id = :model_id AND p.prediction_id = j.prediction_id
        """
    ],
    "sqlite": [
        """
        UPDATE prediction SET label = pl.label, label_ts = pl.label_ts, label_received_at = pl.label_received_at
        FROM pending_label pl
        WHERE pl.model_id = :model_id AND pl.prediction_id IN (SELECT value FROM json_each(:ids))
          AND prediction.model_id = :model_id AND prediction.prediction_id = pl.prediction_id
        """,
        """
        DELETE FROM pending_label
        WHERE model_id = :model_id AND prediction_id IN (SELECT value FROM json_each(:ids))
          AND EXISTS (SELECT 1 FROM prediction p
                      WHERE p.model_id = :model_id AND p.prediction_id = pending_label.prediction_id)
        """,
    ],
}

# A label equal to the stored one is a no-op (no write, no new reception time, so no stale window);
# a different one replaces it, is received now and, if one was there, counts as a correction.
_UPSERT_LABELS = {
    "postgresql": [
        """
        WITH r AS (SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
                   AS r(id text, label jsonb, label_ts timestamptz)),
        updated AS (
            UPDATE prediction p SET label = r.label, label_ts = r.label_ts, label_received_at = :now,
                label_corrections = p.label_corrections + CASE WHEN p.label IS NULL THEN 0 ELSE 1 END
            FROM r WHERE p.model_id = :model_id AND p.prediction_id = r.id AND p.label IS DISTINCT FROM r.label)
        INSERT INTO pending_label (model_id, prediction_id, label, label_ts, source, label_received_at)
        SELECT :model_id, r.id, r.label, r.label_ts, :source, :now FROM r
        WHERE NOT EXISTS (SELECT 1 FROM prediction p WHERE p.model_id = :model_id AND p.prediction_id = r.id)
        ON CONFLICT (model_id, prediction_id) DO UPDATE
            SET label = EXCLUDED.label, label_ts = EXCLUDED.label_ts, source = EXCLUDED.source,
                label_received_at = EXCLUDED.label_received_at
            WHERE pending_label.label IS DISTINCT FROM EXCLUDED.label
        """
    ],
    "sqlite": [
        """
        WITH r AS MATERIALIZED (
            SELECT value ->> '$.id' AS id, value -> '$.label' AS label, value ->> '$.label_ts' AS label_ts
            FROM json_each(:rows))
        UPDATE prediction SET label = r.label, label_ts = r.label_ts, label_received_at = :now,
            label_corrections = prediction.label_corrections + CASE WHEN prediction.label IS NULL THEN 0 ELSE 1 END
        FROM r
        WHERE prediction.model_id = :model_id AND prediction.prediction_id = r.id AND prediction.label IS NOT r.label
        """,
        """
        INSERT INTO pending_label (model_id, prediction_id, label, label_ts, source, label_received_at)
        SELECT :model_id, r.value ->> '$.id', r.value -> '$.label', r.value ->> '$.label_ts', :source, :now
        FROM json_each(:rows) AS r
        WHERE NOT EXISTS (SELECT 1 FROM prediction p
                          WHERE p.model_id = :model_id AND p.prediction_id = r.value ->> '$.id')
        ON CONFLICT (model_id, prediction_id) DO UPDATE
            SET label = excluded.label, label_ts = excluded.label_ts, source = excluded.source,
                label_received_at = excluded.label_received_at
            WHERE pending_label.label IS NOT excluded.label
        """,
    ],
}


def _statement(sql: str) -> Any:
    statement = text(sql)
    return statement.bindparams(bindparam("now", type_=UtcDateTime)) if ":now" in sql else statement


def _lock_pending_labels(session: Session, model_id: int) -> None:
    """Serialise label parking with the prediction join of one model (Postgres; SQLite has one writer).

    Without it, a label parked by one transaction while another inserts its prediction would be
    seen by neither: each runs before the other commits, and the label would wait forever.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :model_id)"), {"namespace": 7301, "model_id": model_id}
        )


def _dedupe_predictions(rows: list[ValidPrediction]) -> list[ValidPrediction]:
    """One row per id: the first version wins (as in the store), a later label in the batch still counts."""
    by_id: dict[str, ValidPrediction] = {}
    for row in rows:
        first = by_id.get(row.id)
        if first is None:
            by_id[row.id] = row
        elif row.label is not None:
            first.label = row.label
    return list(by_id.values())


def _upsert_predictions(session: Session, dialect: str, params: dict[str, Any]) -> None:
    if dialect != "postgresql":
        session.execute(_statement(_UPSERT_PREDICTIONS[dialect]), params)
        return
    # Two transactions inserting the same new id with different timestamps both miss it in
    # prediction_key; the second to commit fails on the key. Again from a savepoint, the statement
    # sees the first one's key (read committed) and updates its row.
    for attempt in range(_KEY_RETRIES):
        try:
            with session.begin_nested():
                session.execute(_statement(_UPSERT_PREDICTIONS[dialect]), params)
            return
        except IntegrityError as exc:
            if "pk_prediction_key" not in str(exc.orig) or attempt == _KEY_RETRIES - 1:
                raise


def write_predictions(session: Session, model_id: int, rows: list[ValidPrediction], source: str) -> None:
    """Upsert validated predictions and join their waiting labels, in the caller's transaction."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    now = utcnow()
    label_ts = _db_time(now, dialect)
    # Sorted by id: two batches that share ids then lock them in the same order and cannot deadlock.
    rows = sorted(_dedupe_predictions(rows), key=lambda row: row.id)
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        payload = [
            _without_none(
                {
                    "id": r.id,
                    "ts": _db_time(r.ts, dialect),
                    "features": r.features,
                    "prediction": r.prediction,
                    "score": r.score,
                    "label": r.label,
                    "label_ts": label_ts if r.label is not None else None,
                    "model_version": r.model_version,
                }
            )
            for r in chunk
        ]
        params = {"model_id": model_id, "source": source, "now": now, "rows": orjson.dumps(payload).decode()}
        _upsert_predictions(session, dialect, params)
        _lock_pending_labels(session, model_id)
        ids = orjson.dumps([r.id for r in chunk]).decode()
        for sql in _JOIN_PENDING[dialect]:
            session.execute(text(sql), {"model_id": model_id, "ids": ids})


def write_labels(session: Session, model_id: int, rows: list[ValidLabel], source: str) -> None:
    """Set labels on known predictions and park the others in ``pending_label``, in the caller's transaction."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    by_id = {r.id: r for r in rows}  # a later label for the same id corrects an earlier one
    _lock_pending_labels(session, model_id)
    unique = sorted(by_id.values(), key=lambda row: row.id)
    for start in range(0, len(unique), CHUNK):
        payload = [
            {"id": r.id, "label": r.label, "label_ts": _db_time(r.ts, dialect)} for r in unique[start : start + CHUNK]
        ]
        params = {"model_id": model_id, "source": source, "now": utcnow(), "rows": orjson.dumps(payload).decode()}
        for sql in _UPSERT_LABELS[dialect]:
            session.execute(_statement(sql), params)


def _payload(record: Any) -> str:
    if isinstance(record, UnparsableRecord):
        return record.raw[:MAX_PAYLOAD_CHARS]
    try:
        dumped = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        dumped = repr(record)
    return dumped[:MAX_PAYLOAD_CHARS]


def _storable(text: str) -> str:
    """Rejections quote what was sent, NULs included; Postgres text cannot hold NUL, so escape it."""
    return text.replace("\x00", "\\u0000")


def write_rejections(
    session: Session, model: str, source: str, records: Sequence[Any], rejections: Sequence[Rejection]
) -> None:
    if not rejections:
        return
    rows = [
        {
            "model": model,
            "source": source,
            "record_ref": _storable(r.record_ref or "")[:300] or None,
            "field": _storable(r.fields)[:300] or None,
            "reason": _storable(r.message),  # every problem of the record, each with its field
            "payload": _payload(records[r.index]),
            "received_at": utcnow(),
        }
        for r in rejections
    ]
    session.execute(RejectedRecord.__table__.insert(), rows)


def write_checkpoint(session: Session, collector: str, position: Mapping[str, Any]) -> None:
    """Upsert a collector's position in the caller's transaction (the one that stores its rows)."""
    insert = upsert_insert(session.get_bind().dialect.name)
    statement = insert(Checkpoint).values(collector=collector, position=dict(position), updated_at=utcnow())
    statement = statement.on_conflict_do_update(
        index_elements=["collector"],
        set_={"position": statement.excluded.position, "updated_at": statement.excluded.updated_at},
    )
    session.execute(statement)


def read_checkpoint(engine: Engine, collector: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        return connection.scalar(select(Checkpoint.position).where(Checkpoint.collector == collector))
