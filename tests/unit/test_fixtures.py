"""The fixture benchmark's plan keeps its promises, and a quick build matches its own ground truth."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from bench import fixtures
from bench.fixtures import (
    GENERATED_REFERENCES,
    HOLDOUT,
    QUICK_REFERENCES,
    REFERENCES,
    ClipInfo,
    QuerySpec,
    plan_fixtures,
    plan_library,
    references_for,
)
from bench.sets import ADDED_IN_V3, FixtureSet, minimum, parse_sets, query_subset, set_table, verdict

CLIPS = Path(os.environ.get("BENCH_CLIPS_DIR", "/work/shared/data/clips"))
TOLERANCE = 0.15

needs_clips = pytest.mark.skipif(
    not (CLIPS / "clip01_chaplin.mp4").is_file() or shutil.which("ffmpeg") is None,
    reason=f"needs the shared clips in {CLIPS} (set BENCH_CLIPS_DIR) and ffmpeg",
)

# Every transform the benchmark promises, with how many different references it must cover.
PROMISED = {
    "lowbitrate": 3,
    "resize": 3,
    "crop": 3,
    "flip": 3,
    "brightness": 3,
    "text": 3,
    "logo": 3,
    "pip": 3,
    "insert": 3,
    "trim": 3,
    "concat": 2,
    "short": 3,
    "compilation": 5,
    "grid": 3,
    "rotate": 1,
    "speed": 1,
    "combined": 2,
    "blocky": 1,
    "intro": 2,
}
# Every kind of hard negative the benchmark promises, with how many queries of it.
PROMISED_NEGATIVES = {"blank": 3, "fade": 2, "intro": 4, "title": 2, "slideshow": 1, "pattern": 2, "scene": 1}


def fake_infos(duration: float = 30.0) -> dict[str, ClipInfo]:
    """Every clip as a 640x360 video of ``duration`` seconds, so planning needs no media."""
    return {name: ClipInfo(duration, 640, 360) for name in REFERENCES + HOLDOUT}


@pytest.fixture(scope="module")
def infos() -> dict[str, ClipInfo]:
    """The real clips' video streams when they are here (a second of ffprobe), else ``fake_infos``."""
    if (CLIPS / "clip01_chaplin.mp4").is_file() and shutil.which("ffprobe"):
        return fixtures.probe_clips(CLIPS)
    return fake_infos()


def by_name(specs: list[QuerySpec]) -> dict[str, QuerySpec]:
    return {spec.name: spec for spec in specs}


def test_full_plan_promises_counts() -> None:
    """At least 25 query/reference pairs, 5 unrelated queries, each transform on several references."""
    specs = plan_fixtures(fake_infos())
    pairs = sum(len(spec.matches) for spec in specs)
    unrelated = [spec for spec in specs if not spec.matches]
    refs_per_transform: dict[str, set[str]] = defaultdict(set)
    for spec in specs:
        refs_per_transform[spec.transform].update(m.reference for m in spec.matches)

    assert pairs >= 25
    assert len(unrelated) >= 5
    for transform, count in PROMISED.items():
        assert len(refs_per_transform[transform]) >= count, transform
    assert sum(len(spec.matches) == 2 for spec in specs if spec.transform == "concat") >= 2


def test_full_plan_has_hard_negatives_of_every_kind() -> None:
    """At least 12 hard negatives, each unrelated, covering blank frames, intros, cards, stills and patterns."""
    specs = plan_fixtures(fake_infos())
    negatives = [spec for spec in specs if spec.hard_negative]
    kinds = defaultdict(int)
    for spec in negatives:
        kinds[spec.transform] += 1

    assert len(negatives) >= 12
    assert all(not spec.matches and spec.name.startswith("q_unrelated_") for spec in negatives)
    for kind, count in PROMISED_NEGATIVES.items():
        assert kinds[kind] >= count, kind
    generators = {part.clip for spec in negatives for part in spec.parts if part.kind == "generated"}
    assert {"color=c=black", "color=c=white", "testsrc", "smptehdbars"} <= generators


