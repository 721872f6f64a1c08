"""SQLAlchemy 2.0 tables of the Driftscope store.

The schema belongs to Alembic (``alembic/versions``); these classes describe it for queries and
a test checks that both agree. Postgres in production, SQLite embedded: types are chosen so the
same code runs on both (JSON becomes JSONB on Postgres; timestamps are stored in UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY, so BIGINT ids are INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Driftscope stores timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Every class here maps a plain Table; DeclarativeBase types __table__ as the wider FromClause,
    # which insert() and Table-only APIs refuse.
    __table__: ClassVar[Table]
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
        }
    )


class Model(Base):
    """A monitored model; its schema mirrors the config so history survives config edits."""

    __tablename__ = "model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    task: Mapped[str] = mapped_column(String(20))
    feature_schema: Mapped[dict[str, str]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    # Retention may have deleted predictions older than this (migration 0010): their windows are not recomputed.
    pruned_before: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Prediction(Base):
    """One prediction; the label arrives later. Unique per (model, prediction id): upserts are idempotent.

    On Postgres the table is partitioned by week of ``ts`` (migration 0010, ``monitor/store/partitions.py``):
    the unique constraint below is ``UNIQUE (model_id, prediction_id, ts)`` there, the primary key
    ``(id, ts)``, and ``(model_id, prediction_id)`` is kept unique by the ``prediction_key`` table.
    """

    __tablename__ = "prediction"
    __table_args__ = (
        UniqueConstraint("model_id", "prediction_id"),
        Index("ix_prediction_model_id_ts", "model_id", "ts"),
        # The stale scan reads what was received since its watermark, labels and predictions (migration 0008).
        Index("ix_prediction_model_id_label_received_at", "model_id", "label_received_at"),
        Index("ix_prediction_model_id_ingested_at", "model_id", "ingested_at"),
        # The canary gate reads one version's rows over a time range (migration 0009).
        Index("ix_prediction_model_id_model_version_ts", "model_id", "model_version", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    prediction_id: Mapped[str] = mapped_column(String(200))
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    features: Mapped[dict[str, Any]] = mapped_column(Json)
    prediction: Mapped[Any] = mapped_column(Json, nullable=True)
    score: Mapped[Any] = mapped_column(Json, nullable=True)
    label: Mapped[Any] = mapped_column(Json, nullable=True)
    # The time the label describes (the record's own, else its reception); label lag is measured with it.
    label_ts: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # When the label (or its last correction) was received: staleness is driven by reception, not label_ts.
    label_received_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # How many times a label was replaced by a different value.
    label_corrections: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    source: Mapped[str] = mapped_column(String(100))
    # When the prediction was received: one that arrives after its window was computed makes it stale.
    ingested_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The model version that served it; NULL means the version deployed at ``ts`` (see Deployment).
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)


class PendingLabel(Base):
    """A label whose prediction has not arrived yet; joined when it does."""

    __tablename__ = "pending_label"
    __table_args__ = (UniqueConstraint("model_id", "prediction_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    prediction_id: Mapped[str] = mapped_column(String(200))
    label: Mapped[Any] = mapped_column(Json)
    label_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(100))
    # Moved onto the prediction with the label when it joins.
    label_received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RejectedRecord(Base):
    """What could not be ingested, with why: nothing is dropped silently."""

    __tablename__ = "rejected_record"
    __table_args__ = (Index("ix_rejected_record_model_received_at", "model", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(100))
    record_ref: Mapped[str | None] = mapped_column(String(300), nullable=True)
    field: Mapped[str | None] = mapped_column(String(300), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Checkpoint(Base):
    """Where a collector stands; written in the same transaction as the rows it covers."""

    __tablename__ = "checkpoint"

    collector: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[dict[str, Any]] = mapped_column(Json)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class MetricSeries(Base):
    __tablename__ = "metric_series"
    __table_args__ = (UniqueConstraint("model_id", "name", "labels_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, str]] = mapped_column(Json)
    labels_hash: Mapped[str] = mapped_column(String(64))


class MetricPoint(Base):
    __tablename__ = "metric_point"

    series_id: Mapped[int] = mapped_column(ForeignKey("metric_series.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    value: Mapped[float] = mapped_column(Double)


class Reference(Base):
    """The baseline a monitor compares against, with its profile cached once computed."""

    __tablename__ = "reference"
    __table_args__ = (UniqueConstraint("model_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # range | dataset | previous_windows
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    dataset: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # uploaded rows, as Parquet
    row_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    profile: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    profile_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    profiled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The model version this reference belongs to (an uploaded training set); NULL: every version.
    version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # NULL while a reference that needs approval waits for `driftscope reference approve`.
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Deployment(Base):
    """One deployment of a model version: who deployed what, when, from which pipeline run."""

    __tablename__ = "deployment"
    __table_args__ = (Index("ix_deployment_model_id_deployed_at", "model_id", "deployed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(100))
    deployed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Share of traffic the version receives (0 < traffic <= 1); NULL: all of it.
    traffic: Mapped[float | None] = mapped_column(Double, nullable=True)
    commit: Mapped[str | None] = mapped_column(String(100), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)  # the pipeline run
    deployed_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# Runs a worker may claim (unfinished or stale); a partial index keeps claims cheap when almost
# every run is finished. The claim query repeats this predicate verbatim so SQLite uses the index too.
CLAIMABLE = "status IN ('pending', 'running', 'failed') OR stale_since IS NOT NULL"


class Run(Base):
    """One detector run for one (monitor, window); exactly one row per pair."""

    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("monitor", "window_start"),
        Index("ix_run_status_claimed_until", "status", "claimed_until"),
        Index("ix_run_model_id_window_start", "model_id", "window_start"),
        Index(
            "ix_run_claimable",
            "monitor",
            "window_start",
            "id",
            postgresql_where=text(CLAIMABLE),
            sqlite_where=text(CLAIMABLE),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    monitor: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    window_end: Mapped[datetime] = mapped_column(UtcDateTime)
    # pending → running → succeeded | failed | insufficient_data
    status: Mapped[str] = mapped_column(String(20), default="pending")
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A claim's own token, apart from the attempt count (for leases renewed by heartbeat, attempt limits).
    claim_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    row_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    label_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Double, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set when labels or predictions are received after the window was computed, so it is recomputed.
    stale_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Predictions arrived late: the recompute is a full one (rows changed), not only the label scores.
    stale_rows: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ScanWatermark(Base):
    """How far a monitor's stale scan has read, by reception time, so a restart reads only what arrived since."""

    __tablename__ = "scan_watermark"

    monitor: Mapped[str] = mapped_column(String(100), primary_key=True)
    labels_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    predictions_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Score(Base):
    """One number from a run. Monitor, model and window are repeated so dashboards read one table."""

    __tablename__ = "score"
    __table_args__ = (
        Index("ix_score_run_id", "run_id"),
        # Covering (migration 0005): the dashboard aggregates these columns from the index alone.
        Index(
            "ix_score_model_id_kind_window_start",
            *("model_id", "kind", "window_start"),
            *("feature", "method", "value", "threshold", "breached", "status"),
        ),
        # The volume scores alone (one per window), for the dashboard's volume panel.
        Index(
            "ix_score_volume_model_id_window_start",
            "model_id",
            "window_start",
            postgresql_where=text("kind = 'quality' AND method = 'volume'"),
            sqlite_where=text("kind = 'quality' AND method = 'volume'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"))
    monitor: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(30))
    feature: Mapped[str | None] = mapped_column(String(200), nullable=True)
    method: Mapped[str] = mapped_column(String(50))
    value: Mapped[float | None] = mapped_column(Double, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Double, nullable=True)
    breached: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="ok")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


