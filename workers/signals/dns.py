"""Distill-and-Select (spec §7): one coarse vector, a fine index and a selector statistic per video.

A ranking signal: it scores whole video pairs and proposes the videos the frame search missed. At ingest its
extractor runs on the students' frames (``DNS_GEOMETRY`` at ``DNS_FPS``; shared with the frame decode when
the product samples at that rate). A video keeps its coarse vector in Milvus (``dns_cg_student``, one row
per video), and one object with the fine index (packed for ``fg_bin_student``), the coarse vector and the
selector statistic; the record says which student made them. A query's ranking is the coarse search plus
the already-matched videos, the selector's choice of pairs worth the fine student, and their fine scores.

Off unless ``COPYCAT_DNS__ENABLED=true``; the weights come from ``COPYCAT_DNS__WEIGHTS_DIR`` (or random ones
with ``COPYCAT_DNS__ALLOW_RANDOM_WEIGHTS=true``, for tests only; a missing file fails naming it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field

from workers.dns.files import WeightFile
from workers.dns.representation import (
    DNS_FPS,
    DNS_GEOMETRY,
    DnsRepresentation,
    pack_fine,
    required_files,
    unpack_fine,
)
from workers.errors import ObjectMissing
from workers.signals.base import (
    Extraction,
    RankingSignal,
    Record,
    References,
    SignalContext,
    SignalStores,
    VideoCollection,
    Views,
)

if TYPE_CHECKING:
    import torch

    from workers.dns.video import DnsModels

log = logging.getLogger(__name__)

COARSE_COLLECTION, COARSE_DIM = "dns_cg_student", 1024


class DnsSettings(BaseModel):
    weights_dir: str = Field("", description="folder with the official DnS .pth files; empty = $COPYCAT_HOME/weights")
    enabled: bool = Field(False, description="compute DnS representations at ingest and re-rank at query")
    student: Literal["fg_att_student", "fg_bin_student"] = Field("fg_att_student",
                                                                 description="fine-grained student used")
    rerank_percentage: float = Field(0.25, ge=0, le=1, description="share of candidates the fine student re-scores")
    coarse_top_k: int = Field(20, ge=1, description="videos fetched by the coarse video-level search")
    dedup_threshold: float = Field(0.8, description="coarse similarity above which videos are duplicates")
    allow_random_weights: bool = Field(False, description="run with random init when weights are missing")


def weights_folder(settings: Any) -> Path:
    """Where the DnS weight files are: ``COPYCAT_DNS__WEIGHTS_DIR``, else ``$COPYCAT_HOME/weights``."""
    folder = settings.dns.weights_dir
    return Path(folder) if folder else (settings.home / "weights").resolve()


def missing_weights(settings: Any) -> list[WeightFile]:
    """The weight files the configured student needs that are not in the weights folder."""
    folder = weights_folder(settings)
    return [f for f in required_files(settings.dns.student) if not (folder / f.name).is_file()]


class DnsExtraction(Extraction[DnsRepresentation]):
    """The extractor's region features chunk by chunk, the students once the video is complete."""

    timing = "dns_embed"
    geometries = (DNS_GEOMETRY,)
    fps = DNS_FPS

    def __init__(self, models: DnsModels) -> None:
        self.models = models
        self.parts: list[torch.Tensor] = []

    def add(self, frames: Sequence[np.ndarray]) -> None:
        self.parts.append(self.models.features([frames[0]]))

    def finish(self) -> DnsRepresentation:
        import torch

        return self.models.represent_features(torch.cat(self.parts))