def test_harder_positives_are_short_and_hidden(infos: dict[str, ClipInfo]) -> None:
    """Short copies are 3-6 s inside >= 60 s queries; a compilation holds several; the grid four videos."""
    specs = plan_fixtures(infos)
    short = [spec for spec in specs if spec.transform == "short"]
    assert len(short) >= 3
    for spec in short:
        [match] = spec.matches
        [(qs, _, qe, _)] = match.segments
        assert 3 <= qe - qs <= 6 and spec.duration - (qe - qs) >= 60, spec.name
    compilations = [spec for spec in specs if spec.transform == "compilation"]
    assert max(len({m.reference for m in spec.matches} & set(REFERENCES)) for spec in compilations) >= 5
    for spec in compilations:
        assert all(qe - qs <= 5 for m in spec.matches for qs, _, qe, _ in m.segments), spec.name
    [grid] = [spec for spec in specs if spec.transform == "grid"]
    assert grid.recipe == "grid" and len(grid.parts) == 4
    assert len(set(grid.sources) & set(REFERENCES)) == 3


def test_generated_references_are_mostly_blank() -> None:
    """The library's generated videos: 20 s of black, and clip footage framed by black, cards and bars."""
    library = {spec.name: spec for spec in plan_library(fake_infos())}
    assert tuple(library) == GENERATED_REFERENCES
    assert [part.clip for part in library["r_black20.mp4"].parts] == ["color=c=black"]
    assert library["r_black20.mp4"].duration == 20
    for name in GENERATED_REFERENCES[1:]:
        kinds = [part.kind for part in library[name].parts]
        assert kinds.count("clip") == 1 and kinds.count("generated") >= 3, name
        assert not library[name].matches
    assert [spec.name for spec in plan_library(fake_infos(), quick=True)] == ["r_black20.mp4"]


def test_ground_truth_follows_footage_into_generated_references() -> None:
    """clip07 seconds 12-20 lie at 8-16 s of the intro reference (3 s black, 3 s card, clip07 from 10 s)."""
    specs = by_name(plan_fixtures(fake_infos(30.0)))

    intro = specs["q_clip07_12-20_with_intro.mp4"]
    assert [(m.reference, m.segments) for m in intro.matches] == [
        ("clip07_parkinglot.mp4", ((4, 12, 12, 20),)),
        ("r_intro_clip07_10-25.mp4", ((4, 8, 12, 16),)),
    ]
    # Black, title cards and bars in a query never count as a copy of the same frames in a reference.
    assert not specs["q_unrelated_black8.mp4"].matches
    between = specs["q_clip12_2-8_between_black_title_white.mp4"]
    assert [(m.reference, m.segments) for m in between.matches] == [("clip12_armwrestle.mp4", ((6, 2, 12, 8),))]


def test_stills_come_from_the_holdout() -> None:
    """A still of a reference would be a copy that the ground truth leaves out, so it is refused."""
    planner = fixtures.Planner(fake_infos(), None, references_for(False))
    with pytest.raises(ValueError, match="holdout"):
        planner.still("clip01", 2, 3)


def test_holdout_clips_are_never_ground_truth() -> None:
    """Matches name only references; unrelated queries are made of holdout footage and say so."""
    specs = plan_fixtures(fake_infos())
    assert not set(REFERENCES) & set(HOLDOUT)
    assert len(REFERENCES) + len(HOLDOUT) == 20
    assert len(by_name(specs)) == len(specs), "query names must be unique"
    for spec in specs:
        assert {m.reference for m in spec.matches} <= set(REFERENCES + GENERATED_REFERENCES)
        if spec.matches:
            assert spec.name.startswith("q_clip"), spec.name
        else:
            assert spec.name.startswith("q_unrelated_"), spec.name
            assert set(spec.sources) <= set(HOLDOUT), spec.name


@needs_clips
def test_references_are_long_enough_for_segments(infos: dict[str, ClipInfo]) -> None:
    """Short clips (<= 6 s) would be weak references, so all of them sit in the holdout."""
    assert min(infos[name].duration for name in REFERENCES) >= 9.5
    assert all(infos[name].duration < 8.5 for name in HOLDOUT)


