"""Media for ``bench.ingest_throughput``, built once from the shared clips into a cache folder.

- ``ten_min.mp4``: 600 s of 1280x720 25 fps H.264 encoded like real uploads (x264 ``veryfast``, 3 B-frames,
  deblocking on, keyframe every 250 frames), the shared clips normalised to 720p and looped;
- ``two_hours.mp4``: the 10-minute video stream-copied 12 times (7200 s, same encode);
- ``dense_keys.mp4``: the first 120 s of the 10-minute video with a key frame every 12 frames (0.48 s), for
  the key-frames-only decode;
- ``clips/clip_NN.mp4``: 50 short clips (the 2-hour video cut at its first key frame after each 11 s, stream
  copy: 10-20 s each).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
SOURCE_CLIPS = ("clip16_highway.mp4", "clip07_parkinglot.mp4", "clip11_launch.mp4", "clip14_pool.mp4",
                "clip19_pillow.mp4", "clip04_cockatoo.mp4", "clip01_chaplin.mp4", "clip05_bikes.mp4")
ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "250", "-pix_fmt", "yuv420p"]


@dataclass(frozen=True)
class Media:
    ten_min: Path
    two_hours: Path
    dense_keys: Path
    clips: list[Path]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def build_media(cache: Path, clip_count: int = 50) -> Media:
    """Build (once) and return the bench's media under ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    ten_min, two_hours, clip_dir = cache / "ten_min.mp4", cache / "two_hours.mp4", cache / "clips"
    if not ten_min.exists():
        parts = []
        for index, name in enumerate(SOURCE_CLIPS):
            part = cache / f"part{index}.mp4"
            _ffmpeg("-i", str(CLIPS / name), "-an", "-vf",
                    "scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:-1:-1,fps=25,setsar=1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16", str(part))
            parts.append(part)
        listing = cache / "parts.txt"
        listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
        _ffmpeg("-stream_loop", "-1", "-f", "concat", "-safe", "0", "-i", str(listing), "-t", "600", *ENCODE,
                "-movflags", "+faststart", str(cache / "ten_min.tmp.mp4"))
        (cache / "ten_min.tmp.mp4").rename(ten_min)
        for part in parts:
            part.unlink()
    if not two_hours.exists():
        listing = cache / "twelve.txt"
        listing.write_text(f"file '{ten_min.name}'\n" * 12)
        _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", "-movflags", "+faststart",
                str(cache / "two_hours.tmp.mp4"))
        (cache / "two_hours.tmp.mp4").rename(two_hours)
    dense_keys = cache / "dense_keys.mp4"
    if not dense_keys.exists():
        _ffmpeg("-i", str(ten_min), "-t", "120", *[a if a != "250" else "12" for a in ENCODE],
                str(cache / "dense_keys.tmp.mp4"))
        (cache / "dense_keys.tmp.mp4").rename(dense_keys)
    if len(list(clip_dir.glob("clip_*.mp4"))) < clip_count:
        clip_dir.mkdir(exist_ok=True)
        _ffmpeg("-i", str(two_hours), "-t", str(clip_count * 25), "-c", "copy", "-f", "segment", "-segment_time", "11",
                "-reset_timestamps", "1", str(clip_dir / "clip_%02d.mp4"))
    clips = sorted(clip_dir.glob("clip_*.mp4"))[:clip_count]
    return Media(ten_min, two_hours, dense_keys, clips)
