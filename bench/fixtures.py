"""Fixture benchmark: query videos with known ground truth, built from the real clips.

Why: copy detection can only be measured against queries whose copied segments are known exactly. This
module edits the shared clips (``/work/shared/data/clips``, see ``SOURCES.md`` there) with ffmpeg into
queries and writes down, for each, which reference seconds it copies.

Split. ``REFERENCES`` (14 clips, all >= 9.6 s) are the videos to index. ``HOLDOUT`` (the 6 shortest
clips, 5-8 s, weak as references) is never indexed: it supplies unrelated queries and the "host" footage
that reference segments are inserted into or shown over (picture-in-picture). ``GENERATED_REFERENCES``
are indexed too: 20 s of black, and reference footage between black, a title card, SMPTE bars and fades,
because real libraries are full of such frames and they must not link unrelated videos.

Queries. Edits of whole references (re-encodes, resizes, crops, flips, photometric changes, text, logos,
other codecs, a 90-degree turn into a portrait frame, 1.5x speed, combined edits, blockiness at 160p),
excerpts inside other footage (picture-in-picture, inserts, 3-6 s copies inside ~75 s of holdout footage,
compilations of 3-5 s copies, a 2x2 grid of four videos, copies between black and title cards), and
unrelated queries. Of those, the hard negatives (``"hard_negative": true``) are made to resemble
something indexed: black, white and noisy dark frames, fades, coloured intros and outros on holdout
footage, title cards with other text, a slideshow of holdout stills, test patterns, and old
black-and-white film like clip01's.

Usage::

    gt = build_fixtures(Path("/work/shared/data/clips"), Path("/tmp/fixtures"))    # about a minute
    python -m bench.fixtures OUT_DIR [--quick]                                     # same, plus a table

``quick=True`` builds a small subset (5 reference clips and 20 s of black; 12 positive and 4 unrelated
queries, 2 of them hard negatives) for tests. ``plan_fixtures`` lists the planned queries and their
ground truth without encoding anything; ``plan_library`` the generated references.

Media. Queries are H.264 mp4 (yuv420p, even sizes, at most 640 px wide, CRF 28, no audio) unless the
transform is about the codec (``codec``: mpeg4 in avi, VP8 in webm) or is a byte copy (``copy``).
Single-clip edits keep the source's frame timing; queries spliced from several parts (insert, concat,
picture-in-picture) are normalised to 25 fps and cut on that grid, so every cut is exact to one frame.
Reference media are the original clip files, named by absolute path, never copied.

Timeline. A video's time 0 is its first video frame; its duration is that of its first video stream
(``-map 0:v:0``): the stream's own duration where the container records one, else (webm, mkv, flv)
``last_pts - first_pts + typical frame interval``. The container's duration can be longer: clip18's
container lasts 16.57 s but its first video stream 13.0 s. Every built query is probed the same way and
the build fails if it is more than ``DURATION_TOLERANCE`` off its plan.

Ground truth (``ground_truth.json`` in the output folder)::

    {"version": int, "quick": bool, "clips_dir": str, "holdout": ["clip08_flower.webm", ...],
     "text_overlay": "drawtext <font file>" | "drawbox fallback (no font found)",
     "references": [{"name": "clip01_chaplin.mp4", "path": "/abs/clip01_chaplin.mp4", "duration": 9.64,
                     "generated": false}],
     "queries": [{"name": "q_clip02_crop15.mp4", "path": "q_clip02_crop15.mp4", "duration": 11.2,
                  "transform": "crop", "hard": false, "hard_negative": false,
                  "filter": "<ffmpeg graph, for people>",
                  "sources": [{"clip": "clip02_airfield.mp4", "start": 0.0, "end": 11.2}],
                  "matches": [{"reference": "clip02_airfield.mp4", "segments": [[0.0, 0.0, 11.2, 11.2]]}]}]}

``path`` is absolute or relative to the JSON file's folder (generated references and queries lie in
it). References also carry ``"generated": bool`` and, when generated, their ``sources``. Each segment is
``[query_start, ref_start, query_end, ref_end]`` in seconds, end exclusive, rounded to 0.01 s; a 1.5x
query's box is 1.5 times longer on the reference axis. Ground truth follows footage, not pixels: a part
of a clip copies every indexed video that shows the same seconds of that clip (the clip, and a
generated reference built around it), at the offsets and speed where it appears. Generated frames
(black, colours, cards, patterns) and stills copy nothing. A query with ``"matches": []`` copies
nothing that is indexed and must match nothing. ``sources`` lists each part: ``{"clip", "start",
"end"}`` (plus ``"speed"`` or ``"still": true``) or ``{"generator", "length"}``. ``transform`` is one of
lowbitrate, resize, crop, flip, brightness, text, logo, pip, insert, trim, concat, copy, codec, short,
compilation, grid, stack, rotate, speed, combined, blocky, intro, fade (positives) and blank, intro, title,
slideshow, pattern, fade, scene (hard negatives). ``"hard": true`` flags queries that whole-frame
descriptors are known to miss (picture-in-picture, the grid, two videos side by side or stacked). Query
file names spell their ground truth: ``q_clip04_5-14_in_clip13_at3.mp4`` holds clip04 seconds 5-14 from its
second 3.

Text overlays use ffmpeg ``drawtext`` with a DejaVu (or other sans) TrueType font when one is installed;
without a font they fall back to ``drawbox`` bands and blocks, and ``text_overlay`` in the JSON says which.
Logos are a small generated badge (``color`` + ``drawbox``), so they need no font.

Other sets. ``Planner`` (the recipes, with ``STANDARD_EDITS`` for the single-clip edits every set applies
alike), ``ClipSet`` (which clips a set indexes, holds out and strings into long hosts) and ``write_set``
serve any folder of clips: ``bench/footage_fixtures.py`` builds the footage sets with them, adding the
recipes v3 does not use (``reaction``, ``vertical``, ``camcord``, ``speed`` below 1 for slow motion, and
``duplicate``, a reference indexed twice) and the transforms reaction, vertical, camcord and slowmo.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from workers.decode import probe, timestamp_span

VERSION = 3
"""Bump whenever a planned query or its encoding changes, so cached fixture folders are rebuilt."""

REFERENCES: tuple[str, ...] = (
    "clip01_chaplin.mp4",
    "clip02_airfield.mp4",
    "clip03_bigbuckbunny.webm",
    "clip04_cockatoo.mp4",
    "clip05_bikes.mp4",
    "clip06_bottles.mp4",
    "clip07_parkinglot.mp4",
    "clip10_pancake.mkv",
    "clip11_launch.mp4",
    "clip12_armwrestle.mp4",
    "clip14_pool.mp4",
    "clip16_highway.mp4",
    "clip18_jwst.mp4",
    "clip20_bulb.avi",
)
HOLDOUT: tuple[str, ...] = (
    "clip08_flower.webm",
    "clip09_friday.mp4",
    "clip13_makeup.avi",
    "clip15_grampa.flv",
    "clip17_earth.webm",
    "clip19_pillow.mp4",
)
QUICK_REFERENCES: tuple[str, ...] = (
    "clip01_chaplin.mp4",
    "clip05_bikes.mp4",
    "clip12_armwrestle.mp4",
    "clip14_pool.mp4",
    "clip18_jwst.mp4",
)

GENERATED_REFERENCES: tuple[str, ...] = (
    "r_black20.mp4",
    "r_intro_clip07_10-25.mp4",
    "r_bars_clip16_5-20_end.mp4",
)
"""Indexed videos built here: 20 s of black, and clip footage between black, title cards, bars and fades."""
QUICK_GENERATED: tuple[str, ...] = ("r_black20.mp4",)
HOST_CUTS: tuple[tuple[str, float], ...] = (
    ("clip09", 6),
    ("clip13", 6),
    ("clip15", 7.5),
    ("clip19", 7),
    ("clip08", 4.8),
    ("clip17", 4.8),
)
"""Holdout openings (clip, end second) that make up the long unrelated footage short copies hide in."""

GROUND_TRUTH = "ground_truth.json"
MAX_WIDTH = 640
SPLICE_FPS = 25
DURATION_TOLERANCE = 0.12
"""Seconds a built query may differ from its planned length (1.5 frames at 12.5 fps) before we fail."""


def _args(text: str) -> tuple[str, ...]:
    """Encoder options written as one command-line string, split into arguments."""
    return tuple(text.split())


X264 = _args("-c:v libx264 -preset superfast -crf 28 -pix_fmt yuv420p -threads 2")
# x264's bitrate mode gives different bytes from run to run when threaded; one thread keeps it repeatable.
X264_LOW = _args("-c:v libx264 -preset superfast -b:v 100k -maxrate 150k -bufsize 200k -pix_fmt yuv420p -threads 1")
MPEG4 = _args("-c:v mpeg4 -q:v 7 -pix_fmt yuv420p -threads 2")
MPEG4_BLOCKY = _args("-c:v mpeg4 -q:v 31 -pix_fmt yuv420p -threads 2")
VP8 = _args("-c:v libvpx -deadline good -cpu-used 16 -b:v 400k -pix_fmt yuv420p -threads 2")
# Drop encoder/version strings and metadata so rebuilding gives the same bytes on the same ffmpeg.
BITEXACT = ("-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-an", "-sn", "-dn")

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
    "/Library/Fonts/Arial.ttf",
)

Recipe = Literal["edit", "splice", "pip", "grid", "copy"]


class FixtureBuildError(RuntimeError):
    """ffmpeg/ffprobe failed, or a built query does not have the length its ground truth assumes."""


@dataclass(frozen=True)
class ClipInfo:
    """What the planner needs to know about a source clip's first video stream."""

    duration: float
    width: int
    height: int


