"""distill_and_select callables and the pairwise helpers, with random weights on small synthetic videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workers.device import resolve_device
from workers.dns import api
from workers.dns.api import coarse_similarity, distill_and_select, fine_similarity, preprocess_frames, selector_score
from workers.dns.layers import repeat_to_min_length


def random_op(name: str, **kwargs) -> api.DistillAndSelect:
    return distill_and_select(
        name, feature_extractor=kwargs.pop("feature_extractor", None), allow_random=True, **kwargs
    )


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Three 120x160 RGB frames: a short, small clip (upscaled to 256 and cropped to 224)."""
    return np.random.default_rng(0).integers(0, 256, size=(3, 120, 160, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def extractor() -> api.DistillAndSelect:
    torch.manual_seed(0)
    return distill_and_select("feature_extractor", allow_random=True, device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def features(extractor, frames) -> np.ndarray:
    return extractor(frames)


def unit_features(frames: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(frames, 9, 512)).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_extractor_output(features):
    assert features.shape == (3, 9, 512) and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=-1), 1.0, atol=1e-5)


def test_extractor_is_deterministic(extractor, frames, features):
    """Frames 0-1 again, as the same batch of two: bit-identical."""
    np.testing.assert_array_equal(extractor(frames[:2]), features[:2])


def test_extractor_does_not_depend_on_batching(extractor, frames, features):
    """Frame 1 was batched with frame 0 and frame 2 was alone; now they share a batch (streamed one by one)."""
    np.testing.assert_allclose(extractor(iter(frames[1:])), features[1:], atol=1e-5)


@pytest.mark.parametrize(
    ("name", "shape"),
    [("fg_att_student", (3, 9, 512)), ("fg_bin_student", (3, 9, 512)), ("cg_student", (1024,))],
)
def test_student_outputs(name, shape, features):
    op = random_op(name)
    out = op(features)
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_array_equal(op(features), out)
    if name == "fg_bin_student":
        assert set(np.unique(out)) <= {-1.0, 1.0}
    if name == "cg_student":
        assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["selector_att", "selector_bin"])
def test_selector_returns_scalar_statistic_even_for_short_videos(name, features):
    """Three frames are repeated to six before the comparator; the result is a finite 0-d array."""
    op = random_op(name)
    out = op(features)
    assert out.shape == () and out.dtype == np.float32 and np.isfinite(out)
    np.testing.assert_allclose(op(repeat_to_min_length(torch.from_numpy(features)).numpy()), out, atol=1e-6)


def test_student_on_frames_end_to_end(frames):
    """Default extractor in front of the student; a one-frame video keeps its T axis: (1, 9, 512)."""
    op = distill_and_select("fg_bin_student", allow_random=True, device="cpu")
    out = op(frames[:1])
    assert out.shape == (1, 9, 512) and set(np.unique(out)) <= {-1.0, 1.0}


def test_custom_extractor_receives_cropped_frames(frames):
    class MeanColour(nn.Module):
        """[N, 224, 224, 3] -> [N, 9, 512]: enough to check what the custom extractor is given."""

        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(3, 512)
            self.seen: list[tuple[int, ...]] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append(tuple(x.shape))
            return self.proj(x.mean(dim=(1, 2)))[:, None].expand(-1, 9, -1)

    custom = MeanColour()
    op = distill_and_select("fg_att_student", feature_extractor=custom, allow_random=True, device="cpu")
    assert op(frames).shape == (3, 9, 512)
    assert custom.seen == [(3, 224, 224, 3)]


def test_two_dimensional_features_are_one_region():
    assert random_op("fg_att_student")(unit_features(5)[:, 0]).shape == (5, 1, 512)


def test_fine_similarity_repeats_short_videos():
    op = random_op("fg_att_student")
    query, target = op(unit_features(2)), op(unit_features(3, seed=1))
    sim = fine_similarity(query, target, op)
    expected = op.model.calculate_video_similarity(
        repeat_to_min_length(torch.from_numpy(query)), repeat_to_min_length(torch.from_numpy(target))
    )
    assert -1 <= sim <= 1
    assert sim == pytest.approx(expected.item(), abs=1e-6)


