"""The low-information mask drops blank frames and plain cards, and keeps real footage, also when faded."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench import fixtures
from bench.informative import AMBIGUOUS, BLANK, INFORMATIVE, collect, fade_windows, frame_labels
from workers.decode import decode_all
from workers.embed import DEFAULT_GEOMETRY, create_embedder
from workers.embed.base import FrameEmbedder
from workers.informative import frame_statistics, informative_frames, pattern_frames, unlike_patterns

CLIPS = Path(os.environ.get("BENCH_CLIPS_DIR", "/work/shared/data/clips"))
SIZE = DEFAULT_GEOMETRY.size

needs_clips = pytest.mark.skipif(
    not (CLIPS / "clip01_chaplin.mp4").is_file() or shutil.which("ffmpeg") is None,
    reason=f"needs the shared clips in {CLIPS} (set BENCH_CLIPS_DIR) and ffmpeg",
)


def solid(rgb: tuple[int, int, int], n: int = 1) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (n, SIZE, SIZE, 3)).copy()


def card(background: tuple[int, int, int] = (16, 32, 64)) -> np.ndarray:
    """A title card: a plain background with a line of white 'letters' across the middle (4 % of the frame)."""
    frame = solid(background)
    for i in range(8):
        frame[0, 104:120, 40 + 18 * i : 52 + 18 * i] = 255
    return frame


@pytest.fixture(scope="module")
def footage() -> np.ndarray:
    """Real frames of three clips as the product decodes them: uint8 [T, 224, 224, 3]."""
    if not (CLIPS / "clip01_chaplin.mp4").is_file():
        pytest.skip(f"needs the shared clips in {CLIPS}")
    names = ("clip01_chaplin.mp4", "clip05_bikes.mp4", "clip12_armwrestle.mp4")
    return np.concatenate([decode_all(CLIPS / name, DEFAULT_GEOMETRY) for name in names])


@pytest.mark.parametrize("rgb", [(0, 0, 0), (255, 255, 255), (128, 128, 128), (200, 30, 30), (16, 48, 160)])
def test_solid_frames_are_uninformative(rgb: tuple[int, int, int]) -> None:
    assert informative_frames(solid(rgb, 3)).tolist() == [False, False, False]


def test_noise_on_a_flat_background_is_blank_but_strong_noise_is_not() -> None:
    """Grain on black (a dark 'empty' frame) is averaged away by the cells; full-range noise is picture."""
    rng = np.random.default_rng(0)
    grain = np.clip(24 + rng.normal(0, 10, (2, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    strong = rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)

    assert informative_frames(grain).tolist() == [False, False]
    assert informative_frames(strong).tolist() == [True, True]


def test_gentle_gradient_is_blank_and_full_gradient_is_kept() -> None:
    """Contrast decides: a 10-level ramp is a blank wall; a black-to-white ramp is not."""
    gentle = np.tile(np.linspace(100, 110, SIZE)[None, :, None], (SIZE, 1, 3)).astype(np.uint8)[None]
    full = np.tile(np.linspace(0, 255, SIZE)[None, :, None], (SIZE, 1, 3)).astype(np.uint8)[None]

    assert informative_frames(gentle).tolist() == [False]
    assert informative_frames(full).tolist() == [True]


@pytest.mark.parametrize("background", [(16, 32, 64), (0, 0, 0), (90, 90, 90)])
def test_a_plain_title_card_is_uninformative(background: tuple[int, int, int]) -> None:
    frame = card(background)
    stats = frame_statistics(frame)

    assert stats.contrast[0] > 10  # the letters give it contrast; the flat background gives it away
    assert stats.flat[0] >= 0.9
    assert informative_frames(frame).tolist() == [False]


@needs_clips
def test_real_footage_is_informative(footage: np.ndarray) -> None:
    assert informative_frames(footage).all()


@needs_clips
def test_letterboxed_footage_is_informative(footage: np.ndarray) -> None:
    """Black bars over a quarter of the frame leave the picture between them."""
    boxed = footage.copy()
    boxed[:, : SIZE // 8] = 0
    boxed[:, -SIZE // 8 :] = 0
    assert informative_frames(boxed).all()


@needs_clips
def test_a_fade_is_dropped_only_near_black(footage: np.ndarray) -> None:
    """A fade from black keeps the picture from 15 % brightness on, and never drops a brighter frame."""
    frame = footage[3].astype(np.float32)
    levels = np.linspace(0, 1, 21)
    faded = np.stack([(frame * level).round().astype(np.uint8) for level in levels])

    kept = informative_frames(faded)

    assert not kept[0]
    assert kept[levels >= 0.15].all()
    first = int(np.argmax(kept))
    assert kept[first:].all(), "once a fade frame is kept, every brighter one is"


def test_pattern_frames_are_colour_bars() -> None:
    """Full of contrast (pixel statistics keep them), which is why descriptors must recognise them."""
    bars = pattern_frames(SIZE)

    assert bars.shape == (4, SIZE, SIZE, 3) and bars.dtype == np.uint8
    assert informative_frames(bars).all()
    assert len({tuple(bars[0, SIZE // 2, x]) for x in range(0, SIZE, 4)}) == 7


def test_unlike_patterns_by_hand_built_descriptors() -> None:
    patterns = np.eye(4, dtype=np.float32)[:2]  # two prototypes in 4-d
    frames = np.array([[1, 0, 0, 0], [0.6, 0.8, 0, 0], [0, 0, 1, 0], [0.3, 0, 0.954, 0]], np.float32)

    assert unlike_patterns(frames, patterns, max_similarity=0.5).tolist() == [False, False, True, True]
    assert unlike_patterns(frames, np.zeros((0, 4), np.float32)).all()
    assert unlike_patterns(np.zeros((0, 4), np.float32), patterns).shape == (0,)


@pytest.fixture(scope="module")
def embedder() -> FrameEmbedder:
    """The product's default model (sscd_distilled on onnxruntime, CPU)."""
    return create_embedder("sscd_distilled", device="cpu")


