"""prediction partitioned by week on Postgres, its idempotency key apart; model.pruned_before

Postgres only (SQLite keeps one unpartitioned table):

- ``prediction`` becomes ``PARTITION BY RANGE (ts)``: a partition per week that holds rows, the
  current week, and ``prediction_default`` for every other time (``monitor/store/partitions.py``
  creates the weeks ahead afterwards). Rows are copied with their ids; the id sequence carries on.
- Postgres refuses a unique constraint without the partition key, so ``UNIQUE (model_id,
  prediction_id)`` moves to ``prediction_key (model_id, prediction_id) → ts``, kept by statement
  triggers on ``prediction`` (an insert claims its key and fails on a taken one, as the constraint
  did; a delete frees it). ``prediction`` gets ``UNIQUE (model_id, prediction_id, ts)`` as the
  upsert's conflict target and a primary key ``(id, ts)``.

Both stores: ``model.pruned_before``, the time before which retention may have deleted a model's
predictions, so a late label for such a window does not recompute it from what is left.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:30:00
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)
_WEEK = timedelta(days=7)
_INDEXES = {
    "ix_prediction_model_id_ts": "model_id, ts",
    "ix_prediction_model_id_label_received_at": "model_id, label_received_at",
    "ix_prediction_model_id_ingested_at": "model_id, ingested_at",
    "ix_prediction_model_id_model_version_ts": "model_id, model_version, ts",
}

_TRIGGERS = """
CREATE FUNCTION prediction_key_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A taken key fails the insert with a unique violation on pk_prediction_key, as UNIQUE did.
    INSERT INTO prediction_key (model_id, prediction_id, ts) SELECT model_id, prediction_id, ts FROM inserted;
    RETURN NULL;
END $$;
CREATE FUNCTION prediction_key_free() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM prediction_key k USING deleted d
    WHERE k.model_id = d.model_id AND k.prediction_id = d.prediction_id AND k.ts = d.ts;
    RETURN NULL;
END $$;
CREATE TRIGGER prediction_key_claim AFTER INSERT ON prediction
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION prediction_key_claim();
CREATE TRIGGER prediction_key_free AFTER DELETE ON prediction
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION prediction_key_free();
"""


def _week(moment: datetime) -> datetime:
    return _MONDAY + ((moment - _MONDAY) // _WEEK) * _WEEK


def upgrade() -> None:
    with op.batch_alter_table("model") as batch_op:
        batch_op.add_column(sa.Column("pruned_before", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    connection = op.get_bind()
    op.execute("CREATE TABLE prediction_new (LIKE prediction INCLUDING DEFAULTS) PARTITION BY RANGE (ts)")
    op.execute("CREATE TABLE prediction_default PARTITION OF prediction_new DEFAULT")
    weeks = {_week(datetime.now(UTC))} | {
        _week(day.replace(tzinfo=UTC))
        for day in connection.scalars(
            sa.text("SELECT DISTINCT date_trunc('day', ts AT TIME ZONE 'UTC') FROM prediction")
        )
    }
    for start in sorted(weeks):
        op.execute(
            f"CREATE TABLE prediction_p{start:%Y%m%d} PARTITION OF prediction_new "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + _WEEK).isoformat()}')"
        )
    op.execute("INSERT INTO prediction_new SELECT * FROM prediction")
    op.execute("ALTER SEQUENCE prediction_id_seq OWNED BY prediction_new.id")
    op.execute("DROP TABLE prediction")
    op.execute("ALTER TABLE prediction_new RENAME TO prediction")
    op.execute("ALTER TABLE prediction ADD CONSTRAINT pk_prediction PRIMARY KEY (id, ts)")
    op.execute(
        "ALTER TABLE prediction ADD CONSTRAINT uq_prediction_model_id_prediction_id_ts "
        "UNIQUE (model_id, prediction_id, ts)"
    )
    op.execute(
        "ALTER TABLE prediction ADD CONSTRAINT fk_prediction_model_id_model "
        "FOREIGN KEY (model_id) REFERENCES model (id) ON DELETE CASCADE"
    )
    for name, columns in _INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON prediction ({columns})")
    op.execute(
        "CREATE TABLE prediction_key (model_id INTEGER NOT NULL, prediction_id VARCHAR(200) NOT NULL, "
        "ts TIMESTAMP WITH TIME ZONE NOT NULL, CONSTRAINT pk_prediction_key PRIMARY KEY (model_id, prediction_id), "
        "CONSTRAINT fk_prediction_key_model_id_model FOREIGN KEY (model_id) REFERENCES model (id) ON DELETE CASCADE)"
    )
    # Retention frees the keys of a week before it drops the week's partition.
    op.execute("CREATE INDEX ix_prediction_key_ts ON prediction_key (ts)")
    op.execute("INSERT INTO prediction_key SELECT model_id, prediction_id, ts FROM prediction")
    op.execute(_TRIGGERS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER prediction_key_claim ON prediction")
        op.execute("DROP TRIGGER prediction_key_free ON prediction")
        op.execute("DROP FUNCTION prediction_key_claim()")
        op.execute("DROP FUNCTION prediction_key_free()")
        op.execute("DROP TABLE prediction_key")
        op.execute("CREATE TABLE prediction_plain (LIKE prediction INCLUDING DEFAULTS)")
        op.execute("ALTER SEQUENCE prediction_id_seq OWNED BY prediction_plain.id")
        op.execute("ALTER TABLE prediction RENAME TO prediction_partitioned")
        for name in [*_INDEXES, "uq_prediction_model_id_prediction_id_ts", "pk_prediction"]:
            op.execute(f"ALTER INDEX {name} RENAME TO {name}_partitioned")
        op.execute("ALTER TABLE prediction_partitioned RENAME CONSTRAINT fk_prediction_model_id_model TO fk_old")
        op.execute("ALTER TABLE prediction_plain RENAME TO prediction")
        op.execute("ALTER TABLE prediction ADD CONSTRAINT pk_prediction PRIMARY KEY (id)")
        op.execute(
            "ALTER TABLE prediction ADD CONSTRAINT uq_prediction_model_id_prediction_id "
            "UNIQUE (model_id, prediction_id)"
        )
        # The key table kept ids unique; ON CONFLICT only guards a record re-sent while its old week was dropped.
        op.execute("INSERT INTO prediction SELECT * FROM prediction_partitioned ORDER BY id ON CONFLICT DO NOTHING")
        op.execute("DROP TABLE prediction_partitioned")
        op.execute(
            "ALTER TABLE prediction ADD CONSTRAINT fk_prediction_model_id_model "
            "FOREIGN KEY (model_id) REFERENCES model (id) ON DELETE CASCADE"
        )
        for name, columns in _INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON prediction ({columns})")
    # Not batch mode: SQLite would copy model into a new table and drop the old one, and the drop
    # cascades to every row that references a model. Its own DROP COLUMN (3.35+) alters in place.
    op.execute("ALTER TABLE model DROP COLUMN pruned_before")
