"""Frame embedders: one interface (``base.FrameEmbedder``), one file per backend, one registry below."""

from __future__ import annotations

from pathlib import Path

from workers.embed.base import FrameEmbedder, l2_normalise
from workers.errors import ConfigError
from workers.types import FrameGeometry

ONNX_MODELS = ("sscd_distilled", "sscd")
# A 224 px squash was as accurate as short side 288 + crop for SSCD, and 3-5x cheaper (shared/specs).
DEFAULT_GEOMETRY = FrameGeometry(224, "squash")


def create_embedder(model: str, *, model_path: str = "", model_name: str = "", arch: str = "",
                    dim: int = 0, input_size: int = 0, resize: str = "", batch_size: int = 32,
                    device: str = "auto", threads: int = 0) -> FrameEmbedder:
    """The embedder called ``model``: ``sscd_distilled``/``sscd`` (ONNX) or ``torch`` (a checkpoint path)."""
    geometry = FrameGeometry(input_size or DEFAULT_GEOMETRY.size, resize or DEFAULT_GEOMETRY.resize)  # type: ignore[arg-type]
    match model:
        case "sscd_distilled" | "sscd":
            from workers.embed.onnx import OnnxSSCD

            return OnnxSSCD(model, geometry, batch_size=batch_size, device=device, threads=threads)
        case "torch":
            from workers.embed.torchscript import TorchEmbedder

            if not model_path:
                raise ConfigError("COPYCAT_EMBED__MODEL=torch needs COPYCAT_EMBED__MODEL_PATH")
            path = Path(model_path)
            if arch:  # ISC: 512 px squash, inputs scaled to [-1, 1], 256-d output
                geometry = FrameGeometry(input_size or 512, resize or "squash")  # type: ignore[arg-type]
                return TorchEmbedder(model_name or path.stem, path, dim or 256, geometry, arch=arch,
                                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), batch_size=batch_size,
                                     device=device)
            if not dim:
                raise ConfigError("a TorchScript model needs its output size: set COPYCAT_EMBED__DIM")
            return TorchEmbedder(model_name or path.stem, path, dim, geometry, batch_size=batch_size,
                                 device=device)
        case _:
            raise ConfigError(f"unknown embedding model {model!r}; choose one of {', '.join(ONNX_MODELS)} or torch")


__all__ = ["FrameEmbedder", "create_embedder", "l2_normalise", "DEFAULT_GEOMETRY"]
