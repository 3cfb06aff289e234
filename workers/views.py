"""Extra views of query frames: a mirror image, the halves of two-video layouts, the picture inside a border.

Why: a copy is often re-published mirrored, stacked beside or above other footage (reaction and comparison
videos), or inside letterbox, pillarbox or coloured frames. Whole-frame descriptors of such frames barely
resemble the reference's, while a descriptor of the right part of the frame does. Each view is one more
descriptor per query frame (searched and localised like the whole frame, the localiser taking each frame's
best view), so each is measured for gain and cost (``bench/tune.py``; docs/accuracy.md).

Every view is cut from frames the one decode already produced (``workers.signals.frames.FrameExtraction``): the
mirror from the model-sized frame, the halves and the unbordered picture from the frame decoded at twice
the model's size for the 2x2 tiles.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ExtraView = Literal["flip", "halves", "unborder"]
EXTRA_VIEWS: tuple[ExtraView, ...] = ("flip", "halves", "unborder")
"""Extra query views in the order ``embed_video`` stacks them (after the whole frame and the tiles)."""
VIEW_COUNTS: dict[ExtraView, int] = {"flip": 1, "halves": 4, "unborder": 1}
"""Descriptors each extra view adds per frame."""

BORDER_TOLERANCE = 10.0
"""Mean absolute difference (0-255, per channel) from the edge colour below which a row or column is border."""
BORDER_SPREAD = 28.0
"""... and at most 5 % of its pixels may differ by this much (a dark scene's edge has detail)."""
MIN_BORDER = 0.03
"""Borders thinner than this share of the frame side are ignored (compression noise, a 1-pixel line)."""
MAX_BORDER = 0.35
"""At most this share of a side is cut from either end (a blank frame is all 'border')."""


def mirrored(frames: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] flipped left to right (contiguous)."""
    return np.ascontiguousarray(frames[:, :, ::-1])


def halves(frames: np.ndarray, size: int) -> list[np.ndarray]:
    """Left, right, top and bottom halves of frames uint8 [N, 2*size, 2*size, 3], each as [N, size, size, 3].

    A half is squashed to a square by averaging pixel pairs across its long side, as the whole frame is
    squashed to the model's square.
    """
    n = frames.shape[0]
    if frames.shape[1:3] != (2 * size, 2 * size):
        raise ValueError(f"halves need frames of {2 * size} x {2 * size}, got {frames.shape[1:3]}")
    wide = frames.astype(np.uint16)
    left, right = wide[:, :, :size], wide[:, :, size:]
    top, bottom = wide[:, :size], wide[:, size:]

    def tall_to_square(half: np.ndarray) -> np.ndarray:  # [N, 2s, s, 3]
        return ((half.reshape(n, size, 2, size, 3).sum(axis=2) + 1) // 2).astype(np.uint8)

    def wide_to_square(half: np.ndarray) -> np.ndarray:  # [N, s, 2s, 3]
        return ((half.reshape(n, size, size, 2, 3).sum(axis=3) + 1) // 2).astype(np.uint8)

    return [tall_to_square(left), tall_to_square(right), wide_to_square(top), wide_to_square(bottom)]


def border_box(frames: np.ndarray) -> tuple[int, int, int, int] | None:
    """The picture inside a border shared by all ``frames`` uint8 [N, H, W, 3]: (top, bottom, left, right)
    as slice bounds, or None when there is no border of at least ``MIN_BORDER`` of a side.

    A border is a run of rows (columns) from an edge whose pixels, in every frame, stay within
    ``BORDER_TOLERANCE`` on average of the edge's median colour, with at most 5 % of them further than
    ``BORDER_SPREAD``: letterbox and pillarbox bars, coloured frames. Borders come in pairs of one colour
    (top and bottom, left and right), which tells them from a static shot's plain sky or floor along one
    edge; at most ``MAX_BORDER`` of a side is cut from each end. Statistics use every fourth pixel of at
    most 16 frames (a border is uniform, so that loses nothing and keeps this cheap).
    """
    if frames.ndim != 4 or frames.shape[0] == 0:
        return None
    _, height, width, _ = frames.shape
    step = max(1, frames.shape[0] // 16)
    sample = frames[::step][:16]

    def run(lines: np.ndarray) -> tuple[int, np.ndarray]:
        """Leading border lines of ``lines`` uint8 [N, L, P, 3] (L = the most that may be cut), and their colour."""
        colour = np.median(lines[:, 0, ::4].reshape(-1, 3), axis=0)
        diff = np.abs(lines[:, :, ::4].astype(np.float32) - colour).mean(axis=-1)  # [N, L, P / 4]
        bad = (diff.mean(axis=(0, 2)) >= BORDER_TOLERANCE) | ((diff >= BORDER_SPREAD).mean(axis=(0, 2)) > 0.05)
        return (int(np.argmax(bad)) if bad.any() else len(bad)), colour

    def pair(first: tuple[int, np.ndarray], second: tuple[int, np.ndarray], side: int) -> tuple[int, int]:
        """Both borders of an axis, or neither: they must both be thick enough and of one colour."""
        (a, colour_a), (b, colour_b) = first, second
        if min(a, b) < MIN_BORDER * side or np.abs(colour_a - colour_b).mean() >= BORDER_TOLERANCE:
            return 0, 0
        return a, b

    max_rows, max_cols = int(height * MAX_BORDER), int(width * MAX_BORDER)
    top, bottom = pair(run(sample[:, :max_rows]), run(sample[:, ::-1][:, :max_rows]), height)
    columns = sample.transpose(0, 2, 1, 3)
    left, right = pair(run(columns[:, :max_cols]), run(columns[:, ::-1][:, :max_cols]), width)
    if not (top or bottom or left or right):
        return None
    return top, height - bottom, left, width - right


def unbordered(frames: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """The picture inside ``box`` (``border_box``) of frames uint8 [N, H, W, 3], squashed to [N, size, size, 3]."""
    import torch  # here, not at the top: ingest imports this module (for the view names) but never cuts views
    import torch.nn.functional as F

    top, bottom, left, right = box
    inner = torch.from_numpy(np.ascontiguousarray(frames[:, top:bottom, left:right])).permute(0, 3, 1, 2).float()
    resized = F.interpolate(inner, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
