"""What DnS weight files must contain, and strict loading (the files themselves: ``workers.dns.files``).

Loading never falls back to random weights unless the caller says ``allow_random=True``, because a randomly
initialised model returns plausible-looking but meaningless scores.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workers.dns.extractor import REGION_DIMS, FeatureExtractor
from workers.dns.files import MODEL_FILES, PCA_WHITENING, RESNET50, WeightsNotFound, resolve_weight_file
from workers.dns.layers import PCA
from workers.dns.resnet import EXPANSION, STAGES
from workers.dns.selector import SelectorNetwork
from workers.dns.students import CoarseGrainedStudent, FineGrainedStudent
from workers.errors import ConfigError

log = logging.getLogger(__name__)


class BadCheckpoint(ConfigError):
    """A weight file exists but cannot be read, or its keys/shapes do not match the model."""

    code = "bad_checkpoint"


def _bn_shapes(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.{k}": (channels,) for k in ("weight", "bias", "running_mean", "running_var")}
    return shapes | {f"{prefix}.num_batches_tracked": ()}


def _resnet50_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision resnet50 state_dict: 53 convs, 53 BNs (5 entries each) and fc."""
    shapes = {"conv1.weight": (64, 3, 7, 7), **_bn_shapes("bn1", 64)}
    in_channels = 64
    for stage, (width, blocks) in enumerate(STAGES, start=1):
        out_channels = width * EXPANSION
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            shapes |= {f"{p}.conv1.weight": (width, in_channels, 1, 1), **_bn_shapes(f"{p}.bn1", width)}
            shapes |= {f"{p}.conv2.weight": (width, width, 3, 3), **_bn_shapes(f"{p}.bn2", width)}
            shapes |= {f"{p}.conv3.weight": (out_channels, width, 1, 1), **_bn_shapes(f"{p}.bn3", out_channels)}
            if block == 0:
                shapes |= {f"{p}.downsample.0.weight": (out_channels, in_channels, 1, 1)}
                shapes |= _bn_shapes(f"{p}.downsample.1", out_channels)
            in_channels = out_channels
    return shapes | {"fc.weight": (1000, 2048), "fc.bias": (1000,)}


_ATTENTION = {
    "attention.transform.weight": (512, 512),
    "attention.transform.bias": (512,),
    "attention.context_vector.weight": (1, 512),
}
_COMPARATOR = {
    "visil_head.conv1.weight": (32, 1, 3, 3),
    "visil_head.conv1.bias": (32,),
    "visil_head.conv2.weight": (64, 32, 3, 3),
    "visil_head.conv2.bias": (64,),
    "visil_head.conv3.weight": (128, 64, 3, 3),
    "visil_head.conv3.bias": (128,),
    "visil_head.fconv.weight": (1, 128, 1, 1),
    "visil_head.fconv.bias": (1,),
}
_TRANSFORMER = {
    "transformer.layers.0.self_attn.in_proj_weight": (1536, 512),
    "transformer.layers.0.self_attn.in_proj_bias": (1536,),
    "transformer.layers.0.self_attn.out_proj.weight": (512, 512),
    "transformer.layers.0.self_attn.out_proj.bias": (512,),
    "transformer.layers.0.linear1.weight": (2048, 512),
    "transformer.layers.0.linear1.bias": (2048,),
    "transformer.layers.0.linear2.weight": (512, 2048),
    "transformer.layers.0.linear2.bias": (512,),
    "transformer.layers.0.norm1.weight": (512,),
    "transformer.layers.0.norm1.bias": (512,),
    "transformer.layers.0.norm2.weight": (512,),
    "transformer.layers.0.norm2.bias": (512,),
    "transformer.norm.weight": (512,),
    "transformer.norm.bias": (512,),
}
_NETVLAD = {
    "netvlad.centroids": (64, 512),
    "netvlad.conv.weight": (64, 512, 1, 1),
    "netvlad.reduction_layer.weight": (1024, 32768),
    "netvlad.norm.weight": (1024,),
    "netvlad.norm.bias": (1024,),
}
_SELECTOR_MLP = {
    "mlp.model.0.weight": (100, 3),
    **_bn_shapes("mlp.model.1", 100),
    "mlp.model.4.weight": (100, 100),
    **_bn_shapes("mlp.model.5", 100),
    "mlp.model.8.weight": (1, 100),
    "mlp.model.8.bias": (1,),
}

EXPECTED_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "resnet50": _resnet50_shapes(),
    "feature_extractor": {
        "normalizer.scale": (1,),
        "normalizer.mean": (3,),
        "normalizer.std": (3,),
        **{f"cnn.{k}": v for k, v in _resnet50_shapes().items()},
        "pca.mean": (REGION_DIMS,),
        "pca.DVt": (REGION_DIMS, 512),
    },
    "fg_att_student": _ATTENTION | _COMPARATOR,
    "fg_bin_student": {"binarization.W": (512, 512)} | _COMPARATOR,
    "cg_student": _ATTENTION | _TRANSFORMER | _NETVLAD,
    "selector_att": _ATTENTION | _COMPARATOR | _SELECTOR_MLP,
    "selector_bin": _ATTENTION | _COMPARATOR | _SELECTOR_MLP,
}
"""state_dict key -> shape of every model, as in the official files (spec §2.5, §4.5, §5, §6.2)."""


