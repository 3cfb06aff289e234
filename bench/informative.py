"""Frame-level accuracy of the low-information mask (``workers/informative.py``) on the fixture benchmark.

Why: the mask must drop black, blank and title frames without dropping footage, and its thresholds are
chosen here. Every fixture video is planned from parts (``bench/fixtures.py``), so each sampled frame's
truth is known: footage and stills are informative, generated solid frames (black, white, colours, noise
on a flat colour, colour fades) and title cards are not. Frames within ``BOUNDARY_S`` of a cut, frames
inside a fade of footage, and test patterns are left out of the accuracy (``ambiguous``) and reported.

Usage::

    python -m bench.informative [--fixtures DIR] [--quick] [--dump stats.npz]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.fixtures import QuerySpec, build_fixtures, plan_fixtures, plan_library, probe_clips, references_for
from workers.decode import FULL_DECODE, decode_all
from workers.embed import DEFAULT_GEOMETRY
from workers.informative import frame_statistics, informative_frames

CLIPS = Path("/work/shared/data/clips")
BOUNDARY_S = 0.6
"""Frames sampled this close to a cut may show either side of it."""
INFORMATIVE, BLANK, AMBIGUOUS = 1, 0, -1

_FADE = re.compile(r"fade=t=(in|out)(?::st=([\d.]+))?:d=([\d.]+)")


def fade_windows(filters: str, length: float) -> list[tuple[float, float]]:
    """``[start, end)`` seconds of each ``fade`` filter in a chain, in the part's own time."""
    windows = []
    for direction, start, duration in _FADE.findall(filters):
        begin = float(start) if start else (0.0 if direction == "in" else length - float(duration))
        windows.append((begin, begin + float(duration)))
    return windows


def frame_labels(spec: QuerySpec, n_frames: int, fps: float = 1.0) -> np.ndarray:
    """Truth for each sampled frame of a planned video: int8 [n_frames] of INFORMATIVE, BLANK, AMBIGUOUS.

    Frame i shows the video at about ``i / fps`` seconds. Picture-in-picture and grids count as footage
    (their background or cells move); an edited clip is one part as long as the video.
    """
    times = np.arange(n_frames) / fps
    if spec.recipe in ("pip", "grid", "copy") or not spec.parts:
        return np.full(n_frames, INFORMATIVE, dtype=np.int8)
    labels = np.full(n_frames, AMBIGUOUS, dtype=np.int8)
    single = spec.recipe == "edit"
    offset = 0.0
    for index, part in enumerate(spec.parts):
        length = spec.duration if single else part.length
        lead = BOUNDARY_S if index > 0 else 0.0
        trail = BOUNDARY_S if index < len(spec.parts) - 1 else 0.0
        inside = (times >= offset + lead) & (times < offset + length - trail)
        if part.kind != "generated":
            labels[inside] = INFORMATIVE
        elif part.clip.startswith("color="):
            labels[inside] = BLANK
        # else a test pattern: synthetic but full of detail, left ambiguous
        for begin, end in fade_windows(spec.graph if single else part.filters, length):
            fading = (times >= offset + begin - BOUNDARY_S) & (times < offset + end + BOUNDARY_S)
            labels[fading & (labels == INFORMATIVE)] = AMBIGUOUS
        offset += length
    return labels


def collect(gt_path: Path, quick: bool) -> dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
    """Labels and statistics of every fixture video, by name: (labels [T], mask [T], stats {name: [T]})."""
    infos = probe_clips(CLIPS)
    specs = {spec.name: spec for spec in plan_fixtures(infos, quick=quick) + plan_library(infos, quick=quick)}
    folder = gt_path.parent
    out = {}
    for name in references_for(quick):
        if name not in specs:  # a reference clip: footage from start to end
            specs[name] = QuerySpec(name, "reference", "copy", (), (), infos[name].duration)
    for name, spec in specs.items():
        path = folder / name if (folder / name).is_file() else CLIPS / name
        frames = decode_all(path, DEFAULT_GEOMETRY, FULL_DECODE)
        stats = frame_statistics(frames)
        labels = frame_labels(spec, len(frames))
        out[name] = (labels, informative_frames(frames), vars(stats))
    return out


def report(results: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]) -> str:
    """Confusion of mask against truth, over all unambiguous frames, and the videos with mistakes."""
    counts: dict[tuple[int, bool], int] = defaultdict(int)
    lines = []
    for name, (labels, mask, stats) in sorted(results.items()):
        for label, kept in zip(labels.tolist(), mask.tolist(), strict=True):
            counts[(label, kept)] += 1
        wrong = np.flatnonzero((labels != AMBIGUOUS) & (mask != (labels == INFORMATIVE)))
        if len(wrong):
            detail = ", ".join(
                f"{i}:{'kept' if mask[i] else 'dropped'}"
                f"(contrast {stats['contrast'][i]:.1f}, flat {stats['flat'][i]:.2f})"
                for i in wrong[:6]
            )
            lines.append(f"  {name}: {len(wrong)} wrong of {int((labels != AMBIGUOUS).sum())}: {detail}")
    footage = counts[(INFORMATIVE, True)] + counts[(INFORMATIVE, False)]
    blank = counts[(BLANK, True)] + counts[(BLANK, False)]
    right = counts[(INFORMATIVE, True)] + counts[(BLANK, False)]
    head = [
        f"unambiguous frames: {footage + blank} ({footage} footage, {blank} blank/card)",
        f"accuracy {right / max(1, footage + blank):.4f}; footage kept {counts[(INFORMATIVE, True)]}/{footage}; "
        f"blank dropped {counts[(BLANK, False)]}/{blank}",
        f"ambiguous frames (fades, cuts, patterns): {counts[(AMBIGUOUS, True)] + counts[(AMBIGUOUS, False)]}, "
        f"{counts[(AMBIGUOUS, False)]} dropped",
    ]
    return "\n".join(head + (["mistakes:", *lines] if lines else []))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.informative", description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", type=Path, default=Path(".cache/fixtures"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dump", type=Path, default=None, help="write labels and statistics to this .npz")
    args = parser.parse_args(argv)
    gt_path = build_fixtures(CLIPS, args.fixtures, quick=args.quick)
    results = collect(gt_path, args.quick)
    print(report(results))
    if args.dump:
        arrays = {}
        for name, (labels, _, stats) in results.items():
            arrays[f"{name}|labels"] = labels
            arrays |= {f"{name}|{key}": value for key, value in stats.items()}
        np.savez(args.dump, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
