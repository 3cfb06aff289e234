"""Footage fixture sets: 26 real clips nobody tuned on, split by clip into a tuning part and a check part.

Why: defaults chosen on the clips of ``bench/fixtures.py`` (v2, v3) may only fit those clips. The clips in
``/work/shared/data/footage`` (see ``SOURCES.md`` there: camera footage, film, animation, motion graphics,
portrait phone videos, CCTV, a lab recording) give two more sets with exact ground truth: ``tune`` (17
clips), which joins v2 and v3 in the minimum F1 that defaults are chosen on (``bench.tune``), and
``check`` (9 clips), which is only ever reported, never chosen on. Each part has its own references,
holdout (host footage and unrelated queries), queries and ``ground_truth.json``, in its own folder.

Split. By clip, fixed here before anything was measured on the footage, so that each part holds similar
kinds of content and its own look-alike pairs (a holdout clip of a scene like a reference's):

* tune references: jewellery hands (f02), skateboarding dog (f10, portrait), dog fetch (f14), letter
  blocks (f16), Civil War film (f20), Chrome animation (f26), filmed screen (f34), face grimaces (f38),
  phone dance (f44, portrait, with app icons), mall crowd (f50); holdout: Iron Man film (f04, like f20),
  dog at a door (f08, like f14 and f10), Paris street (f28) and street CCTV (f46, like f50), cake mixing
  (f32, portrait phone, like f44), black-and-white portrait (f40, like f38), open hand (f52, like f16).
* check references: birthday (f06), basketball gym (f24), rooftop yoga (f30), flies arena (f42, 120 s of
  near-identical frames), kinetic typography (f48); holdout: apple (f12), football juggling (f18, like
  f24), aquarium (f22), speaker at a map (f36, like f06).

Queries. Every transformation family of ``bench/fixtures.py`` (re-encodes, resizes, crops, flips,
photometric changes, text, logos, picture-in-picture, inserts, trims, concatenations, byte copies, other
codecs, 3-5 s copies inside long holdout footage, compilations, a 2x2 grid, side-by-side and stacked
layouts, a 90-degree turn, 1.5x speed, combined edits, 160p blocks, copies between black and title cards,
fades), plus: reaction videos (the copy letterboxed in one half of the frame, a holdout clip cropped to
fill the other; ``reaction``, flagged hard), vertical 9:16 re-uploads over a blurred fill (``vertical``),
camcording (perspective warp onto a dark surround, blur, noise, vignette; ``camcord``), slow motion at
0.5x, alone or inside holdout footage (``slowmo``: the box is twice as long on the query axis), and
library duplicates: one reference clip per part is indexed a second time under another name (``r_dup_*``,
a byte copy; in tune also ``r_reupload_f20.mp4``, re-encoded at 480 px), and every query of that clip
matches both. Unrelated queries are holdout footage edited like the positives, blank frames, title
cards, patterns, a slideshow, and look-alikes: the holdout clips of similar scenes, plain or edited like
the positives (``scene``, hard negatives).

Ground truth, media, names and the JSON format are those of ``bench/fixtures.py`` (time 0 = first video
frame, spliced parts at 25 fps, every built file probed against its plan), with these header fields::

    {"version": int, "set": "tune" | "check", "quick": bool, "clips_dir": str,
     "clips": [every clip of the part], "holdout": [...], "text_overlay": str, "references": [...],
     "queries": [...]}

Usage::

    paths = build_footage(Path("/work/shared/data/footage"), Path(".cache/footage"))  # {"tune": .., "check": ..}
    python -m bench.footage_fixtures OUT_DIR [--quick]        # builds OUT_DIR/tune and OUT_DIR/check, prints both

``quick=True`` builds a few queries of the new families per part (2 reference clips and a duplicate in
tune, 1 and a duplicate in check) for tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from bench.fixtures import (
    GROUND_TRUTH,
    ClipInfo,
    ClipSet,
    Planner,
    QuerySpec,
    find_font,
    is_complete,
    print_set,
    probe_clips,
    write_set,
)

VERSION = 1
"""Bump whenever a planned query or its encoding changes, so cached folders (and features) are rebuilt."""

FOOTAGE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "footage"

TUNE = ClipSet(
    references=(
        "f02_jewelry_hands.mp4",
        "f10_skateboard_dog.mp4",
        "f14_dog_fetch.mp4",
        "f16_letter_blocks.mp4",
        "f20_civilwar_film.mp4",
        "f26_chrome_animation.webm",
        "f34_screen_typing.mp4",
        "f38_face_grimaces.mp4",
        "f44_phone_dance.mp4",
        "f50_mall_crowd.mp4",
    ),
    holdout=(
        "f04_ironman.mp4",
        "f08_dog_door.mp4",
        "f28_paris_street.mp4",
        "f32_cake_mixing.mp4",
        "f40_bw_portrait.mp4",
        "f46_street_cctv.avi",
        "f52_open_hand.mp4",
    ),
    host_cuts=(("f04", 8), ("f08", 7), ("f28", 4), ("f32", 9.8), ("f40", 7.8), ("f46", 4.8), ("f52", 8)),
)
CHECK = ClipSet(
    references=(
        "f06_birthday.mp4",
        "f24_basketball_gym.mp4",
        "f30_yoga_rooftop.mp4",
        "f42_flies_arena.mp4",
        "f48_kinetic_text.webm",
    ),
    holdout=("f12_apple.mp4", "f18_football_juggle.mp4", "f22_aquarium.mp4", "f36_speaker_map.mp4"),
    host_cuts=(("f12", 4.8), ("f18", 10), ("f22", 7.4), ("f36", 4.8)),
    resample=(("f48", 30),),  # 30, 15 and 10 fps stretches
)
PARTS: dict[str, ClipSet] = {"tune": TUNE, "check": CHECK}
"""The two parts by name: ``tune`` may be tuned on, ``check`` never."""
QUICK_REFERENCES: dict[str, tuple[str, ...]] = {
    "tune": ("f14_dog_fetch.mp4", "f16_letter_blocks.mp4"),
    "check": ("f30_yoga_rooftop.mp4",),
}


# ---------------------------------------------------------------------------------------------- planning


def plan_part(
    part: str, infos: Mapping[str, ClipInfo], *, quick: bool = False, font: Path | None = None
) -> tuple[list[QuerySpec], list[QuerySpec]]:
    """(generated references, queries) of one part with their ground truth, without touching any media.

    The generated references are the library duplicates; ``infos`` must cover the part's clips.
    """
    if part not in PARTS:
        raise ValueError(f"unknown footage part {part!r}; expected one of {', '.join(PARTS)}")
    clips = PARTS[part]
    missing = sorted(set(clips.clips) - set(infos))
    if missing:
        raise ValueError(f"plan_part({part}): no ClipInfo for {', '.join(missing)}")
    p = Planner(infos, font, QUICK_REFERENCES[part] if quick else clips.references, clips)
    library, queries = _PLANS[part]
    p.index(spec for spec in library(p) if spec.quick or not quick)
    specs = queries(p)
    return p.generated, [spec for spec in specs if spec.quick] if quick else specs


def references_of(part: str, library: Sequence[QuerySpec], *, quick: bool) -> list[str]:
    """The videos a run of the part indexes: its reference clips (or the quick ones), then ``library``."""
    return [*(QUICK_REFERENCES[part] if quick else PARTS[part].references), *(spec.name for spec in library)]


PORTRAIT = "transpose=clock,pad=w='max(iw,trunc(ih*9/32)*2)':h=ih:x=(ow-iw)/2:y=0"
"""Turned 90 degrees and pillarboxed to 9:16 where the turned frame is wider than that."""


def _fades(p: Planner, short: str) -> str:
    """Fade in over the first second and out over the last 1.5 s of the whole clip."""
    duration = p.infos[p.clip(short)].duration
    return f"fade=t=in:d=1,fade=t=out:st={duration - 1.5:.2f}:d=1.5"


def _tune_library(p: Planner) -> list[QuerySpec]:
    return [p.duplicate("f14", quick=True), p.duplicate("f20", reencode=True)]


def _tune_queries(p: Planner) -> list[QuerySpec]:
    return [
        # Re-encodes, sizes, crops, mirrors, photometric changes.
        *_standard(p, "lowbitrate f20 f38 f50; resize50 f02 f26 f44; crop15 f16; crop20 f50; crop10 f34; "
                      "flip f14 f34 f10; bright f10; dark f26; gamma f02"),
        # Overlays.
        p.edit("text", "f20", p.text("f20", "BREAKING NEWS", "lower-third")),
        p.edit("text", "f38", p.text("f38", "SAMPLE", "watermark")),
        p.edit("text", "f50", p.text("f50", "and then the crowd moved on", "subtitle")),
        p.edit("logo", "f16", p.logo("f16", "top-right")),
        p.edit("logo", "f44", p.logo("f44", "bottom-left")),
        p.edit("logo", "f02", p.logo("f02", "top-left")),
        # Inside other footage.
        p.pip("f14", 1, 7, "f40"),
        p.pip("f38", 10, 17, "f04"),
        p.pip("f50", 2, 8, "f52"),
        p.insert("f02", 5, 12, "f08", 2),
        p.insert("f26", 10, 18, "f40", 3),
        p.insert("f38", 20, 28, "f32", 4),
        p.insert("f44", 3, 9, "f52", 2),
        *_standard(p, "trim5 f20 f38 f26"),
        p.concat(("f10", 1, 8), ("f16", 2, 9)),
        p.concat(("f50", 3, 10), ("f34", 0, 6)),
        p.copy("f34"),
        p.copy("f26"),
        *_standard(p, "mpeg4 f14; vp8 f02"),
        p.short_copy("f20", 4, 8, after=5, rotate=0),
        p.short_copy("f44", 6, 10, after=9, rotate=3),
        p.short_copy("f16", 2, 6, after=12, rotate=5),
        p.compilation([("f08", 0, 2), ("f02", 2, 6), ("f32", 1, 3), ("f14", 3, 7), ("f28", 0, 2), ("f26", 12, 15),
                       ("f40", 2, 4), ("f38", 10, 15), ("f52", 0, 2), ("f50", 5, 9), ("f46", 0, 2)]),
        p.compilation([("f10", 2, 6), ("f16", 4, 7), ("f20", 15, 19), ("f34", 1, 5), ("f44", 8, 11)]),
        # Layouts: 2x2, side by side, stacked, reaction halves.
        p.grid([("f50", 2, 8), ("f20", 10, 16), ("f38", 5, 11), ("f40", 0, 6)]),
        p.grid([("f14", 1, 7), ("f08", 0, 6)], layout="side"),
        p.grid([("f04", 0, 6), ("f26", 12, 18)], layout="stacked"),
        p.reaction("f20", 5, 13, "f40", 0),
        p.reaction("f38", 2, 9, "f32", 1, copy_side="right"),
        p.reaction("f44", 2, 8, "f04", 1),
        # Geometry, speed and combined edits.
        p.edit("rot90_portrait", "f20", PORTRAIT, transform="rotate"),
        p.speed("f38", 3, 18, 1.5),
        p.speed("f14", 2, 7, 0.5, quick=True),
        p.speed("f38", 8, 14, 0.5),
        p.insert("f10", 3, 7, "f08", 2, speed=0.5),
        p.vertical("f02"),
        p.vertical("f50"),
        p.vertical("f20"),
        p.vertical("f16", quick=True),
        p.camcord("f20"),
        p.camcord("f26", variant=1),
        p.camcord("f14", quick=True),
        p.camcord("f50", variant=1),
        p.watermark_letterbox("f50"),
        *_standard(p, "mirror_grid_border f16; blocky160 f26"),
        # Copies between black, title cards and fades.
        p.splice(
            "q_f14_2-8_between_black_title_white.mp4",
            "intro",
            [p.solid("black", 3), p.card("HIGHLIGHTS", 3), p.part("f14", 2, 8), p.solid("white", 2)],
        ),
        p.splice(
            "q_f38_12-20_with_intro.mp4",
            "intro",
            [p.solid("black", 2), p.card("EPISODE 4", 2, "0x401010"), p.part("f38", 12, 20), p.solid("black", 3)],
        ),
        p.edit("fades", "f20", _fades(p, "f20"), transform="fade"),
        # Unrelated: holdout footage edited like the positives.
        *_standard(p, "flip f08; lowbitrate f52; crop15 f46"),
        p.edit("text", "f40", p.text("f40", "LIVE", "lower-third")),
        p.edit("bright", "f32", "eq=brightness=0.12:contrast=1.25", transform="brightness"),
        *_standard(p, "resize50 f28"),
        p.concat(("f04", 0, None), ("f08", 0, None)),
        p.copy("f46"),
        # Hard negatives: blank and generated frames, cards, stills.
        p.generated_negative("black8"),
        p.generated_negative("darknoise8"),
        p.splice(
            "q_unrelated_black6_then_f08.mp4", "intro", [p.solid("black", 6), p.tail("f08", 0)], hard_negative=True
        ),
        p.splice(
            "q_unrelated_f40_then_white4.mp4", "intro", [p.tail("f40", 0), p.solid("white", 4)], hard_negative=True
        ),
        p.splice(
            "q_unrelated_title_then_f52.mp4",
            "title",
            [p.card("A DIFFERENT STORY", 4), p.tail("f52", 0)],
            hard_negative=True,
        ),
        p.slideshow([("f04", 2), ("f08", 3), ("f28", 1), ("f32", 4), ("f40", 2), ("f52", 5)]),
        p.generated_negative("testsrc10"),
        p.edit("fades", "f32", _fades(p, "f32"), transform="fade", hard_negative=True),
        # Look-alikes: holdout clips of scenes like a reference's, plain and edited like the positives.
        p.edit("lookalike", "f04", "null", transform="scene", hard_negative=True),
        p.edit("lookalike", "f08", "null", transform="scene", hard_negative=True, quick=True),
        p.edit("lookalike", "f52", "null", transform="scene", hard_negative=True),
        p.edit("lookalike", "f40", "null", transform="scene", hard_negative=True),
        p.edit("lookalike", "f28", "null", transform="scene", hard_negative=True),
        p.edit("lookalike", "f32", "null", transform="scene", hard_negative=True),
        p.edit("lookalike", "f46", "null", transform="scene", hard_negative=True),
        p.vertical("f04", hard_negative=True),
        p.camcord("f08", hard_negative=True),
        _hard(p.speed("f08", 1, 5, 0.5)),
    ]


def _check_library(p: Planner) -> list[QuerySpec]:
    return [p.duplicate("f30", quick=True)]


def _check_queries(p: Planner) -> list[QuerySpec]:
    return [
        *_standard(p, "lowbitrate f06 f48; resize50 f30 f42; crop15 f06; crop20 f48; flip f24 f30; bright f48; "
                      "gamma f24"),
        p.edit("text", "f06", p.text("f06", "BIRTHDAY LIVE", "lower-third")),
        p.edit("text", "f24", p.text("f24", "what a shot", "subtitle")),
        p.edit("logo", "f30", p.logo("f30", "top-right")),
        p.edit("logo", "f48", p.logo("f48", "bottom-left")),
        p.pip("f24", 0, 5, "f22"),
        p.pip("f06", 4, 9, "f18"),
        p.insert("f06", 3, 10, "f18", 2),
        p.insert("f42", 40, 50, "f22", 3),
        *_standard(p, "trim5 f48 f30"),
        p.concat(("f30", 1, 7), ("f24", 2, 8)),
        p.copy("f30"),
        p.copy("f48"),
        *_standard(p, "mpeg4 f24; vp8 f06"),
        p.short_copy("f06", 4, 8, after=3, rotate=0),
        p.short_copy("f42", 30, 35, after=5, rotate=2),
        p.short_copy("f48", 20, 24, after=6, rotate=1),
        p.compilation([("f12", 0, 2), ("f06", 2, 6), ("f18", 1, 3), ("f24", 3, 7), ("f22", 0, 2), ("f30", 4, 8),
                       ("f36", 0, 2), ("f42", 60, 64), ("f12", 2, 4), ("f48", 30, 34)]),
        p.grid([("f06", 2, 8), ("f24", 1, 7), ("f48", 10, 16), ("f18", 0, 6)]),
        p.grid([("f30", 2, 7), ("f36", 0, 5)], layout="stacked"),
        p.reaction("f06", 2, 10, "f18", 1, copy_side="right"),
        p.reaction("f30", 1, 6, "f36", 0, quick=True),
        p.edit("rot90_portrait", "f06", PORTRAIT, transform="rotate"),
        p.speed("f48", 3, 18, 1.5),
        p.speed("f24", 2, 7, 0.5),
        p.speed("f48", 10, 16, 0.5),
        p.insert("f30", 4, 7, "f22", 2, speed=0.5),
        p.vertical("f48"),
        p.vertical("f24"),
        p.vertical("f06"),
        p.camcord("f06"),
        p.camcord("f30", variant=1),
        p.camcord("f48"),
        p.standard("mirror_grid_border", "f24"),
        p.watermark_letterbox("f30"),
        p.standard("blocky160", "f06"),
        p.splice(
            "q_f24_2-8_between_black_title_white.mp4",
            "intro",
            [p.solid("black", 3), p.card("HIGHLIGHTS", 3), p.part("f24", 2, 8), p.solid("white", 2)],
        ),
        p.edit("fades", "f30", _fades(p, "f30"), transform="fade"),
        # Unrelated.
        *_standard(p, "flip f12; lowbitrate f22"),
        p.edit("text", "f36", p.text("f36", "LIVE", "lower-third")),
        p.standard("crop15", "f18"),
        p.generated_negative("white8"),
        p.generated_negative("smptehdbars8"),
        p.splice(
            "q_unrelated_f18_then_white4.mp4", "intro", [p.tail("f18", 0), p.solid("white", 4)], hard_negative=True
        ),
        p.splice(
            "q_unrelated_title_then_f22.mp4", "title", [p.card("THE BIG DAY", 4), p.tail("f22", 0)], hard_negative=True
        ),
        p.slideshow([("f12", 2), ("f18", 3), ("f22", 1), ("f36", 2)]),
        p.edit("fades", "f18", _fades(p, "f18"), transform="fade", hard_negative=True),
        p.edit("lookalike", "f18", "null", transform="scene", hard_negative=True),
        p.edit("lookalike", "f36", "null", transform="scene", hard_negative=True, quick=True),
        p.edit("lookalike", "f12", "null", transform="scene", hard_negative=True),
        p.edit("lookalike", "f22", "null", transform="scene", hard_negative=True),
        p.vertical("f18", hard_negative=True),
        p.camcord("f36", hard_negative=True),
    ]


def _standard(p: Planner, table: str) -> list[QuerySpec]:
    """``Planner.standard`` edits from ``"label short short; label short"``, in that order."""
    return [p.standard(label, short) for row in table.split(";") for label, *shorts in [row.split()]
            for short in shorts]


def _hard(spec: QuerySpec) -> QuerySpec:
    """An unrelated query marked as a hard negative (a look-alike edited like a positive)."""
    if spec.matches:
        raise ValueError(f"{spec.name} copies indexed footage; only unrelated queries are hard negatives")
    return replace(spec, hard_negative=True, transform="scene")


_PLANS: dict[str, tuple[Callable[[Planner], list[QuerySpec]], Callable[[Planner], list[QuerySpec]]]] = {
    "tune": (_tune_library, _tune_queries),
    "check": (_check_library, _check_queries),
}


# ---------------------------------------------------------------------------------------------- building


def build_footage(
    footage_dir: Path, out_dir: Path, *, quick: bool = False, parts: Sequence[str] = tuple(PARTS)
) -> dict[str, Path]:
    """Build each part into ``out_dir/<part>`` (a complete build of this ``VERSION`` is reused as it is);
    return the ground-truth path of each."""
    footage_dir, out_dir = Path(footage_dir).resolve(), Path(out_dir).resolve()
    paths = {part: out_dir / part / GROUND_TRUTH for part in parts}
    todo = [part for part in parts if not is_complete(paths[part], quick=quick, version=VERSION)]
    if not todo:
        return paths
    infos = probe_clips(footage_dir, [clip for part in todo for clip in PARTS[part].clips])
    font = find_font()
    for part in todo:
        library, specs = plan_part(part, infos, quick=quick, font=font)
        header = {
            "version": VERSION,
            "set": part,
            "quick": quick,
            "clips_dir": str(footage_dir),
            "clips": list(PARTS[part].clips),
            "holdout": list(PARTS[part].holdout),
        }
        write_set(footage_dir, out_dir / part, header, infos=infos, library=library, specs=specs,
                  references=references_of(part, library, quick=quick), font=font)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.footage_fixtures OUT_DIR [--quick]``: build (or reuse) both parts and print them."""
    parser = argparse.ArgumentParser(prog="python -m bench.footage_fixtures", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--quick", action="store_true", help="a few queries per part, for tests")
    parser.add_argument("--footage", type=Path, default=FOOTAGE, help="source clips (SOURCES.md there)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    paths = build_footage(args.footage, args.out_dir, quick=args.quick)
    elapsed = time.monotonic() - started
    for part, gt_path in paths.items():
        print(f"\n== {part} ==")
        print_set(gt_path, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
