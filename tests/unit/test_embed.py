"""Embedders: the contract every backend keeps (shape, dtype, unit norm, determinism) and what it sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workers.decode import decode_all
from workers.embed import create_embedder
from workers.embed.onnx import choose_providers
from workers.errors import ConfigError, WeightsMissing
from workers.types import FrameGeometry


class TinyDescriptor(torch.nn.Module):
    """A real (if small) TorchScript image descriptor: conv -> global pool -> linear."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 5, stride=4)
        self.fc = torch.nn.Linear(16, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def torchscript_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.torchscript.pt"
    torch.jit.script(TinyDescriptor().eval()).save(str(path))
    return path


@pytest.fixture(scope="module", params=["sscd_distilled", "sscd", "torch"])
def embedder(request: pytest.FixtureRequest, torchscript_path: Path):  # noqa: ANN201
    if request.param == "torch":
        return create_embedder("torch", model_path=str(torchscript_path), dim=24, device="cpu")
    return create_embedder(request.param, device="cpu")


@pytest.fixture(scope="module")
def frames(clips_dir: Path) -> dict[str, np.ndarray]:
    geometry = FrameGeometry(224)
    return {name: decode_all(clips_dir / name, geometry)
            for name in ("clip01_chaplin.mp4", "clip04_cockatoo.mp4", "clip16_highway.mp4")}


def test_contract_shape_dtype_norm(embedder, frames: dict[str, np.ndarray]) -> None:  # noqa: ANN001
    batch = frames["clip01_chaplin.mp4"][:5]
    out = embedder.embed(batch)
    assert out.shape == (5, embedder.dim)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_contract_deterministic_and_batch_independent(embedder, frames: dict[str, np.ndarray]) -> None:  # noqa: ANN001
    batch = frames["clip04_cockatoo.mp4"][:6]
    whole = embedder.embed(batch)
    np.testing.assert_array_equal(whole, embedder.embed(batch))
    one_by_one = np.concatenate([embedder.embed(batch[i : i + 1]) for i in range(6)])
    np.testing.assert_allclose(whole, one_by_one, atol=1e-4)


def test_contract_empty_batch_and_bad_input(embedder) -> None:  # noqa: ANN001
    assert embedder.embed(np.zeros((0, 224, 224, 3), np.uint8)).shape == (0, embedder.dim)
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed(np.zeros((2, 224, 224, 3), np.float32))


@pytest.mark.parametrize("model", ["sscd_distilled", "sscd"])
def test_sscd_sees_copies_and_tells_clips_apart(model: str, frames: dict[str, np.ndarray]) -> None:
    embedder = create_embedder(model, device="cpu")
    a = embedder.embed(frames["clip01_chaplin.mp4"])
    same = embedder.embed(frames["clip01_chaplin.mp4"].copy())
    np.testing.assert_allclose(np.sum(a * same, axis=1), 1.0, atol=1e-4)
    # A brightened, noisy copy of the same frames still matches far better than other footage.
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 8, a.shape[:1] + (224, 224, 3))
    edited = np.clip(frames["clip01_chaplin.mp4"].astype(np.int16) * 1.2 + noise, 0, 255).astype(np.uint8)
    copy_sim = np.sum(a * embedder.embed(edited), axis=1)
    others = np.concatenate([embedder.embed(frames["clip04_cockatoo.mp4"]),
                             embedder.embed(frames["clip16_highway.mp4"])])
    unrelated = a @ others.T
    assert copy_sim.min() > 0.5
    assert unrelated.max() < 0.35
    assert copy_sim.mean() - unrelated.mean() > 0.5


@pytest.mark.parametrize(("device", "available", "chosen"), [
    ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    ("auto", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ("cuda:1", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
     ["CUDAExecutionProvider", "CPUExecutionProvider"]),
])
def test_cuda_is_chosen_when_onnxruntime_offers_it(device: str, available: list[str], chosen: list[str]) -> None:
    assert choose_providers(device, available) == chosen


def test_cuda_requested_without_gpu_build_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        choose_providers("cuda", ["CPUExecutionProvider"])


def test_registry_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown embedding model"):
        create_embedder("clip")
    with pytest.raises(ConfigError, match="MODEL_PATH"):
        create_embedder("torch")
    missing = create_embedder("torch", model_path=str(tmp_path / "nope.pt"), dim=8)
    with pytest.raises(WeightsMissing, match="nope.pt"):
        missing.embed(np.zeros((1, 224, 224, 3), np.uint8))