PartKind = Literal["clip", "still", "generated"]


@dataclass(frozen=True)
class Part:
    """A piece of a spliced video, ``length`` seconds long on that video's timeline.

    ``kind="clip"``: seconds ``[start, end)`` of ``clip``'s timeline (``end`` is the clip's duration for a
    tail), played ``speed`` times as fast. ``kind="still"``: the clip's frame at ``start`` held for
    ``end - start`` seconds (slideshows; copies nothing, even of a reference). ``kind="generated"``:
    ``clip`` is an ffmpeg source filter without size, rate or duration (``color=c=black``, ``testsrc``),
    ``start`` is 0 and ``end`` the length; generated footage never counts as a copy. ``filters`` run on
    the part after cutting, in its own time (fades, flips, captions).
    """

    clip: str
    start: float
    end: float
    kind: PartKind = "clip"
    speed: float = 1.0
    filters: str = ""

    @property
    def length(self) -> float:
        return (self.end - self.start) / self.speed

    @property
    def footage(self) -> bool:
        """Whether this part shows frames of a clip (moving or still), not generated ones."""
        return self.kind != "generated"


@dataclass(frozen=True)
class TruthMatch:
    """Ground truth against one reference: boxes ``(query_start, ref_start, query_end, ref_end)``."""

    reference: str
    segments: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class QuerySpec:
    """One planned video (a query, or a generated reference): how to make it and what it copies.

    ``recipe`` picks the ffmpeg command: ``edit`` runs ``graph`` (``[src]`` to ``[dst]``) over one trimmed
    part; ``splice`` letterboxes each part onto a ``canvas`` at 25 fps and concatenates them; ``pip`` shows
    ``parts[1]`` scaled to ``inset`` over ``parts[0]`` scaled to ``canvas``; ``grid`` letterboxes four
    equally long parts into the quarters of ``canvas`` (2x2, in reading order); ``copy`` copies the bytes.
    ``hard_negative`` flags unrelated queries built to look like something indexed (black, blank, title
    cards, test patterns, stills, fades, similar scenes) that must match nothing.
    """

    name: str
    transform: str
    recipe: Recipe
    parts: tuple[Part, ...]
    matches: tuple[TruthMatch, ...]
    duration: float
    graph: str = ""
    canvas: tuple[int, int] = (0, 0)
    layout: Literal["2x2", "side", "stacked"] = "2x2"
    inset: tuple[int, int] = (0, 0)
    codec: tuple[str, ...] = X264
    hard: bool = False
    hard_negative: bool = False
    quick: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        """The clips whose frames the video shows (generated parts are not clips)."""
        return tuple(dict.fromkeys(part.clip for part in self.parts if part.footage))


@dataclass(frozen=True)
class ClipSet:
    """The clips of one fixture set: ``references`` are indexed, ``holdout`` never is (hosts, unrelated
    queries); ``host_cuts`` are the holdout openings (clip short name, end second) that ``long_host``
    strings together; ``resample`` names clips of variable frame rate (short name, rate) whose edits are
    resampled to that constant rate first, so that the mp4 gets clean timestamps (the mp4 muxer times
    such a clip's last frames short). Short names are the file names up to the first ``_`` and must be
    unique."""

    references: tuple[str, ...]
    holdout: tuple[str, ...]
    host_cuts: tuple[tuple[str, float], ...]
    resample: tuple[tuple[str, int], ...] = ()

    @property
    def clips(self) -> tuple[str, ...]:
        return self.references + self.holdout


V3_CLIPS = ClipSet(REFERENCES, HOLDOUT, HOST_CUTS)
"""The clips of fixture versions 2 and 3 (``/work/shared/data/clips``)."""


# ---------------------------------------------------------------------------------------------- planning


