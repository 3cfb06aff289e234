"""SQLAlchemy 2 models: videos, query jobs, their matches and segments, copy relations and webhook events."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class VideoStatus(StrEnum):
    PENDING = "pending"
    DECODING = "decoding"
    EMBEDDING = "embedding"
    INDEXING = "indexing"
    INDEXED = "indexed"
    FAILED = "failed"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FAILURE_DETAIL_MAX = 4000


class Failable:
    """A row that can end ``failed``: a code for scripts, a message for people (the one failure transition)."""

    status: Mapped[str]
    failure_code: Mapped[str | None]
    failure_detail: Mapped[str | None]

    def fail(self, code: str, detail: str) -> None:
        self.status = "failed"
        self.failure_code = code
        self.failure_detail = detail[:FAILURE_DETAIL_MAX]


class Video(Failable, Base):
    """An indexed (or failed) reference video: one object in the uploads bucket."""

    __tablename__ = "videos"
    __table_args__ = (UniqueConstraint("bucket", "key", name="uq_videos_object"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(1024))
    bucket: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int | None] = mapped_column(BigInteger)
    etag: Mapped[str | None] = mapped_column(String(128))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=VideoStatus.PENDING, index=True)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_detail: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(128))
    dim: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float, doc="frames sampled per second")
    duration: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    vector_count: Mapped[int | None] = mapped_column(Integer, doc="informative frames, indexed in Milvus")
    vector_frames: Mapped[int | None] = mapped_column(
        Integer, default=0, doc="frames whose vectors Milvus may hold for this video, an upper bound raised before "
        "they are written: rows past a shorter new version are deleted by id up to it; NULL (rows from before "
        "migration 0009): unknown")
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    source_fps: Mapped[float | None] = mapped_column(Float)
    codec: Mapped[str | None] = mapped_column(String(64))
    matrix_bucket: Mapped[str | None] = mapped_column(String(255))
    matrix_key: Mapped[str | None] = mapped_column(String(1024))
    matrix_dtype: Mapped[str | None] = mapped_column(String(16))
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), doc="task id of the run working on the video")
    lease_until: Mapped[datetime | None] = mapped_column(doc="the run is presumed dead after this")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column()

    def fail(self, code: str, detail: str) -> None:
        super().fail(code, detail)
        self.lease_owner = self.lease_until = None


class QueryJob(Failable, Base):
    """One search: a query video against the index, and its outcome."""

    __tablename__ = "query_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(2048), doc="what the user asked with: s3://bucket/key or a file")
    name: Mapped[str] = mapped_column(String(1024))
    bucket: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING, index=True)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_detail: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(128))
    duration: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    matrix_key: Mapped[str | None] = mapped_column(String(1024))
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    callback_url: Mapped[str | None] = mapped_column(String(2048), doc="gets this job's query.done event")
    lease_owner: Mapped[str | None] = mapped_column(String(64), doc="task id of the run working on the job")
    lease_until: Mapped[datetime | None] = mapped_column(doc="the run is presumed dead after this")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    matches: Mapped[list[QueryMatch]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="QueryMatch.rank"
    )

    def fail(self, code: str, detail: str) -> None:
        super().fail(code, detail)
        self.finished_at = utcnow()
        self.lease_owner = self.lease_until = None


class QueryMatch(Base):
    """A reference video found for a query job; ``name`` is kept so results outlive a deleted video."""

    __tablename__ = "query_matches"
    __table_args__ = (Index("ix_query_matches_job", "job_id", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("query_jobs.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    video_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(1024))
    score: Mapped[float] = mapped_column(Float)
    video_similarity: Mapped[float | None] = mapped_column(Float)

    job: Mapped[QueryJob] = relationship(back_populates="matches")
    segments: Mapped[list[QuerySegment]] = relationship(
        back_populates="match", cascade="all, delete-orphan", order_by="QuerySegment.query_start"
    )


class QuerySegment(Base):
    """A copied segment pair, in seconds."""

    __tablename__ = "query_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    match_id: Mapped[int] = mapped_column(ForeignKey("query_matches.id", ondelete="CASCADE"), index=True)
    query_start: Mapped[float] = mapped_column(Float)
    query_end: Mapped[float] = mapped_column(Float)
    ref_start: Mapped[float] = mapped_column(Float)
    ref_end: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    signals: Mapped[list[str]] = mapped_column(JSON, default=list, doc="labels of the signals that found it")

    match: Mapped[QueryMatch] = relationship(back_populates="segments")


class FsckRun(Base):
    """One consistency check (``copycat fsck``, or beat's scheduled one): counts per kind of inconsistency."""

    __tablename__ = "fsck_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    seconds: Mapped[float] = mapped_column(Float)
    repaired: Mapped[bool] = mapped_column(default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict, doc="kind -> inconsistencies found")
    total: Mapped[int] = mapped_column(Integer)


class VideoSignal(Base):
    """What one signal other than the primary stored for an indexed video (the primary's record is the video
    row's matrix columns); goes with the video (ON DELETE CASCADE). ``data`` holds the signal's own facts."""

    __tablename__ = "video_signals"

    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True)
    signal: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_key: Mapped[str | None] = mapped_column(String(1024))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CopyRelation(Base):
    """A copied segment pair between two indexed videos, found when ``video_id`` was indexed (in seconds).

    Both videos' rows own it: deleting either removes it (foreign keys with ``ON DELETE CASCADE``)."""

    __tablename__ = "copies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    other_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    video_start: Mapped[float] = mapped_column(Float)
    video_end: Mapped[float] = mapped_column(Float)
    other_start: Mapped[float] = mapped_column(Float)
    other_end: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float, doc="the segment's score")
    match_score: Mapped[float] = mapped_column(Float, doc="the pair's score (its best segment's)")
    signals: Mapped[list[str]] = mapped_column(JSON, default=list, doc="labels of the signals that found it")
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEvent(Base):
    """Something a platform is told about; its deliveries are retried from this row."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event: Mapped[str] = mapped_column(String(32), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WebhookDelivery(Base):
    """One delivery attempt of an event to one URL."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_event", "event_id", "url", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2048))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16), doc="delivered, retrying or given_up")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
