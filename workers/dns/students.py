"""The DnS students: fine-grained (per-frame region vectors) and coarse-grained (one vector per video).

Both take region features [T, R, D] from the extractor, or padded batches [B, T, R, D] with a {0, 1} frame
mask [B, T] (1 = real frame). They are inference-only: call ``.eval()`` (the API does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workers.dns.layers import Attention, BinarizationLayer, NetVLAD, VideoComperator, chamfer_similarity


def _batched(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Add a batch dim to a single video [T, R, D] (and its mask [T])."""
    if x.ndim == 3:
        return x.unsqueeze(0), None if mask is None else mask.unsqueeze(0)
    return x, mask


class FineGrainedStudent(nn.Module):
    """Video similarity from frame-to-frame region similarities refined by a comparator CNN.

    ``variant`` is ``"att"`` (attention-weighted float regions) or ``"bin"`` (±1 codes of ``bits`` bits).
    """

    def __init__(self, variant: str = "att", dims: int = 512, bits: int = 512) -> None:
        super().__init__()
        if variant == "att":
            self.attention = Attention(dims)
        elif variant == "bin":
            self.binarization = BinarizationLayer(dims, bits)
        else:
            raise ValueError(f"unknown fine-grained variant {variant!r}; expected 'att' or 'bin'")
        self.variant = variant
        self.visil_head = VideoComperator()

    def index_video(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[T, R, D] or [B, T, R, D] (+ mask [B, T]) -> same leading shape, last dim D (att) or bits (bin).

        Padded frames come out as zeros.
        """
        x = self.attention(x) if self.variant == "att" else self.binarization(x)
        if mask is not None:
            x = x * mask[..., None, None].to(x.dtype)
        return x

    def frame_to_frame_similarity(self, query: torch.Tensor, target: torch.Tensor, block: int = 256) -> torch.Tensor:
        """query [Tq, R, K], target [B, Tt, R', K] -> [B, Tq, Tt].

        ``S[i, j] = mean_o max_p <q[i, o], t[j, p]>``: max over target regions, mean over query regions.
        For ±1 codes it is divided by the code length, so it lies in [-1, 1]. Query frames are taken
        ``block`` at a time so the region-level tensor [B, block, R, Tt, R'] stays bounded.
        """
        rows = [
            chamfer_similarity(torch.einsum("iok,bjpk->biojp", q, target), max_dim=-1, mean_dim=2)
            for q in query.split(block)
        ]
        sim = torch.cat(rows, dim=1)
        if self.variant == "bin":
            sim = sim / target.shape[-1]
        return sim

    def calculate_video_similarity(
        self,
        query: torch.Tensor,
        target: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Indexed query [Nq, Tq, R, K] and target [Nt, Tt, R, K] (or 3-D singles) -> [Nq, Nt] in [-1, 1].

        Query-centric: for each query frame take the best target frame, then average over query frames.
        Each side needs at least 4 real frames (see ``repeat_to_min_length``).
        """
        query, query_mask = _batched(query, query_mask)
        target, target_mask = _batched(target, target_mask)
        rows = []
        for i in range(query.shape[0]):
            sim = self.frame_to_frame_similarity(query[i], target)  # [Nt, Tq, Tt]
            mask = None
            if query_mask is not None or target_mask is not None:
                qm = query.new_ones(query.shape[1]) if query_mask is None else query_mask[i].to(sim.dtype)
                tm = target.new_ones(target.shape[:2]) if target_mask is None else target_mask.to(sim.dtype)
                mask = qm[None, :, None] * tm[:, None, :]
                sim = sim * mask
            sim, mask = self.visil_head(sim, mask)
            rows.append(chamfer_similarity(F.hardtanh(sim), max_dim=2, mean_dim=1, mask=mask))
        return torch.stack(rows)


class CoarseGrainedStudent(nn.Module):
    """One L2-normalised vector per video; similarity is a dot product.

    Region attention, sum-pooling per frame, a one-layer transformer over time and NetVLAD (defaults = the
    released model).
    """

    def __init__(
        self,
        dims: int = 512,
        heads: int = 8,
        feedforward: int = 2048,
        layers: int = 1,
        clusters: int = 64,
        outdims: int = 1024,
    ) -> None:
        super().__init__()
        self.attention = Attention(dims)
        layer = nn.TransformerEncoderLayer(dims, heads, feedforward, dropout=0.1, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dims), enable_nested_tensor=False)
        self.netvlad = NetVLAD(dims, clusters, outdims)

    def index_video(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[T, R, D] or [B, T, R, D] (+ mask [B, T]) -> [B, outdims] unit L2 (B = 1 for a single video)."""
        x, mask = _batched(x, mask)
        x = F.normalize(self.attention(x).sum(dim=2), p=2, dim=-1)  # [B, T, D]
        padding = None if mask is None else ~mask.bool()
        x = self.transformer(x, src_key_padding_mask=padding)
        return F.normalize(self.netvlad(x, mask), p=2, dim=-1)

    @staticmethod
    def calculate_video_similarity(query: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """[Nq, outdims] x [Nt, outdims] -> [Nq, Nt] dot products (trained to approximate [0, 1])."""
        return query @ target.T