def test_only_insets_are_hard() -> None:
    """Picture-in-picture, the 2x2 grid and the two-video stacks show the copy in part of the frame."""
    for spec in plan_fixtures(fake_infos()):
        assert spec.hard == (spec.transform in ("pip", "grid", "stack")), spec.name
        assert not (spec.hard and spec.hard_negative), spec.name


def test_names_spell_their_ground_truth() -> None:
    """Spot checks of boxes [q_start, r_start, q_end, r_end] against the file names."""
    specs = by_name(plan_fixtures(fake_infos(30.0)))

    insert = specs["q_clip04_5-14_in_clip13_at3.mp4"]
    assert [(m.reference, m.segments) for m in insert.matches] == [("clip04_cockatoo.mp4", ((3, 5, 12, 14),))]

    trim = specs["q_clip18_trim5.mp4"]
    assert trim.matches[0].segments == ((0, 5, 25, 30),)
    assert trim.duration == 25

    concat = specs["q_clip01_1-8_then_clip12_2-9.mp4"]
    assert [(m.reference, m.segments) for m in concat.matches] == [
        ("clip01_chaplin.mp4", ((0, 1, 7, 8),)),
        ("clip12_armwrestle.mp4", ((7, 2, 14, 9),)),
    ]

    pip = specs["q_clip02_3-10_pip_on_clip15.mp4"]
    assert pip.matches[0].segments == ((0, 3, 7, 10),)

    short = specs["q_clip11_4-8_in_long_at31.3.mp4"]
    assert short.matches[0].segments == ((31.3, 4, 35.3, 8),)
    assert short.duration == pytest.approx(2 * sum(end for _, end in fixtures.HOST_CUTS) + 4)

    speed = specs["q_clip03_3-18_speed1.5.mp4"]
    assert speed.matches[0].segments == ((0, 3, 10, 18),)
    assert speed.duration == 10


def test_boxes_lie_inside_both_videos(infos: dict[str, ClipInfo]) -> None:
    """Every box fits the planned query and the reference, and copies at the speed of its part."""
    durations = {name: info.duration for name, info in infos.items()}
    durations |= {spec.name: spec.duration for spec in plan_library(infos)}
    for spec in plan_fixtures(infos):
        speed = max(part.speed for part in spec.parts)
        for match in spec.matches:
            for qs, rs, qe, re in match.segments:
                assert 0 <= qs < qe <= spec.duration + 0.01, spec.name
                assert 0 <= rs < re <= durations[match.reference] + 0.01, spec.name
                assert (qe - qs) * speed == pytest.approx(re - rs, abs=0.011), spec.name


def test_plan_rejects_a_part_outside_its_clip() -> None:
    """Clips shorter than the planned cuts fail at planning time, not as a wrong ground truth."""
    with pytest.raises(ValueError, match="outside"):
        plan_fixtures(fake_infos(5.0))


def test_quick_plan_is_a_small_subset() -> None:
    full = by_name(plan_fixtures(fake_infos()))
    quick = plan_fixtures(fake_infos(), quick=True)
    positives = [spec for spec in quick if spec.matches]

    assert {spec.name for spec in quick} <= set(full)
    assert 8 <= len(positives) <= 14
    assert 2 <= len(quick) - len(positives) <= 5
    assert sum(spec.hard_negative for spec in quick) >= 2
    assert len(QUICK_REFERENCES) == 5
    assert {m.reference for spec in quick for m in spec.matches} <= set(QUICK_REFERENCES)
    assert set(references_for(True)) == set(QUICK_REFERENCES) | {"r_black20.mp4"}