def read_checkpoint(path: Path) -> object:
    """``torch.load`` without running arbitrary pickled code (argparse.Namespace is allowed for ``args``).

    ``.npz`` files (the reference's older PCA format) are read with numpy.
    """
    try:
        if path.suffix == ".npz":
            with np.load(path) as data:
                return {key: torch.from_numpy(data[key]) for key in data.files}
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BadCheckpoint(f"cannot read {path}: {exc}") from exc


def unwrap_state_dict(obj: object, source: Path) -> Mapping[str, torch.Tensor]:
    """Official files are ``{"model": state_dict, ...}``; bare state_dicts (towhee's format) pass through."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BadCheckpoint(f"{source} holds neither a state_dict nor a {{'model': state_dict}} checkpoint")
    return obj


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], source: str
) -> None:
    """Raise ``BadCheckpoint`` listing missing, unexpected and wrongly shaped keys."""
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    wrong = sorted(
        f"{k} {tuple(state_dict[k].shape)} != {expected[k]}"
        for k in expected.keys() & state_dict.keys()
        if tuple(state_dict[k].shape) != tuple(expected[k])
    )
    problems = [
        f"{label}: {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}"
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong))
        if items
    ]
    if problems:
        raise BadCheckpoint(f"{source} does not match the model: " + "; ".join(problems))


def read_state_dict(path: Path, expected: Mapping[str, tuple[int, ...]]) -> Mapping[str, torch.Tensor]:
    """The state_dict in a checkpoint file, after checking every key and shape against ``expected``."""
    state_dict = unwrap_state_dict(read_checkpoint(path), path)
    check_state_dict(state_dict, expected, str(path))
    return state_dict


def build_model(model_name: str) -> nn.Module:
    """An untrained student or selector for a towhee model name (the extractor is built separately)."""
    match model_name:
        case "fg_att_student":
            return FineGrainedStudent("att")
        case "fg_bin_student":
            return FineGrainedStudent("bin")
        case "cg_student":
            return CoarseGrainedStudent()
        case "selector_att" | "selector_bin":
            return SelectorNetwork()
    raise ValueError(f"unknown DnS model {model_name!r}; expected one of {', '.join(MODEL_FILES)}")


def load_model(
    model_name: str,
    path: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    allow_random: bool = False,
) -> nn.Module:
    """A student or selector with its official weights, from ``path`` or ``weights_dir``.

    The checkpoint is found and checked before the model is built, so a bad setup fails fast. An explicit
    ``path`` must exist; a file missing from ``weights_dir`` is an error unless ``allow_random``.
    """
    if model_name not in MODEL_FILES:
        raise ValueError(f"unknown DnS model {model_name!r}; expected one of {', '.join(MODEL_FILES)}")
    try:
        file = resolve_weight_file(MODEL_FILES[model_name], path, weights_dir)
    except WeightsNotFound:
        if path is not None or not allow_random:
            raise
        log.warning("%s: weights missing, using random initialisation (allow_random=True)", model_name)
        return build_model(model_name)
    state_dict = read_state_dict(file, EXPECTED_SHAPES[model_name])
    model = build_model(model_name)
    model.load_state_dict(state_dict, strict=True)
    return model


def load_feature_extractor(
    path: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    allow_random: bool = False,
) -> FeatureExtractor:
    """The extractor from a full extractor state_dict at ``path``, or from the ResNet and PCA files.

    Missing files in ``weights_dir`` are an error unless ``allow_random`` (then that part stays random).
    """
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise WeightsNotFound(
                f"feature extractor: no file at {file}; pass a saved FeatureExtractor state_dict, or no path and "
                f"a weights folder holding {RESNET50.name} and {PCA_WHITENING.name}"
            )
        state_dict = read_state_dict(file, EXPECTED_SHAPES["feature_extractor"])
        extractor = FeatureExtractor()
        extractor.load_state_dict(state_dict, strict=True)
        return extractor
    found = {}
    for weight_file in (RESNET50, PCA_WHITENING):
        try:
            found[weight_file] = resolve_weight_file(weight_file, None, weights_dir)
        except WeightsNotFound:
            if not allow_random:
                raise
            log.warning("%s missing, feature extractor part left random (allow_random=True)", weight_file.name)
    extractor = FeatureExtractor()
    if RESNET50 in found:
        extractor.cnn.load_state_dict(read_state_dict(found[RESNET50], EXPECTED_SHAPES["resnet50"]), strict=True)
    if PCA_WHITENING in found:
        load_pca(extractor.pca, found[PCA_WHITENING])
    return extractor


def load_pca(pca: PCA, path: Path) -> None:
    """Build ``pca.mean``/``pca.DVt`` from a ``{mean, d, V}`` file (spec §2.4)."""
    white = read_checkpoint(path)
    if not isinstance(white, Mapping):
        raise BadCheckpoint(f"{path} is not a {{mean, d, V}} PCA file")
    dims = pca.mean.shape[0]
    expected = {"mean": (dims,), "d": (dims,), "V": (dims, dims)}
    check_state_dict({k: torch.as_tensor(white[k]) for k in expected if k in white}, expected, str(path))
    pca.set_whitening(white["mean"], white["d"], white["V"])
