"""prediction (model_id, label_ts) index

The scheduler finds windows whose labels arrived after they were computed by reading the labels
newer than its watermark (``label_ts > :watermark``) every tick; without this index that is a scan
of all the model's predictions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 08:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_prediction_model_id_label_ts", "prediction", ["model_id", "label_ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_prediction_model_id_label_ts", table_name="prediction")
