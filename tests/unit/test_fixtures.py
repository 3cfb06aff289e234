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
from bench.fixtures import HOLDOUT, QUICK_REFERENCES, REFERENCES, ClipInfo, QuerySpec, plan_fixtures

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
}


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


def test_holdout_clips_are_never_ground_truth() -> None:
    """Matches name only references; unrelated queries are made of holdout footage and say so."""
    specs = plan_fixtures(fake_infos())
    assert not set(REFERENCES) & set(HOLDOUT)
    assert len(REFERENCES) + len(HOLDOUT) == 20
    assert len(by_name(specs)) == len(specs), "query names must be unique"
    for spec in specs:
        assert {m.reference for m in spec.matches} <= set(REFERENCES)
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


def test_only_picture_in_picture_is_hard() -> None:
    for spec in plan_fixtures(fake_infos()):
        assert spec.hard == (spec.transform == "pip"), spec.name


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


def test_boxes_lie_inside_both_videos(infos: dict[str, ClipInfo]) -> None:
    """Every box fits the planned query and the reference, and copies at the same speed."""
    for spec in plan_fixtures(infos):
        for match in spec.matches:
            for qs, rs, qe, re in match.segments:
                assert 0 <= qs < qe <= spec.duration + 0.01, spec.name
                assert 0 <= rs < re <= infos[match.reference].duration + 0.01, spec.name
                assert qe - qs == pytest.approx(re - rs, abs=0.011), spec.name


def test_plan_rejects_a_part_outside_its_clip() -> None:
    """Clips shorter than the planned cuts fail at planning time, not as a wrong ground truth."""
    with pytest.raises(ValueError, match="outside"):
        plan_fixtures(fake_infos(5.0))


def test_quick_plan_is_a_small_subset() -> None:
    full = by_name(plan_fixtures(fake_infos()))
    quick = plan_fixtures(fake_infos(), quick=True)
    positives = [spec for spec in quick if spec.matches]

    assert {spec.name for spec in quick} <= set(full)
    assert len(positives) >= 8
    assert len(quick) - len(positives) >= 2
    assert len(QUICK_REFERENCES) == 5
    assert {m.reference for spec in quick for m in spec.matches} <= set(QUICK_REFERENCES)


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
def quick_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixtures.build_fixtures(CLIPS, tmp_path_factory.mktemp("fixtures"), quick=True)


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
    assert [ref["name"] for ref in document["references"]] == list(QUICK_REFERENCES)
    for ref in document["references"]:
        assert set(ref) >= {"name", "path", "duration"}
        assert isinstance(ref["duration"], float)
    for query in document["queries"]:
        assert set(query) >= {"name", "path", "duration", "transform", "hard", "matches"}
        assert isinstance(query["hard"], bool)
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
