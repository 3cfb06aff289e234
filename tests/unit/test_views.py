"""Extra query views (workers/views.py) and their place in embed_video's one decode."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from workers.views import border_box, halves, mirrored, sharp_box, unbordered


def _picture(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Textured frames uint8 [n, height, width, 3] with no border of their own."""
    rng = np.random.default_rng(seed)
    return rng.integers(30, 225, size=(n, height, width, 3), dtype=np.uint8)


def test_mirror_flips_left_to_right() -> None:
    frames = _picture(2, 8, 6)
    out = mirrored(frames)
    assert out.flags["C_CONTIGUOUS"] and np.array_equal(out[:, :, 0], frames[:, :, -1])


def test_halves_are_squashed_squares_of_each_side() -> None:
    frames = np.zeros((1, 8, 8, 3), np.uint8)
    frames[:, :, :4, 0] = 100  # left half, red channel
    frames[:, :4, :, 1] = 50  # top half, green channel
    left, right, top, bottom = halves(frames, 4)
    assert all(h.shape == (1, 4, 4, 3) for h in (left, right, top, bottom))
    assert (left[..., 0] == 100).all() and (right[..., 0] == 0).all()
    assert (top[..., 1] == 50).all() and (bottom[..., 1] == 0).all()
    assert (top[:, :, :2, 0] == 100).all() and (top[:, :, 2:, 0] == 0).all()  # column pairs of one side
    with pytest.raises(ValueError, match="halves need"):
        halves(frames, 3)


@pytest.mark.parametrize(("colour", "pad"), [((0, 0, 0), (40, 40, 0, 0)), ((32, 64, 192), (20, 20, 20, 20)),
                                             ((16, 16, 16), (0, 0, 50, 50))])
def test_border_box_finds_letterbox_pillarbox_and_coloured_frames(colour: tuple[int, int, int],
                                                                  pad: tuple[int, int, int, int]) -> None:
    top, bottom, left, right = pad
    inner = _picture(3, 224 - top - bottom, 224 - left - right)
    frames = np.empty((3, 224, 224, 3), np.uint8)
    frames[:] = colour
    frames[:, top : 224 - bottom, left : 224 - right] = inner
    frames = np.clip(frames.astype(int) + np.random.default_rng(1).integers(-3, 4, frames.shape), 0, 255
                     ).astype(np.uint8)  # compression-like noise on the bars
    assert border_box(frames) == (top, 224 - bottom, left, 224 - right)
    out = unbordered(frames, border_box(frames), 112)
    assert out.shape == (3, 112, 112, 3) and out.dtype == np.uint8
    assert abs(float(out.mean()) - float(inner.mean())) < 3  # no bar left in the view


def test_no_border_on_plain_footage_or_thin_lines() -> None:
    assert border_box(_picture(4, 224, 224)) is None
    frames = _picture(4, 224, 224)
    frames[:, :2] = 0  # a 2-pixel line is compression noise, not a letterbox
    assert border_box(frames) is None
    assert border_box(np.zeros((0, 224, 224, 3), np.uint8)) is None


def test_blank_frames_are_cut_at_most_max_border() -> None:
    box = border_box(np.zeros((2, 100, 100, 3), np.uint8))
    assert box is not None and box[1] - box[0] >= 30 and box[3] - box[2] >= 30


