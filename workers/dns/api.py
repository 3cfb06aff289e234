"""Towhee-style entry point for DnS models, plus the pairwise comparisons built on their outputs.

``distill_and_select(name)`` returns a callable: frames (or region features) in, numpy out. Frames are
preprocessed like the reference ViSiL/DnS loader (shorter side to 256 with bicubic, centre crop 224), not like
towhee (crop 256): the released students were trained and evaluated on features of 224 crops.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workers.device import resolve_device
from workers.dns.layers import MIN_FRAMES, repeat_to_min_length
from workers.dns.selector import SelectorNetwork
from workers.dns.students import FineGrainedStudent
from workers.dns.weights import load_feature_extractor, load_model

MODEL_NAMES = ("feature_extractor", "fg_att_student", "fg_bin_student", "cg_student", "selector_att", "selector_bin")
TARGET_CHUNK = 2048
"""The reference evaluation scores long targets in chunks of this many frames and averages (spec §4.4)."""

Frames = np.ndarray | torch.Tensor | Iterable[np.ndarray]
"""RGB frames [T, H, W, 3], uint8 or float 0..255: one array, or any iterable of [H, W, 3] arrays."""


def preprocess_frames(frames: Frames, resize: int = 256, crop: int = 224) -> torch.Tensor:
    """RGB frames [N, H, W, 3] (uint8, or float in 0..255) -> float [N, crop, crop, 3] in 0..255.

    Each frame is scaled so its shorter side is ``resize`` (bicubic, a = -0.75, no antialias: the same
    kernel as the reference's ``cv2.INTER_CUBIC``), rounded to 0..255 like cv2's uint8 output, and
    centre-cropped. Frames are resized one at a time so a batch of 4K frames never sits in memory as float.
    """
    out = []
    for frame in frames:
        x = torch.as_tensor(np.asarray(frame)).permute(2, 0, 1).unsqueeze(0).float()
        x = _resize_like_cv2(x, resize / min(x.shape[-2:])).round_().clamp_(0, 255)
        top, left = max(0, (x.shape[-2] - crop) // 2), max(0, (x.shape[-1] - crop) // 2)
        out.append(x[0, :, top : top + crop, left : left + crop].permute(1, 2, 0))
    return torch.stack(out)


def _resize_like_cv2(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bicubic resize of [1, C, H, W] by ``scale`` on both axes, sampling where ``cv2.resize(fx=fy=scale)`` does.

    cv2 rounds the output size but maps pixels with the exact ``scale``; ``F.interpolate`` can only do that
    with a floored size, so pad (replicate, as cv2's border) to get enough output pixels and cut back.
    """
    height, width = x.shape[-2:]
    pad = math.ceil(1 / scale)
    x = F.pad(x, (0, pad, 0, pad), mode="replicate")
    x = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False, recompute_scale_factor=False)
    return x[..., : round(height * scale), : round(width * scale)]


