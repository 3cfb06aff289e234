"""The two jobs of the product as plain functions over stages: embed a video file, match a query.

Storage enters only as callables (``search``, ``load_reference``), so both functions run in tests with
arrays and in tasks with Milvus and S3 behind them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workers.admission import InputLimits
from workers.decode import FrameGeometry, expected_frames, probe, sample_frames
from workers.embed.base import FrameEmbedder
from workers.localise import Localizer, query_coverage, video_score
from workers.select import select_candidates
from workers.stores.vectors import SearchHits
from workers.types import Match, VideoInfo

ProgressFn = Callable[[int, int], None]


@dataclass
class EmbeddedVideo:
    """A decoded and embedded video: float32 [T, D] frame descriptors and what it took."""

    info: VideoInfo
    features: np.ndarray
    fps: float
    timings: dict[str, float] = field(default_factory=dict)


def embed_file(path: Path, embedder: FrameEmbedder, *, fps: float = 1.0, chunk_frames: int = 64,
               timeout_s: float = 1800.0, max_errors: int = 0, max_duration_s: float = float("inf"),
               on_probe: Callable[[VideoInfo], None] | None = None,
               progress: ProgressFn | None = None, label: str | None = None,
               limits: InputLimits | None = None) -> EmbeddedVideo:
    """Probe, decode at ``fps`` and embed ``path``; decoding of the next chunk overlaps inference."""
    started = time.perf_counter()
    info = probe(path, label, limits)
    probed = time.perf_counter()
    if on_probe is not None:
        on_probe(info)
    expected = expected_frames(info.duration, fps)
    parts: list[np.ndarray] = []
    done, model_s = 0, 0.0
    embedder.load()
    for chunk in sample_frames(path, info, embedder.geometry, fps=fps, chunk_frames=chunk_frames,
                               timeout_s=timeout_s, max_errors=max_errors, max_duration_s=max_duration_s,
                               label=label):
        tick = time.perf_counter()
        parts.append(embedder.embed(chunk))
        model_s += time.perf_counter() - tick
        done += chunk.shape[0]
        if progress is not None:
            progress(done, max(expected, done))
    features = np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)
    total = time.perf_counter() - started
    timings = {"probe": probed - started, "embed": model_s, "decode_wait": total - (probed - started) - model_s,
               "decode_embed": total - (probed - started)}
    return EmbeddedVideo(info, features, fps, {k: round(v, 4) for k, v in timings.items()})


def embed_crops(path: Path, embedder: FrameEmbedder, grid: int, *, fps: float = 1.0, chunk_frames: int = 64,
                timeout_s: float = 1800.0, max_errors: int = 0, max_duration_s: float = float("inf"),
                label: str | None = None, limits: InputLimits | None = None) -> np.ndarray:
    """Descriptors of a grid x grid tiling of every sampled frame: float32 [grid², T, D].

    A copy shown as an inset (picture-in-picture) fills a small part of the frame, where whole-frame
    descriptors barely see it; a tile around the inset does. Frames are decoded at ``grid`` times the
    model's size, so each tile has the model's size.
    """
    info = probe(path, label, limits)
    size = embedder.geometry.size
    geometry = FrameGeometry(size * grid, "squash")
    embedder.load()
    tiles: list[list[np.ndarray]] = [[] for _ in range(grid * grid)]
    for chunk in sample_frames(path, info, geometry, fps=fps, chunk_frames=chunk_frames, timeout_s=timeout_s,
                               max_errors=max_errors, max_duration_s=max_duration_s, label=label):
        for index, (row, col) in enumerate(itertools.product(range(grid), range(grid))):
            tile = chunk[:, row * size : (row + 1) * size, col * size : (col + 1) * size]
            tiles[index].append(embedder.embed(np.ascontiguousarray(tile)))
    return np.stack([np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)
                     for parts in tiles])


def match_query(query: np.ndarray, *, fps: float, search: Callable[[np.ndarray, int], SearchHits],
                load_reference: Callable[[str], np.ndarray], localizer: Localizer, search_limit: int = 64,
                top_k: int = 5, reduce: str = "sum", exclude: set[str] | frozenset[str] = frozenset(),
                min_score: float = 0.0, timings: dict[str, float] | None = None) -> list[Match]:
    """Query frames [Tq, D] -> matches whose video score reaches ``min_score``, best first.

    One batched search for all frames, hits aggregated per video (``reduce``), the ``top_k`` candidates
    localised with ``localizer`` against their full frame matrices. ``query`` may also be [V, Tq, D],
    several views of each frame (``embed_crops``): every view is searched and the best view localised.
    """
    timings = timings if timings is not None else {}
    tick = time.perf_counter()
    hits = search(query.reshape(-1, query.shape[-1]), search_limit)
    timings["search"] = time.perf_counter() - tick

    tick = time.perf_counter()
    candidates = select_candidates(hits.video_id, hits.score, reduce=reduce, top_k=top_k, exclude=set(exclude))
    timings["select"] = time.perf_counter() - tick

    matches: list[Match] = []
    coverage: dict[str, float] = {}
    load_s = localise_s = 0.0
    for candidate in candidates:
        tick = time.perf_counter()
        reference = load_reference(candidate.video_id)
        load_s += time.perf_counter() - tick
        tick = time.perf_counter()
        segments = localizer.localize(query, reference, fps)
        localise_s += time.perf_counter() - tick
        score = video_score(segments)
        if segments and score >= min_score:
            matches.append(Match(candidate.video_id, score, segments))
            coverage[candidate.video_id] = query_coverage(segments, query.shape[-2] / fps)
    timings["load_candidates"] = load_s
    timings["localise"] = localise_s
    matches.sort(key=lambda m: (-round(m.score, 3), -coverage[m.video_id], m.video_id))
    return matches