def plan_fixtures(infos: Mapping[str, ClipInfo], *, quick: bool = False, font: Path | None = None) -> list[QuerySpec]:
    """Every query of the benchmark with its ground truth, without touching any media.

    ``infos`` maps clip file names to their probed video streams (``probe_clips``); ``font`` is the
    TrueType file for text overlays, ``None`` for the drawbox fallback.
    """
    missing = sorted(set(REFERENCES + HOLDOUT) - set(infos))
    if missing:
        raise ValueError(f"plan_fixtures: no ClipInfo for {', '.join(missing)}")
    p = _v3_planner(infos, font, quick)
    specs = [
        # Re-encode at ~100 kbit/s.
        p.standard("lowbitrate", "clip01", quick=True),
        p.standard("lowbitrate", "clip06"),
        p.standard("lowbitrate", "clip16"),
        # Half the width and height.
        p.standard("resize50", "clip03"),
        p.standard("resize50", "clip12"),
        p.standard("resize50", "clip20"),
        # Crop 10-20 % of each side length, centred or anchored to a corner.
        p.standard("crop15", "clip02"),
        p.standard("crop20", "clip11"),
        p.standard("crop10", "clip14", quick=True),
        # Mirror.
        p.standard("flip", "clip05", quick=True),
        p.standard("flip", "clip07"),
        p.standard("flip", "clip10"),
        # Photometric changes.
        p.standard("bright", "clip04"),
        p.standard("dark", "clip18", quick=True),
        p.standard("gamma", "clip20"),
        # Burnt-in text.
        p.edit("text", "clip12", p.text("clip12", "BREAKING NEWS", "lower-third"), quick=True),
        p.edit("text", "clip03", p.text("clip03", "SAMPLE", "watermark")),
        p.edit("text", "clip06", p.text("clip06", "and then we moved the bottles", "subtitle")),
        # A small badge in a corner.
        p.edit("logo", "clip01", p.logo("clip01", "top-right")),
        p.edit("logo", "clip07", p.logo("clip07", "bottom-left")),
        p.edit("logo", "clip16", p.logo("clip16", "top-left")),
        # The reference as an inset over unrelated footage (hard for whole-frame descriptors).
        p.pip("clip12", 0, 6, "clip19", quick=True),
        p.pip("clip02", 3, 10, "clip15"),
        p.pip("clip04", 6, 12, "clip13"),
        # A reference segment inserted into a holdout clip.
        p.insert("clip05", 2, 8, "clip09", 2, quick=True),
        p.insert("clip04", 5, 14, "clip13", 3),
        p.insert("clip06", 10, 20, "clip15", 4),
        p.insert("clip16", 3, 11, "clip17", 2),
        p.insert("clip11", 4, 12, "clip08", 1),
        # The first 5 s cut off.
        p.standard("trim5", "clip18", quick=True),
        p.standard("trim5", "clip03"),
        p.standard("trim5", "clip11"),
        # Two references back to back.
        p.concat(("clip01", 1, 8), ("clip12", 2, 9), quick=True),
        p.concat(("clip10", 2, 9), ("clip20", 4, 12)),
        # Exact copies (clip18 has two video streams; clip20 is Indeo 4 in avi).
        p.copy("clip18"),
        p.copy("clip20"),
        # Other codecs and containers.
        p.standard("mpeg4", "clip14"),
        p.standard("vp8", "clip10"),
        # Unrelated: holdout footage only, edited like the positives.
        # clip15 has a variable frame rate; resample it so the mp4 gets clean timestamps.
        p.edit("flip", "clip15", "fps=25,hflip", quick=True),
        p.standard("lowbitrate", "clip09", quick=True),
        p.standard("crop15", "clip08"),
        p.edit("text", "clip13", p.text("clip13", "LIVE", "lower-third")),
        p.edit("bright", "clip17", "eq=brightness=0.12:contrast=1.25", transform="brightness"),
        p.standard("resize50", "clip19"),
        p.concat(("clip13", 0, None), ("clip17", 0, None)),
        p.copy("clip15"),
        # Short copies (3-6 s) hidden in about 72 s of unrelated footage.
        p.short_copy("clip11", 4, 8, after=5, rotate=0),
        p.short_copy("clip04", 2, 5, after=3, rotate=2),
        p.short_copy("clip14", 3, 8, after=8, rotate=4, quick=True),
        # Compilations of short copies: with unrelated footage between them, and back to back.
        p.compilation([("clip09", 0, 2), ("clip01", 2, 6), ("clip13", 1, 3), ("clip05", 3, 7), ("clip17", 0, 2),
                       ("clip12", 1, 4), ("clip19", 2, 4), ("clip16", 10, 15), ("clip15", 0, 2), ("clip02", 5, 9),
                       ("clip08", 0, 2)]),
        p.compilation([("clip03", 10, 14), ("clip10", 2, 5), ("clip20", 6, 10), ("clip06", 25, 29), ("clip14", 4, 7)]),
        # Four videos in a 2x2 grid, one of them unrelated (hard for whole-frame descriptors).
        p.grid([("clip07", 5, 12), ("clip18", 2, 9), ("clip11", 6, 13), ("clip19", 0, 7)]),
        # Turned 90 degrees into a portrait frame; played 1.5x as fast.
        p.edit(
            "rot90_portrait", "clip02", "transpose=clock,pad=w=400:h=720:x=(ow-iw)/2:y=(oh-ih)/2", transform="rotate"
        ),
        p.speed("clip03", 3, 18, 1.5),
        # Combined edits.
        p.watermark_letterbox("clip16"),
        p.standard("mirror_grid_border", "clip05", quick=True),
        p.standard("blocky160", "clip04"),
        # A second variant of the layouts and combined edits (v3): two videos side by side or one above the
        # other, mirrors inside borders, pillarbox and a coloured frame, another short copy.
        p.grid([("clip04", 2, 8), ("clip13", 0, 6)], layout="side"),
        p.grid([("clip17", 0, 5), ("clip06", 12, 17)], layout="stacked"),
        p.grid([("clip10", 1, 8), ("clip14", 2, 9)], layout="side"),
        p.edit(
            "mirror_grid_blueborder",
            "clip11",
            "hflip,drawgrid=w=iw/5:h=ih/3:t=3:c=yellow@0.5,pad=w=iw+64:h=ih+64:x=32:y=32:color=0x2040c0",
            transform="combined",
        ),
        p.edit(
            "mirror_pillarbox",
            "clip12",
            "hflip,pad=w=trunc(iw*4/6)*2:h=ih:x=(ow-iw)/2:y=0",
            transform="combined",
        ),
        p.edit("greenframe", "clip18", "pad=w=iw+96:h=ih+96:x=48:y=48:color=0x20a040", transform="combined"),
        p.short_copy("clip07", 3, 7, after=10, rotate=1),
        # Copies between black, title cards and fades: only the footage is a copy.
        p.splice(
            "q_clip12_2-8_between_black_title_white.mp4",
            "intro",
            [
                p.solid("black", 3),
                p.card("HIGHLIGHTS", 3),
                replace(p.part("clip12", 2, 8), filters="fade=t=in:d=0.5"),
                p.solid("white", 2),
            ],
            quick=True,
        ),
        p.splice(
            "q_clip07_12-20_with_intro.mp4",
            "intro",
            [p.solid("black", 2), p.card("CAM 4", 2, "0x401010"), p.part("clip07", 12, 20), p.solid("black", 3)],
        ),
        p.edit("fades", "clip14", "fade=t=in:d=1,fade=t=out:st=9:d=1", transform="fade"),
        # Hard negatives: blank, generated or look-alike footage that copies nothing indexed.
        p.generated_negative("black8", quick=True),
        p.generated_negative("white8"),
        p.generated_negative("darknoise8"),
        p.generated_negative("black_to_white6"),
        p.splice(
            "q_unrelated_black6_then_clip09.mp4",
            "intro",
            [p.solid("black", 6), p.tail("clip09", 0)],
            hard_negative=True,
            quick=True,
        ),
        p.splice(
            "q_unrelated_clip13_then_white4.mp4",
            "intro",
            [p.tail("clip13", 0), p.solid("white", 4)],
            hard_negative=True,
        ),
        p.splice(
            "q_unrelated_blue4_then_clip17_then_red3.mp4",
            "intro",
            [p.solid("0x1030a0", 4), p.tail("clip17", 0), p.solid("0xa01010", 3)],
            hard_negative=True,
        ),
        p.splice(
            "q_unrelated_clip17_black3_clip08.mp4",
            "intro",
            [p.tail("clip17", 0), p.solid("black", 3), p.tail("clip08", 0)],
            hard_negative=True,
        ),
        p.splice(
            "q_unrelated_title_then_clip19.mp4",
            "title",
            [p.card("A DIFFERENT STORY", 4), p.tail("clip19", 0)],
            hard_negative=True,
        ),
        p.generated_negative("titlecards"),
        p.slideshow([("clip08", 2), ("clip09", 3), ("clip13", 4), ("clip15", 2), ("clip17", 3), ("clip19", 5)]),
        p.generated_negative("testsrc10"),
        p.generated_negative("smptehdbars8"),
        p.splice(
            "q_unrelated_clip15_fades.mp4",
            "fade",
            [replace(p.tail("clip15", 0), filters="fade=t=in:d=1.5,fade=t=out:st=6:d=1.5"), p.solid("black", 2)],
            hard_negative=True,
        ),
        # Old black-and-white film like clip01, but other footage.
        p.edit(
            "oldfilm",
            "clip09",
            "crop=w=iw:h=trunc(iw*9/32)*2,hue=s=0,noise=alls=18:allf=t,vignette",
            transform="scene",
            hard_negative=True,
        ),
    ]
    return [spec for spec in specs if spec.quick] if quick else specs


def references_for(quick: bool) -> tuple[str, ...]:
    """The videos a benchmark run indexes: all reference clips and generated references, or the quick subset."""
    return QUICK_REFERENCES + QUICK_GENERATED if quick else REFERENCES + GENERATED_REFERENCES


def plan_library(infos: Mapping[str, ClipInfo], *, quick: bool = False, font: Path | None = None) -> list[QuerySpec]:
    """The generated references a run indexes (built like queries, into the output folder)."""
    return _v3_planner(infos, font, quick).generated


def _v3_planner(infos: Mapping[str, ClipInfo], font: Path | None, quick: bool) -> Planner:
    """A planner for the v3 clips with the generated references of the run indexed."""
    library = references_for(quick)
    p = Planner(infos, font, library)
    p.index([spec for spec in _v3_generated(p) if spec.name in library])
    return p


