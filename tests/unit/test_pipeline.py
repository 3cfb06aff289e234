"""The query pipeline over arrays: batched search, selection, localisation, views of frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workers.decode import decode_all
from workers.embed import create_embedder
from workers.localise import TemporalNetwork, TNParams, similarity
from workers.matching import match_query
from workers.signals.frames import embed_video
from workers.stores.memory import MemoryLibrary
from workers.types import FrameGeometry, QueryParams


def unit(n: int, seed: int, dim: int = 512) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_an_excerpt_is_found_with_one_batched_search() -> None:
    references = {"a": unit(40, 1), "b": unit(30, 2), "c": unit(25, 3)}
    library = MemoryLibrary(references)
    query = np.concatenate([unit(5, 9), references["b"][10:22], unit(4, 10)])  # b's 10-21 at query second 5
    matches = match_query(query, fps=1.0, search=library.search, load_references=library.load,
                          localiser=TemporalNetwork(TNParams(device="cpu")),
                          params=QueryParams(top_k=2, min_score=0.35))
    assert library.searches == 1
    [match] = matches
    assert match.video_id == "b"
    [segment] = match.segments
    assert (segment.query_start, segment.query_end, segment.ref_start, segment.ref_end) == (5, 17, 10, 22)


def test_views_find_a_copy_that_only_a_tile_shows() -> None:
    """Whole frames unrelated, one tile view carrying the reference: only the views see the copy."""
    references = {"a": unit(30, 1), "b": unit(30, 2)}
    whole = unit(20, 7)
    tiles = np.stack([unit(20, 8), references["a"][5:25], unit(20, 9), unit(20, 11)])
    library = MemoryLibrary(references)
    kwargs = {"fps": 1.0, "search": library.search, "load_references": library.load,
              "params": QueryParams(min_score=0.35), "localiser": TemporalNetwork(TNParams(device="cpu"))}
    assert match_query(whole, **kwargs) == []
    views = np.concatenate([whole[None], tiles])
    [match] = match_query(views, **kwargs)
    assert match.video_id == "a" and match.segments[0].ref_start == 5


def test_videos_that_may_not_be_reported_never_take_a_candidate_slot() -> None:
    """Orphaned, failed or re-indexing videos are dropped before the cut to top_k, not after."""
    copy = unit(20, 5)
    references = {"gone-1": copy.copy(), "gone-2": copy.copy(), "kept": copy.copy()}
    library = MemoryLibrary(references)
    params = QueryParams(top_k=1, min_score=0.35)
    kwargs = {"fps": 1.0, "search": library.search, "load_references": library.load, "params": params,
              "localiser": TemporalNetwork(TNParams(device="cpu"))}
    [first] = match_query(copy, **kwargs)
    assert first.video_id == "gone-1"  # ties broken by id: without the check the orphan takes the only slot
    [match] = match_query(copy, searchable=lambda ids: {"kept"} & set(ids), **kwargs)
    assert match.video_id == "kept"


def test_a_query_with_tiles_starts_ffmpeg_once(clips_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole frames and the 2x2 tiles come from one decoder process (counted as ffmpeg starts)."""
    import subprocess

    import workers.decode

    started: list[list[str]] = []
    real_popen = subprocess.Popen

    def counting_popen(cmd, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - Popen's own signature
        started.append(cmd)
        return real_popen(cmd, *args, **kwargs)

    monkeypatch.setattr(workers.decode.subprocess, "Popen", counting_popen)
    embedder = create_embedder("sscd_distilled", device="cpu")
    embedded = embed_video(clips_dir / "clip17_earth.webm", embedder, crop_grid=2)
    assert embedded.views.shape == (5, 5, 512)
    assert len([cmd for cmd in started if cmd[0] == "ffmpeg"]) == 1


def test_similarity_of_views_is_the_best_view() -> None:
    views = np.stack([unit(6, 1), unit(6, 2), unit(6, 3)])
    reference = unit(9, 4)
    expected = np.max(np.einsum("vtd,rd->vtr", views, reference), axis=0)
    np.testing.assert_allclose(similarity(views, reference, "cpu"), expected, atol=1e-6)
    np.testing.assert_allclose(similarity(views[0], reference, "cpu"), views[0] @ reference.T, atol=1e-6)


def test_crop_tiles_are_embedded_per_quadrant(clips_dir: Path, tmp_path: Path) -> None:
    """A 2x2 mosaic of four clips: each tile's descriptor is closest to its own clip's frames."""
    import subprocess

    names = ["clip01_chaplin.mp4", "clip04_cockatoo.mp4", "clip12_armwrestle.mp4", "clip16_highway.mp4"]
    mosaic = tmp_path / "mosaic.mp4"
    inputs = [arg for name in names for arg in ("-t", "6", "-i", str(clips_dir / name))]
    graph = ";".join(f"[{i}:v:0]fps=25,scale=320:240,setsar=1[v{i}]" for i in range(4))
    graph += ";[v0][v1][v2][v3]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0[out]"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
                    "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", str(mosaic)], check=True)
    embedder = create_embedder("sscd_distilled", device="cpu")
    tiles = embed_video(mosaic, embedder, crop_grid=2).crops
    assert tiles.shape == (4, 6, 512) and tiles.dtype == np.float32
    originals = [embedder.embed(decode_all(clips_dir / name, FrameGeometry(224))[:6]) for name in names]
    for tile_index, tile in enumerate(tiles):
        scores = [float(np.mean(np.sum(tile * original, axis=1))) for original in originals]
        assert int(np.argmax(scores)) == tile_index, scores
        assert max(scores) > 0.5


@pytest.mark.parametrize("grid", [1, 3])
def test_crop_grid_sizes(clips_dir: Path, grid: int) -> None:
    embedder = create_embedder("sscd_distilled", device="cpu")
    embedded = embed_video(clips_dir / "clip17_earth.webm", embedder, crop_grid=grid)
    views = embedded.views
    assert views.shape == ((1 + grid * grid) if grid > 1 else 5, *((5, 512) if grid > 1 else (512,)))
    whole = embed_video(clips_dir / "clip17_earth.webm", embedder).features
    np.testing.assert_array_equal(embedded.features, whole)  # tiles never change the whole-frame descriptors
