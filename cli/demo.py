"""``copycat demo``: index a folder of clips, forge an edited copy of one of them, and find it.

The forged query is an 8-second excerpt of one clip, cropped and brightened, spliced into the middle of
another clip, so the expected answer is known: query seconds [4, 12) copy reference seconds [3, 11).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from workers.decode import probe

EXCERPT = (3.0, 11.0)
HOST_LEAD = 4.0


def default_clips_dir() -> Path | None:
    """The shared clips next to the repository, when they are there."""
    candidate = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
    return candidate if candidate.is_dir() else None


def pick_clips(paths: list[Path]) -> tuple[Path, Path]:
    """A source long enough for the excerpt and a different host clip."""
    durations = {p: probe(p).duration for p in paths}
    sources = [p for p, d in durations.items() if d >= EXCERPT[1] + 1]
    if len(paths) < 2 or not sources:
        raise ValueError("the demo needs at least two clips, one of them 12 s or longer")
    source = sources[0]
    host = next(p for p in paths if p != source and durations[p] >= HOST_LEAD + 1)
    return source, host


def forge_query(source: Path, host: Path, out: Path) -> None:
    """host[0, 4) + crop/brighten(source[3, 11)) + host[4, ...) as one H.264 file at 25 fps."""
    start, end = EXCERPT
    graph = (
        f"[0:v:0]trim=0:{HOST_LEAD},setpts=PTS-STARTPTS,fps=25,scale=640:360,setsar=1[a];"
        f"[1:v:0]trim={start}:{end},setpts=PTS-STARTPTS,fps=25,crop=iw*0.85:ih*0.85,"
        f"eq=brightness=0.08:contrast=1.2,scale=640:360,setsar=1[b];"
        f"[0:v:0]trim=start={HOST_LEAD},setpts=PTS-STARTPTS,fps=25,scale=640:360,setsar=1[c];"
        "[a][b][c]concat=n=3:v=1:a=0,format=yuv420p[out]"
    )
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(host), "-i", str(source), "-filter_complex", graph,
                    "-map", "[out]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", str(out)], check=True)


def expected_segment() -> tuple[float, float, float, float]:
    """(query_start, query_end, ref_start, ref_end) of the forged copy."""
    return HOST_LEAD, HOST_LEAD + EXCERPT[1] - EXCERPT[0], EXCERPT[0], EXCERPT[1]