def test_is_complete_checks_version_mode_and_files(tmp_path: Path) -> None:
    media = tmp_path / "q.mp4"
    media.write_bytes(b"x")
    gt = tmp_path / fixtures.GROUND_TRUTH
    document = {"version": fixtures.VERSION, "quick": True, "references": [], "queries": [{"path": "q.mp4"}]}

    gt.write_text(json.dumps(document))
    assert fixtures.is_complete(gt, quick=True)
    assert not fixtures.is_complete(gt, quick=False)

    gt.write_text(json.dumps(document | {"version": fixtures.VERSION - 1}))
    assert not fixtures.is_complete(gt, quick=True)

    gt.write_text(json.dumps(document))
    media.unlink()
    assert not fixtures.is_complete(gt, quick=True)


@needs_clips
def test_probe_reads_the_video_stream_not_the_container() -> None:
    """clip18's container lasts 16.57 s, its first video stream 13 s; webm has no stream duration."""
    assert fixtures.probe_clip(CLIPS / "clip18_jwst.mp4") == ClipInfo(13.0, 320, 180)
    assert fixtures.probe_clip(CLIPS / "clip03_bigbuckbunny.webm").duration == pytest.approx(30.0, abs=0.01)


# ------------------------------------------------------------------------------------------ built media


@pytest.fixture(scope="module")
def quick_build(quick_fixtures: Path) -> Path:
    """The session's quick build (tests/conftest.py: built once, cached in .cache/fixtures/)."""
    return quick_fixtures


def decode_errors(path: Path) -> list[str]:
    """ffmpeg's complaints while decoding the first video stream (the null muxer's dts notes aside)."""
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stderr.splitlines() if "non monotonically increasing dts" not in line]
    return lines if proc.returncode == 0 else [f"exit {proc.returncode}", *lines]


@needs_clips
@pytest.mark.slow
def test_quick_build_matches_its_schema(quick_build: Path) -> None:
    document = json.loads(quick_build.read_text())

    assert document["version"] == fixtures.VERSION
    assert document["quick"] is True
    assert [ref["name"] for ref in document["references"]] == list(references_for(True))
    for ref in document["references"]:
        assert set(ref) >= {"name", "path", "duration", "generated"}
        assert isinstance(ref["duration"], float)
        assert ref["generated"] == ref["name"].startswith("r_")
    for query in document["queries"]:
        assert set(query) >= {"name", "path", "duration", "transform", "hard", "hard_negative", "matches"}
        assert isinstance(query["hard"], bool) and isinstance(query["hard_negative"], bool)
        for match in query["matches"]:
            assert set(match) == {"reference", "segments"}
            assert all(len(box) == 4 and all(isinstance(v, int | float) for v in box) for box in match["segments"])
    assert sum(len(q["matches"]) for q in document["queries"]) >= 8
    assert sum(not q["matches"] for q in document["queries"]) >= 2


@needs_clips
@pytest.mark.slow
def test_quick_build_files_decode_and_fit_their_boxes(quick_build: Path) -> None:
    """Each file decodes cleanly; durations agree with ffprobe; every box fits both videos."""
    document = json.loads(quick_build.read_text())
    ref_durations = {}
    for ref in document["references"]:
        path = fixtures.resolve(quick_build, ref["path"])
        ref_durations[ref["name"]] = fixtures.probe_clip(path).duration
        assert ref_durations[ref["name"]] == pytest.approx(ref["duration"], abs=0.01)

    for query in document["queries"]:
        path = fixtures.resolve(quick_build, query["path"])
        assert path.is_file(), query["name"]
        assert decode_errors(path) == [], query["name"]
        duration = fixtures.probe_clip(path).duration
        assert duration == pytest.approx(query["duration"], abs=0.01), query["name"]
        for match in query["matches"]:
            for qs, rs, qe, re in match["segments"]:
                assert -TOLERANCE <= qs < qe <= duration + TOLERANCE, query["name"]
                assert -TOLERANCE <= rs < re <= ref_durations[match["reference"]] + TOLERANCE, query["name"]


@needs_clips
@pytest.mark.slow
def test_second_build_reuses_the_folder(quick_build: Path) -> None:
    """A complete folder of the same version comes back untouched, without running ffmpeg."""
    before = quick_build.stat().st_mtime_ns
    started = time.monotonic()

    again = fixtures.build_fixtures(CLIPS, quick_build.parent, quick=True)

    assert again == quick_build
    assert quick_build.stat().st_mtime_ns == before
    assert time.monotonic() - started < 1.0


