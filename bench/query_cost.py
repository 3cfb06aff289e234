"""What a 60 s query costs with each set of query views: decode + embed, search + localise, side by side.

Each extra view (``workers.views``) is one more descriptor per frame to embed, search and compare, so the
issue's budget (at most 2x the cost of the views before them) is checked here on one machine in one run:
configurations alternate round by round, and each one's round with the fewest CPU seconds (this process
and ffmpeg; other work on a shared machine sways them less than wall time) is reported.

The query is the highway clip looped to ``--seconds`` at 720p (x264, B-frames, like an upload), letterboxed
with ``--letterbox`` or made a 9:16 re-upload over a blurred fill with ``--vertical``, so that ``unborder``
or ``unfill``, which add a descriptor only where they find a border or a fill, add one to every frame; the library
is the fixture benchmark's references (``bench/tune.py``'s cache, embedded here when missing) in the exact
in-memory index, so search is a brute-force matmul rather than Milvus's HNSW (see ``bench/query_speed.py``).

    python -m bench.query_cost [--seconds 60] [--repeats 2] [--fixtures .cache/fixtures] [--letterbox | --vertical]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.fixtures import build_fixtures
from bench.sets import CLIPS
from bench.tune import embed_set
from service.settings import Settings
from workers.embed import create_embedder
from workers.evaluate import load_ground_truth
from workers.localise import TemporalNetwork
from workers.matching import match_query
from workers.signals.frames import embed_video
from workers.stores.memory import MemoryLibrary

DEFAULT = "tiles + flip + unborder (default)"
CONFIGURATIONS: dict[str, tuple[str, ...]] = {
    "tiles": (),
    "tiles + flip": ("flip",),
    "tiles + halves": ("halves",),
    "tiles + unborder": ("unborder",),
    DEFAULT: ("flip", "unborder"),
    "tiles + flip + halves + unborder": ("flip", "halves", "unborder"),
    "tiles + flip + unborder + unfill": ("flip", "unborder", "unfill"),
}
"""Extra views on top of the default whole frame and 2x2 tiles."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--fixtures", type=Path, default=Path(".cache/fixtures"))
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--letterbox", action="store_true", help="pad the query into a letterbox (unborder runs)")
    layout.add_argument("--vertical", action="store_true",
                        help="make the query a 9:16 re-upload over a blurred fill, 720x1280 (unfill runs)")
    args = parser.parse_args(argv)
    settings = Settings()
    gt = load_ground_truth(build_fixtures(CLIPS, args.fixtures))
    feats = embed_set(gt, settings.embed.model, args.fixtures / "cache", mask=True, extra=True)
    library = MemoryLibrary({r["name"]: feats[r["name"]] for r in gt["references"]})
    localiser = TemporalNetwork(settings.tn_params())
    embedder = create_embedder(settings.embed.model, device="cpu")
    embedder.load()
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "query.mp4"
        frame = "scale=1280:720" + (",scale=1280:540,pad=1280:720:0:90" if args.letterbox else "")
        if args.vertical:  # bench.fixtures' vertical re-upload at 720x1280
            frame += (",split[a][b];[a]scale=720:1280:force_original_aspect_ratio=increase,crop=720:1280,"
                      "boxblur=20:2,eq=brightness=-0.08[bg];[b]scale=720:-2,setsar=1[fg];"
                      "[bg][fg]overlay=x=(W-w)/2:y=(H-h)/2")
        subprocess.run(["ffmpeg", "-v", "error", "-stream_loop", "-1", "-i", str(CLIPS / "clip16_highway.mp4"),
                        "-t", str(args.seconds), "-an", "-vf", frame, "-c:v", "libx264", "-preset", "veryfast",
                        "-bf", "3", str(path)], check=True)
        embed_video(path, embedder, settings.decode_options())  # warm-up: thread pools, first inference
        for _ in range(args.repeats):
            for name, extra in CONFIGURATIONS.items():
                cpu = _cpu_seconds()
                tick = time.perf_counter()
                video = embed_video(path, embedder, settings.decode_options(), crop_grid=settings.query.crop_grid,
                                    extra_views=extra, frame_filter=settings.frame_filter())
                embedded = time.perf_counter() - tick
                params = settings.query_params({"extra_views": list(extra)})
                timings: dict[str, float] = {}
                match_query(video.views, fps=video.fps, search=library.search, load_references=library.load,
                            searchable=library.searchable, localiser=localiser, params=params, timings=timings)
                total = time.perf_counter() - tick
                cpu = _cpu_seconds() - cpu
                row = {"decode_embed": embedded, "search": timings["search"], "localise": timings["localise"],
                       "total": total, "cpu": cpu,
                       "views": float(np.any(video.views != 0, axis=-1).sum(axis=0).mean())
                       if video.views.ndim == 3 else 1.0}  # views searched per frame (zero views are not)
                if name not in best or row["cpu"] < best[name]["cpu"]:
                    best[name] = row
    base, base_cpu, default_cpu = best["tiles"]["total"], best["tiles"]["cpu"], best[DEFAULT]["cpu"]
    shape = "720x1280 over a blurred fill" if args.vertical else "720p" + (", letterboxed" if args.letterbox else "")
    print(f"{args.seconds:.0f} s query, {shape}, best of {args.repeats}; library {len(library.bank)} frames")
    print(f"{'views':34s} {'per frame':>9s} {'decode+embed':>12s} {'search':>7s} {'localise':>8s} {'total':>6s} "
          f"ratio {'CPU s':>6s} ratio vs default")
    for name, row in best.items():
        print(f"{name:34s} {row['views']:9.1f} {row['decode_embed']:12.2f} {row['search']:7.2f} "
              f"{row['localise']:8.2f} {row['total']:6.2f} {row['total'] / base:5.2f}x {row['cpu']:6.1f} "
              f"{row['cpu'] / base_cpu:5.2f}x {row['cpu'] / default_cpu:10.2f}x")


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (ffmpeg): less swayed than wall time by other
    work on a shared machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    main()
