"""Distill-and-Select (DnS) video retrieval models: extractor, students, selector and their weights.

The library API (``distill_and_select`` and the similarity functions, docs/dns.md, "Library API") is exported here
but loaded on first use, so that importing the torch-free modules (``files``, ``representation``) from the
ingest and query paths never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MODEL_NAMES": "workers.dns.api",
    "DistillAndSelect": "workers.dns.api",
    "coarse_similarity": "workers.dns.api",
    "distill_and_select": "workers.dns.api",
    "fine_similarity": "workers.dns.api",
    "preprocess_frames": "workers.dns.api",
    "selector_score": "workers.dns.api",
    "BadCheckpoint": "workers.dns.weights",
    "WeightsNotFound": "workers.dns.files",
    "download_weights": "workers.dns.files",
    "weights_status": "workers.dns.files",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
