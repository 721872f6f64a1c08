"""auth_failure: failed API authentications per key prefix, shared by every API process

The API's limiter counted failures per client address in each process: behind an ingress one client
with bad keys got everyone a 429, a client varying X-Forwarded-For was never limited, and N processes
allowed N times the limit. It now counts per presented key prefix in this table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_failure",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bucket", sa.String(length=32), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_failure")),
    )
    op.create_index("ix_auth_failure_bucket_failed_at", "auth_failure", ["bucket", "failed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_auth_failure_bucket_failed_at", table_name="auth_failure")
    op.drop_table("auth_failure")
