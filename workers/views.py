"""Extra views of query frames: a mirror image, the halves of two-video layouts, the picture inside a border
or inside a blurred fill.

Why: a copy is often re-published mirrored, stacked beside or above other footage (reaction and comparison
videos), inside letterbox, pillarbox or coloured frames, or as a 9:16 re-upload: the landscape picture in the
middle band of a portrait frame, over a blurred, enlarged copy of itself. Whole-frame descriptors of such frames barely
resemble the reference's, while a descriptor of the right part of the frame does. Each view is one more
descriptor per query frame (searched and localised like the whole frame, the localiser taking each frame's
best view), so each is measured for gain and cost (``bench/tune.py``; docs/accuracy.md).

Every view is cut from frames the one decode already produced (``workers.signals.frames.FrameExtraction``): the
mirror from the model-sized frame, the halves and the unbordered and unfilled pictures from the frame decoded
at twice the model's size for the 2x2 tiles. That decode squashes every frame to a square whatever its
aspect, which keeps a border or a fill where it was (a share of the rows or columns) and squashes the
picture inside it as a reference frame is squashed: cutting it out and squashing it to the model's square
gives what the reference's frame would give, so the views need not know the video's aspect.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ExtraView = Literal["flip", "halves", "unborder", "unfill"]
EXTRA_VIEWS: tuple[ExtraView, ...] = ("flip", "halves", "unborder", "unfill")
"""Extra query views in the order ``embed_video`` stacks them (after the whole frame and the tiles)."""
VIEW_COUNTS: dict[ExtraView, int] = {"flip": 1, "halves": 4, "unborder": 1, "unfill": 1}
"""Descriptors each extra view adds per frame."""

BORDER_TOLERANCE = 10.0
"""Mean absolute difference (0-255, per channel) from the edge colour below which a row or column is border."""
BORDER_SPREAD = 28.0
"""... and at most 5 % of its pixels may differ by this much (a dark scene's edge has detail)."""
MIN_BORDER = 0.03
"""Borders thinner than this share of the frame side are ignored (compression noise, a 1-pixel line)."""
MAX_BORDER = 0.35
"""At most this share of a side is cut from either end (a blank frame is all 'border')."""

FILL_DETAIL = 0.3
"""A row (column) is blurred fill where its fine detail is below this share of the picture's (``sharp_box``)."""
MIN_DETAIL = 0.5
"""... and the picture has at least this fine detail (mean absolute second difference, 0-255 grey levels)."""
MIN_FILL = 0.06
"""Each blurred fill covers at least this share of the side (a soft edge is not a fill)."""
MAX_FILL = 0.42
"""... and at most this share, so the picture keeps at least 16 % of the side."""
MIN_FILL_SPREAD = 4.0
"""A fill's lines vary by at least this much (standard deviation, grey levels): a flat one is a border."""
MIN_EDGE_STEP = 12.0
"""... and the grey levels jump by at least this much (mean over a line) where fill and picture meet."""


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


def sharp_box(frames: np.ndarray) -> tuple[int, int, int, int] | None:
    """The sharp picture inside a blurred fill shared by ``frames`` uint8 [N, H, W, 3]: (top, bottom, left,
    right) as slice bounds, or None when there is no such fill.

    A 9:16 re-upload shows a landscape picture in the middle band over a blurred, enlarged, often darkened
    copy of itself; a portrait clip on a landscape screen gets blurred sides. The fill has shading but
    almost no fine detail, so each row (for fills above and below) is scored by the mean absolute second
    difference of its grey levels along the row, averaged over the frames, and each column likewise down
    the column (differences along the line, so the step where fill meets picture does not count). The
    picture's level is the median of the middle tenth of the lines, the fill's the median of the outermost
    lines, which must be below ``FILL_DETAIL`` of the picture's. The picture is centred, so the fill is cut
    as a pair: the lines from the ends inward, line k and its mirror line together, while both stay below
    a cut between the two levels (a picture whose own top is plain sky keeps its sky), ``MIN_FILL`` to
    ``MAX_FILL`` of the side at each end. The fill must not be flat (``MIN_FILL_SPREAD``: a flat one is a
    border, ``border_box``'s) and must end at an edge: the grey levels jump by ``MIN_EDGE_STEP`` across the
    picture's first or last line, where a shot whose own ends are soft (a close-up, a vignette, a dark
    scene) fades out gradually. Statistics use at most 16 frames.
    """
    if frames.ndim != 4 or frames.shape[0] == 0:
        return None
    step = max(1, frames.shape[0] // 16)
    grey = frames[::step][:16].astype(np.float32).mean(axis=-1)  # [n, H, W]

    def picture(lines: np.ndarray) -> int:
        """How many lines of fill each end of ``lines`` [n, L, P] has (0: no fill)."""
        length = lines.shape[1]
        detail = np.abs(2 * lines[:, :, 1:-1] - lines[:, :, :-2] - lines[:, :, 2:]).mean(axis=(0, 2))  # [L]
        low, high = int(length * 0.45), max(int(length * 0.55), int(length * 0.45) + 1)
        middle = float(np.median(detail[low:high]))
        outer = max(1, int(length * MIN_FILL / 2))
        edge = float(np.median(np.concatenate([detail[:outer], detail[length - outer :]])))
        if middle < MIN_DETAIL or edge >= FILL_DETAIL * middle:
            return 0
        pairs = np.maximum(detail, detail[::-1])[: length // 2]  # line k and line L-1-k: fill only if both are
        fill = int(np.argmin(pairs < max(FILL_DETAIL * middle, np.sqrt(edge * middle))))  # the middle is no fill
        if not MIN_FILL * length <= fill <= MAX_FILL * length:
            return 0
        ends = np.r_[0:fill, length - fill : length]
        if lines[:, ends].std(axis=2).mean() < MIN_FILL_SPREAD:
            return 0

        def jump(first: int) -> float:
            """Largest mean step in grey level across 3 lines around the picture's ``first`` line."""
            return max(float(np.abs(lines[:, k + 1] - lines[:, k - 2]).mean())
                       for k in range(max(first - 2, 2), min(first + 3, length - 1)))

        return fill if max(jump(fill), jump(length - fill)) >= MIN_EDGE_STEP else 0

    rows, columns = picture(grey), picture(grey.transpose(0, 2, 1))
    if not rows and not columns:
        return None
    height, width = grey.shape[1:]
    return rows, height - rows, columns, width - columns
