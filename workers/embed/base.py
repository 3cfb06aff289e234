"""The one interface every frame-embedding model implements.

``FrameEmbedder.embed(frames uint8 [B, H, W, 3]) -> float32 [B, D]``, rows L2-normalised. The base class
owns batching, lazy loading (models load on first use, inside the worker process, never at import time:
CUDA must not start before Celery forks) and normalisation; a backend implements ``_load`` and
``_embed_batch`` only.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod

import numpy as np

from workers.types import FrameGeometry

log = logging.getLogger(__name__)


class FrameEmbedder(ABC):
    """A model that maps RGB frames to unit-length descriptors."""

    def __init__(self, name: str, dim: int, geometry: FrameGeometry, batch_size: int = 32) -> None:
        self.name = name
        self.dim = dim
        self.geometry = geometry
        self.batch_size = batch_size
        self._loaded = False
        self._load_lock = threading.Lock()

    @property
    def device(self) -> str:
        """Where inference runs, for logs and job metadata."""
        return "cpu"

    def load(self) -> None:
        """Load weights and start the runtime; called by the first ``embed`` if not before."""
        if self._loaded:
            return
        with self._load_lock:  # threads of one process share one model session
            if self._loaded:
                return
            started = time.perf_counter()
            self._load()
            self._loaded = True
        log.info("loaded model %s (dim %d) on %s in %.1f s", self.name, self.dim, self.device,
                 time.perf_counter() - started)

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] RGB frames (H = W = geometry.size) -> float32 [B, dim], unit rows."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames [B, H, W, 3], got {frames.dtype} {frames.shape}")
        self.load()
        if frames.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        out = np.concatenate([
            self._embed_batch(frames[start : start + self.batch_size])
            for start in range(0, frames.shape[0], self.batch_size)
        ]).astype(np.float32, copy=False)
        if out.shape[1] != self.dim:
            raise ValueError(f"model {self.name} returned dim {out.shape[1]}, expected {self.dim}")
        return l2_normalise(out)

    @abstractmethod
    def _load(self) -> None:
        """Create the inference session / module."""

    @abstractmethod
    def _embed_batch(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [b, H, W, 3] -> float [b, dim] (normalisation is done by the caller)."""


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` [N, D] scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)
