"""One decode for every view of a query: ffmpeg ``split`` + stack, against the alternatives, side by side.

A query with 2x2 tiles needs frames at the model's size (224) and at twice it (448). Measured in one run
on the same file, best of ``--repeats``, every frame decoded on the CPU (``FULL_DECODE``):

- ``two decodes``: one ffmpeg run per geometry (what the product did before);
- ``split + stack``: one ffmpeg run, the sampled frames split and scaled per geometry, stacked into one raw
  frame (``workers.decode.sample_views``, what the product does);
- ``decode 448 + resize``: one ffmpeg run at 448, the 224 view resized in torch (bicubic, antialiased):
  not pixel-identical to ffmpeg's scaler, so whole-frame descriptors would drift from the references'.

    python -m bench.decode_views [VIDEO] [--seconds 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from workers.decode import FULL_DECODE, decode_all, probe, sample_frames, sample_views
from workers.types import FrameGeometry

CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips" / "clip16_highway.mp4"
WHOLE, TILES = FrameGeometry(224), FrameGeometry(448)


def two_decodes(path: Path) -> np.ndarray:
    info = probe(path)
    whole = np.concatenate(list(sample_frames(path, info, WHOLE, FULL_DECODE)))
    np.concatenate(list(sample_frames(path, info, TILES, FULL_DECODE)))
    return whole


def split_and_stack(path: Path) -> np.ndarray:
    chunks = list(sample_views(path, probe(path), (WHOLE, TILES), FULL_DECODE))
    return np.concatenate([c[0] for c in chunks])


def decode_and_resize(path: Path) -> np.ndarray:
    tiles = np.concatenate(list(sample_frames(path, probe(path), TILES, FULL_DECODE)))
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float()
    small = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False)
    return small.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def best_of(fn: Callable[[Path], np.ndarray], path: Path, repeats: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeats):
        tick = time.perf_counter()
        out = fn(path)
        times.append(time.perf_counter() - tick)
    assert out is not None
    return min(times), out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", type=Path, default=None, help="default: the highway clip looped to 720p")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = args.video or Path(folder) / "query.mp4"
        if args.video is None:
            subprocess.run(["ffmpeg", "-v", "error", "-stream_loop", "-1", "-i", str(CLIP), "-t", str(args.seconds),
                            "-an", "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "veryfast", "-bf", "3",
                            str(path)], check=True)
        reference = decode_all(path, WHOLE, FULL_DECODE)
        print(f"{path.name}: {probe(path).duration:.0f} s, {len(reference)} frames at 1 fps")
        for name, fn in (("two decodes", two_decodes), ("split + stack", split_and_stack),
                         ("decode 448 + resize", decode_and_resize)):
            seconds, whole = best_of(fn, path, args.repeats)
            same = whole.shape == reference.shape and np.array_equal(whole, reference)
            drift = np.abs(whole.astype(np.int16) - reference.astype(np.int16)).mean() if not same else 0.0
            print(f"{name:22s} {seconds:6.2f} s   whole view identical to its own decode: {same}"
                  + ("" if same else f" (mean |diff| {drift:.2f} grey levels)"))


if __name__ == "__main__":
    main()
