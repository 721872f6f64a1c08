"""api_key.scopes: what a key may do (ingest, read, operate, admin); existing keys keep ingest

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.add_column(sa.Column("scopes", Json, nullable=True))
    # Every key made before scopes could only push records.
    op.execute("UPDATE api_key SET scopes = '[\"ingest\"]'")
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.alter_column("scopes", existing_type=Json, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.drop_column("scopes")
