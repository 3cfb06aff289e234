"""Models loaded from a checkpoint path with torch: TorchScript files or state dicts.

- A TorchScript file (e.g. SSCD's ``sscd_disc_mixup.torchscript.pt``) is used as it is: it maps a float
  image batch ``[B, 3, H, W]`` (normalised with ``mean``/``std``) to ``[B, D]``.
- A state dict (e.g. ISC's ``isc_ft_v107.pth.tar``) is loaded into ``ISCNet``: a timm backbone named by
  ``arch``, GeM pooling, a linear layer without bias and BatchNorm1d, as in the ISC 2021 winning entry.
  This needs the optional ``timm`` dependency (``pip install copycat[isc]``); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.device import resolve_device
from workers.embed.base import FrameEmbedder
from workers.errors import ConfigError, WeightsMissing
from workers.types import FrameGeometry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchEmbedder(FrameEmbedder):
    """A torch module from ``path``; preprocessing is ``(x / 255 - mean) / std`` on [B, 3, H, W]."""

    def __init__(self, name: str, path: Path, dim: int, geometry: FrameGeometry, *, arch: str = "",
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 batch_size: int = 32, device: str = "auto") -> None:
        super().__init__(name, dim, geometry, batch_size)
        self.path = path
        self.arch = arch
        self.mean, self.std = mean, std
        self._device = str(resolve_device(device))
        self._module = None

    @property
    def device(self) -> str:
        return self._device

    def _load(self) -> None:
        import torch

        if not self.path.is_file():
            raise WeightsMissing(f"model file {self.path} not found; set COPYCAT_EMBED__MODEL_PATH to the checkpoint")
        if self.arch:
            module = build_isc(self.arch, self.dim, load_state_dict(self.path))
        else:
            try:
                module = torch.jit.load(str(self.path), map_location="cpu")
            except RuntimeError as exc:
                raise ConfigError(f"{self.path} is not a TorchScript file; for a state dict set "
                                  f"COPYCAT_EMBED__ARCH to its timm architecture ({exc})") from exc
        self._module = module.eval().to(self._device)
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(self.mean, device=self._device).view(shape)
        self._std = torch.tensor(self.std, device=self._device).view(shape)

    def _embed_batch(self, frames: np.ndarray) -> np.ndarray:
        import torch

        assert self._module is not None
        with torch.inference_mode():
            x = torch.from_numpy(frames).to(self._device).permute(0, 3, 1, 2).float().div_(255)
            return self._module((x - self._mean) / self._std).float().cpu().numpy()


def load_state_dict(path: Path) -> dict:
    """A checkpoint's weights, unwrapped from ``state_dict``/``model`` containers and DataParallel prefixes."""
    import torch

    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
    return {k.removeprefix("module."): v for k, v in ckpt.items()}


def build_isc(arch: str, dim: int, state_dict: dict):
    """ISCNet: timm backbone -> GeM (p=1 at eval) -> Linear(no bias) -> BatchNorm1d; loaded strictly."""
    try:
        import timm
    except ImportError as exc:
        raise ConfigError("state-dict models need timm: pip install 'copycat[isc]'") from exc
    import torch
    from torch import nn

    class ISCNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = timm.create_model(arch, features_only=True, pretrained=False, out_indices=[4])
            self.fc = nn.Linear(self.backbone.feature_info.info[-1]["num_chs"], dim, bias=False)
            self.bn = nn.BatchNorm1d(dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """[B, 3, H, W] -> [B, dim]."""
            feats = self.backbone(x)[-1]
            pooled = feats.clamp(min=1e-6).mean(dim=(-2, -1))
            return self.bn(self.fc(pooled))

    model = ISCNet()
    model.load_state_dict(state_dict, strict=True)
    return model