@needs_clips
def test_test_patterns_are_recognised_and_footage_is_not(
    embedder: FrameEmbedder, footage: np.ndarray, tmp_path: Path
) -> None:
    """ffmpeg's SMPTE HD bars and testsrc look like the drawn bars; real frames do not."""
    patterns = embedder.embed(pattern_frames(embedder.geometry.size))
    generated = []
    for source in ("smptehdbars", "smptebars", "testsrc"):
        out = tmp_path / f"{source}.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"{source}=s=640x360:r=25:d=3",
                "-pix_fmt",
                "yuv420p",
                str(out),
            ],
            check=True,
        )
        generated.append(decode_all(out, DEFAULT_GEOMETRY))

    assert not unlike_patterns(embedder.embed(np.concatenate(generated)), patterns).any()
    assert unlike_patterns(embedder.embed(footage), patterns).all()


def test_shapes_are_checked_and_empty_input_gives_an_empty_mask() -> None:
    assert informative_frames(np.zeros((0, SIZE, SIZE, 3), np.uint8)).shape == (0,)
    with pytest.raises(ValueError, match="N, H, W, 3"):
        informative_frames(np.zeros((SIZE, SIZE, 3), np.uint8))


def test_small_frames_are_measured_without_cells() -> None:
    """Frames smaller than a cell still get statistics (their pixels are the cells)."""
    assert informative_frames(solid((0, 0, 0))[:, :3, :3]).tolist() == [False]


# ------------------------------------------------------------------------------------ fixture truth


def test_frame_labels_follow_the_plan() -> None:
    """q_unrelated_black6_then_clip09: frames 0-5 black, 6 at the cut, then footage."""
    infos = {name: fixtures.ClipInfo(30.0, 640, 360) for name in fixtures.REFERENCES + fixtures.HOLDOUT}
    specs = {spec.name: spec for spec in fixtures.plan_fixtures(infos)}

    labels = frame_labels(specs["q_unrelated_black6_then_clip09.mp4"], 12)
    assert labels.tolist() == [BLANK] * 6 + [AMBIGUOUS] + [INFORMATIVE] * 5

    faded = frame_labels(specs["q_clip14_fades.mp4"], 30)  # fades over 0-1 s and 9-10 s of the edit
    assert faded[:2].tolist() == [AMBIGUOUS] * 2 and faded[2] == INFORMATIVE
    assert fade_windows("fade=t=in:d=1,fade=t=out:st=9:d=1", 10) == [(0.0, 1.0), (9.0, 10.0)]
    assert fade_windows("fade=t=out:d=2", 10) == [(8.0, 10.0)]


@needs_clips
@pytest.mark.slow
def test_mask_is_accurate_on_the_quick_fixtures(quick_fixtures: Path) -> None:
    """Every black or card frame of the quick benchmark is dropped, and at least 99 % of the footage kept."""
    results = collect(quick_fixtures, quick=True)
    labels = np.concatenate([labels for labels, _, _ in results.values()])
    kept = np.concatenate([mask for _, mask, _ in results.values()])

    assert (labels == BLANK).sum() >= 30
    assert not kept[labels == BLANK].any()
    assert kept[labels == INFORMATIVE].mean() >= 0.99
