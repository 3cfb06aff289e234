"""Distill-and-Select (DnS) video retrieval models: extractor, students, selector and their weights."""

from workers.dns.api import (
    MODEL_NAMES,
    DistillAndSelect,
    coarse_similarity,
    distill_and_select,
    fine_similarity,
    preprocess_frames,
    selector_score,
)
from workers.dns.weights import (
    BadCheckpoint,
    WeightsNotFound,
    download_weights,
    weights_status,
)

__all__ = [
    "MODEL_NAMES",
    "BadCheckpoint",
    "DistillAndSelect",
    "WeightsNotFound",
    "coarse_similarity",
    "distill_and_select",
    "download_weights",
    "fine_similarity",
    "preprocess_frames",
    "selector_score",
    "weights_status",
]