def test_fine_similarity_averages_target_chunks(monkeypatch):
    """With 8-frame chunks, a 21-frame target scores as the mean of [0:8], [8:16], [16:21]; 18 frames skips [16:18]."""
    monkeypatch.setattr(api, "TARGET_CHUNK", 8)
    student = random_op("fg_bin_student").model
    query, target = unit_features(6), unit_features(21, seed=1)
    codes_q, codes_t = student.index_video(torch.from_numpy(query)), student.index_video(torch.from_numpy(target))

    def pair(t):
        return student.calculate_video_similarity(codes_q, t).item()

    assert fine_similarity(codes_q, codes_t, student) == pytest.approx(
        np.mean([pair(codes_t[0:8]), pair(codes_t[8:16]), pair(codes_t[16:21])]), abs=1e-6
    )
    assert fine_similarity(codes_q, codes_t[:18], student) == pytest.approx(
        np.mean([pair(codes_t[0:8]), pair(codes_t[8:16])]), abs=1e-6
    )


def test_coarse_similarity_is_dot_product():
    a, b = np.eye(4, 1024, dtype=np.float32), np.eye(3, 1024, dtype=np.float32)
    assert coarse_similarity(a[0], a[0]) == pytest.approx(1.0)
    assert coarse_similarity(a, b).shape == (4, 3)
    np.testing.assert_array_equal(coarse_similarity(a, b[0]), [1, 0, 0, 0])


def test_selector_score_uses_query_target_cg_column_order():
    op = random_op("selector_att")
    scores = selector_score(op, 0.3, np.array([0.1, 0.7]), np.array([0.5, 0.2]))
    assert scores.shape == (2,) and ((scores > 0) & (scores < 1)).all()
    with torch.no_grad():
        expected = op.model(torch.tensor([[0.3, 0.1, 0.5], [0.3, 0.7, 0.2]]))[:, 0].numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert selector_score(op.model, 0.3, 0.1, 0.5).shape == ()


def test_preprocess_resizes_shorter_side_then_centre_crops():
    rng = np.random.default_rng(2)
    assert preprocess_frames(rng.integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)).shape == (2, 224, 224, 3)
    assert preprocess_frames(rng.integers(0, 256, (1, 300, 200, 3), dtype=np.uint8), crop=256).shape == (1, 256, 256, 3)
    already_256 = rng.integers(0, 256, (1, 256, 400, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess_frames(already_256)[0].numpy(), already_256[0, 16:240, 88:312])
    grey = np.full((1, 90, 170, 3), 77, dtype=np.uint8)
    np.testing.assert_array_equal(preprocess_frames(grey).numpy(), 77.0)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown DnS model"):
        distill_and_select("visil")
    with pytest.raises(ValueError, match="feature_extractor"):
        distill_and_select("cg_student", feature_extractor="resnet", allow_random=True)
    with pytest.raises(ValueError, match="no frames"):
        api.DistillAndSelect("feature_extractor", None, nn.Identity(), torch.device("cpu"))(iter([]))


def test_device_prefers_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device().type == "cpu"
    assert resolve_device("cpu").type == "cpu"


def test_the_readme_example_of_the_library_api_runs(tmp_path) -> None:
    """``distill_and_select`` is a public interface: its example in docs/dns.md stays true (random weights here)."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "dns.md").read_text()
    found = re.search(r"^## Library API\n.*?```python\n(.*?)```", page, re.S | re.M)
    assert found is not None, "docs/dns.md lost its Library API example"
    code = found.group(1).replace('weights_dir="weights"', f'weights_dir="{tmp_path}", allow_random=True')
    scope: dict[str, object] = {}
    exec(compile(code, "docs/dns.md", "exec"), scope)  # noqa: S102 - the project's own documentation
    assert scope["features"].shape == (30, 9, 512)
    assert scope["video_vector"].shape == (1024,)
