"""Data types passed between pipeline stages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

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


@dataclass(frozen=True)
class FrameGeometry:
    """The square frames a model wants and how to get there from any aspect ratio.

    ``squash`` scales both sides to ``size`` (aspect ratio is not kept). ``crop`` scales the shorter side
    to ``short_side`` (default ``size``) and cuts the centre ``size`` x ``size``.
    """

    size: int
    resize: Literal["squash", "crop"] = "squash"
    short_side: int | None = None

    def filters(self) -> list[tuple[str, dict[str, object]]]:
        """The ffmpeg filters (name, options) that turn a decoded frame into this geometry."""
        if self.resize == "squash":
            return [("scale", {"w": self.size, "h": self.size, "flags": "bicubic"})]
        side = self.short_side or self.size
        return [
            ("scale", {"w": side, "h": side, "force_original_aspect_ratio": "increase", "flags": "bicubic"}),
            ("crop", {"w": self.size, "h": self.size}),
        ]


@dataclass(frozen=True)
class SearchHits:
    """Flat, parallel arrays of every hit of a batch search: query row, video, frame, score."""

    query_frame: np.ndarray  # int32 [H]
    video_id: np.ndarray  # object (str) [H]
    frame: np.ndarray  # int32 [H]
    score: np.ndarray  # float32 [H]

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def subset(self, keep: np.ndarray) -> SearchHits:
        """The hits where ``keep`` (bool [H] or indices) selects."""
        return SearchHits(self.query_frame[keep], self.video_id[keep], self.frame[keep], self.score[keep])


@dataclass
class EmbeddedVideo:
    """One decode of a video into frame descriptors (``workers.signals.frames.embed_video``), and what it took.

    ``features`` float32 [T, D] whole-frame descriptors (row i = seconds ``[i / fps, (i + 1) / fps)``);
    ``crops`` float32 [V, T, D] the other views asked for (tiles, extra views). ``timings`` in seconds per stage.
    """

    info: VideoInfo
    features: np.ndarray
    fps: float
    crops: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def views(self) -> np.ndarray:
        """[T, D], or [1 + V, T, D] with the other views after the whole frames (what a query searches)."""
        return self.features if self.crops is None else np.concatenate([self.features[None], self.crops])


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
    signals: tuple[str, ...] = ()  # the signals that found it, by label ("video", ...)

    def to_json(self) -> dict[str, object]:
        return {
            "query_start": float(self.query_start),
            "query_end": float(self.query_end),
            "ref_start": float(self.ref_start),
            "ref_end": float(self.ref_end),
            "score": float(self.score),
            "signals": list(self.signals),
        }


@dataclass
class Match:
    """A reference video that shares footage with the query, and where."""

    video_id: str
    score: float
    segments: list[Segment] = field(default_factory=list)
    video_similarity: float | None = None

    @property
    def signals(self) -> list[str]:
        """The signals that found any of its segments, in a stable order."""
        return sorted({label for segment in self.segments for label in segment.signals})


@dataclass(frozen=True)
class QueryParams:
    """What one query job may set, with the product's defaults (``QuerySettings`` and ``SelectSettings`` take
    theirs from here; ``Settings.query_params`` puts the job's own values on top)."""

    top_k: int = 10
    search_limit: int = 64
    reduce: str = "row_max"
    per_video: bool = True  # each query vector counts a video once, by its best frame (grouping search)
    min_score: float = 0.35
    exclude_self: bool = False
    crop_grid: int = 2
    extra_views: tuple[str, ...] = ("flip", "unborder", "unfill")  # workers.views.EXTRA_VIEWS


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime | None = None


class StreamedObject:
    """An object being read piece by piece (``ObjectStore.read``): ``size`` is known at once, ``info()``
    (the ETag of the bytes read) once ``pieces`` is exhausted; ``close()`` stops a read early."""

    def __init__(self, pieces: Iterator[bytes], size: int, info: Callable[[], ObjectInfo],
                 close: Callable[[], None]) -> None:
        self.pieces, self.size, self._info, self._close = pieces, size, info, close

    def info(self) -> ObjectInfo:
        return self._info()

    def close(self) -> None:
        self._close()
