"""SQLAlchemy model of a video's DnS representation (the coarse vector lives in Milvus, the fine index in S3).

Defined on ``db.models.Base`` so the table joins the same metadata once this module is imported; the table
itself is created by migration ``0002``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base, utcnow


class VideoDns(Base):
    """What DnS stored for one indexed video; the row goes with the video (ON DELETE CASCADE).

    ``fine_key`` names the fine index object in the matrices bucket (``fine_dtype`` ``float32`` [T, 9, 512] or
    ``packbits`` uint8 [T, 9, 64]); ``frames`` is T, the frames sampled at 1 fps; ``selector_stat`` is the
    selector's per-video statistic ``f`` for ``student``'s selector.
    """

    __tablename__ = "video_dns"

    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True)
    student: Mapped[str] = mapped_column(String(32))
    selector_stat: Mapped[float] = mapped_column(Float)
    fine_bucket: Mapped[str] = mapped_column(String(255))
    fine_key: Mapped[str] = mapped_column(String(1024))
    fine_dtype: Mapped[str] = mapped_column(String(16))
    frames: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
