"""The footage sets: split by clip into disjoint parts, exact ground truth, and a quick build that decodes."""

from __future__ import annotations

import json
import re as regex
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from bench import fixtures, footage_fixtures
from bench.fixtures import ClipInfo, QuerySpec
from bench.footage_fixtures import CHECK, FOOTAGE, PARTS, QUICK_REFERENCES, TUNE, build_footage, plan_part
from tests.unit.test_fixtures import decode_errors
from workers.evaluate import load_ground_truth

TOLERANCE = 0.15
NEW_FAMILIES = ("reaction", "vertical", "camcord", "slowmo")
EVERY_FAMILY = (
    *NEW_FAMILIES,
    *("lowbitrate", "resize", "crop", "flip", "brightness", "text", "logo", "pip", "insert", "trim", "concat"),
    *("copy", "codec", "short", "compilation", "grid", "stack", "rotate", "speed", "combined", "blocky", "intro"),
    "fade",
)
"""Positive transformations each part covers: those of bench/fixtures.py and the footage's own."""

needs_footage = pytest.mark.skipif(
    not (FOOTAGE / "f02_jewelry_hands.mp4").is_file() or shutil.which("ffmpeg") is None,
    reason=f"needs the shared footage in {FOOTAGE} and ffmpeg",
)


def fake_infos(duration: float = 130.0) -> dict[str, ClipInfo]:
    """Every footage clip as a 640x360 video of ``duration`` seconds, so planning needs no media."""
    return {name: ClipInfo(duration, 640, 360) for name in TUNE.clips + CHECK.clips}


@pytest.fixture(scope="module")
def infos() -> dict[str, ClipInfo]:
    """The real clips' video streams when they are here (a couple of seconds of ffprobe), else fakes."""
    if (FOOTAGE / "f02_jewelry_hands.mp4").is_file() and shutil.which("ffprobe"):
        return fixtures.probe_clips(FOOTAGE, TUNE.clips + CHECK.clips)
    return fake_infos()


@pytest.fixture(scope="module")
def plans(infos: dict[str, ClipInfo]) -> dict[str, tuple[list[QuerySpec], list[QuerySpec]]]:
    return {part: plan_part(part, infos) for part in PARTS}


def test_split_is_by_clip_disjoint_and_covers_every_clip() -> None:
    """26 clips, each in exactly one part (as a reference or as holdout), about 2/3 of them in tune."""
    tune, check = set(TUNE.clips), set(CHECK.clips)
    assert not tune & check
    assert len(tune | check) == 26
    assert 16 <= len(tune) <= 18
    for clips in PARTS.values():
        assert not set(clips.references) & set(clips.holdout)
        assert {short for short, _ in clips.host_cuts} <= {name.split("_")[0] for name in clips.holdout}


@needs_footage
def test_split_names_every_clip_of_sources_md() -> None:
    listed = set(regex.findall(r"^\| (f\d\d_\S+) \|", (FOOTAGE / "SOURCES.md").read_text(), flags=regex.MULTILINE))
    assert listed == set(TUNE.clips) | set(CHECK.clips)


def test_queries_show_only_their_parts_clips(plans: dict[str, tuple[list[QuerySpec], list[QuerySpec]]]) -> None:
    """A query shows footage of its own part only; matches name only that part's library; unrelated
    queries are holdout footage; no name repeats within a part."""
    for part, (library, specs) in plans.items():
        clips = PARTS[part]
        indexed = set(clips.references) | {spec.name for spec in library}
        assert len({spec.name for spec in specs}) == len(specs), part
        for spec in specs:
            assert set(spec.sources) <= set(clips.clips), spec.name
            assert {m.reference for m in spec.matches} <= indexed, spec.name
            if spec.matches:
                assert spec.name.startswith("q_f") and not spec.hard_negative, spec.name
            else:
                assert spec.name.startswith("q_unrelated_"), spec.name
                assert set(spec.sources) <= set(clips.holdout), spec.name


def test_each_part_has_every_family_and_look_alikes(
    plans: dict[str, tuple[list[QuerySpec], list[QuerySpec]]],
) -> None:
    for part, (_, specs) in plans.items():
        families = {spec.transform for spec in specs if spec.matches}
        assert set(EVERY_FAMILY) <= families, (part, set(EVERY_FAMILY) - families)
        # Look-alikes: holdout clips of scenes like a reference's, plain ("scene") or edited like a positive.
        look_alikes = [spec for spec in specs if spec.hard_negative and all(p.kind == "clip" for p in spec.parts)]
        assert sum(spec.transform == "scene" for spec in look_alikes) >= 4, part
        assert {"vertical", "camcord"} <= {spec.transform for spec in look_alikes}, part
        assert sum(spec.hard_negative for spec in specs) >= 10, part


def test_boxes_lie_inside_both_videos_at_the_parts_speed(
    infos: dict[str, ClipInfo], plans: dict[str, tuple[list[QuerySpec], list[QuerySpec]]]
) -> None:
    """Every box fits the planned query and the reference; its query side is its reference side divided by
    the speed of the part that shows it (0.5: twice as long)."""
    for library, specs in plans.values():
        durations = {name: info.duration for name, info in infos.items()} | {s.name: s.duration for s in library}
        for spec in specs:
            speeds = {part.speed for part in spec.parts if part.kind == "clip"}
            for match in spec.matches:
                for qs, rs, qe, re in match.segments:
                    assert 0 <= qs < qe <= spec.duration + 0.01, spec.name
                    assert 0 <= rs < re <= durations[match.reference] + 0.01, spec.name
                    assert any((qe - qs) * speed == pytest.approx(re - rs, abs=0.011) for speed in speeds), spec.name


