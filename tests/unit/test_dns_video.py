"""DnS per video: the re-rank budget and scores (spec §7), fine-index packing, dedup groups, and the
representation of real clip frames with random weights (shapes only: random scores mean nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workers.decode import decode_all
from workers.dns.dedup import duplicate_groups
from workers.dns.representation import DNS_GEOMETRY, FINE_FLOAT, FINE_PACKED, pack_fine, required_files, unpack_fine
from workers.dns.video import RankedVideo, load_dns_models, rerank, rerank_budget


class FineScores:
    """A fine-similarity function from a dict that records which videos it was asked about."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores, self.calls = scores, []

    def __call__(self, video_id: str) -> float:
        self.calls.append(video_id)
        return self.scores[video_id]


# ---- rerank -------------------------------------------------------------------------------------------------


def test_rerank_rescores_the_most_uncertain_half():
    """4 candidates at 50 %: the two highest selector probabilities (b, d) get fine scores mapped to [0, 1]."""
    fine = FineScores({"b": -1.0, "d": 0.8})
    ranked = rerank(["a", "b", "c", "d"], [0.9, 0.8, 0.7, 0.6], [0.1, 0.9, 0.5, 0.8], fine, 0.5)
    assert sorted(fine.calls) == ["b", "d"]
    assert ranked == [RankedVideo("a", 0.9, False), RankedVideo("d", pytest.approx(0.9), True),
                      RankedVideo("c", pytest.approx(0.7), False), RankedVideo("b", 0.0, True)]


def test_rerank_at_zero_percent_is_the_coarse_ranking():
    fine = FineScores({})
    ranked = rerank(["a", "b", "c"], [0.2, 0.9, 0.5], [0.9, 0.9, 0.9], fine, 0.0)
    assert fine.calls == []
    assert [(r.video_id, r.reranked) for r in ranked] == [("b", False), ("c", False), ("a", False)]


def test_rerank_at_full_budget_uses_only_fine_scores():
    fine = FineScores({"a": 0.0, "b": -0.5, "c": 1.0})
    ranked = rerank(["a", "b", "c"], [0.99, 0.98, 0.0], [0.1, 0.2, 0.3], fine, 1.0)
    assert [(r.video_id, r.score) for r in ranked] == [("c", 1.0), ("a", 0.5), ("b", 0.25)]
    assert all(r.reranked for r in ranked)


def test_ties_in_probability_go_to_the_earlier_candidate_and_ties_in_score_to_the_smaller_id():
    fine = FineScores({"x": 0.0, "y": 0.0})
    ranked = rerank(["y", "x"], [0.5, 0.5], [0.7, 0.7], fine, 0.5)
    assert fine.calls == ["y"]
    assert [r.video_id for r in ranked] == ["x", "y"]  # both 0.5


def test_videos_without_selector_statistic_count_but_are_never_rescored():
    """NaN probability = no DnS row for the configured student; N still counts it (budget 2 of 4)."""
    fine = FineScores({"b": 0.0, "d": 0.0})
    rerank(["a", "b", "c", "d"], [0.1, 0.2, 0.3, 0.4], [np.nan, 0.2, np.nan, 0.1], fine, 0.5)
    assert sorted(fine.calls) == ["b", "d"]


@pytest.mark.parametrize(("n", "percentage", "budget"),
                         [(100, 0.29, 29), (100, 0.57, 57), (3, 0.25, 0), (4, 0.25, 1), (7, 1.0, 7), (0, 0.5, 0)])
def test_budget_is_the_floor_of_percentage_times_candidates(n, percentage, budget):
    assert rerank_budget(n, percentage) == budget


@pytest.mark.parametrize(
    ("candidates", "coarse", "probabilities", "percentage", "message"),
    [(["a", "b"], [0.1], [0.1, 0.2], 0.5, "candidates"), (["a"], [0.1], [0.1], 1.5, "within"),
     (["a", "a"], [0.1, 0.2], [0.1, 0.2], 0.5, "unique")],
)
def test_rerank_rejects_inconsistent_input(candidates, coarse, probabilities, percentage, message):
    with pytest.raises(ValueError, match=message):
        rerank(candidates, coarse, probabilities, FineScores({}), percentage)


# ---- fine index storage ---------------------------------------------------------------------------------------


def test_binary_codes_pack_to_64_bytes_per_region_and_back():
    codes = np.where(np.random.default_rng(0).normal(size=(5, 9, 512)) > 0, 1.0, -1.0).astype(np.float32)
    stored, dtype = pack_fine(codes, "fg_bin_student")
    assert dtype == FINE_PACKED and stored.dtype == np.uint8 and stored.shape == (5, 9, 64)
    np.testing.assert_array_equal(unpack_fine(stored, dtype), codes)


def test_a_zero_code_is_stored_as_plus_one():
    codes = -np.ones((1, 1, 512), np.float32)
    codes[0, 0, 3] = 0.0
    restored = unpack_fine(*pack_fine(codes, "fg_bin_student"))
    assert restored[0, 0, 3] == 1.0 and (restored[0, 0, 4:] == -1.0).all()


