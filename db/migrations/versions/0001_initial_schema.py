"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 23:49:19.551294
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('query_jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('source', sa.String(length=2048), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('bucket', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=1024), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('failure_code', sa.String(length=64), nullable=True),
    sa.Column('failure_detail', sa.Text(), nullable=True),
    sa.Column('model', sa.String(length=128), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('frame_count', sa.Integer(), nullable=True),
    sa.Column('matrix_key', sa.String(length=1024), nullable=True),
    sa.Column('timings', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('query_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_query_jobs_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_query_jobs_status'), ['status'], unique=False)

    op.create_table('videos',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('bucket', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=1024), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('etag', sa.String(length=128), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('failure_code', sa.String(length=64), nullable=True),
    sa.Column('failure_detail', sa.Text(), nullable=True),
    sa.Column('model', sa.String(length=128), nullable=True),
    sa.Column('dim', sa.Integer(), nullable=True),
    sa.Column('fps', sa.Float(), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('frame_count', sa.Integer(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('source_fps', sa.Float(), nullable=True),
    sa.Column('codec', sa.String(length=64), nullable=True),
    sa.Column('matrix_bucket', sa.String(length=255), nullable=True),
    sa.Column('matrix_key', sa.String(length=1024), nullable=True),
    sa.Column('matrix_dtype', sa.String(length=16), nullable=True),
    sa.Column('timings', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('indexed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('bucket', 'key', name='uq_videos_object')
    )
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_videos_sha256'), ['sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_videos_status'), ['status'], unique=False)

    op.create_table('query_matches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('video_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('video_similarity', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['query_jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('query_matches', schema=None) as batch_op:
        batch_op.create_index('ix_query_matches_job', ['job_id', 'rank'], unique=False)
        batch_op.create_index(batch_op.f('ix_query_matches_video_id'), ['video_id'], unique=False)

    op.create_table('query_segments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('match_id', sa.Integer(), nullable=False),
    sa.Column('query_start', sa.Float(), nullable=False),
    sa.Column('query_end', sa.Float(), nullable=False),
    sa.Column('ref_start', sa.Float(), nullable=False),
    sa.Column('ref_end', sa.Float(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['match_id'], ['query_matches.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('query_segments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_query_segments_match_id'), ['match_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('query_segments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_query_segments_match_id'))

    op.drop_table('query_segments')
    with op.batch_alter_table('query_matches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_query_matches_video_id'))
        batch_op.drop_index('ix_query_matches_job')

    op.drop_table('query_matches')
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_videos_status'))
        batch_op.drop_index(batch_op.f('ix_videos_sha256'))

    op.drop_table('videos')
    with op.batch_alter_table('query_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_query_jobs_status'))
        batch_op.drop_index(batch_op.f('ix_query_jobs_created_at'))

    op.drop_table('query_jobs')