@needs_clips
@pytest.mark.slow
def test_text_overlay_builds_without_a_font(infos: dict[str, ClipInfo], tmp_path: Path) -> None:
    """Machines with no font get drawbox bands instead of drawtext, and the query still builds."""
    spec = by_name(plan_fixtures(infos, font=None))["q_clip12_text.mp4"]
    assert "drawtext" not in spec.graph

    duration = fixtures._build_query(spec, CLIPS, tmp_path)

    assert duration == pytest.approx(spec.duration, abs=0.01)
    assert decode_errors(tmp_path / spec.name) == []


def test_the_v2_subset_leaves_out_exactly_what_version_3_added() -> None:
    """``bench.tune --set v2`` names the queries version 3 added; a renamed query would silently stay in."""
    names = [spec.name for spec in plan_fixtures(fake_infos())]
    assert set(ADDED_IN_V3) <= set(names) and len(set(ADDED_IN_V3)) == 7
    gt = {"queries": [{"name": name} for name in names]}
    assert [q["name"] for q in query_subset(gt, "v2")["queries"]] == [n for n in names if n not in ADDED_IN_V3]
    assert query_subset(gt, "v3") == gt
    with pytest.raises(ValueError, match="v1"):
        query_subset(gt, "v1")


def test_sets_parse_in_order_and_refuse_unknown_names() -> None:
    assert parse_sets("check,v2,tune") == ("v2", "tune", "check")
    assert parse_sets("v3") == ("v3",)
    with pytest.raises(ValueError, match="v4"):
        parse_sets("v3,v4")


def test_the_minimum_is_over_the_tuning_sets_only() -> None:
    """The check set is reported, never part of the minimum a default is chosen on."""
    assert minimum({"v2": 0.97, "v3": 0.95, "tune": 0.90, "check": 0.50}) == (0.90, "tune")
    assert minimum({"v3": 0.95}) == (0.95, "v3")
    low, worst = minimum({"check": 0.5})
    assert low != low and worst == ""


def test_a_change_is_adopted_only_if_it_raises_the_minimum_and_drops_no_set_by_more_than_0005() -> None:
    base = {"v2": 0.97, "v3": 0.95, "tune": 0.90, "check": 0.80}

    assert verdict(base | {"tune": 0.91}, base) == "yes: min +0.0100"
    # Raises the worst set but lowers v2 by 0.006: not adopted, however good the mean.
    assert verdict(base | {"tune": 0.93, "v2": 0.964}, base).startswith("no: lowers v2 -0.0060")
    # A drop within 0.005 elsewhere is allowed when the minimum rises.
    assert verdict(base | {"tune": 0.92, "v3": 0.946}, base).startswith("yes")
    # Raising a set that is not the worst leaves the minimum where it was.
    assert verdict(base | {"v3": 0.99}, base) == "no: min unchanged"
    # The check set is never consulted, either way.
    assert verdict(base | {"tune": 0.91, "check": 0.10}, base).startswith("yes")
    assert verdict(base | {"check": 0.99}, base) == "no: min unchanged"


def test_set_table_lists_the_minimum_and_the_check_set_apart() -> None:
    def fixture_set(name: str, queries: int) -> FixtureSet:
        gt = {"queries": [{"name": f"q{i}", "matches": [{"reference": "r", "segments": []}]} for i in range(queries)]}
        return FixtureSet(name, gt, gt, Path("/nonexistent") / name)

    sets = [fixture_set("v3", 3), fixture_set("tune", 2), fixture_set("check", 1)]
    result = {"f1": 0.9, "seg_p": 0.9, "seg_r": 0.9, "vid_p": 1.0, "vid_r": 1.0}
    lines = set_table({"v3": result, "tune": result | {"f1": 0.8}, "check": result | {"f1": 0.1}}, sets)

    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| v3", "| tune", "| **min over v3, tune**", "| check (never chosen on)"
    ]
    assert "**0.8000** (tune)" in lines[4]