def _fill(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Blurred-fill-like frames uint8 [n, height, width, 3]: broad shading (slow waves of 30-40 grey levels)
    with no fine detail."""
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=(n, 1, 1, 3))
    y, x = np.mgrid[0:height, 0:width][..., None]
    return np.round(110 + 40 * np.sin(2 * np.pi * x / 150 + phase) + 30 * np.cos(2 * np.pi * y / 90 + phase)
                    ).astype(np.uint8)


@pytest.mark.parametrize(("pad", "box"), [((70, 70, 0, 0), (70, 154, 0, 224)),  # a 9:16 re-upload's band
                                          ((0, 0, 60, 60), (0, 224, 60, 164)),  # a portrait clip, blurred sides
                                          ((30, 30, 40, 40), (30, 194, 40, 184)),
                                          ((40, 74, 0, 0), (40, 184, 0, 224))])  # off centre: the thinner fill
def test_sharp_box_finds_the_picture_inside_a_blurred_fill(pad: tuple[int, int, int, int],
                                                           box: tuple[int, int, int, int]) -> None:
    top, bottom, left, right = pad
    frames = _fill(3, 224, 224)
    frames[:, top : 224 - bottom, left : 224 - right] = _picture(3, 224 - top - bottom, 224 - left - right)
    assert sharp_box(frames) == box
    out = unbordered(frames, box, 112)
    assert out.shape == (3, 112, 112, 3) and out.dtype == np.uint8


def test_no_fill_on_plain_footage_borders_blank_frames_or_one_soft_end() -> None:
    assert sharp_box(_picture(4, 224, 224)) is None
    assert sharp_box(np.zeros((0, 224, 224, 3), np.uint8)) is None
    assert sharp_box(np.full((2, 224, 224, 3), 128, np.uint8)) is None  # no picture: no detail anywhere
    assert sharp_box(_fill(2, 224, 224)) is None  # all blurred: no sharp picture either
    letterbox = np.zeros((2, 224, 224, 3), np.uint8)
    letterbox[:, 60:164] = _picture(2, 104, 224)
    assert sharp_box(letterbox) is None and border_box(letterbox) is not None  # a flat fill is a border
    sky = _picture(2, 224, 224)
    sky[:, :80] = _fill(2, 80, 224)  # a soft sky above a sharp street: one soft end, not a centred picture
    assert sharp_box(sky) is None


def test_a_shot_fading_out_softly_at_both_ends_has_no_fill() -> None:
    """A vignette or shallow focus: detail fades towards the top and bottom with no edge where a fill would
    meet the picture (vertical stripes, so lines differ only by the fade)."""
    stripes = np.random.default_rng(2).integers(30, 225, size=(1, 1, 224, 1)).astype(np.float64)
    fade = np.clip(np.abs(np.arange(224) - 111.5) * -1 / 45 + 111.5 / 45 - 0.2, 0, 1)[None, :, None, None]
    frames = np.clip(_fill(2, 224, 224) + (stripes - 128) * fade, 0, 255).astype(np.uint8)
    assert sharp_box(frames) is None


def test_a_plain_sky_in_the_picture_stays_in_the_view() -> None:
    """The picture's own top rows are plain (sky): the fill is cut as a pair, as thick as the bottom one."""
    frames = _fill(2, 224, 224)
    frames[:, 70:154] = _picture(2, 84, 224)
    frames[:, 70:90] = 200  # the picture's sky, no detail
    assert sharp_box(frames) == (70, 154, 0, 224)


def test_embed_video_stacks_extra_views_in_one_decode(clips_dir: Path, tmp_path: Path) -> None:
    """Whole frame, 4 tiles, flip, 4 halves and the unbordered picture from one ffmpeg; a letterboxed video
    gets a non-zero unborder view whose descriptor is closer to the bare footage than the whole frame's."""
    from workers.embed import create_embedder
    from workers.signals.frames import embed_video

    bare, boxed = tmp_path / "bare.mp4", tmp_path / "boxed.mp4"
    source = ["-t", "4", "-i", str(clips_dir / "clip05_bikes.mp4"), "-an", "-pix_fmt", "yuv420p"]
    subprocess.run(["ffmpeg", "-v", "error", *source, "-vf", "scale=320:180", str(bare)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", *source, "-vf", "scale=320:180,pad=320:320:0:70:black", str(boxed)],
                   check=True)
    embedder = create_embedder("sscd_distilled", device="cpu")
    plain = embed_video(bare, embedder, crop_grid=2)
    video = embed_video(boxed, embedder, crop_grid=2, extra_views=("flip", "halves", "unborder", "unfill"))
    assert video.views.shape == (12, 4, embedder.dim)
    assert not np.any(video.views[11])  # a black letterbox is unborder's, not a blurred fill
    reference = plain.features
    unborder = video.views[10]
    assert np.any(unborder != 0, axis=1).all()
    assert np.mean(np.sum(unborder * reference, 1)) > np.mean(np.sum(video.features * reference, 1)) + 0.1
    bare_views = embed_video(bare, embedder, crop_grid=2, extra_views=("unborder",)).views
    assert bare_views.shape == (6, 4, embedder.dim) and not np.any(bare_views[5])  # no border: zero view


def test_unfill_view_of_a_vertical_reupload_resembles_the_footage(clips_dir: Path, tmp_path: Path) -> None:
    """A 9:16 re-upload over a blurred copy of itself (as ``bench.fixtures``' ``vertical`` builds it) gets a
    non-zero unfill view closer to the bare footage than the whole frame; the bare footage gets none."""
    from workers.embed import create_embedder
    from workers.signals.frames import embed_video

    bare, vertical = tmp_path / "bare.mp4", tmp_path / "vertical.mp4"
    source = ["-t", "4", "-i", str(clips_dir / "clip05_bikes.mp4"), "-an", "-pix_fmt", "yuv420p"]
    subprocess.run(["ffmpeg", "-v", "error", *source, "-vf", "scale=320:180", str(bare)], check=True)
    graph = ("split[a][b];[a]scale=360:640:force_original_aspect_ratio=increase,crop=360:640,boxblur=20:2,"
             "eq=brightness=-0.08[bg];[b]scale=360:-2,setsar=1[fg];[bg][fg]overlay=x=(W-w)/2:y=(H-h)/2")
    subprocess.run(["ffmpeg", "-v", "error", *source, "-filter_complex", graph, str(vertical)], check=True)
    embedder = create_embedder("sscd_distilled", device="cpu")
    reference = embed_video(bare, embedder).features
    video = embed_video(vertical, embedder, crop_grid=2, extra_views=("unborder", "unfill"))
    assert video.views.shape == (7, 4, embedder.dim)
    unfill = video.views[6]
    assert np.any(unfill != 0, axis=1).all() and not np.any(video.views[5])  # no flat border to unborder
    assert np.mean(np.sum(unfill * reference, 1)) > np.mean(np.sum(video.features * reference, 1)) + 0.2
    bare_views = embed_video(bare, embedder, crop_grid=2, extra_views=("unfill",)).views
    assert bare_views.shape == (6, 4, embedder.dim) and not np.any(bare_views[5])
