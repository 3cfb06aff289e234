"""Data types passed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe says about a video before any frame is decoded."""

    duration: float
    width: int
    height: int
    fps: float
    codec: str
    stream_index: int
    duration_is_exact: bool = True  # False when only the container's length (of its longest stream) is known
    demuxer: str = ""  # the ffmpeg demuxer ffprobe found (workers.admission.CONTAINERS), forced when decoding


@dataclass
class FrameFeatures:
    """One video reduced to per-frame descriptors.

    ``features`` is float [T, D], one row per sampled frame; row i stands for seconds
    ``[i / fps, (i + 1) / fps)`` of the video.
    """

    video_id: str
    features: np.ndarray
    fps: float
    model: str

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


@dataclass(frozen=True)
class Candidate:
    """A video that the frame-level search suggests, with its aggregated hit score."""

    video_id: str
    score: float


@dataclass(frozen=True)
class Segment:
    """A copied segment pair in seconds: query ``[query_start, query_end)`` ~ reference ``[ref_start, ref_end)``."""

    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float

    def to_json(self) -> dict[str, float]:
        return {
            "query_start": float(self.query_start),
            "query_end": float(self.query_end),
            "ref_start": float(self.ref_start),
            "ref_end": float(self.ref_end),
            "score": float(self.score),
        }


@dataclass
class Match:
    """A reference video that shares footage with the query, and where."""

    video_id: str
    score: float
    segments: list[Segment] = field(default_factory=list)
    video_similarity: float | None = None
