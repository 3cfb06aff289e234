"""DnS building blocks against straightforward loop/numpy computations of the spec's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workers.dns.layers import (
    Attention,
    BinarizationLayer,
    NetVLAD,
    VideoComperator,
    chamfer_similarity,
    region_pooling,
    repeat_to_min_length,
)
from workers.dns.selector import SelectorNetwork
from workers.dns.students import CoarseGrainedStudent, FineGrainedStudent


def close(a, b, tol: float = 1e-5) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=tol, rtol=tol)


def unit(*shape: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_chamfer_is_max_then_mean():
    s = np.random.default_rng(0).normal(size=(5, 7))
    expected = np.mean([max(s[i, j] for j in range(7)) for i in range(5)])
    close(chamfer_similarity(torch.tensor(s), max_dim=1, mean_dim=0), expected)


def test_chamfer_with_mask_ignores_padding():
    """Masked entries never win the max; rows with nothing valid drop out of the mean."""
    s = np.random.default_rng(1).normal(size=(6, 8))
    s[:, 5:] = 100.0  # padded target frames, would win the max if not masked
    mask = np.zeros((6, 8))
    mask[:4, :5] = 1  # 4 real query frames x 5 real target frames
    expected = np.mean([s[i, :5].max() for i in range(4)])
    close(chamfer_similarity(torch.tensor(s), 1, 0, mask=torch.tensor(mask)), expected)


@pytest.mark.parametrize(("height", "width", "regions"), [(224, 224, 9), (256, 256, 9), (224, 398, 18)])
def test_region_pooling_grid(height, width, regions):
    """Stage maps are ceil(H/4), ceil(H/8), ceil(H/16), ceil(H/32); the layer4 grid sets R."""
    maps = [
        torch.rand(2, c, math.ceil(height / s), math.ceil(width / s))
        for c, s in ((256, 4), (512, 8), (1024, 16), (2048, 32))
    ]
    out = region_pooling(maps)
    assert out.shape == (2, regions, 3840)
    close(out.norm(dim=-1), np.ones((2, regions)))


def test_region_pooling_values_at_224():
    """Every stage is already 3x3 at 224: region (i, j) is the max over its window, normalised twice."""
    maps = [torch.rand(1, c, n, n) for c, n in ((4, 56), (4, 28), (4, 14), (4, 7))]
    out = region_pooling(maps)[0].numpy()
    for i in range(3):
        for j in range(3):
            parts = []
            for fmap, k in zip(maps, (28, 14, 6, 3), strict=True):
                stride = math.ceil(k / 2)
                window = fmap[0, :, i * stride : i * stride + k, j * stride : j * stride + k].numpy()
                v = window.max(axis=(1, 2))
                parts.append(v / np.linalg.norm(v))
            v = np.concatenate(parts)
            close(out[i * 3 + j], v / np.linalg.norm(v))


def test_binarization_is_sign_of_projection():
    layer = BinarizationLayer(512, 512)
    x = torch.randn(3, 9, 512) * 5
    codes = layer(x).detach().numpy()
    x_unit = x.numpy() / np.linalg.norm(x.numpy(), axis=-1, keepdims=True)
    np.testing.assert_array_equal(codes, np.sign(x_unit @ layer.W.detach().numpy()))
    assert set(np.unique(codes)) <= {-1.0, 1.0}


def test_attention_formula():
    attention = Attention(8)
    x = torch.randn(5, 8)
    A, b = attention.transform.weight.detach().numpy(), attention.transform.bias.detach().numpy()
    c = attention.context_vector.weight.detach().numpy()[0]
    for row, out in zip(x.numpy(), attention(x).detach().numpy(), strict=True):
        weight = 1 / (1 + np.exp(-(c @ np.tanh(A @ row + b))))
        close(out, row * weight)


@pytest.mark.parametrize(("frames", "expected"), [(1, 4), (2, 4), (3, 6), (4, 4), (5, 5)])
def test_short_sequences_repeat_until_four(frames, expected):
    x = torch.arange(frames).float()[:, None, None].expand(frames, 9, 2)
    out = repeat_to_min_length(x)
    assert out.shape == (expected, 9, 2)
    assert out[:, 0, 0].tolist() == [i % frames for i in range(expected)]


def test_netvlad_matches_residual_loop():
    """V[k] = sum_t a_k(t) (x_t - c_k) over real frames only, then intra-norm, flatten, L2, reduce, LayerNorm."""
    netvlad = NetVLAD(dims=6, clusters=3, outdims=5).eval()
    with torch.no_grad():
        netvlad.conv.weight.normal_()
    x, mask = torch.randn(1, 7, 6), torch.tensor([[1, 1, 1, 1, 1, 0, 0]])
    C = netvlad.centroids.detach().numpy()
    W = netvlad.conv.weight.detach().numpy()[:, :, 0, 0]
    vlad = np.zeros((3, 6))
    for t in range(5):
        logits = W @ x[0, t].numpy()
        a = np.exp(logits) / np.exp(logits).sum()
        for k in range(3):
            vlad[k] += a[k] * (x[0, t].numpy() - C[k])
    vlad = (vlad / np.linalg.norm(vlad, axis=1, keepdims=True)).ravel()
    vlad /= np.linalg.norm(vlad)
    reduced = netvlad.reduction_layer.weight.detach().numpy() @ vlad
    expected = (reduced - reduced.mean()) / np.sqrt(reduced.var() + 1e-5)
    close(netvlad(x, mask)[0].detach(), expected, tol=1e-4)


def test_comparator_output_size_and_full_mask():
    head = VideoComperator().eval()
    sim = torch.randn(2, 13, 22)
    out, mask = head(sim)
    assert out.shape == (2, 3, 5) and mask is None
    masked, pooled = head(sim, torch.ones(2, 13, 22))
    close(masked.detach(), out.detach())
    assert pooled.shape == (2, 3, 5)


def test_fg_frame_similarity_matches_loops():
    """S[i, j] = mean over query regions of max over target regions of the dot product."""
    student = FineGrainedStudent("att").eval()
    q, t = unit(5, 4, 16, seed=1), unit(2, 6, 3, 16, seed=2)
    sim = student.frame_to_frame_similarity(q, t, block=2).numpy()
    assert sim.shape == (2, 5, 6)
    for b in range(2):
        for i in range(5):
            for j in range(6):
                dots = q[i].numpy() @ t[b, j].numpy().T  # [query regions, target regions]
                close(sim[b, i, j], dots.max(axis=1).mean())


def test_fg_bin_similarity_is_one_minus_twice_hamming_fraction():
    student = FineGrainedStudent("bin").eval()
    q = torch.sign(torch.randn(3, 2, 512))
    t = torch.sign(torch.randn(1, 4, 2, 512))
    sim = student.frame_to_frame_similarity(q, t).numpy()
    hamming = (q[:, :, None, None, :] != t[0][None, None]).sum(-1).numpy()  # [i, o, j, p]
    close(sim[0], (1 - 2 * hamming / 512).max(axis=3).mean(axis=1))


def test_fg_video_similarity_range_and_shape():
    student = FineGrainedStudent("att").eval()
    with torch.no_grad():
        sim = student.calculate_video_similarity(unit(2, 9, 9, 512), unit(3, 12, 9, 512, seed=1))
    assert sim.shape == (2, 3)
    assert bool(((sim >= -1) & (sim <= 1)).all())


def test_transformer_splits_qkv_like_multihead_attention():
    """in_proj_weight rows [0:512], [512:1024], [1024:1536] are Q, K, V; 8 heads of 64; post-norm."""
    student = CoarseGrainedStudent().eval()
    layer = student.transformer.layers[0]
    x = torch.randn(1, 6, 512)
    W, bias = layer.self_attn.in_proj_weight.detach(), layer.self_attn.in_proj_bias.detach()
    q, k, v = (x[0] @ W[i * 512 : (i + 1) * 512].T + bias[i * 512 : (i + 1) * 512] for i in range(3))
    heads = []
    for h in range(8):
        cols = slice(h * 64, (h + 1) * 64)
        scores = q[:, cols] @ k[:, cols].T / math.sqrt(64)
        heads.append(scores.softmax(dim=-1) @ v[:, cols])
    attended = layer.self_attn.out_proj(torch.cat(heads, dim=1)).detach()
    with torch.no_grad():
        close(layer.self_attn(x, x, x, need_weights=False)[0][0], attended, tol=1e-4)
        h1 = layer.norm1(x[0] + attended)
        h2 = layer.norm2(h1 + layer.linear2(F.relu(layer.linear1(h1))))
        close(student.transformer(x)[0], student.transformer.norm(h2), tol=1e-4)


def test_cg_output_is_unit_and_ignores_padding():
    student = CoarseGrainedStudent().eval()
    video = unit(5, 9, 512)
    batch, mask = torch.zeros(2, 8, 9, 512), torch.zeros(2, 8)
    batch[0, :5], mask[0, :5] = video, 1
    batch[1], mask[1] = unit(8, 9, 512, seed=3), 1
    with torch.no_grad():
        single, padded = student.index_video(video), student.index_video(batch, mask)
    assert single.shape == (1, 1024) and padded.shape == (2, 1024)
    close(padded.norm(dim=-1), [1.0, 1.0])
    close(padded[0], single[0], tol=1e-5)


def test_selector_probability_in_open_unit_interval():
    selector = SelectorNetwork().eval()
    z = torch.tensor([[0.1, 0.2, 0.5], [50.0, -50.0, 1.0], [-3.0, 4.0, -1.0]])
    p = selector(z).detach()
    assert p.shape == (3, 1)
    assert bool(((p > 0) & (p < 1)).all())


def test_selector_statistic_is_mean_of_region_mean_similarity():
    """With an identity comparator, f is the mean over frames of <mean_o x_i, mean_p x_j>, pooled."""
    selector = SelectorNetwork().eval()
    x = unit(8, 9, 16, seed=4)
    selector.attention = torch.nn.Identity()
    with torch.no_grad():
        f = selector.index_video(x)
    frames = x.mean(dim=1).numpy()
    matrix = torch.tensor(frames @ frames.T)[None]
    with torch.no_grad():
        expected = selector.visil_head(matrix)[0].mean()
    assert f.shape == (1, 1)
    close(f[0, 0], expected)


def pad_batch(*videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad [T, R, D] videos to one [B, T_max, R, D] batch with a {0, 1} frame mask."""
    length = max(len(v) for v in videos)
    batch, mask = torch.zeros(len(videos), length, *videos[0].shape[1:]), torch.zeros(len(videos), length)
    for b, v in enumerate(videos):
        batch[b, : len(v)], mask[b, : len(v)] = v, 1
    return batch, mask


def test_fg_padded_batch_matches_single_pairs():
    """With lengths that are multiples of 4 the comparator's pools line up, so padding changes nothing."""
    student = FineGrainedStudent("att").eval()
    q1, q2, t1, t2 = (unit(n, 9, 512, seed=s) for s, n in enumerate((8, 12, 12, 4)))
    queries, query_mask = pad_batch(q1, q2)
    targets, target_mask = pad_batch(t1, t2)
    with torch.no_grad():
        batched = student.calculate_video_similarity(queries, targets, query_mask, target_mask)
        single = [[student.calculate_video_similarity(q, t).item() for t in (t1, t2)] for q in (q1, q2)]
    close(batched, single)


def test_selector_padded_batch_matches_single_videos():
    selector = SelectorNetwork().eval()
    a, b = unit(8, 9, 512, seed=1), unit(16, 9, 512, seed=2)
    with torch.no_grad():
        batched = selector.index_video(*pad_batch(a, b))
        single = [selector.index_video(a).item(), selector.index_video(b).item()]
    close(batched[:, 0], single)