def test_slow_motion_boxes_are_twice_as_long_on_the_query_axis() -> None:
    _, specs = plan_part("tune", fake_infos(30.0))
    by_name = {spec.name: spec for spec in specs}

    alone = by_name["q_f14_2-7_slowmo0.5.mp4"]
    assert alone.duration == 10
    assert [(m.reference, m.segments) for m in alone.matches] == [
        ("f14_dog_fetch.mp4", ((0, 2, 10, 7),)),
        ("r_dup_f14_dog_fetch.mp4", ((0, 2, 10, 7),)),
    ]
    inside = by_name["q_f10_3-7_slowmo0.5_in_f08_at2.mp4"]
    assert [(m.reference, m.segments) for m in inside.matches] == [("f10_skateboard_dog.mp4", ((2, 3, 10, 7),))]
    assert inside.transform == "slowmo"


def test_library_duplicates_are_true_matches_with_the_same_boxes(
    plans: dict[str, tuple[list[QuerySpec], list[QuerySpec]]],
) -> None:
    """Each duplicate is indexed, copies nothing itself, and every query of its clip matches both names."""
    duplicates = {"r_dup_f14_dog_fetch.mp4": "f14_dog_fetch.mp4", "r_reupload_f20.mp4": "f20_civilwar_film.mp4",
                  "r_dup_f30_yoga_rooftop.mp4": "f30_yoga_rooftop.mp4"}
    seen = defaultdict(int)
    for library, specs in plans.values():
        for spec in library:
            assert spec.name in duplicates and not spec.matches and spec.sources == (duplicates[spec.name],)
        for spec in specs:
            truth = {m.reference: m.segments for m in spec.matches}
            for duplicate in {s.name for s in library}:
                if duplicates[duplicate] in truth:
                    assert truth[duplicate] == truth[duplicates[duplicate]], spec.name
                    seen[duplicate] += 1
    assert set(seen) == set(duplicates) and min(seen.values()) >= 5


def test_reactions_put_the_copy_in_one_half(plans: dict[str, tuple[list[QuerySpec], list[QuerySpec]]]) -> None:
    for part, (_, specs) in plans.items():
        reactions = [spec for spec in specs if spec.transform == "reaction"]
        assert len(reactions) >= 2, part
        for spec in reactions:
            copied = [p.clip for p in spec.parts if p.clip in PARTS[part].references]
            watcher = [p for p in spec.parts if p.clip in PARTS[part].holdout]
            assert spec.recipe == "grid" and spec.layout == "side" and spec.hard, spec.name
            assert len(copied) == 1 and len(watcher) == 1 and watcher[0].filters.startswith("crop="), spec.name


def test_quick_plan_is_a_small_subset_with_the_new_families() -> None:
    kinds = set()
    for part in PARTS:
        library, quick = plan_part(part, fake_infos(), quick=True)
        _, full = plan_part(part, fake_infos())
        assert {spec.name for spec in quick} <= {spec.name for spec in full}
        assert 2 <= len(quick) <= 5
        assert {m.reference for spec in quick for m in spec.matches} <= set(QUICK_REFERENCES[part]) | {
            spec.name for spec in library
        }
        kinds |= {spec.transform for spec in quick} | ({"duplicate"} if library else set())
    assert {*NEW_FAMILIES, "duplicate", "scene"} <= kinds


def test_unknown_part_and_short_clips_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown footage part"):
        plan_part("val", fake_infos())
    with pytest.raises(ValueError, match="outside"):
        plan_part("check", fake_infos(20.0))


# ------------------------------------------------------------------------------------------ built media


@needs_footage
@pytest.mark.slow
def test_quick_build_decodes_and_fits_its_ground_truth(tmp_path: Path) -> None:
    """Both quick parts build; ``load_ground_truth`` reads them; every file decodes at its planned length
    and every box fits both videos."""
    paths = build_footage(FOOTAGE, tmp_path, quick=True)

    assert set(paths) == {"tune", "check"}
    for part, gt_path in paths.items():
        document = json.loads(gt_path.read_text())
        assert (document["version"], document["set"], document["quick"]) == (footage_fixtures.VERSION, part, True)
        gt = load_ground_truth(gt_path)
        durations = {}
        for ref in gt["references"]:
            durations[ref["name"]] = fixtures.probe_clip(Path(ref["path"])).duration
            assert durations[ref["name"]] == pytest.approx(ref["duration"], abs=0.01)
            assert ref["generated"] == ref["name"].startswith("r_")
        assert any(ref["generated"] for ref in gt["references"])
        for query in gt["queries"]:
            path = Path(query["path"])
            assert decode_errors(path) == [], query["name"]
            assert fixtures.probe_clip(path).duration == pytest.approx(query["duration"], abs=0.01), query["name"]
            for match in query["matches"]:
                for qs, rs, qe, re in match["segments"]:
                    assert -TOLERANCE <= qs < qe <= query["duration"] + TOLERANCE, query["name"]
                    assert -TOLERANCE <= rs < re <= durations[match["reference"]] + TOLERANCE, query["name"]
