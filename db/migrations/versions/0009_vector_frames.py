"""videos.vector_frames: how many frames' vectors Milvus may hold for a video (an upper bound)

Lets a re-index delete the rows past a shorter new version by id instead of by a filter, which Milvus
Lite evaluates by materialising every row of the collection. Existing rows keep NULL (unknown: the next
index of such a video uses the filter once).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("vector_frames", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("vector_frames")
