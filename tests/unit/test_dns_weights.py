"""DnS checkpoints: key/shape lists from the spec, strict loading, and clear errors for missing files."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from workers.dns.api import distill_and_select
from workers.dns.extractor import FeatureExtractor
from workers.dns.files import MODEL_FILES, WeightFile, WeightsNotFound, download_weights, weights_status
from workers.dns.layers import PCA
from workers.dns.selector import SelectorNetwork
from workers.dns.students import CoarseGrainedStudent, FineGrainedStudent
from workers.dns.weights import EXPECTED_SHAPES, BadCheckpoint, load_model, load_pca
from workers.errors import WeightsMissing

# Spec §4.5, §5 and §6.2, written out by hand.
ATTENTION = {
    "attention.transform.weight": (512, 512),
    "attention.transform.bias": (512,),
    "attention.context_vector.weight": (1, 512),
}
VISIL_HEAD = {
    "visil_head.conv1.weight": (32, 1, 3, 3),
    "visil_head.conv1.bias": (32,),
    "visil_head.conv2.weight": (64, 32, 3, 3),
    "visil_head.conv2.bias": (64,),
    "visil_head.conv3.weight": (128, 64, 3, 3),
    "visil_head.conv3.bias": (128,),
    "visil_head.fconv.weight": (1, 128, 1, 1),
    "visil_head.fconv.bias": (1,),
}
FG_ATT = {**ATTENTION, **VISIL_HEAD}
FG_BIN = {"binarization.W": (512, 512), **VISIL_HEAD}
CG = {
    **ATTENTION,
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
    "netvlad.centroids": (64, 512),
    "netvlad.conv.weight": (64, 512, 1, 1),
    "netvlad.reduction_layer.weight": (1024, 32768),
    "netvlad.norm.weight": (1024,),
    "netvlad.norm.bias": (1024,),
}
SELECTOR = {
    **ATTENTION,
    **VISIL_HEAD,
    "mlp.model.0.weight": (100, 3),
    "mlp.model.1.weight": (100,),
    "mlp.model.1.bias": (100,),
    "mlp.model.1.running_mean": (100,),
    "mlp.model.1.running_var": (100,),
    "mlp.model.1.num_batches_tracked": (),
    "mlp.model.4.weight": (100, 100),
    "mlp.model.5.weight": (100,),
    "mlp.model.5.bias": (100,),
    "mlp.model.5.running_mean": (100,),
    "mlp.model.5.running_var": (100,),
    "mlp.model.5.num_batches_tracked": (),
    "mlp.model.8.weight": (1, 100),
    "mlp.model.8.bias": (1,),
}


def torchvision_resnet50_keys() -> dict[str, tuple[int, ...]]:
    """torchvision's resnet50 naming: stages of 3, 4, 6, 3 bottlenecks, downsample in each first block."""

    def bn(name: str, c: int) -> dict[str, tuple[int, ...]]:
        return {
            f"{name}.weight": (c,),
            f"{name}.bias": (c,),
            f"{name}.running_mean": (c,),
            f"{name}.running_var": (c,),
            f"{name}.num_batches_tracked": (),
        }

    keys = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    cin = 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            keys[f"{p}.conv1.weight"] = (width, cin, 1, 1)
            keys |= bn(f"{p}.bn1", width)
            keys[f"{p}.conv2.weight"] = (width, width, 3, 3)
            keys |= bn(f"{p}.bn2", width)
            keys[f"{p}.conv3.weight"] = (4 * width, width, 1, 1)
            keys |= bn(f"{p}.bn3", 4 * width)
            if b == 0:
                keys[f"{p}.downsample.0.weight"] = (4 * width, cin, 1, 1)
                keys |= bn(f"{p}.downsample.1", 4 * width)
            cin = 4 * width
    return keys | {"fc.weight": (1000, 2048), "fc.bias": (1000,)}


EXTRACTOR = {
    "normalizer.scale": (1,),
    "normalizer.mean": (3,),
    "normalizer.std": (3,),
    **{f"cnn.{k}": v for k, v in torchvision_resnet50_keys().items()},
    "pca.mean": (3840,),
    "pca.DVt": (3840, 512),
}

