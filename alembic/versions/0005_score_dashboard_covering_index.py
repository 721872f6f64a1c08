"""score (model_id, kind, window_start) index covers the dashboard's columns

The dashboard's model page aggregates every drift and quality score of a model over its time range
(90 days × 50 features is ~110k drift and ~330k quality rows). Score rows are wide — drift details
carry histograms — so reading them from the heap dominated that page. With the columns the page
aggregates appended to the index key, both Postgres (index-only scan) and SQLite (covering index)
answer from the index alone. Appended key columns rather than Postgres' INCLUDE, which SQLite lacks;
the range condition still uses the (model_id, kind, window_start) prefix.

The volume panel needs the expected row count from the volume score's details, which no index can
cover; a small partial index over the volume scores (one per window) keeps that read from scanning the
whole score table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 08:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NAME = "ix_score_model_id_kind_window_start"
COLUMNS = ["model_id", "kind", "window_start"]
COVERED = ["feature", "method", "value", "threshold", "breached", "status"]


VOLUME = "ix_score_volume_model_id_window_start"
VOLUME_WHERE = sa.text("kind = 'quality' AND method = 'volume'")


def upgrade() -> None:
    op.drop_index(NAME, table_name="score")
    op.create_index(NAME, "score", COLUMNS + COVERED, unique=False)
    op.create_index(
        VOLUME, "score", ["model_id", "window_start"], postgresql_where=VOLUME_WHERE, sqlite_where=VOLUME_WHERE
    )


def downgrade() -> None:
    op.drop_index(VOLUME, table_name="score")
    op.drop_index(NAME, table_name="score")
    op.create_index(NAME, "score", COLUMNS, unique=False)
