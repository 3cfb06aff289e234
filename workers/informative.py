"""Low-information frames: black, blank, solid or near-uniform frames, the dark ends of fades, plain title cards.

Why: every video's black frames look alike to a copy descriptor, and so do white, grey or single-colour frames
and the nearly blank cards of titles and credits. A temporal path through such frames links any two videos that
have them (an 8 s black query "copied" a 20 s black reference with score 1.14, issue 11). Such frames carry no
evidence of copying, so they are found from pixel statistics of the decoded frames and kept out of matching.

Statistics are taken on the luma of the model-sized frame averaged over ``CELL`` x ``CELL`` pixel cells, which
keeps sensor noise and compression blocks from passing for detail:

- ``contrast``: standard deviation of the cell luma (0-255 scale);
- ``flat``: share of cells within ``FLAT_TOLERANCE`` of the frame's median luma (the background).

A frame is uninformative when it has almost no contrast (``contrast < min_contrast``: black, white, solid
colour, grain on a flat colour, the last tenth of a fade to black) or when it is a plain background with a
little on it (``flat >= max_flat``: a title card, a lone caption on black). Edge energy (mean difference of
neighbouring cells) was tried as a third test and dropped: grain on black has more of it than a dim sky.

Thresholds, measured on the fixture benchmark (``python -m bench.informative``, 1391 frames whose truth is
known): black, white, coloured, noisy-dark and colour-fade frames have contrast <= 0.6, footage >= 4.4 (a
plain sky, clip02) apart from truly black first frames; title cards have flat >= 0.91, footage <= 0.86
(dark space, clip18 darkened). With ``min_contrast`` 3 and ``max_flat`` 0.88 every blank or card frame is
dropped and all footage is kept except clip03's black first frame.

Test patterns (colour bars, ffmpeg's ``testsrc``) are full of contrast, so pixel statistics keep them; yet
bars in one video and bars in another are no copy. They are recognised by their descriptors instead:
``pattern_frames`` draws colour bars, the embedder embeds them once, and ``unlike_patterns`` drops frames
whose descriptor is close to one of them. With ``sscd_distilled`` at 224 px, SMPTE bars (SD and HD) score
0.65 against the drawn bars and ``testsrc`` 0.49-0.55, while no informative frame of the fixture benchmark
(references, and every view of every other query) scored above 0.23; hence ``max_similarity`` 0.4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameFilter:
    """Which frames count as evidence (``Settings.frames``); ``enabled`` False keeps every frame."""

    enabled: bool = True
    min_contrast: float = 3.0
    max_flat: float = 0.88
    max_pattern_similarity: float = 0.4

    def keep(self, frames: np.ndarray, features: np.ndarray, pattern_features: np.ndarray) -> np.ndarray:
        """bool [N]: frames uint8 [N, H, W, 3] with their descriptors [N, D] that are informative."""
        if not self.enabled:
            return np.ones(len(frames), bool)
        return (informative_frames(frames, min_contrast=self.min_contrast, max_flat=self.max_flat)
                & unlike_patterns(features, pattern_features, self.max_pattern_similarity))

CELL = 4
"""Side of the square pixel cells averaged before the statistics (224 px frames -> 56 x 56 cells)."""
FLAT_TOLERANCE = 2.0
"""Luma levels (0-255) within which a cell counts as the frame's background."""
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R BT.601 luma weights of R, G, B."""


@dataclass(frozen=True)
class FrameStatistics:
    """Per-frame statistics of ``frame_statistics``, each float32 [N]."""

    contrast: np.ndarray
    flat: np.ndarray


def frame_statistics(frames: np.ndarray) -> FrameStatistics:
    """Contrast and flat share (module docstring) of uint8 RGB frames [N, H, W, 3]."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"need uint8 RGB frames [N, H, W, 3], got shape {frames.shape}")
    n, height, width, _ = frames.shape
    if n == 0:
        empty = np.zeros(0, np.float32)
        return FrameStatistics(empty, empty)
    if height >= CELL and width >= CELL:
        # Cell sums by strided adds (3x faster than a reshaped mean), then luma of the cell means.
        wide = frames[:, : height // CELL * CELL, : width // CELL * CELL].astype(np.uint16)
        wide = sum(wide[:, i::CELL] for i in range(CELL))
        wide = sum(wide[:, :, i::CELL] for i in range(CELL))  # [N, rows, cols, 3]
        luma = (wide.astype(np.float32) @ LUMA) / (CELL * CELL)
    else:
        luma = frames.astype(np.float32) @ LUMA
    cells = luma.reshape(n, -1)
    background = np.median(cells, axis=1)
    flat = (np.abs(cells - background[:, None]) <= FLAT_TOLERANCE).mean(axis=1)
    return FrameStatistics(cells.std(axis=1).astype(np.float32), flat.astype(np.float32))


def pattern_frames(size: int) -> np.ndarray:
    """Colour bars to embed as test-pattern prototypes: uint8 [4, size, size, 3].

    75 % SMPTE bars (seven columns), the same with SMPTE's reversed strip and dark bottom band, and
    full-range eight-colour bars in both orders. Drawn here, so nothing is downloaded or shipped.
    """
    seven = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191)]
    eight = [
        (255, 255, 255),
        (255, 255, 0),
        (0, 255, 255),
        (0, 255, 0),
        (255, 0, 255),
        (255, 0, 0),
        (0, 0, 255),
        (0, 0, 0),
    ]

    def bars(colours: list[tuple[int, int, int]]) -> np.ndarray:
        edges = np.linspace(0, size, len(colours) + 1).astype(int)
        frame = np.zeros((size, size, 3), np.uint8)
        for colour, left, right in zip(colours, edges[:-1], edges[1:], strict=True):
            frame[:, left:right] = colour
        return frame

    smpte = bars(seven)
    smpte[size * 2 // 3 : size * 3 // 4] = bars(seven[::-1])[size * 2 // 3 : size * 3 // 4]
    smpte[size * 3 // 4 :] = 16
    return np.stack([bars(seven), smpte, bars(eight), bars(eight[::-1])])


def unlike_patterns(features: np.ndarray, pattern_features: np.ndarray, max_similarity: float = 0.4) -> np.ndarray:
    """Which frames do not look like a test pattern: bool [N] (True = informative).

    Args:
        features: float [N, D] L2-normalised frame descriptors.
        pattern_features: float [P, D], the same embedder's descriptors of ``pattern_frames``.
        max_similarity: frames with a cosine at or above this to any pattern are dropped.
    """
    if len(features) == 0 or len(pattern_features) == 0:
        return np.ones(len(features), bool)
    sims = np.asarray(features, np.float32) @ np.asarray(pattern_features, np.float32).T
    return sims.max(axis=1) < max_similarity


def informative_frames(
    frames: np.ndarray,
    *,
    min_contrast: float = 3.0,
    max_flat: float = 0.88,
) -> np.ndarray:
    """Which frames carry enough picture to count as evidence of copying: bool [N] (True = informative).

    Args:
        frames: uint8 RGB frames [N, H, W, 3], as the decoder yields them for the model.
        min_contrast: a frame with less luma standard deviation (0-255, over cells) is blank.
        max_flat: a frame with at least this share of background cells is a plain card.
    """
    stats = frame_statistics(frames)
    return (stats.contrast >= min_contrast) & (stats.flat < max_flat)