def _v3_generated(p: Planner) -> list[QuerySpec]:
    """Indexed videos that are mostly black, blank, bars or title cards (``GENERATED_REFERENCES``)."""
    intro = p.part("clip07", 10, 25)
    intro = replace(intro, filters=f"fade=t=in:d=1,fade=t=out:st={_num(intro.length - 1)}:d=1")
    parts = {
        "r_black20.mp4": [p.solid("black", 20)],
        "r_intro_clip07_10-25.mp4": [
            p.solid("black", 3),
            p.card("PARKING STUDY", 3),
            intro,
            p.solid("black", 2),
        ],
        "r_bars_clip16_5-20_end.mp4": [
            p.pattern("smptebars", 4),
            p.solid("white", 1),
            p.part("clip16", 5, 20),
            p.card("THE END", 3, "black"),
        ],
    }
    return [p.splice(name, "reference", chain, (640, 360), reference=True) for name, chain in parts.items()]


def crop_graph(keep: float, anchor: str) -> str:
    """A crop filter keeping ``keep`` of each side (even sizes), anchored at the centre or a corner."""
    x, y = {"center": ("(iw-ow)/2", "(ih-oh)/2"), "top-left": ("0", "0"), "bottom-right": ("iw-ow", "ih-oh")}[anchor]
    return f"crop=w=trunc(iw*{keep}/2)*2:h=trunc(ih*{keep}/2)*2:x={x}:y={y}"


HALF_SIZE = "scale=w=trunc(iw/4)*2:h=trunc(ih/4)*2"
STANDARD_EDITS: dict[str, dict[str, object]] = {
    "lowbitrate": {"filters": "null", "codec": X264_LOW},  # ~100 kbit/s
    "resize50": {"filters": HALF_SIZE, "transform": "resize"},
    "crop15": {"filters": crop_graph(0.85, "center"), "transform": "crop"},
    "crop20": {"filters": crop_graph(0.80, "top-left"), "transform": "crop"},
    "crop10": {"filters": crop_graph(0.90, "bottom-right"), "transform": "crop"},
    "flip": {"filters": "hflip"},
    "bright": {"filters": "eq=brightness=0.15:contrast=1.3", "transform": "brightness"},
    "dark": {"filters": "eq=brightness=-0.1:contrast=0.85:saturation=0.6", "transform": "brightness"},
    "gamma": {"filters": "eq=gamma=1.6:contrast=1.15:saturation=1.4", "transform": "brightness"},
    "trim5": {"filters": "null", "start": 5, "transform": "trim"},  # the first 5 s cut off
    "mpeg4": {"filters": "null", "codec": MPEG4, "ext": "avi", "transform": "codec"},
    "vp8": {"filters": "null", "codec": VP8, "ext": "webm", "transform": "codec"},
    "mirror_grid_border": {
        "filters": "hflip,drawgrid=w=iw/6:h=ih/4:t=2:c=white@0.6,pad=w=iw+48:h=ih+48:x=24:y=24:color=0xc03020",
        "transform": "combined",
    },
    "blocky160": {"filters": "scale=w=-2:h=160", "codec": MPEG4_BLOCKY, "ext": "avi", "transform": "blocky"},
}
"""Single-clip edits that every fixture set applies alike (``Planner.standard``): ``Planner.edit`` options."""


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _capped(info: ClipInfo) -> tuple[int, int]:
    """The clip's size scaled down to at most ``MAX_WIDTH`` wide, both sides even."""
    scale = min(1.0, MAX_WIDTH / info.width)
    return _even(info.width * scale), _even(info.height * scale)


def _num(value: float) -> str:
    """Seconds for a file name: ``5`` rather than ``5.0``."""
    return f"{value:g}"


def _box(qs: float, rs: float, qe: float, re: float) -> tuple[float, float, float, float]:
    return (round(qs, 2), round(rs, 2), round(qe, 2), round(re, 2))