MODELS = {
    "feature_extractor": (FeatureExtractor, EXTRACTOR),
    "fg_att_student": (lambda: FineGrainedStudent("att"), FG_ATT),
    "fg_bin_student": (lambda: FineGrainedStudent("bin"), FG_BIN),
    "cg_student": (CoarseGrainedStudent, CG),
    "selector_att": (SelectorNetwork, SELECTOR),
    "selector_bin": (SelectorNetwork, SELECTOR),
}


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_matches_spec(name):
    build, expected = MODELS[name]
    assert shapes(build()) == expected
    assert EXPECTED_SHAPES[name] == expected


def test_resnet_has_torchvision_key_count():
    assert len(torchvision_resnet50_keys()) == 320
    assert shapes(FeatureExtractor().cnn) == torchvision_resnet50_keys() == EXPECTED_SHAPES["resnet50"]


def test_official_container_loads_strictly(tmp_path):
    """``{"model": sd, "args": Namespace}`` as the reference saves it; every tensor comes through."""
    source = FineGrainedStudent("att")
    torch.save({"model": source.state_dict(), "epoch": 3, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "x.pth")
    target = load_model("fg_att_student", tmp_path / "x.pth")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_bare_state_dict_loads_from_weights_folder(tmp_path):
    source = SelectorNetwork()
    torch.save(source.state_dict(), tmp_path / "dns_selector_cg-fg_bin.pth")
    target = load_model("selector_bin", weights_dir=tmp_path)
    assert torch.equal(target.mlp.model[0].weight, source.mlp.model[0].weight)


def test_wrong_key_is_named(tmp_path):
    state = FineGrainedStudent("att").state_dict()
    state["attention.transform.weights"] = state.pop("attention.transform.weight")
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(BadCheckpoint, match=r"missing keys: attention\.transform\.weight.*unexpected keys"):
        load_model("fg_att_student", tmp_path / "bad.pth")


def test_wrong_model_checkpoint_is_rejected(tmp_path):
    """An FG-att file offered as the FG-bin student fails before anything is copied."""
    torch.save({"model": FineGrainedStudent("att").state_dict()}, tmp_path / "dns_fg_bin_student.pth")
    with pytest.raises(BadCheckpoint, match="binarization.W"):
        load_model("fg_bin_student", weights_dir=tmp_path)


def test_unreadable_file_is_bad_checkpoint(tmp_path):
    (tmp_path / "dns_cg_student.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BadCheckpoint, match="cannot read"):
        load_model("cg_student", weights_dir=tmp_path)


@pytest.mark.parametrize("name", list(MODEL_FILES))
def test_missing_file_names_file_and_url(tmp_path, name):
    file = MODEL_FILES[name]
    with pytest.raises(WeightsMissing) as info:
        distill_and_select(name, feature_extractor=None, weights_dir=tmp_path)
    assert file.name in str(info.value) and file.url in str(info.value) and str(tmp_path) in str(info.value)


def test_missing_extractor_files_are_named(tmp_path):
    with pytest.raises(WeightsNotFound, match="resnet50-0676ba61.pth"):
        distill_and_select("feature_extractor", weights_dir=tmp_path)


def test_explicit_path_must_exist_even_with_allow_random(tmp_path):
    with pytest.raises(WeightsNotFound, match="nowhere.pth"):
        distill_and_select("cg_student", tmp_path / "nowhere.pth", feature_extractor=None, allow_random=True)


def test_no_folder_and_no_path_is_an_error():
    with pytest.raises(WeightsNotFound, match="dns_cg_student.pth"):
        distill_and_select("cg_student", feature_extractor=None)


def test_pca_file_builds_whitening(tmp_path):
    """A {mean, d, V} file gives pca.mean = mean and pca.DVt = V[:, top-k by d] / sqrt(d + 1e-7)."""
    g = torch.Generator().manual_seed(0)
    white = {"mean": torch.randn(16, generator=g), "d": torch.rand(16, generator=g) + 0.1}
    white["V"] = torch.randn(16, 16, generator=g)
    torch.save(white, tmp_path / "pca.pth")
    pca = PCA(16, 4)
    load_pca(pca, tmp_path / "pca.pth")

    top = sorted(range(16), key=lambda i: -white["d"][i].item())[:4]
    expected = torch.stack([white["V"][:, j] / (white["d"][j] + 1e-7).sqrt() for j in top], dim=1)
    np.testing.assert_allclose(pca.DVt, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(pca.mean, white["mean"])
    x = torch.randn(3, 16, generator=g)
    y = (x - white["mean"]) @ expected
    np.testing.assert_allclose(pca(x).detach(), y / y.norm(dim=-1, keepdim=True), rtol=1e-5, atol=1e-6)


def test_pca_file_with_wrong_shape_is_rejected(tmp_path):
    torch.save({"mean": torch.zeros(16), "d": torch.ones(16), "V": torch.eye(8)}, tmp_path / "pca.pth")
    with pytest.raises(BadCheckpoint, match=r"V \(8, 8\) != \(16, 16\)"):
        load_pca(PCA(16, 4), tmp_path / "pca.pth")


def test_extractor_checkpoint_roundtrip(tmp_path):
    """model_weight_path for feature_extractor is a whole FeatureExtractor state_dict."""
    source = FeatureExtractor()
    torch.save(source.state_dict(), tmp_path / "extractor.pth")
    op = distill_and_select("feature_extractor", tmp_path / "extractor.pth", device="cpu")
    assert torch.equal(op.extractor.pca.DVt, source.pca.DVt)
    assert torch.equal(op.extractor.cnn.layer4[2].bn3.running_var, source.cnn.layer4[2].bn3.running_var)


def test_weights_status_lists_every_file(tmp_path):
    (tmp_path / "dns_cg_student.pth").write_bytes(b"x")
    status = {s.file.name: s for s in weights_status(tmp_path)}
    assert set(status) == {
        "resnet50-0676ba61.pth",
        "pca_resnet50_vcdb_1M.pth",
        "dns_cg_student.pth",
        "dns_fg_att_student.pth",
        "dns_fg_bin_student.pth",
        "dns_selector_cg-fg_att.pth",
        "dns_selector_cg-fg_bin.pth",
    }
    assert status["dns_cg_student.pth"].present and not status["dns_fg_att_student.pth"].present
    assert status["resnet50-0676ba61.pth"].file.url == "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert all(s.path == tmp_path / s.file.name and s.file.url.startswith("http") for s in status.values())


def test_download_reports_each_outcome(tmp_path):
    """file:// URLs stand in for the network: fetched, already present, hash mismatch, unreachable."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "good.pth").write_bytes(b"weights")
    prefix = hashlib.sha256(b"weights").hexdigest()[:8]
    files = [
        WeightFile("good.pth", (source / "good.pth").as_uri(), (), sha256_prefix=prefix),
        WeightFile("corrupt.pth", (source / "good.pth").as_uri(), (), sha256_prefix="00000000"),
        WeightFile("absent.pth", (source / "absent.pth").as_uri(), ()),
        WeightFile("here.pth", "http://invalid.invalid/here.pth", ()),
    ]
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "here.pth").write_bytes(b"x")
    results = {r.file.name: r for r in download_weights(folder, files)}
    assert {name: r.outcome for name, r in results.items()} == {
        "good.pth": "downloaded",
        "corrupt.pth": "failed",
        "absent.pth": "failed",
        "here.pth": "present",
    }
    assert (folder / "good.pth").read_bytes() == b"weights"
    assert "does not match" in results["corrupt.pth"].error and "absent.pth" in results["absent.pth"].error
    assert sorted(p.name for p in folder.iterdir()) == ["good.pth", "here.pth"]


def test_weight_files_point_at_the_official_urls():
    base = "https://mever.iti.gr/distill-and-select/models/"
    assert {n: f.url for n, f in MODEL_FILES.items()} == {
        "fg_att_student": base + "dns_fg_att_student.pth",
        "fg_bin_student": base + "dns_fg_bin_student.pth",
        "cg_student": base + "dns_cg_student.pth",
        "selector_att": base + "dns_selector_cg-fg_att.pth",
        "selector_bin": base + "dns_selector_cg-fg_bin.pth",
    }
    assert all(Path(f.url).name == f.name for f in MODEL_FILES.values())
