"""DnS per video: frames -> coarse vector, fine representation, selector statistic; and the re-rank stage.

Indexing follows spec §7: region features [T, 9, 512] from the extractor (frames sampled at 1 fps, shorter
side 256, centre crop 224, as the reference loader), repeated to at least 4 frames for the coarse student and
the selector (§1.3), then one coarse vector [1024], the fine student's index [T, 9, 512] and the selector's
scalar ``f``. The fine index is kept unrepeated: ``fine_similarity`` repeats short sequences itself.

Re-ranking follows §7 steps 4-6: sort candidates by selector probability, re-score the first
``floor(percentage * N)`` with the fine student (mapped to [0, 1] by ``s / 2 + 0.5``), keep the coarse score
for the rest, rank by the final score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from workers.device import resolve_device
from workers.dns.layers import repeat_to_min_length
from workers.dns.representation import SELECTOR_FOR, DnsRepresentation, check_student
from workers.dns.selector import SelectorNetwork
from workers.dns.students import CoarseGrainedStudent, FineGrainedStudent
from workers.dns.weights import load_feature_extractor, load_model

BUDGET_EPS = 1e-9
"""``floor(0.29 * 100)`` is 28 in floating point; the budget is floored with this much slack."""


@dataclass
class DnsModels:
    """The four networks one DnS deployment runs, on one device, in eval mode."""

    student: str
    extractor: nn.Module
    coarse: CoarseGrainedStudent
    fine: FineGrainedStudent
    selector: SelectorNetwork
    device: torch.device
    batch_size: int = 32

    @torch.inference_mode()
    def features(self, chunks: Iterable[np.ndarray]) -> torch.Tensor:
        """uint8 RGB chunks [n, 224, 224, 3] (already resized and cropped, see ``DNS_GEOMETRY``) -> [T, 9, 512].

        Chunks come straight from ``sample_frames``; the extractor sees ``batch_size`` frames at a time, so
        only one batch of activations is ever alive.
        """
        parts = []
        for chunk in chunks:
            if chunk.ndim != 4 or chunk.shape[-1] != 3:
                raise ValueError(f"expected RGB frames [n, H, W, 3], got {chunk.shape}")
            for start in range(0, chunk.shape[0], self.batch_size):
                batch = torch.from_numpy(chunk[start : start + self.batch_size].astype(np.float32))
                parts.append(self.extractor(batch.to(self.device)).float())
        if not parts:
            raise ValueError("no frames: an empty video has no DnS representation")
        return torch.cat(parts)

    @torch.inference_mode()
    def represent_features(self, feats: torch.Tensor | np.ndarray) -> DnsRepresentation:
        """Region features [T, R, 512] (T >= 1) -> the video's coarse vector, fine index and selector ``f``."""
        feats = torch.as_tensor(feats, dtype=torch.float32, device=self.device)
        if feats.ndim != 3 or feats.shape[0] == 0:
            raise ValueError(f"expected region features [T, R, D] with T >= 1, got {tuple(feats.shape)}")
        long_enough = repeat_to_min_length(feats)
        coarse = self.coarse.index_video(long_enough)[0]
        stat = self.selector.index_video(long_enough)[0, 0]
        fine = self.fine.index_video(feats)
        return DnsRepresentation(coarse.cpu().numpy().astype(np.float32), fine.cpu().numpy().astype(np.float32),
                                 float(stat))

    def represent(self, chunks: Iterable[np.ndarray]) -> DnsRepresentation:
        """Frame chunks of one video (see ``features``) -> its DnS representation."""
        return self.represent_features(self.features(chunks))

    def fine_similarity(self, query_fine: np.ndarray, target_fine: np.ndarray) -> float:
        """FG similarity in [-1, 1] of two fine indexes (float32, query first)."""
        from workers.dns.api import fine_similarity

        return fine_similarity(query_fine, target_fine, self.fine)

    def selector_probability(self, f_query: float, f_targets: np.ndarray, coarse_sims: np.ndarray) -> np.ndarray:
        """[N] probabilities that each pair's coarse score is unreliable (the MLP of spec §6.2)."""
        from workers.dns.api import selector_score

        if len(f_targets) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(selector_score(self.selector, f_query, f_targets, coarse_sims), np.float32).reshape(-1)


def load_dns_models(weights_dir: str | None, student: str, *, allow_random: bool = False,
                    device: str | torch.device | None = None, batch_size: int = 32) -> DnsModels:
    """Extractor, coarse student, ``student`` and its selector from ``weights_dir`` (official file names).

    A missing file raises ``WeightsNotFound`` unless ``allow_random`` (tests only: scores are meaningless).
    """
    check_student(student)
    target = resolve_device(device)
    extractor = load_feature_extractor(None, weights_dir, allow_random)
    models = [load_model(name, None, weights_dir, allow_random)
              for name in ("cg_student", student, SELECTOR_FOR[student])]
    extractor, coarse, fine, selector = (m.to(target).eval() for m in (extractor, *models))
    return DnsModels(student, extractor, coarse, fine, selector, target, batch_size)


class RankedVideo(NamedTuple):
    """A candidate after re-ranking: its final DnS video similarity (about [0, 1]) and whether FG scored it."""

    video_id: str
    score: float
    reranked: bool


def rerank_budget(candidates: int, percentage: float) -> int:
    """How many of ``candidates`` the fine student re-scores: ``floor(percentage * candidates)``."""
    if not 0.0 <= percentage <= 1.0:
        raise ValueError(f"rerank percentage must be within [0, 1], got {percentage}")
    return min(candidates, math.floor(percentage * candidates + BUDGET_EPS))


def rerank(candidates: Sequence[str], coarse: Sequence[float] | np.ndarray, probabilities: Sequence[float] | np.ndarray,
           fine: Callable[[str], float], percentage: float) -> list[RankedVideo]:
    """Spec §7 steps 4-6 over N candidates; best first.

    coarse: [N] CG similarities; probabilities: [N] selector outputs (NaN = no selector statistic for that
    video, never re-scored, but it still counts in N); fine: video id -> raw FG similarity in [-1, 1], called
    only for the ``floor(percentage * N)`` candidates with the highest probabilities (ties: earlier candidate
    first). Final score: ``fine / 2 + 0.5`` for those, the coarse similarity for the rest; ties by video id.
    """
    coarse = np.asarray(coarse, dtype=np.float64).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if not len(candidates) == len(coarse) == len(probabilities):
        raise ValueError(f"got {len(candidates)} candidates, {len(coarse)} coarse scores and "
                         f"{len(probabilities)} selector probabilities")
    if len(set(candidates)) != len(candidates):
        raise ValueError("candidate video ids must be unique")
    budget = rerank_budget(len(candidates), percentage)
    eligible = [i for i in range(len(candidates)) if not np.isnan(probabilities[i])]
    chosen = set(sorted(eligible, key=lambda i: (-probabilities[i], i))[:budget])
    ranked = [
        RankedVideo(vid, float(fine(vid)) / 2 + 0.5, True) if i in chosen else RankedVideo(vid, float(coarse[i]), False)
        for i, vid in enumerate(candidates)
    ]
    return sorted(ranked, key=lambda r: (-r.score, r.video_id))
