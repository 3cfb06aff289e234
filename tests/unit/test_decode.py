"""Decode: frame counts, sizes, streaming and the errors bad files produce."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from workers.admission import InputLimits
from workers.decode import DecodeClock, DecodeOptions, decode_all, expected_frames, probe, sample_frames, sample_views
from workers.errors import (
    CorruptVideo,
    DecodeTimeout,
    EmptyFile,
    NotAVideo,
    NoVideoStream,
    TruncatedVideo,
    VideoTooLong,
)
from workers.types import FrameGeometry, VideoInfo

CPU = DecodeOptions(hwaccel="none")
"""The product's options on the CPU: the same pixels on every machine."""


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def cut_10_4(clips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 10.4 s of a real clip, re-encoded so the stream really lasts 10.4 s."""
    out = tmp_path_factory.mktemp("decode") / "clip03_0-10.4.mp4"
    ffmpeg("-i", str(clips_dir / "clip03_bigbuckbunny.webm"), "-t", "10.4", "-an", "-c:v", "libx264",
           "-preset", "ultrafast", str(out))
    return out


@pytest.mark.parametrize(("duration", "fps", "frames"), [(10.4, 1.0, 10), (10.6, 1.0, 11), (10.0, 1.0, 10),
                                                          (0.2, 1.0, 1), (10.4, 2.0, 21)])
def test_expected_frame_rule(duration: float, fps: float, frames: int) -> None:
    assert expected_frames(duration, fps) == frames


def test_sampling_follows_the_documented_rule(cut_10_4: Path) -> None:
    info = probe(cut_10_4)
    assert info.duration == pytest.approx(10.4, abs=0.05)
    for fps in (1.0, 2.0):
        frames = decode_all(cut_10_4, FrameGeometry(64), DecodeOptions(fps=fps))
        assert frames.shape[0] == expected_frames(info.duration, fps)


@pytest.mark.parametrize("geometry", [FrameGeometry(224, "squash"), FrameGeometry(160, "crop"),
                                      FrameGeometry(224, "crop", short_side=256)])
def test_frames_have_the_model_size(clips_dir: Path, geometry: FrameGeometry) -> None:
    frames = decode_all(clips_dir / "clip19_pillow.mp4", geometry)  # portrait 368x480
    assert frames.dtype == np.uint8
    assert frames.shape == (7, geometry.size, geometry.size, 3)
    assert frames.std() > 10  # real picture content, not a blank frame


def test_frames_stream_in_bounded_chunks(clips_dir: Path) -> None:
    path = clips_dir / "clip06_bottles.mp4"  # 40 frames at 1 fps
    chunks = list(sample_frames(path, probe(path), FrameGeometry(32), DecodeOptions(chunk_frames=7)))
    assert [c.shape[0] for c in chunks] == [7, 7, 7, 7, 7, 5]


def test_stopping_early_leaves_no_ffmpeg_behind(clips_dir: Path) -> None:
    path = clips_dir / "clip06_bottles.mp4"
    stream = sample_frames(path, probe(path), FrameGeometry(32), DecodeOptions(chunk_frames=2))
    next(stream)
    stream.close()
    leftovers = subprocess.run(["pgrep", "-P", str(os.getpid()), "ffmpeg"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_first_video_stream_is_used(clips_dir: Path) -> None:
    info = probe(clips_dir / "clip18_jwst.mp4")  # two video streams: 320x180 first, 480x270 second
    assert (info.width, info.height, info.stream_index) == (320, 180, 0)
    assert info.duration == pytest.approx(13.0, abs=0.05)


def test_every_shared_clip_decodes(clips_dir: Path) -> None:
    for path in sorted(clips_dir.glob("clip*")):
        info = probe(path)
        frames = decode_all(path, FrameGeometry(32))
        assert frames.shape[0] == expected_frames(info.duration, 1.0), path.name


def test_corrupt_file_fails_with_decoder_errors(broken_dir: Path) -> None:
    path = broken_dir / "broken01_decord_corrupted.mp4"
    with pytest.raises(CorruptVideo, match="Invalid NAL unit size"):
        decode_all(path, FrameGeometry(32))
    # Tolerating decoder errors is an explicit choice.
    assert decode_all(path, FrameGeometry(32), DecodeOptions(max_errors=100)).shape[0] == 5


def test_truncated_mp4_without_index(broken_dir: Path) -> None:
    with pytest.raises(TruncatedVideo, match="cut short"):
        probe(broken_dir / "broken02_clip05_bikes_TRUNCATED_half.mp4")


def test_truncated_mp4_with_index_first(clips_dir: Path, tmp_path: Path) -> None:
    whole = tmp_path / "faststart.mp4"
    ffmpeg("-i", str(clips_dir / "clip16_highway.mp4"), "-c", "copy", "-movflags", "+faststart", str(whole))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(TruncatedVideo, match="ends early"):
        decode_all(cut, FrameGeometry(32))


def test_empty_text_audio_and_image_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    audio = tmp_path / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=2", str(audio))
    image = tmp_path / "still.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1", "-frames:v", "1", str(image))
    with pytest.raises(EmptyFile):
        probe(empty)
    with pytest.raises(NotAVideo):
        probe(text)
    with pytest.raises(NoVideoStream, match="audio"):
        probe(audio)
    with pytest.raises(NotAVideo, match="still image"):
        probe(image)
    with pytest.raises(NotAVideo, match="does not exist"):
        probe(tmp_path / "missing.mp4")


def test_time_limit_stops_a_decoder_that_never_delivers(tmp_path: Path) -> None:
    """ffmpeg blocked on an input that never sends a byte (a FIFO nobody writes) is stopped at the limit."""
    fifo = tmp_path / "stalled.mp4"
    os.mkfifo(fifo)
    info = VideoInfo(duration=10.0, width=64, height=64, fps=25.0, codec="h264", stream_index=0)
    with pytest.raises(DecodeTimeout, match="COPYCAT_DECODE__TIMEOUT_S"):
        list(sample_frames(fifo, info, FrameGeometry(32), DecodeOptions(timeout_s=0.5)))


def test_the_decode_clock_counts_only_time_spent_waiting_on_the_decoder() -> None:
    """A slow model downstream must not turn a good video into a decode timeout: only the reads count."""
    now = [100.0]
    clock = DecodeClock(now=lambda: now[0])
    with clock:  # reading a chunk from ffmpeg: 2 s
        now[0] += 2.0
    now[0] += 50.0  # the model works on the chunk: not counted
    with clock:
        now[0] += 1.0
        assert clock.elapsed() == pytest.approx(3.0)  # a read still running counts
    now[0] += 10.0
    assert clock.elapsed() == pytest.approx(3.0)


def test_one_decode_yields_every_geometry_pixel_identical_to_its_own_decode(clips_dir: Path) -> None:
    """The split + stack graph gives each view exactly what a decode of that geometry alone gives."""
    path = clips_dir / "clip19_pillow.mp4"  # portrait: squash and crop differ
    geometries = (FrameGeometry(64), FrameGeometry(128), FrameGeometry(48, "crop", short_side=56))
    chunks = list(sample_views(path, probe(path), geometries, replace(CPU, chunk_frames=3)))
    for index, geometry in enumerate(geometries):
        together = np.concatenate([chunk[index] for chunk in chunks])
        assert together.shape[1:] == (geometry.size, geometry.size, 3)
        assert np.array_equal(together, decode_all(path, geometry, CPU))


def test_length_limit(clips_dir: Path) -> None:
    with pytest.raises(VideoTooLong):
        decode_all(clips_dir / "clip03_bigbuckbunny.webm", FrameGeometry(32),
                   DecodeOptions(limits=InputLimits(max_duration_s=10)))


def test_container_length_alone_never_claims_truncation(clips_dir: Path) -> None:
    """Audio may outlast the picture: when only the container's length is known, fewer frames are fine."""
    path = clips_dir / "clip05_bikes.mp4"  # 10 s
    padded = replace(probe(path), duration=60.0)
    with pytest.raises(TruncatedVideo, match="promises 60"):
        list(sample_frames(path, padded, FrameGeometry(32)))
    frames = sum(c.shape[0] for c in sample_frames(path, replace(padded, duration_is_exact=False), FrameGeometry(32)))
    assert frames == 10


def test_matroska_stream_length_comes_from_its_duration_tag(clips_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "long_audio.mkv"
    ffmpeg("-i", str(clips_dir / "clip10_pancake.mkv"), "-f", "lavfi", "-i", "sine=duration=25", "-map", "0:v:0",
           "-map", "1:a", "-c:v", "copy", "-c:a", "libopus", str(out))
    info = probe(out)
    assert info.duration_is_exact and info.duration == pytest.approx(10.33, abs=0.05)
    assert decode_all(out, FrameGeometry(32)).shape[0] == 10


def test_skipping_non_reference_frames_keeps_every_sample(clips_dir: Path, tmp_path: Path) -> None:
    """An upload-like H.264 stream (B-frames, deblocking): the same samples, no decoder error, close pixels."""
    path = tmp_path / "bframes.mp4"
    ffmpeg("-i", str(clips_dir / "clip16_highway.mp4"), "-t", "8", "-an", "-c:v", "libx264", "-preset", "veryfast",
           "-bf", "3", str(path))
    full = decode_all(path, FrameGeometry(64), replace(CPU, skip_nonref=False))
    fast = decode_all(path, FrameGeometry(64), replace(CPU, skip_nonref=True))
    assert fast.shape == full.shape == (8, 64, 64, 3)
    assert np.abs(fast.astype(np.int16) - full.astype(np.int16)).mean() < 12  # a few source frames apart at most


def test_only_h264_and_hevc_skip_frames(clips_dir: Path) -> None:
    from workers.decode import _decoder_command, plan_decode

    path, geometry = clips_dir / "clip16_highway.mp4", [FrameGeometry(64)]
    info = probe(path)

    def command(info: VideoInfo, skip: bool) -> list[str]:
        return _decoder_command(path, info, geometry, 1.0, plan_decode(info, geometry, DecodeOptions(skip_nonref=skip)))

    assert "noref" in command(info, True)
    assert "noref" not in command(info, False)
    assert "noref" not in command(replace(info, codec="vp9"), True)
