"""Decode plans: which frames a stream's decoder may skip, when NVDEC is used, and the CPU fall-back."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import workers.decode
from workers.decode import (
    DecodeOptions,
    DecodePlan,
    HardwareDecoders,
    _decoder_command,
    keyframe_gap,
    plan_decode,
    probe,
    sample_views,
)
from workers.types import FrameGeometry, VideoInfo

H264 = VideoInfo(duration=60.0, width=1280, height=720, fps=25.0, codec="h264", stream_index=0, demuxer="mov")
WHOLE = (FrameGeometry(224),)
CPU = DecodeOptions(hwaccel="none")
"""The product's options on the CPU: the same pixels on every machine."""
GPU = HardwareDecoders(frozenset({"cuda", "vaapi"}), frozenset({"scale_cuda", "hwdownload", "fps"}), device=True)


@pytest.fixture(scope="module")
def dense_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s of 25 fps H.264 with a key frame every 5 frames (0.2 s) and B-frames."""
    out = tmp_path_factory.mktemp("plan") / "testsrc_8s_keyint5.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8",
                    "-c:v", "libx264", "-preset", "veryfast", "-g", "5", "-bf", "2", str(out)], check=True)
    return out


def test_default_plan_skips_non_reference_frames_of_h264_only() -> None:
    options = DecodeOptions(skip_nonref=True)
    assert plan_decode(H264, WHOLE, options).skip_frame == "noref"
    vp9 = VideoInfo(60.0, 1280, 720, 25.0, "vp9", 0, demuxer="matroska")
    assert plan_decode(vp9, WHOLE, options) == DecodePlan()


def test_key_frames_only_when_they_are_dense_enough() -> None:
    options = DecodeOptions(skip_nonref=True, keyframe_max_gap_s=0.5)
    assert plan_decode(H264, WHOLE, options, keyframe_gap=0.4).skip_frame == "nokey"
    assert plan_decode(H264, WHOLE, options, keyframe_gap=10.0).skip_frame == "noref"
    assert plan_decode(H264, WHOLE, options, keyframe_gap=None).skip_frame == "noref"  # not measurable
    assert plan_decode(H264, WHOLE, DecodeOptions(keyframe_max_gap_s=0.0), keyframe_gap=0.1).skip_frame == "noref"
    assert plan_decode(H264, WHOLE, DecodeOptions(skip_nonref=False), keyframe_gap=0.1).skip_frame is None


def test_keyframe_gap_is_read_from_packet_flags(dense_keys: Path, clips_dir: Path) -> None:
    assert keyframe_gap(dense_keys, probe(dense_keys)) == pytest.approx(0.2, abs=0.01)
    highway = clips_dir / "clip16_highway.mp4"  # x264 defaults: key frames seconds apart
    assert keyframe_gap(highway, probe(highway)) > 2.0


def test_key_frame_decode_keeps_the_sampling_slots(dense_keys: Path) -> None:
    """Key frames only: the same number of samples, each at most one key-frame gap (0.2 s) from full decode's."""
    info = probe(dense_keys)
    full = np.concatenate([v[0] for v in sample_views(dense_keys, info, WHOLE, replace(CPU, skip_nonref=False))])
    keys = np.concatenate([v[0] for v in sample_views(dense_keys, info, WHOLE, replace(CPU, keyframe_max_gap_s=0.5))])
    assert keys.shape == full.shape == (8, 224, 224, 3)
    # testsrc2 moves continuously: each key-frame sample is close to its slot's frame, not to another slot's.
    diffs = np.abs(keys.astype(int)[:, None] - full.astype(int)[None]).mean(axis=(2, 3, 4))
    assert (diffs.argmin(axis=1) == np.arange(8)).all()


def test_nvdec_chosen_only_when_ffmpeg_and_a_device_offer_it() -> None:
    options = DecodeOptions(hwaccel="auto")
    assert plan_decode(H264, WHOLE, options, hardware=GPU).hwaccel == "cuda"
    assert plan_decode(H264, WHOLE, options, hardware=HardwareDecoders(GPU.hwaccels, GPU.filters)).hwaccel is None
    assert plan_decode(H264, WHOLE, options, hardware=HardwareDecoders(frozenset({"vaapi"}), GPU.filters,
                                                                        True)).hwaccel is None
    assert plan_decode(H264, (FrameGeometry(224, "crop"),), options, hardware=GPU).hwaccel is None
    prores = VideoInfo(60.0, 1280, 720, 25.0, "prores", 0, demuxer="mov")
    assert plan_decode(prores, WHOLE, options, hardware=GPU).hwaccel is None
    assert plan_decode(H264, WHOLE, DecodeOptions(hwaccel="none"), hardware=GPU).hwaccel is None
    forced = plan_decode(H264, WHOLE, DecodeOptions(hwaccel="cuda"), hardware=HardwareDecoders())
    assert forced.hwaccel is None and "CPU decode (ffmpeg offers no cuda hwaccel" in forced.reason


def test_nvdec_command_scales_on_the_gpu_and_downloads_model_sized_frames() -> None:
    plan = plan_decode(H264, (FrameGeometry(224), FrameGeometry(448)), CPU, hardware=GPU)
    cmd = " ".join(_decoder_command(Path("/tmp/in.mp4"), H264, (FrameGeometry(224), FrameGeometry(448)), 1.0,
                                    DecodePlan("noref", 2, "cuda")))
    assert plan.hwaccel is None  # the options did not ask for a GPU
    assert "-hwaccel cuda -hwaccel_output_format cuda" in cmd and "-skip_frame noref" in cmd and "-threads 2" in cmd
    assert "scale_cuda=format=yuv420p:h=224:interp_algo=bicubic:w=224" in cmd and "h=448" in cmd
    assert "hwdownload" in cmd
    assert "flags=bicubic" not in cmd and "scale=" not in cmd  # no CPU scaler after the download


def test_failed_gpu_decode_falls_back_to_the_cpu(monkeypatch: pytest.MonkeyPatch, clips_dir: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """This machine's ffmpeg has the cuda hwaccel but no GPU: told a device exists, the NVDEC run fails at
    once, and the CPU decode gives exactly the frames a CPU-only plan gives."""
    monkeypatch.setattr(workers.decode, "hardware_decoders", lambda: GPU)
    path = clips_dir / "clip16_highway.mp4"
    info = probe(path)
    cpu = np.concatenate([v[0] for v in sample_views(path, info, WHOLE, CPU)])
    with caplog.at_level("WARNING", logger="workers.decode"):
        fallback = np.concatenate([v[0] for v in sample_views(path, info, WHOLE, DecodeOptions(hwaccel="auto"))])
    assert np.array_equal(cpu, fallback)
    assert any("decoding on the CPU instead" in r.getMessage() for r in caplog.records)


def test_decode_limit_scales_with_the_probed_duration() -> None:
    options = DecodeOptions(timeout_s=1800, timeout_per_s=0.5)
    assert options.timeout_for(30.0) == 1800
    assert options.timeout_for(7200.0) == 3600
    assert DecodeOptions(timeout_s=1800, timeout_per_s=0).timeout_for(7200.0) == 1800
    assert DecodeOptions().timeout_for(7200.0) == 3600  # the product's