def test_attention_features_are_stored_as_float32():
    fine = np.random.default_rng(1).normal(size=(2, 9, 512))
    stored, dtype = pack_fine(fine, "fg_att_student")
    assert dtype == FINE_FLOAT and stored.dtype == np.float32
    np.testing.assert_array_equal(unpack_fine(stored, dtype), fine.astype(np.float32))
    with pytest.raises(ValueError, match="fine_dtype"):
        unpack_fine(stored, "float16")


def test_required_files_follow_the_student():
    assert [f.name for f in required_files("fg_bin_student")][2:] == [
        "dns_cg_student.pth", "dns_fg_bin_student.pth", "dns_selector_cg-fg_bin.pth"]
    with pytest.raises(ValueError, match="student"):
        required_files("cg_student")


# ---- dedup ----------------------------------------------------------------------------------------------------


def unit(*rows: list[float]) -> np.ndarray:
    x = np.asarray(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_dedup_links_videos_above_the_threshold():
    """a and b point almost the same way; c and d are orthogonal to everything."""
    vectors = unit([1, 0, 0], [0.99, 0.14, 0], [0, 1, 0], [0, 0, 1])
    [group] = duplicate_groups(["a", "b", "c", "d"], vectors, 0.95)
    assert group.video_ids == ("a", "b")
    assert group.min_similarity == group.max_similarity == pytest.approx(0.9901, abs=1e-3)


def test_dedup_groups_are_transitive_and_blockwise_results_are_the_same():
    """x~y and y~z (cos 0.96) put x, y, z together although x and z are only at cos 0.84."""
    angles = np.deg2rad([0.0, 16.0, 32.0, 90.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for block in (1, 2, 100):
        [group] = duplicate_groups(["x", "y", "z", "w"], vectors, 0.95, block=block)
        assert group.video_ids == ("x", "y", "z")
        assert group.min_similarity == pytest.approx(np.cos(np.deg2rad(32)), abs=1e-5)


def test_dedup_without_duplicates_and_bad_shapes():
    assert duplicate_groups(["a", "b"], unit([1, 0], [0, 1]), 0.5) == []
    with pytest.raises(ValueError, match="vectors"):
        duplicate_groups(["a"], unit([1, 0], [0, 1]), 0.5)


# ---- representation of real frames (random weights) ---------------------------------------------------------------

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def flower_frames(clips_dir: Path) -> np.ndarray:
    """clip08_flower.webm (5 s, 960x540) at 1 fps, shorter side 256 and centre crop 224, as the reference."""
    return decode_all(clips_dir / "clip08_flower.webm", DNS_GEOMETRY)


@pytest.fixture(scope="module")
def models_by_student(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("no-weights"))
    torch.manual_seed(0)
    return {student: load_dns_models(folder, student, allow_random=True, device="cpu", batch_size=2)
            for student in ("fg_att_student", "fg_bin_student")}


@pytest.fixture
def random_models(models_by_student):
    return models_by_student["fg_att_student"]


def test_reference_geometry(flower_frames):
    assert flower_frames.shape == (5, 224, 224, 3) and flower_frames.dtype == np.uint8


@slow
@pytest.mark.parametrize("student", ["fg_att_student", "fg_bin_student"])
def test_representation_shapes(models_by_student, student, flower_frames):
    random_models = models_by_student[student]
    rep = random_models.represent([flower_frames[:3], flower_frames[3:]])
    assert rep.frames == 5
    assert rep.coarse.shape == (1024,) and rep.coarse.dtype == np.float32
    assert np.linalg.norm(rep.coarse) == pytest.approx(1.0, abs=1e-5)
    assert rep.fine.shape == (5, 9, 512) and rep.fine.dtype == np.float32
    assert np.isfinite(rep.selector_stat)
    if student == "fg_bin_student":
        assert set(np.unique(rep.fine)) <= {-1.0, 1.0}
        assert pack_fine(rep.fine, "fg_bin_student")[0].shape == (5, 9, 64)


@slow
def test_features_do_not_depend_on_chunking(random_models, flower_frames):
    whole = random_models.features([flower_frames[:3]])
    assert whole.shape == (3, 9, 512)
    torch.testing.assert_close(random_models.features(iter(flower_frames[i : i + 1] for i in range(3))), whole,
                               atol=1e-5, rtol=1e-4)


@slow
def test_short_videos_are_repeated_for_coarse_and_selector_but_stored_as_they_are(random_models, flower_frames):
    """Two frames: the coarse student and selector see them repeated to 4 (spec §1.3), the fine index keeps 2."""
    two = random_models.features([flower_frames[:2]])
    rep = random_models.represent_features(two)
    assert rep.frames == 2 and rep.fine.shape == (2, 9, 512)
    repeated = random_models.represent_features(torch.cat([two, two]))
    np.testing.assert_allclose(rep.coarse, repeated.coarse, atol=1e-5)
    assert rep.selector_stat == pytest.approx(repeated.selector_stat, abs=1e-5)
    similarity = random_models.fine_similarity(rep.fine, repeated.fine)
    assert -1.0 <= similarity <= 1.0


def test_selector_probabilities_and_empty_input(random_models):
    probs = random_models.selector_probability(0.1, np.array([0.1, 0.2], np.float32), np.array([0.9, 0.1]))
    assert probs.shape == (2,) and ((probs > 0) & (probs < 1)).all()
    assert random_models.selector_probability(0.1, np.zeros(0), np.zeros(0)).shape == (0,)
    with pytest.raises(ValueError, match="no frames"):
        random_models.features([])
