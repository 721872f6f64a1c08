"""late data: label reception apart from label time, corrections, late predictions, persistent scan watermark

- ``prediction.label_received_at`` (and ``pending_label.received_at`` renamed ``label_received_at``):
  when a label was received, apart from ``label_ts``, the time it describes. The stale scan reads
  it, so a label backfilled with an old timestamp still marks its window stale. Existing labels get
  their ``label_ts`` (what was stored as their time until now), else their prediction's ``ingested_at``.
- ``prediction.label_corrections``: how many times a label was replaced by a different value.
- indexes ``(model_id, label_received_at)`` (replaces ``(model_id, label_ts)``) and
  ``(model_id, ingested_at)``: the scan reads what was received since its watermark.
- ``run.stale_rows``: predictions arrived after the run read its window, so its recompute is a full one.
- ``run.claim_token``: a claim's token apart from ``attempts`` (leases renewed by heartbeat, attempt limits).
- ``scan_watermark``: how far each monitor's stale scan has read, kept across restarts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction") as batch_op:
        batch_op.add_column(sa.Column("label_received_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("label_corrections", sa.Integer(), server_default=sa.text("0"), nullable=False))
    # Not "now": that would make every computed window look stale at the first scan after the upgrade.
    op.execute("UPDATE prediction SET label_received_at = COALESCE(label_ts, ingested_at) WHERE label IS NOT NULL")
    op.drop_index("ix_prediction_model_id_label_ts", table_name="prediction")
    op.create_index(
        "ix_prediction_model_id_label_received_at", "prediction", ["model_id", "label_received_at"], unique=False
    )
    op.create_index("ix_prediction_model_id_ingested_at", "prediction", ["model_id", "ingested_at"], unique=False)
    with op.batch_alter_table("pending_label") as batch_op:
        batch_op.alter_column(
            "received_at",
            new_column_name="label_received_at",
            existing_type=sa.DateTime(timezone=True),
            existing_nullable=False,
        )
    with op.batch_alter_table("run") as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("stale_rows", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "scan_watermark",
        sa.Column("monitor", sa.String(length=100), nullable=False),
        sa.Column("labels_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("predictions_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("monitor", name=op.f("pk_scan_watermark")),
    )


def downgrade() -> None:
    op.drop_table("scan_watermark")
    with op.batch_alter_table("run") as batch_op:
        batch_op.drop_column("stale_rows")
        batch_op.drop_column("claim_token")
    with op.batch_alter_table("pending_label") as batch_op:
        batch_op.alter_column(
            "label_received_at",
            new_column_name="received_at",
            existing_type=sa.DateTime(timezone=True),
            existing_nullable=False,
        )
    op.drop_index("ix_prediction_model_id_ingested_at", table_name="prediction")
    op.drop_index("ix_prediction_model_id_label_received_at", table_name="prediction")
    op.create_index("ix_prediction_model_id_label_ts", "prediction", ["model_id", "label_ts"], unique=False)
    with op.batch_alter_table("prediction") as batch_op:
        batch_op.drop_column("label_corrections")
        batch_op.drop_column("label_received_at")
