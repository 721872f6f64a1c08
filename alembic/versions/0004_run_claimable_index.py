"""run: partial index of the runs a worker may claim

Workers claim the oldest runnable run (pending, running with an expired lease, failed with a retry
left, or stale). Almost every run is finished, so an index over only the unfinished and stale ones,
in window order, lets the claim read a handful of rows instead of every run of the monitors.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 08:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Must stay identical to monitor.store.tables.CLAIMABLE (the claim query repeats it so both backends use the index).
CLAIMABLE = "status IN ('pending', 'running', 'failed') OR stale_since IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_run_claimable",
        "run",
        ["monitor", "window_start", "id"],
        unique=False,
        postgresql_where=sa.text(CLAIMABLE),
        sqlite_where=sa.text(CLAIMABLE),
    )


def downgrade() -> None:
    op.drop_index("ix_run_claimable", table_name="run")
