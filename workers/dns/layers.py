"""Building blocks shared by the DnS extractor, students and selector.

Parameter names follow the reference implementation (mever-team/distill-and-select) so that the official
checkpoints load strictly. Shapes use T frames, R regions per frame, D feature dims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

MIN_FRAMES = 4
"""The comparator CNN pools twice by 2, so each side needs at least this many frames."""
REGION_KERNELS = (28, 14, 6, 3)
"""Max-pool kernel per ResNet stage for L3-iMAC; the stride is ``ceil(kernel / 2)``."""


class VideoNormalizer(nn.Module):
    """0..255 RGB frames to ImageNet-normalised, channels-first input.

    The constants are frozen parameters only because the reference stores them in its state_dict.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([255.0]), requires_grad=False)
        self.mean = nn.Parameter(torch.tensor([0.485, 0.456, 0.406]), requires_grad=False)
        self.std = nn.Parameter(torch.tensor([0.229, 0.224, 0.225]), requires_grad=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """float [N, H, W, 3] in 0..255 -> [N, 3, H, W]."""
        return ((frames / self.scale - self.mean) / self.std).permute(0, 3, 1, 2)


def whitening_matrix(d: torch.Tensor, V: torch.Tensor, n_components: int) -> torch.Tensor:
    """PCA-whitening projection from eigenvalues ``d`` [D] and eigenvectors as columns ``V`` [D, D].

    Keeps the ``n_components`` largest eigenvalues, largest first, and scales column j by
    ``1 / sqrt(d_j + 1e-7)``. Returns [D, n_components] (the reference's ``DVt``).
    """
    d = torch.as_tensor(d, dtype=torch.float64)
    V = torch.as_tensor(V, dtype=torch.float64)
    idx = torch.argsort(d, descending=True)[:n_components]
    return (V[:, idx] / torch.sqrt(d[idx] + 1e-7)).float()


class PCA(nn.Module):
    """Centre, project with a whitening matrix, and L2-normalise.

    Starts as a random projection; ``set_whitening`` or a state_dict fills in the learnt one.
    """

    def __init__(self, in_dims: int = 3840, n_components: int = 512) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(in_dims), requires_grad=False)
        self.DVt = nn.Parameter(torch.randn(in_dims, n_components) / math.sqrt(in_dims), requires_grad=False)

    @torch.no_grad()
    def set_whitening(self, mean: torch.Tensor, d: torch.Tensor, V: torch.Tensor) -> None:
        """Fill the parameters from a ``{mean, d, V}`` PCA file (spec §2.4)."""
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.DVt.copy_(whitening_matrix(d, V, self.DVt.shape[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., in_dims] -> [..., n_components], unit L2."""
        return F.normalize((x - self.mean) @ self.DVt, p=2, dim=-1)


class Attention(nn.Module):
    """Scales each region vector by a learnt weight ``sigmoid(c . tanh(A x + b))`` in (0, 1).

    The result is not re-normalised: the weight is how much the region counts in later similarities.
    """

    def __init__(self, dims: int = 512) -> None:
        super().__init__()
        self.transform = nn.Linear(dims, dims)
        self.context_vector = nn.Linear(dims, 1, bias=False)
        nn.init.xavier_uniform_(self.transform.weight)
        nn.init.zeros_(self.transform.bias)
        nn.init.xavier_uniform_(self.context_vector.weight)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., 1] region weights."""
        return torch.sigmoid(self.context_vector(torch.tanh(self.transform(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., D]."""
        return x * self.weights(x)


class BinarizationLayer(nn.Module):
    """Hash a region vector to ``sign(normalize(x) @ W)``, one ±1 value per bit.

    Training replaced ``sign`` by a steep ``erf``; inference only needs the sign. ``sign(0)`` stays 0.
    """

    def __init__(self, dims: int = 512, bits: int = 512) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(dims, bits) / math.sqrt(dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., dims] -> [..., bits] in {-1, 0, 1}."""
        return torch.sign(F.normalize(x, p=2, dim=-1) @ self.W)


class NetVLAD(nn.Module):
    """Aggregate a variable number of frame vectors into one fixed-size video vector.

    Soft-assigns frames to ``clusters`` centroids, sums the residuals per cluster, normalises, and reduces the
    ``clusters * dims`` vector to ``outdims`` with a linear layer and LayerNorm.
    """

    def __init__(self, dims: int = 512, clusters: int = 64, outdims: int = 1024) -> None:
        super().__init__()
        self.centroids = nn.Parameter(torch.randn(clusters, dims) / math.sqrt(dims))
        self.conv = nn.Conv2d(dims, clusters, kernel_size=1, bias=False)
        self.reduction_layer = nn.Linear(clusters * dims, outdims, bias=False)
        self.norm = nn.LayerNorm(outdims)
        with torch.no_grad():
            self.conv.weight.copy_(self.centroids[:, :, None, None])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, D], mask [B, T] in {0, 1} (1 = real frame) -> [B, outdims].

        Written as ``sum_t a_k(t) x_t - c_k sum_t a_k(t)``, which equals the per-cluster residual sum.
        """
        assign = self.conv(x.transpose(1, 2).unsqueeze(-1)).squeeze(-1).softmax(dim=1)  # [B, K, T]
        if mask is not None:
            assign = assign * mask.unsqueeze(1).to(assign.dtype)
        vlad = assign @ x - assign.sum(-1, keepdim=True) * self.centroids  # [B, K, D]
        vlad = F.normalize(vlad, p=2, dim=2).flatten(1)
        vlad = F.normalize(vlad, p=2, dim=1)
        return self.norm(self.reduction_layer(vlad))


def region_pooling(maps: Sequence[torch.Tensor], kernels: Sequence[int] = REGION_KERNELS) -> torch.Tensor:
    """L3-iMAC: max-pool each stage's map into a grid of regions and stack the stages per region.

    maps: the ResNet stage outputs [N, C_l, H_l, W_l]. Each is max-pooled with ``kernel`` and stride
    ``ceil(kernel / 2)``, adaptively max-pooled to the last stage's grid (r_h x r_w), and L2-normalised
    along channels. Returns [N, R, sum(C_l)] with R = r_h * r_w (row-major), each region unit L2.
    """
    pooled = [
        F.normalize(F.max_pool2d(fmap, kernel, stride=math.ceil(kernel / 2)), p=2, dim=1)
        for fmap, kernel in zip(maps, kernels, strict=True)
    ]
    grid = pooled[-1].shape[-2:]
    pooled = [F.normalize(F.adaptive_max_pool2d(p, grid), p=2, dim=1) for p in pooled]
    regions = torch.cat(pooled, dim=1).flatten(2).transpose(1, 2)
    return F.normalize(regions, p=2, dim=-1)


def chamfer_similarity(
    sim: torch.Tensor, max_dim: int, mean_dim: int, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Max over ``max_dim``, then mean over ``mean_dim``; both dims are removed.

    With a {0, 1} ``mask`` of the same shape, masked entries never win the max and the mean counts only
    rows that had at least one valid entry.
    """
    if mask is None:
        best = sim.max(dim=max_dim, keepdim=True).values
        return best.mean(dim=mean_dim, keepdim=True).squeeze((max_dim, mean_dim))
    valid = mask.bool()
    best = sim.masked_fill(~valid, -torch.inf).max(dim=max_dim, keepdim=True).values
    row_valid = valid.any(dim=max_dim, keepdim=True)
    best = best.masked_fill(~row_valid, 0.0)
    mean = best.sum(dim=mean_dim, keepdim=True) / row_valid.sum(dim=mean_dim, keepdim=True)
    return mean.squeeze((max_dim, mean_dim))


class VideoComperator(nn.Module):
    """Small CNN that reads a frame-to-frame similarity matrix like an image and refines it.

    It learns to reward diagonal (temporally aligned) structure; two 2x2 pools shrink each side by 4.
    The spelling "Comperator" is the reference's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fconv = nn.Conv2d(128, 1, 1)
        self.pool = nn.MaxPool2d(2, 2)
        for conv in (self.conv1, self.conv2, self.conv3, self.fconv):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, sim: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """sim [N, Tq, Tt], mask [N, Tq, Tt] or None -> [N, Tq//4, Tt//4] and the pooled mask.

        With a mask, padded positions are zeroed after every conv so padding never leaks into the result.
        """
        x = sim.unsqueeze(1)
        m = None if mask is None else mask.unsqueeze(1).to(sim.dtype)
        for conv, pool in ((self.conv1, True), (self.conv2, True), (self.conv3, False)):
            x = conv(x)
            if m is not None:
                x = x * m
            x = F.relu(x)
            if pool:
                x = self.pool(x)
                m = None if m is None else self.pool(m)
        x = self.fconv(x).squeeze(1)
        return x, None if m is None else m.squeeze(1)


def repeat_to_min_length(x: torch.Tensor, min_frames: int = MIN_FRAMES) -> torch.Tensor:
    """Concatenate a [T, ...] sequence with itself until T >= ``min_frames`` (reference loaders do this)."""
    if x.shape[0] == 0:
        raise ValueError("cannot repeat an empty sequence")
    while x.shape[0] < min_frames:
        x = torch.cat([x, x], dim=0)
    return x