class DnsSignal(RankingSignal[DnsRepresentation]):
    """DnS re-ranking with the configured student; the networks load on first use."""

    name: ClassVar[str] = "dns"
    label: ClassVar[str] = "dns"
    settings_model = DnsSettings

    def __init__(self, settings: DnsSettings, *, weights_dir: Path, device: str = "auto", batch_size: int = 32) -> None:
        self.settings, self.weights_dir, self.device, self.batch_size = settings, weights_dir, device, batch_size
        self._models: DnsModels | None = None
        self._lock = threading.Lock()

    @classmethod
    def create(cls, context: SignalContext) -> DnsSignal:
        cfg = context.settings
        return cls(cfg.dns, weights_dir=weights_folder(cfg), device=cfg.embed.device, batch_size=cfg.embed.batch_size)

    @property
    def object_dir(self) -> str:
        return f"dns_{self.settings.student}"

    @property
    def models(self) -> DnsModels:
        """The four networks of the configured student (a missing weight file fails naming it)."""
        with self._lock:
            if self._models is None:
                from workers.dns.video import load_dns_models

                started = time.perf_counter()
                self._models = load_dns_models(str(self.weights_dir), self.settings.student,
                                               allow_random=self.settings.allow_random_weights, device=self.device,
                                               batch_size=self.batch_size)
                log.info("DnS models (%s) loaded from %s on %s in %.1f s", self.settings.student, self.weights_dir,
                         self._models.device, time.perf_counter() - started)
            return self._models

    def extraction(self, views: Views) -> DnsExtraction:
        return DnsExtraction(self.models)

    def collection(self, stores: SignalStores) -> VideoCollection:
        return stores.vectors.videos(COARSE_COLLECTION, COARSE_DIM)

    # -- an indexed video ------------------------------------------------------------------------------------

    def object_key(self, video_id: str, sha256: str) -> str:
        return f"videos/{self.object_dir}/{video_id}/{sha256[:16]}.npz"

    def save(self, stores: SignalStores, video_id: str, sha256: str, evidence: DnsRepresentation) -> Record:
        fine, fine_dtype = pack_fine(evidence.fine, self.settings.student)
        key = self.object_key(video_id, sha256)
        stores.arrays.put_all(key, {"fine": fine, "coarse": evidence.coarse,
                                    "selector_stat": np.float32(evidence.selector_stat)})
        return Record(key, {"student": self.settings.student, "selector_stat": float(evidence.selector_stat),
                            "fine_dtype": fine_dtype, "frames": evidence.frames})

    def load(self, stores: SignalStores, record: Record) -> DnsRepresentation:
        assert record.key is not None
        if record.key.endswith(".npy"):
            raise ObjectMissing(f"{record.key} holds a fine index alone (written before coarse vectors were kept "
                                "beside it): the representation cannot be restored from it; re-ingest the video")
        stored = stores.arrays.get_all(record.key)
        return DnsRepresentation(stored["coarse"], unpack_fine(stored["fine"], record.data["fine_dtype"]),
                                 float(stored["selector_stat"]))

    def index(self, stores: SignalStores, video_id: str, evidence: DnsRepresentation, *,
              known_frames: int | None = None) -> int:
        self.collection(stores).upsert(video_id, evidence.coarse)
        return 1

    def forget(self, stores: SignalStores, video_id: str) -> None:
        collection = self.collection(stores)
        if collection.exists():
            collection.delete(video_id)

    def indexed_videos(self, stores: SignalStores) -> dict[str, int]:
        collection = self.collection(stores)
        return dict.fromkeys(collection.ids(), 1) if collection.exists() else {}

    # -- a query -----------------------------------------------------------------------------------------------

    def save_query(self, stores: SignalStores, job_id: str, evidence: DnsRepresentation) -> None:
        stores.arrays.put_all(self.query_key(job_id), {"coarse": evidence.coarse, "fine": evidence.fine,
                                                       "selector_stat": np.float32(evidence.selector_stat)})

    def load_query(self, stores: SignalStores, job_id: str) -> DnsRepresentation:
        stored = stores.arrays.get_all(self.query_key(job_id))
        return DnsRepresentation(stored["coarse"], stored["fine"], float(stored["selector_stat"]))

    def rank(self, query: DnsRepresentation, also: list[str], *, stores: SignalStores, references: References,
             exclude: Collection[str], timings: dict[str, float]) -> list[tuple[str, float]]:
        """Coarse search (+ the ``also`` videos), selector, fine re-scoring of the budget. Best first."""
        from workers.dns.video import rerank

        collection = self.collection(stores)
        tick = time.perf_counter()
        hits = collection.search(query.coarse, self.settings.coarse_top_k)
        coarse = {vid: float(s) for vid, s in zip(hits.video_id, hits.score, strict=True) if vid not in exclude}
        extra = [vid for vid in also if vid not in coarse and vid not in exclude]
        coarse |= {vid: float(vec @ query.coarse) for vid, vec in collection.get(extra).items()}
        timings["dns_search"] = time.perf_counter() - tick

        tick = time.perf_counter()
        candidates = list(coarse)
        records = {vid: r for vid, r in references.records(self.name, candidates).items()
                   if r.data.get("student") == self.settings.student}
        have_row = np.array([vid in records for vid in candidates], bool)
        stats = np.array([records[vid].data["selector_stat"] if vid in records else 0.0 for vid in candidates],
                         np.float32)
        sims = np.array([coarse[vid] for vid in candidates], np.float32)
        probabilities = self.models.selector_probability(query.selector_stat, stats, sims).astype(np.float64)
        probabilities[~have_row] = np.nan
        timings["dns_select"] = time.perf_counter() - tick

        tick = time.perf_counter()
        ranked = rerank(candidates, sims, probabilities,
                        lambda vid: self.models.fine_similarity(query.fine, self._fine(stores, records[vid])),
                        self.settings.rerank_percentage)
        timings["dns_fine"] = time.perf_counter() - tick
        return [(r.video_id, r.score) for r in ranked]

    @staticmethod
    def _fine(stores: SignalStores, record: Record) -> np.ndarray:
        """A reference's fine index; objects written before the fine index shared its object are ``.npy``."""
        assert record.key is not None
        stored: Mapping[str, Any] = ({"fine": stores.arrays.get(record.key)} if record.key.endswith(".npy")
                                     else stores.arrays.get_all(record.key))
        return unpack_fine(stored["fine"], record.data["fine_dtype"])