class Planner:
    """Turns short recipe calls into ``QuerySpec``s, resolving clip names, durations and ground truth.

    ``library`` names the videos a run indexes: the ``clips.references`` among them from the start, and
    generated references (built into the output folder) once ``index`` has been given their plans.
    """

    def __init__(
        self, infos: Mapping[str, ClipInfo], font: Path | None, library: Sequence[str], clips: ClipSet = V3_CLIPS
    ) -> None:
        self.infos = infos
        self.font = font
        self.clips = clips
        self.by_short = {name.split("_")[0]: name for name in clips.clips}
        if len(self.by_short) != len(clips.clips):
            raise ValueError("Planner: clip short names (up to the first '_') must be unique")
        # Where each indexed video shows which clip footage: (offset in the reference, part).
        self.layouts: dict[str, list[tuple[float, Part]]] = {
            name: [(0.0, Part(name, 0.0, infos[name].duration))] for name in clips.references if name in library
        }
        self.generated: list[QuerySpec] = []

    def index(self, specs: Iterable[QuerySpec]) -> None:
        """Index generated references: ground truth planned afterwards follows their footage too."""
        for spec in specs:
            offsets = itertools.accumulate((part.length for part in spec.parts), initial=0.0)
            self.layouts[spec.name] = list(zip(offsets, spec.parts, strict=False))
            self.generated.append(spec)

    def clip(self, short: str) -> str:
        return self.by_short[short]

    def part(self, short: str, start: float, end: float | None) -> Part:
        """``[start, end)`` of a clip; ``end=None`` runs to the clip's end."""
        clip = self.clip(short)
        duration = self.infos[clip].duration
        end = duration if end is None else end
        return self._checked(Part(clip, float(start), float(end)), duration)

    def tail(self, short: str, start: float) -> Part:
        """From ``start`` to the last whole 25 fps frame that starts 0.1 s or more before the clip's end.

        Splices cut a clip's tail there rather than at its end, so the trim filter, not the way ffmpeg
        times a (variable frame rate) stream's last frame, fixes the query's length.
        """
        clip = self.clip(short)
        duration = self.infos[clip].duration
        end = math.floor((duration - 0.1) * SPLICE_FPS) / SPLICE_FPS
        return self._checked(Part(clip, float(start), end), duration)

    @staticmethod
    def _checked(part: Part, duration: float) -> Part:
        start, end, clip = part.start, part.end, part.clip
        if not 0 <= start < end <= duration + 1e-6:
            raise ValueError(f"{clip}: part {start}-{end} s lies outside its {duration:.2f} s")
        return part

    def matches(self, placed: Iterable[tuple[float, Part]]) -> tuple[TruthMatch, ...]:
        """Ground truth for parts placed at query offsets: where their footage lies in each indexed video.

        A clip part copies the stretch of every indexed video that shows the same seconds of the same clip
        (the clip itself, and generated references built around it), mapped through the part's speed.
        Stills, generated parts and holdout footage copy nothing.
        """
        boxes: dict[str, list[tuple[float, float, float, float]]] = {}
        for offset, part in placed:
            if part.kind != "clip":
                continue
            for reference, layout in self.layouts.items():
                for ref_offset, held in layout:
                    low, high = max(part.start, held.start), min(part.end, held.end)
                    if held.kind != "clip" or held.clip != part.clip or high <= low:
                        continue
                    q_start, q_end = (offset + (t - part.start) / part.speed for t in (low, high))
                    box = _box(q_start, ref_offset + low - held.start, q_end, ref_offset + high - held.start)
                    boxes.setdefault(reference, []).append(box)
        return tuple(TruthMatch(ref, tuple(segs)) for ref, segs in boxes.items())

    def solid(self, colour: str, length: float) -> Part:
        """A frame of one colour (ffmpeg colour name or 0xRRGGBB) for ``length`` seconds."""
        return Part(f"color=c={colour}", 0.0, float(length), kind="generated")

    def pattern(self, source: str, length: float, filters: str = "") -> Part:
        """An ffmpeg test source (``testsrc``, ``smptebars``, ...) for ``length`` seconds."""
        return Part(source, 0.0, float(length), kind="generated", filters=filters)

    def card(self, caption: str, length: float, colour: str = "0x102040") -> Part:
        """A title card: ``caption`` in white, centred on a plain background."""
        return Part(f"color=c={colour}", 0.0, float(length), kind="generated", filters=self.caption(caption, 9))

    def caption(self, caption: str, fraction: int, alpha: float = 1.0) -> str:
        """Centred white text ``1 / fraction`` of the frame high; drawbox blocks when there is no font."""
        if self.font is None:
            words = len(caption.split())
            return ",".join(
                f"drawbox=x=iw*{0.5 - 0.08 * words + 0.16 * i:.2f}:y=ih*0.45:w=iw*0.12:h=ih/{fraction}"
                f":color=white@{alpha}:t=fill"
                for i in range(words)
            )
        return (
            f"drawtext=fontfile='{self.font}':text='{caption}':fontsize=h/{fraction}:fontcolor=white@{alpha}"
            ":x=(w-tw)/2:y=(h-th)/2"
        )

    def still(self, short: str, at: float, length: float) -> Part:
        """The holdout clip's frame at ``at`` s, held for ``length`` s (one slide of a slideshow)."""
        clip = self.clip(short)
        if clip in self.clips.references:
            raise ValueError(f"{clip}: stills are made of holdout footage only")
        return Part(clip, float(at), float(at + length), kind="still")

    def slideshow(self, stills: Sequence[tuple[str, float]]) -> QuerySpec:
        """A hard negative: the holdout clips' frames at the given seconds, 3 s each, on a 640x360 canvas."""
        parts = [self.still(short, at, 3) for short, at in stills]
        return self.splice("q_unrelated_slideshow.mp4", "slideshow", parts, (640, 360), hard_negative=True)

    def long_host(self, rotate: int) -> list[Part]:
        """About 72 s of unrelated footage: the start of every holdout clip, then all of them mirrored."""
        cuts = self.clips.host_cuts
        order = cuts[rotate:] + cuts[:rotate]
        plain = [self.part(short, 0, end) for short, end in order]
        return plain + [replace(part, filters="hflip") for part in plain]

    def splice(
        self,
        name: str,
        transform: str,
        parts: Sequence[Part],
        canvas: tuple[int, int] | None = None,
        *,
        reference: bool = False,
        hard_negative: bool = False,
        quick: bool = False,
    ) -> QuerySpec:
        """Parts back to back on one canvas (the first clip's capped size unless given).

        ``reference=True`` plans an indexed video, whose ground truth is its layout, not ``matches``.
        """
        offsets = list(itertools.accumulate((part.length for part in parts), initial=0.0))
        if canvas is None:
            canvas = _capped(self.infos[next(part.clip for part in parts if part.footage)])
        return QuerySpec(
            name=name,
            transform=transform,
            recipe="splice",
            parts=tuple(parts),
            matches=() if reference else self.matches(zip(offsets, parts, strict=False)),
            duration=round(offsets[-1], 2),
            canvas=canvas,
            hard_negative=hard_negative,
            quick=quick,
        )

    def short_copy(
        self, short: str, a1: float, a2: float, after: int, rotate: int, *, quick: bool = False
    ) -> QuerySpec:
        """Seconds ``[a1, a2)`` of a reference after the first ``after`` parts of ``long_host(rotate)``."""
        host = self.long_host(rotate)
        at = sum(part.length for part in host[:after])
        parts = [*host[:after], self.part(short, a1, a2), *host[after:]]
        name = f"q_{short}_{_num(a1)}-{_num(a2)}_in_long_at{_num(round(at, 2))}.mp4"
        return self.splice(name, "short", parts, (640, 360), quick=quick)

    def grid(self, cells: Sequence[tuple[str, float, float]], *, layout: Literal["2x2", "side", "stacked"] = "2x2",
             quick: bool = False) -> QuerySpec:
        """Equally long parts on a 640x360 canvas in reading order: four in a 2x2 grid, or two side by side
        (``side``) or one above the other (``stacked``)."""
        parts = tuple(self.part(short, a, b) for short, a, b in cells)
        if len(parts) != (4 if layout == "2x2" else 2) or len({part.length for part in parts}) != 1:
            raise ValueError(f"grid: layout {layout} needs {4 if layout == '2x2' else 2} parts of one length")
        copied = "_".join(short for short, _, _ in cells if self.clip(short) in self.clips.references)
        others = "_".join(short for short, _, _ in cells if self.clip(short) not in self.clips.references)
        kind = {"2x2": "grid", "side": "side_by_side", "stacked": "top_bottom"}[layout]
        return QuerySpec(
            name=f"q_{copied}_{kind}" + (f"_with_{others}" if others else "") + ".mp4",
            transform="grid" if layout == "2x2" else "stack",
            recipe="grid",
            parts=parts,
            matches=self.matches((0.0, part) for part in parts),
            duration=round(parts[0].length, 2),
            canvas=(640, 360),
            layout=layout,
            hard=True,
            quick=quick,
        )

    def prefix(self, clip: str) -> str:
        return "q_" if clip in self.clips.references else "q_unrelated_"

    def edit(
        self,
        label: str,
        short: str,
        filters: str,
        *,
        start: float = 0.0,
        transform: str | None = None,
        codec: tuple[str, ...] = X264,
        ext: str = "mp4",
        hard_negative: bool = False,
        quick: bool = False,
    ) -> QuerySpec:
        part = self.part(short, start, None)
        graph = filters if "[src]" in filters else f"[src]{filters}[dst]"
        rate = dict(self.clips.resample).get(short)
        if rate:
            graph = f"[src]fps={rate}[cfr];" + graph.replace("[src]", "[cfr]", 1)
        return QuerySpec(
            name=f"{self.prefix(part.clip)}{short}_{label}.{ext}",
            transform=transform or label,
            recipe="edit",
            parts=(part,),
            matches=self.matches([(0.0, part)]),
            duration=round(part.length, 2),
            graph=graph,
            codec=codec,
            hard_negative=hard_negative,
            quick=quick,
        )

    def copy(self, short: str) -> QuerySpec:
        part = self.part(short, 0, None)
        ext = part.clip.rsplit(".", 1)[1]
        return QuerySpec(
            name=f"{self.prefix(part.clip)}{short}_copy.{ext}",
            transform="copy",
            recipe="copy",
            parts=(part,),
            matches=self.matches([(0.0, part)]),
            duration=round(part.length, 2),
        )

    def insert(
        self, short: str, a1: float, a2: float, host: str, at: float, *, speed: float = 1.0, quick: bool = False
    ) -> QuerySpec:
        """Seconds ``[a1, a2)`` of a clip inside a holdout clip from its second ``at``; at another ``speed``
        (0.5: a slow-motion replay) the copy lasts ``(a2 - a1) / speed`` query seconds."""
        inner = replace(self.part(short, a1, a2), speed=speed)
        head, tail = self.part(host, 0, at), self.tail(host, at)
        slowed = f"_slowmo{_num(speed)}" if speed != 1 else ""
        return QuerySpec(
            name=f"q_{short}_{_num(a1)}-{_num(a2)}{slowed}_in_{host}_at{_num(at)}.mp4",
            transform="insert" if speed == 1 else "slowmo",
            recipe="splice",
            parts=(head, inner, tail),
            matches=self.matches([(at, inner)]),
            duration=round(head.length + inner.length + tail.length, 2),
            canvas=_capped(self.infos[head.clip]),
            quick=quick,
        )

    def concat(
        self, first: tuple[str, float, float | None], second: tuple[str, float, float | None], *, quick: bool = False
    ) -> QuerySpec:
        a, b = (self.part(*ab) if ab[2] is not None else self.tail(ab[0], ab[1]) for ab in (first, second))
        related = a.clip in self.clips.references or b.clip in self.clips.references
        if related:
            name = f"q_{first[0]}_{_num(a.start)}-{_num(a.end)}_then_{second[0]}_{_num(b.start)}-{_num(b.end)}.mp4"
        else:
            name = f"q_unrelated_{first[0]}_then_{second[0]}.mp4"
        return QuerySpec(
            name=name,
            transform="concat",
            recipe="splice",
            parts=(a, b),
            matches=self.matches([(0.0, a), (a.length, b)]),
            duration=round(a.length + b.length, 2),
            canvas=_capped(self.infos[a.clip]),
            quick=quick,
        )

    def pip(self, short: str, a1: float, a2: float, host: str, *, quick: bool = False) -> QuerySpec:
        inset = self.part(short, a1, a2)
        background = self.part(host, 0, inset.length)
        width, height = _capped(self.infos[background.clip])
        ref = self.infos[inset.clip]
        aspect = ref.width / ref.height
        # About a quarter of the canvas area, with the reference's aspect, at most 60 % of the width.
        inset_w = min(math.sqrt(0.25 * width * height * aspect), 0.6 * width)
        return QuerySpec(
            name=f"q_{short}_{_num(a1)}-{_num(a2)}_pip_on_{host}.mp4",
            transform="pip",
            recipe="pip",
            parts=(background, inset),
            matches=self.matches([(0.0, inset)]),
            duration=round(inset.length, 2),
            canvas=(width, height),
            inset=(_even(inset_w), _even(inset_w / aspect)),
            hard=True,
            quick=quick,
        )

    def standard(self, label: str, short: str, *, quick: bool = False) -> QuerySpec:
        """The ``STANDARD_EDITS`` edit ``label`` of a whole clip."""
        return self.edit(label, short, quick=quick, **STANDARD_EDITS[label])  # type: ignore[arg-type]

    def watermark_letterbox(self, short: str) -> QuerySpec:
        """Combined: 15 fps, squashed to 640x360, letterboxed to 4:3 and a translucent caption."""
        graph = f"fps=15,scale=640:360,setsar=1,pad=w=640:h=480:x=0:y=60,{self.caption('COPYCAT TV', 5, 0.45)}"
        return self.edit("watermark_letterbox_fps15", short, graph, transform="combined")

    def speed(self, short: str, a1: float, a2: float, speed: float, *, quick: bool = False) -> QuerySpec:
        """Seconds ``[a1, a2)`` played ``speed`` times as fast (``speed``; below 1 ``slowmo``, frames repeated
        at 25 fps): the box is ``1 / speed`` times as long on the query axis as on the reference's."""
        kind = "speed" if speed > 1 else "slowmo"
        return self.splice(
            f"{self.prefix(self.clip(short))}{short}_{_num(a1)}-{_num(a2)}_{kind}{_num(speed)}.mp4",
            kind,
            [replace(self.part(short, a1, a2), speed=speed)],
            quick=quick,
        )

    def compilation(self, cells: Sequence[tuple[str, float, float]], *, quick: bool = False) -> QuerySpec:
        """Short parts back to back on a 640x360 canvas, named after the references they copy, in order:
        ``_compilation`` when holdout footage lies between them, ``_back_to_back`` when none does."""
        copied = [short for short, _, _ in cells if self.clip(short) in self.clips.references]
        kind = "back_to_back" if len(copied) == len(cells) else "compilation"
        parts = [self.part(*cell) for cell in cells]
        return self.splice(f"q_{'_'.join(copied)}_{kind}.mp4", "compilation", parts, (640, 360), quick=quick)

    def generated_negative(self, kind: str, *, quick: bool = False) -> QuerySpec:
        """A hard negative of generated frames only, 640x360, named ``q_unrelated_<kind>.mp4``: black, white
        or dark noise for 8 s, a 6 s fade from black to white, three title cards, or a test pattern."""
        match kind:
            case "black8" | "white8":
                transform, parts = "blank", [self.solid(kind.removesuffix("8"), 8)]
            case "darknoise8":
                transform, parts = "blank", [self.pattern("color=c=0x181818", 8, "noise=alls=10:allf=t")]
            case "black_to_white6":
                transform, parts = "fade", [self.pattern("color=c=black", 6, "fade=t=out:d=6:color=white")]
            case "titlecards":
                transform = "title"
                parts = [self.card("CHAPTER ONE", 4), self.card("THE JOURNEY", 4, "black"),
                         self.card("CREDITS", 4, "0x303030")]
            case "testsrc10":
                transform, parts = "pattern", [self.pattern("testsrc", 10)]
            case "smptehdbars8":
                transform, parts = "pattern", [self.pattern("smptehdbars", 8)]
            case _:
                raise ValueError(f"generated_negative: unknown kind {kind!r}")
        return self.splice(f"q_unrelated_{kind}.mp4", transform, parts, (640, 360), hard_negative=True, quick=quick)

    def vertical(self, short: str, *, hard_negative: bool = False, quick: bool = False) -> QuerySpec:
        """A 9:16 re-upload: the whole clip fitted to the width of a 360x640 frame, over a blurred, darker
        copy of itself that fills the rest (what phone apps do with landscape video)."""
        graph = (
            "[src]split[a][b];[a]scale=360:640:force_original_aspect_ratio=increase,crop=360:640,"
            "boxblur=20:2,eq=brightness=-0.08[bg];[b]scale=360:-2,setsar=1[fg];"
            "[bg][fg]overlay=x=(W-w)/2:y=(H-h)/2[dst]"
        )
        return self.edit("vertical_blurfill", short, graph, transform="vertical", hard_negative=hard_negative,
                         quick=quick)

    def camcord(
        self, short: str, *, variant: int = 0, hard_negative: bool = False, quick: bool = False
    ) -> QuerySpec:
        """A screen filmed with a camera: the picture warped into a quadrilateral on a dark surround
        (perspective), softened, duller, with sensor noise and a vignette; ``variant`` 1 tilts the other
        way, filmed at 24 fps."""
        corners = [
            "x0=W*0.08:y0=H*0.07:x1=W*0.95:y1=H*0.02:x2=W*0.05:y2=H*0.96:x3=W*0.98:y3=H*0.90",
            "x0=W*0.03:y0=H*0.02:x1=W*0.90:y1=H*0.08:x2=W*0.06:y2=H*0.93:x3=W*0.96:y3=H*0.97",
        ][variant]
        rate = "fps=24," if variant == 1 else ""
        graph = (
            f"{rate}perspective={corners}:sense=destination:interpolation=linear,gblur=sigma=1.2,"
            "eq=gamma=1.1:saturation=0.8:contrast=0.9,noise=alls=14:allf=t,vignette=angle=PI/4"
        )
        return self.edit(f"camcord{variant}" if variant else "camcord", short, graph, transform="camcord",
                         hard_negative=hard_negative, quick=quick)

    def reaction(
        self,
        short: str,
        a1: float,
        a2: float,
        reactor: str,
        r1: float,
        *,
        copy_side: Literal["left", "right"] = "left",
        quick: bool = False,
    ) -> QuerySpec:
        """A reaction video: seconds ``[a1, a2)`` of a clip letterboxed into one half of a 640x360 frame, the
        holdout ``reactor`` from ``r1`` cropped to fill the other half (a person watching, say)."""
        copied = self.part(short, a1, a2)
        info = self.infos[self.clip(reactor)]
        # Crop the reactor to the half's 8:9 shape so that it fills it, as reaction channels frame a face.
        width, height = min(info.width, _even(info.height * 8 / 9)), min(info.height, _even(info.width * 9 / 8))
        watcher = replace(self.part(reactor, r1, r1 + copied.length), filters=f"crop={width}:{height}")
        parts = (copied, watcher) if copy_side == "left" else (watcher, copied)
        return QuerySpec(
            name=f"{self.prefix(copied.clip)}{short}_{_num(a1)}-{_num(a2)}_reaction_{reactor}_{copy_side}.mp4",
            transform="reaction",
            recipe="grid",
            parts=parts,
            matches=self.matches((0.0, part) for part in parts),
            duration=round(copied.length, 2),
            canvas=(640, 360),
            layout="side",
            hard=True,
            quick=quick,
        )

    def duplicate(self, short: str, *, reencode: bool = False, quick: bool = False) -> QuerySpec:
        """A second indexed copy of a reference clip (planned like a query, built into the output folder):
        its bytes under another name, or re-encoded at 480 px wide (another upload of the same video).
        ``index`` it, and every copy of the clip planned afterwards matches both."""
        part = self.part(short, 0, None)
        if reencode:
            return replace(self.edit("reupload", short, "scale=w=480:h=-2"), name=f"r_reupload_{short}.mp4",
                           transform="reference", matches=(), quick=quick)
        return QuerySpec(
            name=f"r_dup_{part.clip}",
            transform="reference",
            recipe="copy",
            parts=(part,),
            matches=(),
            duration=round(part.length, 2),
            quick=quick,
        )

    def text(self, short: str, caption: str, style: str) -> str:
        """A drawtext graph, or bands and blocks standing in for letters when there is no font."""
        info = self.infos[self.clip(short)]
        size = max(12, info.height // 12)
        if self.font is None:
            blocks = ",".join(
                f"drawbox=x=iw*{0.08 + 0.07 * i:.2f}:y=ih*0.86:w=iw*0.05:h=ih*0.06:color=white@0.9:t=fill"
                for i in range(min(10, len(caption.split()) * 3))
            )
            return f"[src]drawbox=x=0:y=ih*0.82:w=iw:h=ih*0.14:color=black@0.6:t=fill,{blocks}[dst]"
        font = f"fontfile='{self.font}'"
        if style == "lower-third":
            opts = f"text='{caption}':fontsize={size}:fontcolor=white:x=w*0.05:y=h-th-h*0.08:box=1:boxcolor=black@0.6"
            opts += f":boxborderw={size // 3}"
        elif style == "watermark":
            opts = f"text='{caption}':fontsize={size * 3}:fontcolor=white@0.45:x=(w-tw)/2:y=(h-th)/2"
        else:
            opts = f"text='{caption}':fontsize={size}:fontcolor=white:x=(w-tw)/2:y=h-th-h*0.06:borderw=2"
        return f"[src]drawtext={font}:{opts}[dst]"

    def logo(self, short: str, corner: str) -> str:
        """A semi-transparent badge (one generated frame, repeated by overlay) in a corner."""
        info = self.infos[self.clip(short)]
        w = _even(info.width * 0.18)
        h = _even(w * 0.45)
        margin = _even(info.width * 0.02)
        x = {"top-right": f"W-w-{margin}", "top-left": f"{margin}", "bottom-left": f"{margin}"}[corner]
        y = f"H-h-{margin}" if corner.startswith("bottom") else f"{margin}"
        badge = (
            f"color=c=0x1e64c8:s={w}x{h}:r=1:d=1,format=rgba,"
            f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t={max(2, h // 16)},"
            f"drawbox=x={h // 4}:y={h // 4}:w={h // 2}:h={h // 2}:color=0xffcc00:t=fill,"
            f"drawbox=x={h}:y={h // 3}:w={w - h - h // 4}:h={h // 3}:color=white:t=fill,"
            "colorchannelmixer=aa=0.85[logo]"
        )
        return f"{badge};[src][logo]overlay=x={x}:y={y}[dst]"


# ----------------------------------------------------------------------------------------------- probing


def probe_clip(path: Path) -> ClipInfo:
    """Duration and size of the first video stream (not the container's, which can be longer).

    The stream's own duration where the container records one (mp4, avi, Matroska's DURATION tag);
    otherwise (some webm, flv) the span of its packet timestamps plus one typical frame interval.
    """
    info = probe(path)
    duration = info.duration if info.duration_is_exact else timestamp_span(path, info)
    return ClipInfo(duration=round(duration, 3), width=info.width, height=info.height)


def probe_clips(clips_dir: Path, names: Sequence[str] = REFERENCES + HOLDOUT) -> dict[str, ClipInfo]:
    """``probe_clip`` for each named clip, in parallel; a missing clip is an error that names it."""
    missing = [name for name in names if not (clips_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{clips_dir}: missing clips {', '.join(missing)}")
    with ThreadPoolExecutor(_jobs()) as pool:
        infos = list(pool.map(lambda name: probe_clip(clips_dir / name), names))
    return dict(zip(names, infos, strict=True))


def find_font() -> Path | None:
    """A TrueType font for drawtext: a known path, else what fontconfig offers; ``None`` if neither."""
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    if shutil.which("fc-match"):
        proc = subprocess.run(
            ["fc-match", "--format=%{file}", "sans:bold"], capture_output=True, text=True, check=False
        )
        found = Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None
        if found and found.is_file() and not set(str(found)) & set("'\\:,;[]="):
            return found
    return None


# ---------------------------------------------------------------------------------------------- building


def build_fixtures(clips_dir: Path, out_dir: Path, *, quick: bool = False) -> Path:
    """Build the queries and ``ground_truth.json`` into ``out_dir``; return the JSON's path.

    A folder already holding a complete build of this ``VERSION`` (and the same ``quick``) is returned
    as it is, so tests can cache it between runs.
    """
    clips_dir, out_dir = Path(clips_dir).resolve(), Path(out_dir).resolve()
    gt_path = out_dir / GROUND_TRUTH
    if is_complete(gt_path, quick=quick):
        return gt_path
    infos = probe_clips(clips_dir)
    font = find_font()
    header = {"version": VERSION, "quick": quick, "clips_dir": str(clips_dir), "holdout": list(HOLDOUT)}
    return write_set(
        clips_dir,
        out_dir,
        header,
        infos=infos,
        library=plan_library(infos, quick=quick, font=font),
        specs=plan_fixtures(infos, quick=quick, font=font),
        references=references_for(quick),
        font=font,
    )


def write_set(
    clips_dir: Path,
    out_dir: Path,
    header: Mapping[str, object],
    *,
    infos: Mapping[str, ClipInfo],
    library: Sequence[QuerySpec],
    specs: Sequence[QuerySpec],
    references: Sequence[str],
    font: Path | None,
) -> Path:
    """Build planned generated references and queries into ``out_dir`` and write ``ground_truth.json``.

    ``references`` lists the indexed videos in order: clips (named by their path in ``clips_dir``) and the
    names of ``library`` entries (built into ``out_dir``). ``header`` opens the JSON (version, quick, ...).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    gt_path = out_dir / GROUND_TRUTH
    with ThreadPoolExecutor(_jobs()) as pool:
        built = list(pool.map(lambda spec: _build_query(spec, clips_dir, out_dir), [*library, *specs]))
    generated = {spec.name: (spec, duration) for spec, duration in zip(library, built, strict=False)}
    durations = built[len(library) :]
    entries = []
    for name in references:
        if name in generated:
            spec, duration = generated[name]
            entries.append(
                {
                    "name": name,
                    "path": name,
                    "duration": round(duration, 2),
                    "generated": True,
                    "sources": _sources_json(spec),
                }
            )
        else:
            entries.append(
                {
                    "name": name,
                    "path": str(clips_dir / name),
                    "duration": round(infos[name].duration, 2),
                    "generated": False,
                }
            )
    document = {
        **header,
        "text_overlay": f"drawtext {font}" if font else "drawbox fallback (no font found)",
        "references": entries,
        "queries": [_query_json(spec, duration) for spec, duration in zip(specs, durations, strict=True)],
    }
    tmp = gt_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(gt_path)
    return gt_path


def is_complete(gt_path: Path, *, quick: bool, version: int = VERSION) -> bool:
    """Whether ``gt_path`` is a finished build of ``version`` whose media files all exist."""
    try:
        document = json.loads(gt_path.read_text())
    except (OSError, ValueError):
        return False
    if document.get("version") != version or document.get("quick") != quick:
        return False
    entries = document.get("references", []) + document.get("queries", [])
    return bool(entries) and all(resolve(gt_path, entry["path"]).is_file() for entry in entries)


def resolve(gt_path: Path, path: str) -> Path:
    """A ``path`` from the ground-truth JSON, made absolute against the JSON's folder."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else gt_path.parent / candidate


def _query_json(spec: QuerySpec, duration: float) -> dict[str, object]:
    return {
        "name": spec.name,
        "path": spec.name,
        "duration": round(duration, 2),
        "transform": spec.transform,
        "hard": spec.hard,
        "hard_negative": spec.hard_negative,
        "sources": _sources_json(spec),
        "filter": spec.graph,
        "matches": [{"reference": m.reference, "segments": [list(s) for s in m.segments]} for m in spec.matches],
    }


def _sources_json(spec: QuerySpec) -> list[dict[str, object]]:
    """What each part shows: a clip's seconds (``speed`` when not 1, ``still`` for a held frame) or a generator."""
    rows: list[dict[str, object]] = []
    for part in spec.parts:
        if part.kind == "generated":
            rows.append({"generator": part.clip, "length": round(part.length, 3)})
            continue
        row: dict[str, object] = {"clip": part.clip, "start": part.start, "end": round(part.end, 3)}
        if part.speed != 1:
            row["speed"] = part.speed
        if part.kind == "still":
            row["still"] = True
        rows.append(row)
    return rows


def _build_query(spec: QuerySpec, clips_dir: Path, out_dir: Path) -> float:
    """Make one query file (via a temporary name, so a crash leaves no half file) and check its length."""
    target = out_dir / spec.name
    tmp = out_dir / f".tmp_{spec.name}"
    if spec.recipe == "copy":
        shutil.copyfile(clips_dir / spec.parts[0].clip, tmp)
    else:
        inputs, graph = _graph(spec)
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
        for clip in inputs:
            cmd += ["-i", str(clips_dir / clip)]
        cmd += ["-filter_complex", graph, "-map", "[out]", "-fps_mode", "passthrough", *spec.codec, *BITEXACT]
        if spec.name.endswith(".mp4"):
            cmd += ["-movflags", "+faststart"]
        _run([*cmd, str(tmp)], f"build {spec.name}")
    duration = probe_clip(tmp).duration
    if abs(duration - spec.duration) > DURATION_TOLERANCE:
        tmp.unlink(missing_ok=True)
        raise FixtureBuildError(
            f"build {spec.name}: came out {duration:.3f} s long, its ground truth assumes {spec.duration:.2f} s"
        )
    tmp.replace(target)
    return duration


def _graph(spec: QuerySpec) -> tuple[list[str], str]:
    """Input clips (one ``-i`` each) and the ``-filter_complex`` graph, ending in ``[out]``."""
    cap = f"scale=w='min({MAX_WIDTH},iw)':h=-2,setsar=1,format=yuv420p"
    if spec.recipe == "edit":
        part = spec.parts[0]
        trim = f",trim=start={part.start},setpts=PTS-STARTPTS" if part.start > 0 else ""
        return [part.clip], f"[0:v:0]setpts=PTS-STARTPTS{trim}[src];{spec.graph};[dst]{cap}[out]"
    width, height = spec.canvas
    if spec.recipe in ("splice", "grid"):
        if spec.recipe == "grid":
            width, height = _even(width / (1 if spec.layout == "stacked" else 2)), _even(height / (
                1 if spec.layout == "side" else 2))
        inputs: list[str] = []
        chains = []
        for i, part in enumerate(spec.parts):
            if part.footage:
                inputs.append(part.clip)
            fit = (
                f"scale={width}:{height}:force_original_aspect_ratio=decrease:force_divisible_by=2,"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
            )
            chains.append(f"{_source(part, len(inputs) - 1, (width, height))},{fit}[p{i}]")
        labels = "".join(f"[p{i}]" for i in range(len(spec.parts)))
        if spec.recipe == "grid":
            cells = {"2x2": "0_0|w0_0|0_h0|w0_h0", "side": "0_0|w0_0", "stacked": "0_0|0_h0"}[spec.layout]
            return inputs, ";".join(chains) + f";{labels}xstack=inputs={len(spec.parts)}:layout={cells}[out]"
        return inputs, ";".join(chains) + f";{labels}concat=n={len(spec.parts)}:v=1:a=0[out]"
    background, inset = spec.parts
    inset_w, inset_h = spec.inset
    margin = _even(width * 0.03)
    graph = (
        f"[0:v:0]{_cut(background)},scale={width}:{height},setsar=1[bg];"
        f"[1:v:0]{_cut(inset)},scale={inset_w}:{inset_h},setsar=1[fg];"
        f"[bg][fg]overlay=x=W-w-{margin}:y={margin}:shortest=1,format=yuv420p[out]"
    )
    return [background.clip, inset.clip], graph


def _source(part: Part, index: int, size: tuple[int, int]) -> str:
    """The filter chain that yields ``part`` at the splice rate from ``-i`` input ``index`` (or a source)."""
    if part.kind == "generated":
        options = f"s={size[0]}x{size[1]}:r={SPLICE_FPS}:d={_num(part.length)}"
        chain = f"{part.clip}{':' if '=' in part.clip else '='}{options}"
    elif part.kind == "still":
        one_frame = Part(part.clip, part.start, part.start + 1 / SPLICE_FPS)
        chain = f"[{index}:v:0]{_cut(one_frame)},tpad=stop_mode=clone:stop_duration={part.length - 1 / SPLICE_FPS:.2f}"
    else:
        chain = f"[{index}:v:0]{_cut(part)}"
        if part.speed != 1:
            chain += f",setpts=PTS/{part.speed:g},fps={SPLICE_FPS}"
    return f"{chain},{part.filters}" if part.filters else chain


def _cut(part: Part) -> str:
    """Resample to the splice rate, then cut ``[start, end)`` on that frame grid and restart at 0."""
    return f"setpts=PTS-STARTPTS,fps={SPLICE_FPS},trim=start={part.start}:end={part.end},setpts=PTS-STARTPTS"


def _run(cmd: list[str], what: str) -> str:
    """Run a tool; on failure raise with the tail of its stderr, which says why."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FixtureBuildError(f"{what}: {cmd[0]} could not run: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise FixtureBuildError(f"{what}: {cmd[0]} exited with {proc.returncode}:\n{tail}")
    return proc.stdout


def _jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# ---------------------------------------------------------------------------------------------- command


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.fixtures OUT_DIR [--quick]``: build (or reuse) and print what is there."""
    parser = argparse.ArgumentParser(prog="python -m bench.fixtures", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--quick", action="store_true", help="small subset for fast tests")
    parser.add_argument("--clips", type=Path, default=Path("/work/shared/data/clips"), help="source clips")
    args = parser.parse_args(argv)
    started = time.monotonic()
    gt_path = build_fixtures(args.clips, args.out_dir, quick=args.quick)
    print_set(gt_path, time.monotonic() - started)
    return 0


def print_set(gt_path: Path, elapsed: float) -> None:
    """Every query of a built set with its ground truth, then the counts (for people)."""
    document = json.loads(gt_path.read_text())
    print(f"{'query':<44} {'transform':<11} {'dur':>6}  ground truth")
    for query in document["queries"]:
        truth = "; ".join(
            f"{_short(m['reference'])} " + " ".join("[{:g} {:g} {:g} {:g}]".format(*s) for s in m["segments"])
            for m in query["matches"]
        )
        flag = " (hard)" if query["hard"] else " (hard negative)" if query["hard_negative"] else ""
        print(f"{query['name']:<44} {query['transform']:<11} {query['duration']:>6.2f}  {truth or '-'}{flag}")
    queries = document["queries"]
    positives = sum(len(q["matches"]) for q in queries)
    unrelated = sum(1 for q in queries if not q["matches"])
    print(
        f"\n{len(document['references'])} references, {len(queries)} queries, {positives} query/reference "
        f"pairs, {unrelated} unrelated; {elapsed:.1f} s; {gt_path}"
    )


def _short(name: str) -> str:
    """``clip04`` for a clip, the whole stem for a generated reference (``r_black20``)."""
    return name.rsplit(".", 1)[0] if name.startswith("r_") else name.split("_")[0]


if __name__ == "__main__":
    sys.exit(main())
