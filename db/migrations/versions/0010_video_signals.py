"""video_signals: one row per video and signal other than the primary (replaces video_dns); the signals that
found each query segment and copy relation

The DnS rows move over as signal ``dns``: their fine-index object stays where it is (``object_key``) and
their student, selector statistic, fine dtype and frame count become the row's ``data``. Segments and
relations found before this revision were all found by the frame descriptors (``["video"]``).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    signals = op.create_table(
        "video_signals",
        sa.Column("video_id", sa.String(length=36), nullable=False),
        sa.Column("signal", sa.String(length=64), nullable=False),
        sa.Column("object_key", sa.String(length=1024), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("video_id", "signal"),
    )
    dns = sa.table("video_dns", *(sa.column(name) for name in ("video_id", "student", "selector_stat", "fine_key",
                                                                "fine_dtype", "frames", "created_at")))
    rows = op.get_bind().execute(sa.select(dns)).mappings().all()
    if rows:
        op.bulk_insert(signals, [
            {"video_id": r["video_id"], "signal": "dns", "object_key": r["fine_key"], "created_at": r["created_at"],
             "data": {"student": r["student"], "selector_stat": r["selector_stat"], "fine_dtype": r["fine_dtype"],
                      "frames": r["frames"]}}
            for r in rows])
    op.drop_table("video_dns")
    for table in ("query_segments", "copies"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("signals", sa.JSON(), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET signals = '[\"video\"]'"))


def downgrade() -> None:
    for table in ("query_segments", "copies"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("signals")
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
