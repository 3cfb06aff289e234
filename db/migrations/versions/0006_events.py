"""query_jobs.callback_url; copies (relations found on upload); webhook_events and webhook_deliveries

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("query_jobs") as batch:
        batch.add_column(sa.Column("callback_url", sa.String(length=2048), nullable=True))
    op.create_table(
        "copies",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("video_id", sa.String(length=36), sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("other_id", sa.String(length=36), sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("video_start", sa.Float(), nullable=False),
        sa.Column("video_end", sa.Float(), nullable=False),
        sa.Column("other_start", sa.Float(), nullable=False),
        sa.Column("other_end", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("match_score", sa.Float(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_copies_video_id", "copies", ["video_id"])
    op.create_index("ix_copies_other_id", "copies", ["other_id"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_events_event", "webhook_events", ["event"])
    op.create_index("ix_webhook_events_created_at", "webhook_events", ["created_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(length=36), sa.ForeignKey("webhook_events.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_deliveries_event", "webhook_deliveries", ["event_id", "url", "attempt"])
    op.create_index("ix_webhook_deliveries_created_at", "webhook_deliveries", ["created_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("copies")
    with op.batch_alter_table("query_jobs") as batch:
        batch.drop_column("callback_url")
