"""video_dns: per-video DnS selector statistic and fine-index object

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "video_dns",
        sa.Column("video_id", sa.String(length=36), nullable=False),
        sa.Column("student", sa.String(length=32), nullable=False),
        sa.Column("selector_stat", sa.Float(), nullable=False),
        sa.Column("fine_bucket", sa.String(length=255), nullable=False),
        sa.Column("fine_key", sa.String(length=1024), nullable=False),
        sa.Column("fine_dtype", sa.String(length=16), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("video_id"),
    )


def downgrade() -> None:
    op.drop_table("video_dns")