class SegmentScore(Base):
    """One number from a run, for one slice of its window (``segment_by`` = ``segment``).

    Apart from :class:`Score` so that readers of whole-window scores need no segment filter.
    Per-version scores are segments too: ``segment_by`` is ``model_version``.
    """

    __tablename__ = "segment_score"
    __table_args__ = (
        Index("ix_segment_score_run_id", "run_id"),
        Index("ix_segment_score_model_id_segment_by_window_start", "model_id", "segment_by", "window_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"))
    monitor: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"))
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    segment_by: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(30))
    feature: Mapped[str | None] = mapped_column(String(200), nullable=True)
    method: Mapped[str] = mapped_column(String(50))
    value: Mapped[float | None] = mapped_column(Double, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Double, nullable=True)
    breached: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="ok")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


class Alert(Base):
    """One alert instance: pending → firing → resolved. A new breach after resolve is a new row."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_rule_fingerprint_state", "rule", "fingerprint", "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, str]] = mapped_column(Json)
    annotations: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    severity: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    value: Mapped[float | None] = mapped_column(Double, nullable=True)
    consecutive: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    fired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ack_comment: Mapped[str | None] = mapped_column(Text, nullable=True)


class Silence(Base):
    __tablename__ = "silence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    matchers: Mapped[dict[str, str]] = mapped_column(Json)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Notification(Base):
    """The outbox: written with the alert change, delivered later with retries."""

    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_notification_group_key_id", "group_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id", ondelete="SET NULL"), nullable=True)
    # One group of alerts per channel (Alertmanager's group_by); its timing is read from its latest row.
    group_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(20))  # firing | update | resolved | repeat | test
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    # pending → sending → delivered | failed
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ApiKey(Base):
    """An API key; only its hash is stored. ``models`` NULL means every model; ``scopes`` what it may do."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    models: Mapped[list[str] | None] = mapped_column(Json, nullable=True)
    scopes: Mapped[list[str]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AuthFailure(Base):
    """A failed API authentication, counted per key prefix by the API's limiter (every process shares it).

    ``bucket`` is the presented key's prefix when a key has it, else one bucket for all unknown
    prefixes; the limiter stops recording a bucket at its limit and deletes rows older than its window,
    so the table holds at most (keys + 1) × limit rows.
    """

    __tablename__ = "auth_failure"
    __table_args__ = (Index("ix_auth_failure_bucket_failed_at", "bucket", "failed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(32))
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class IdempotentRequest(Base):
    """A processed ingestion batch, so a retried request with the same Idempotency-Key is a no-op."""

    __tablename__ = "idempotent_request"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    response: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
