"""Parallel range decoding of long videos: where the ranges fall, and that their samples are the whole decode's."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from workers import decode
from workers.decode import (
    WHOLE,
    CoreShare,
    DecodeOptions,
    TimeRange,
    decode_all,
    decodes_in_ranges,
    expected_frames,
    plan_ranges,
    probe,
    sample_frames,
)
from workers.types import FrameGeometry, VideoInfo

SMALL = FrameGeometry(64)
CPU = DecodeOptions(hwaccel="none", decoders=1)
"""One decoder per video on the CPU (NVDEC decodes a video whole): the same pixels on every machine."""


def video(duration: float, exact: bool = True) -> VideoInfo:
    return VideoInfo(duration, 1280, 720, 25.0, "h264", 0, duration_is_exact=exact)


@pytest.fixture(scope="module")
def upload_like(clips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 s of a real clip encoded like an upload (x264 veryfast, 3 B-frames, key frames every 250)."""
    out = tmp_path_factory.mktemp("ranges") / "highway30.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "1", "-i", str(clips_dir / "clip16_highway.mp4"),
                    "-t", "30", "-an", "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", str(out)], check=True)
    return out


@pytest.mark.parametrize(("duration", "fps", "segment_s"), [(600.0, 1.0, 120.0), (600.4, 1.0, 120.0),
                                                              (7199.6, 1.0, 120.0), (250.0, 2.0, 120.0),
                                                              (301.0, 0.5, 60.0)])
def test_ranges_start_on_sample_slots_and_hold_every_sample(duration: float, fps: float, segment_s: float) -> None:
    ranges = plan_ranges(video(duration), DecodeOptions(fps=fps, segment_s=segment_s, decoders=0), cores=2)
    assert len(ranges) >= 2 and len(ranges) % 2 == 0, "every wave of the 2 decoders is full"
    assert ranges[0].start == 0 and ranges[-1].frames is None
    slots = [r.start * fps for r in ranges]
    assert all(abs(s - round(s)) < 1e-9 for s in slots)
    assert all(r.frames == round(b - a) for r, a, b in zip(ranges, slots, slots[1:], strict=False))
    last = expected_frames(duration, fps) - round(slots[-1])
    lengths = [r.frames for r in ranges[:-1]] + [last]
    assert all(segment_s * fps / 2 <= n < 2 * segment_s * fps for n in lengths), lengths


def test_one_range_when_short_unknown_or_one_decoder() -> None:
    options = DecodeOptions(segment_s=120.0, decoders=0)
    assert len(plan_ranges(video(240.0), options, cores=2)) == 2
    assert plan_ranges(video(239.0), options, cores=2) == [WHOLE]
    assert plan_ranges(video(600.0, exact=False), options, cores=2) == [WHOLE]
    assert plan_ranges(video(600.0), options, cores=1) == [WHOLE]
    assert plan_ranges(video(600.0), DecodeOptions(decoders=1), cores=8) == [WHOLE]
    assert len(plan_ranges(video(600.0), DecodeOptions(decoders=4), cores=1)) == 8
    assert len(plan_ranges(video(600.0), DecodeOptions(decoders=16), cores=1)) == 10, "no range under 60 s"


def test_cores_are_shared_by_the_videos_decoding_at_once() -> None:
    share = CoreShare(cores=4)
    with share.share() as first:
        with share.share() as second, share.share() as third:
            assert (first, second, third) == (4, 2, 1)
        with share.share() as again:
            assert again == 2


@pytest.mark.parametrize("skip_nonref", [False, True])
def test_parallel_ranges_give_the_whole_decodes_samples(upload_like: Path, skip_nonref: bool) -> None:
    whole = decode_all(upload_like, SMALL, replace(CPU, skip_nonref=skip_nonref))
    options = replace(CPU, skip_nonref=skip_nonref, decoders=2, segment_s=6.0, chunk_frames=4)
    assert len(plan_ranges(probe(upload_like), options, cores=2)) == 6
    ranged = decode_all(upload_like, SMALL, options)
    assert ranged.shape == whole.shape == (30, 64, 64, 3)
    assert np.array_equal(ranged, whole)


@pytest.mark.parametrize(("broken", "failing"), [
    ([TimeRange(0.0, 10), TimeRange(10.0, 50), TimeRange(60.0, None)], 10),
    ([TimeRange(0.0, 50), TimeRange(50.0, None)], 0),
])
def test_a_failing_range_hands_the_rest_to_one_decoder(upload_like: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture, broken: list[TimeRange],
                                                       failing: int) -> None:
    """A range that yields fewer samples than it should (a bad seek, a stream ending early) costs time, not
    frames: the whole decode takes over and its samples (or its error) are the answer."""
    whole = decode_all(upload_like, SMALL, CPU)
    monkeypatch.setattr(decode, "plan_ranges", lambda *_: broken)
    ranged = decode_all(upload_like, SMALL, replace(CPU, decoders=2, chunk_frames=4))
    assert np.array_equal(ranged, whole)
    assert f"the range from {failing} s failed" in caplog.text


def test_stopping_early_stops_every_range_decoder(upload_like: Path) -> None:
    stream = sample_frames(upload_like, probe(upload_like), SMALL, replace(CPU, decoders=3, segment_s=5.0,
                                                                           chunk_frames=2))
    next(stream)
    stream.close()
    leftovers = subprocess.run(["pgrep", "-P", str(os.getpid()), "ffmpeg"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
    assert not [t for t in threading.enumerate() if t.name.startswith("decode-from-")]


def test_a_streamed_download_long_enough_for_ranges_is_decoded_from_the_file(upload_like: Path) -> None:
    info = probe(upload_like)
    assert decodes_in_ranges(info, DecodeOptions(decoders=2, segment_s=10.0))
    assert not decodes_in_ranges(info, DecodeOptions(decoders=2, segment_s=20.0))


def test_large_buffers_get_mappings_of_their_own() -> None:
    """glibc accepts the fixed mmap threshold range decoding relies on for flat memory (workers.heap)."""
    from workers.heap import release_large_buffers

    assert release_large_buffers()


def test_the_cores_come_from_the_options_share() -> None:
    """No global: a decode plans its ranges with the cores of the share its options carry."""
    info = video(600.0)
    assert not decodes_in_ranges(info, DecodeOptions(decoders=0, cores=CoreShare(cores=1)))
    assert decodes_in_ranges(info, DecodeOptions(decoders=0, cores=CoreShare(cores=2)))
    assert DecodeOptions(cores=CoreShare(cores=2)) == DecodeOptions()  # the share is no option to compare
