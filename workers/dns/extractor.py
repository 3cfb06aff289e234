"""Frame-level DnS features: ImageNet ResNet-50, L3-iMAC region pooling, PCA whitening to 512-d."""

from __future__ import annotations

import torch
from torch import nn

from workers.dns.layers import PCA, VideoNormalizer, region_pooling
from workers.dns.resnet import ResNet50

REGION_DIMS = 256 + 512 + 1024 + 2048


class FeatureExtractor(nn.Module):
    """float [N, H, W, 3] RGB 0..255 -> [N, R, dims] unit-L2 region vectors (R = 9 for 224 or 256 crops).

    It has no DnS-trained weights: the backbone is torchvision's ResNet-50 IMAGENET1K_V1 and the PCA comes
    from ``pca_resnet50_vcdb_1M.pth``. Module names match the reference, so a saved state_dict has
    ``normalizer.*``, ``cnn.*``, ``pca.mean`` and ``pca.DVt``.
    """

    def __init__(self, dims: int = 512) -> None:
        super().__init__()
        self.normalizer = VideoNormalizer()
        self.cnn = ResNet50()
        self.pca = PCA(REGION_DIMS, dims)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.pca(region_pooling(self.cnn(self.normalizer(frames))))
