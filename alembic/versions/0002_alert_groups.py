"""alert notification groups

Notifications are grouped (Alertmanager's group_by); the group's timing (group_wait, group_interval,
repeat_interval) is derived from the latest notification of the group, so the outbox row carries its
group key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_key", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_notification_group_key_id", ["group_key", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_group_key_id")
        batch_op.drop_column("group_key")