class DistillAndSelect:
    """One DnS model plus (optionally) the frame extractor in front of it; call it on one video.

    Outputs (numpy float32): ``feature_extractor`` and FG students [T, R, 512] (±1 for ``fg_bin_student``),
    ``cg_student`` [1024], selectors a 0-d array holding the per-video statistic ``f``.
    """

    def __init__(
        self,
        model_name: str,
        model: nn.Module | None,
        extractor: nn.Module | None,
        device: torch.device,
        batch_size: int = 32,
        crop: int = 224,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_name = model_name
        self.device = device
        self.model = None if model is None else model.to(device).eval()
        self.extractor = None if extractor is None else extractor.to(device).eval()
        self.batch_size = batch_size
        self.crop = crop

    @torch.inference_mode()
    def features(self, frames: Frames) -> torch.Tensor:
        """Region features [T, R, D] on ``self.device``: extracted from frames, or taken as given.

        Without an extractor the input is already features: [T, R, D], or [T, D] read as R = 1. Frames may
        come from a generator (e.g. a decoder pipe); the extractor takes ``batch_size`` at a time, so frames
        and backbone activations are only ever held for one batch.
        """
        if self.extractor is None:
            feats = _as_tensor(frames, self.device)
            if feats.ndim == 2:
                feats = feats.unsqueeze(1)
            if feats.ndim != 3 or feats.shape[0] == 0:
                raise ValueError(f"expected region features [T, R, D] with T >= 1, got {tuple(feats.shape)}")
            return feats
        batches = [
            self.extractor(preprocess_frames(chunk, crop=self.crop).to(self.device)).float()
            for chunk in itertools.batched(frames, self.batch_size)
        ]
        if not batches:
            raise ValueError("no frames: an empty video has no DnS features")
        return torch.cat(batches)

    @torch.inference_mode()
    def __call__(self, frames: Frames) -> np.ndarray:
        feats = self.features(frames)
        match self.model_name:
            case "feature_extractor":
                out = feats
            case "fg_att_student" | "fg_bin_student":
                out = self.model.index_video(feats)
            case "cg_student":
                out = self.model.index_video(feats)[0]
            case _:
                out = self.model.index_video(repeat_to_min_length(feats))[0, 0]
        return out.float().cpu().numpy()


def distill_and_select(
    model_name: str,
    model_weight_path: str | os.PathLike[str] | None = None,
    feature_extractor: str | nn.Module | None = "default",
    device: str | torch.device | None = None,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    allow_random: bool = False,
    batch_size: int = 32,
    crop: int = 224,
) -> DistillAndSelect:
    """Build a DnS model callable with the towhee operator's signature.

    model_weight_path: the model's checkpoint (official ``{"model": ...}`` or bare state_dict); for
        ``feature_extractor`` a full extractor state_dict. None: look up the official file in ``weights_dir``.
    feature_extractor: ``"default"`` (ResNet-50 + PCA from ``weights_dir``; input = RGB frames), None (input =
        features [T, 9, 512]) or a module mapping float [N, crop, crop, 3] 0..255 frames to [N, R, 512].
    allow_random: keep random weights for files missing from ``weights_dir`` (tests only).
    crop: 224 as the reference loader; 256 is towhee's crop (towhee also resizes with PIL, which differs a little).
    """
    if model_name not in MODEL_NAMES:
        raise ValueError(f"unknown DnS model {model_name!r}; expected one of {', '.join(MODEL_NAMES)}")
    extractor: nn.Module | None
    if isinstance(feature_extractor, nn.Module):
        extractor = feature_extractor
    elif feature_extractor == "default":
        own_path = model_weight_path if model_name == "feature_extractor" else None
        extractor = load_feature_extractor(own_path, weights_dir, allow_random)
    elif feature_extractor is None and model_name != "feature_extractor":
        extractor = None
    else:
        raise ValueError(f"feature_extractor must be 'default', None or an nn.Module, got {feature_extractor!r}")
    model = None
    if model_name != "feature_extractor":
        model = load_model(model_name, model_weight_path, weights_dir, allow_random)
    return DistillAndSelect(model_name, model, extractor, resolve_device(device), batch_size, crop)


def _module(model: DistillAndSelect | nn.Module) -> nn.Module:
    return model.model if isinstance(model, DistillAndSelect) else model


def _as_tensor(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


@torch.inference_mode()
def fine_similarity(
    query_feats: np.ndarray | torch.Tensor,
    target_feats: np.ndarray | torch.Tensor,
    student: DistillAndSelect | FineGrainedStudent,
) -> float:
    """FG similarity in [-1, 1] of indexed query [Tq, R, K] to indexed target [Tt, R, K] (FG student outputs).

    Query-centric, so argument order matters. Sequences under 4 frames are repeated; targets longer than
    2048 frames are scored per 2048-frame chunk (chunks under 4 frames skipped) and the chunk scores averaged,
    as the reference evaluation does. Map to [0, 1] with ``s / 2 + 0.5`` before mixing with CG scores.
    """
    model = _module(student)
    device = next(model.parameters()).device
    query = repeat_to_min_length(_as_tensor(query_feats, device))
    target = _as_tensor(target_feats, device)
    chunks = [target[s : s + TARGET_CHUNK] for s in range(0, len(target), TARGET_CHUNK)]
    chunks = [c for c in chunks if len(c) >= MIN_FRAMES] or [repeat_to_min_length(target)]
    sims = [model.calculate_video_similarity(query, chunk).item() for chunk in chunks]
    return math.fsum(sims) / len(sims)


def coarse_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CG similarity: dot product of [1024] or [N, 1024] with [1024] or [M, 1024] (0-d, [N], [M] or [N, M])."""
    return np.asarray(a, dtype=np.float32) @ np.asarray(b, dtype=np.float32).T


@torch.inference_mode()
def selector_score(
    selector: DistillAndSelect | SelectorNetwork,
    f_query: float | np.ndarray,
    f_target: float | np.ndarray,
    cg_sim: float | np.ndarray,
) -> np.ndarray:
    """Probability in (0, 1) that the CG score is unreliable for a pair, i.e. it should be re-ranked by FG.

    Inputs broadcast together (e.g. one ``f_query`` against arrays over the database); the output has their
    broadcast shape (0-d for scalars).
    """
    model = _module(selector)
    columns = np.broadcast_arrays(*(np.asarray(v, dtype=np.float32) for v in (f_query, f_target, cg_sim)))
    z = torch.as_tensor(np.stack([c.reshape(-1) for c in columns], axis=1), device=next(model.parameters()).device)
    return model(z)[:, 0].cpu().numpy().reshape(columns[0].shape)
