"""The DnS selector: decides which (query, target) pairs the coarse score cannot be trusted for.

Per video it stores one scalar ``f`` (how self-similar the video is over time). Per pair, a small MLP maps
``[f_query, f_target, cg_similarity]`` to the probability that the pair needs the fine-grained student.
"""

from __future__ import annotations

import torch
from torch import nn

from workers.dns.layers import Attention, VideoComperator


class MetadataModel(nn.Module):
    """MLP 3 -> 100 -> 100 -> 1 with BatchNorm, dropout and a sigmoid; kept as ``model`` for state_dict names."""

    def __init__(self, in_features: int = 3, hidden: int = 100) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(in_features, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(hidden, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(hidden, 1),
            nn.Sigmoid(),
        )
        for module in self.model:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


class SelectorNetwork(nn.Module):
    """Selector with its own attention and comparator weights (``selector_att`` and ``selector_bin``)."""

    def __init__(self, dims: int = 512, hidden: int = 100) -> None:
        super().__init__()
        self.attention = Attention(dims)
        self.visil_head = VideoComperator()
        self.mlp = MetadataModel(3, hidden)

    def index_video(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[T, R, D] or [B, T, R, D] (+ mask [B, T]) -> f [B, 1], an unbounded scalar per video.

        ``M[i, j] = mean_{o,p} <x[i, o], x[j, p]>`` after attention, which equals the dot product of the
        region means; the comparator output is then averaged (no hardtanh). Needs T >= 4.
        """
        if x.ndim == 3:
            x = x.unsqueeze(0)
            mask = None if mask is None else mask.unsqueeze(0)
        frames = self.attention(x).mean(dim=2)  # [B, T, D]
        sim = frames @ frames.transpose(1, 2)  # [B, T, T]
        sim_mask = None
        if mask is not None:
            m = mask.to(sim.dtype)
            sim_mask = m[:, :, None] * m[:, None, :]
            sim = sim * sim_mask
        sim, sim_mask = self.visil_head(sim, sim_mask)
        if sim_mask is None:
            return sim.mean(dim=(1, 2)).unsqueeze(-1)
        return ((sim * sim_mask).sum(dim=(1, 2)) / sim_mask.sum(dim=(1, 2))).unsqueeze(-1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, 3] = ``[f_query, f_target, cg_sim]`` in that order -> [N, 1] in (0, 1)."""
        return self.mlp(z)
