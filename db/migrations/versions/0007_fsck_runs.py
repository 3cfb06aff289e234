"""fsck_runs: the results of consistency checks (``copycat fsck``), read by status and metrics

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fsck_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("repaired", sa.Boolean(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
    )
    op.create_index("ix_fsck_runs_started_at", "fsck_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_fsck_runs_started_at", table_name="fsck_runs")
    op.drop_table("fsck_runs")
