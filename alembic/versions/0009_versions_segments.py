"""model versions, deployments, per-version references and per-segment scores

- ``prediction.model_version``: the version that served a prediction (NULL: the model's current
  version at the prediction's time, read from ``deployment``); index ``(model_id, model_version, ts)``
  for the canary gate, which reads one version's rows over a time range.
- ``deployment``: who deployed which version of a model, when, from which pipeline run, with how
  much traffic (``driftscope deploy record``, ``POST /v1/models/{model}/deployments``).
- ``reference.version``, ``reference.approved_at``, ``reference.approved_by``: a reference dataset
  belongs to a version of the model; one that needs approval is unused until approved. Existing
  references count as approved when they were created.
- ``segment_score``: the scores of one slice of a window (``segment_by`` column = ``segment``
  value, e.g. ``channel = web`` or ``model_version = 2.1``) apart from ``score``, so every
  reader of whole-window scores stays as it is.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("prediction") as batch_op:
        batch_op.add_column(sa.Column("model_version", sa.String(length=100), nullable=True))
    op.create_index(
        "ix_prediction_model_id_model_version_ts", "prediction", ["model_id", "model_version", "ts"], unique=False
    )
    op.create_table(
        "deployment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("traffic", sa.Double(), nullable=True),
        sa.Column("commit", sa.String(length=100), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("deployed_by", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["model.id"], name=op.f("fk_deployment_model_id_model"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment")),
    )
    op.create_index("ix_deployment_model_id_deployed_at", "deployment", ["model_id", "deployed_at"], unique=False)
    with op.batch_alter_table("reference") as batch_op:
        batch_op.add_column(sa.Column("version", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("approved_by", sa.String(length=200), nullable=True))
    op.execute("UPDATE reference SET approved_at = created_at")
    op.create_table(
        "segment_score",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("monitor", sa.String(length=100), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("segment_by", sa.String(length=200), nullable=False),
        sa.Column("segment", sa.String(length=200), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=True),
        sa.Column("method", sa.String(length=50), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("breached", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_segment_score_run_id_run"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["model.id"], name=op.f("fk_segment_score_model_id_model"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_score")),
    )
    op.create_index("ix_segment_score_run_id", "segment_score", ["run_id"], unique=False)
    op.create_index(
        "ix_segment_score_model_id_segment_by_window_start",
        "segment_score",
        ["model_id", "segment_by", "window_start"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_segment_score_model_id_segment_by_window_start", table_name="segment_score")
    op.drop_index("ix_segment_score_run_id", table_name="segment_score")
    op.drop_table("segment_score")
    with op.batch_alter_table("reference") as batch_op:
        batch_op.drop_column("approved_by")
        batch_op.drop_column("approved_at")
        batch_op.drop_column("version")
    op.drop_index("ix_deployment_model_id_deployed_at", table_name="deployment")
    op.drop_table("deployment")
    op.drop_index("ix_prediction_model_id_model_version_ts", table_name="prediction")
    with op.batch_alter_table("prediction") as batch_op:
        batch_op.drop_column("model_version")
