"""The interface every kind of evidence implements: what it takes from the one decode, what it keeps, how it
finds and judges candidate pairs.

A signal has one of two roles. A *locating* signal (frame descriptors, later audio) finds candidate videos
in the library and localises segments ``[query_start, ref_start, query_end, ref_end]`` in them. A *ranking*
signal (Distill-and-Select) scores whole video pairs: it proposes candidates the locating signals missed,
which they then localise, and its score is carried as the match's ``video_similarity``.

Storage enters as the small protocols below, handed in by the service layer, so a signal never opens a
connection: ``Arrays`` (objects in the matrices bucket) and ``VectorCollections`` (Milvus collections). What
a signal keeps for an indexed video is described by a ``Record``: the key of its object (per content, so a
late run for replaced bytes never overwrites the new one) and a few JSON facts. The primary signal's record
is the video row's own matrix columns (its object is the video's frame matrix, which reports and copy
detection read); the others' go to the ``video_signals`` table.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import BaseModel

from workers.embed.base import FrameEmbedder
from workers.localise import Localiser
from workers.types import FrameGeometry, Match, QueryParams, SearchHits

Role = Literal["locate", "rank"]
"""A signal's part in a query; ``E`` in the classes below is its evidence about one video."""


class Extraction[E](ABC):
    """One video going through one signal's extractor, fed chunk by chunk from the one decode.

    ``geometries`` are the frame geometries it wants from the decode (``workers.decode.sample_views``);
    ``fps`` the sampling rate it needs, or None for the product's rate (an extraction at another rate gets a
    decode of its own). ``seconds`` counts the time spent in ``add`` and ``finish``, reported as ``timing``.
    """

    timing: ClassVar[str]
    geometries: Sequence[FrameGeometry] = ()
    fps: float | None = None
    seconds: float = 0.0

    def start(self) -> None:  # noqa: B027 - optional hook
        """Called once before the first chunk (load a model now rather than inside the first chunk's time)."""

    @abstractmethod
    def add(self, frames: Sequence[np.ndarray]) -> None:
        """One decoded chunk: uint8 RGB [n, size, size, 3] per geometry of ``geometries``, in that order."""

    @abstractmethod
    def finish(self) -> E:
        """The video's evidence, once every chunk was added."""


@dataclass(frozen=True)
class Views:
    """Which views of each frame a job asks for: references get the default, queries their own
    (``QueryParams.crop_grid`` tiles and ``extra_views``)."""

    crop_grid: int = 1
    extra: tuple[str, ...] = ()

    @classmethod
    def of(cls, params: QueryParams) -> Views:
        return cls(params.crop_grid, tuple(params.extra_views))


@dataclass(frozen=True)
class Record:
    """What a signal stored for one indexed video: its object's key (None: none) and small JSON facts."""

    key: str | None
    data: Mapping[str, Any] = field(default_factory=dict)


class Arrays(Protocol):
    """Arrays kept as objects in the matrices bucket (``.npy`` for one array, ``.npz`` for several)."""

    def put(self, key: str, array: np.ndarray) -> None: ...
    def get(self, key: str) -> np.ndarray:
        """The array under ``key``; ``ObjectMissing`` when there is none."""

    def put_all(self, key: str, arrays: Mapping[str, np.ndarray]) -> None: ...
    def get_all(self, key: str) -> dict[str, np.ndarray]: ...
    def remove(self, key: str) -> None: ...


class FrameCollection(Protocol):
    """Per-frame vectors of one model (``workers.stores.vectors.VectorIndex``)."""

    model: str

    def replace_video(self, video_id: str, matrix: np.ndarray, *, known_frames: int | None = None) -> int: ...
    def delete_video(self, video_id: str) -> None: ...
    def search(self, vectors: np.ndarray, limit: int, *, exclude: Collection[str] = (),
               per_video: bool = False) -> SearchHits: ...
    def counts_by_video(self) -> dict[str, int]: ...


class VideoHitsLike(Protocol):
    video_id: list[str]
    score: np.ndarray


class VideoCollection(Protocol):
    """One vector per video (``workers.stores.videovectors.VideoVectorIndex``)."""

    def upsert(self, video_id: str, vector: np.ndarray) -> None: ...
    def delete(self, video_id: str) -> None: ...
    def exists(self) -> bool: ...
    def search(self, vector: np.ndarray, limit: int) -> VideoHitsLike: ...
    def get(self, video_ids: list[str]) -> Mapping[str, np.ndarray]: ...
    def ids(self) -> set[str]: ...


class VectorCollections(Protocol):
    """The Milvus collections a signal may use, by the name of what they hold."""

    def frames(self, name: str | None = None, dim: int = 0) -> FrameCollection:
        """A collection of ``dim``-d vectors per frame named ``name``; by default the embedding model's."""

    def videos(self, name: str, dim: int) -> VideoCollection:
        """A collection of one ``dim``-d vector per video, named after what computes it."""


@dataclass(frozen=True)
class SignalStores:
    """Everything a signal stores to, for one process."""

    arrays: Arrays
    vectors: VectorCollections


class References(Protocol):
    """The library as a query sees it: which videos may be reported, and what each signal stored for them."""

    def searchable(self, video_ids: list[str]) -> Collection[str]:
        """Those ids a query may report (indexed, same model and sampling rate, not being removed)."""

    def records(self, signal: str, video_ids: list[str]) -> Mapping[str, Record]:
        """The records ``signal`` stored for those ids that have one."""


class SignalContext(Protocol):
    """What a signal is built from: the process's settings and the models it shares with others
    (``service.resources.Resources``). A signal reads its own settings group, ``settings.<name>``."""

    @property
    def settings(self) -> Any: ...

    @property
    def embedder(self) -> FrameEmbedder: ...

    @property
    def localiser(self) -> Localiser: ...


class Signal[E](ABC):
    """One kind of evidence. Subclasses set ``name`` (its key in rows, objects, settings and timings),
    ``label`` (what results call it: ``signals: ["video"]``), ``role`` and, when it has settings of its own,
    ``settings_model`` (a pydantic model: ``COPYCAT_<NAME>__...``, with an ``enabled`` field); and implement
    the methods below. ``create`` builds it for one process; nothing heavy loads before it is first used."""

    name: ClassVar[str]
    label: ClassVar[str]
    role: ClassVar[Role]
    settings_model: ClassVar[type[BaseModel] | None] = None

    @classmethod
    @abstractmethod
    def create(cls, context: SignalContext) -> Signal[E]: ...

    @classmethod
    def enabled(cls, settings: Any) -> bool:
        """Whether a process with these settings uses the signal (its group's ``enabled``; always without one)."""
        return cls.settings_model is None or bool(getattr(settings, cls.name).enabled)

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Load what the first video would otherwise wait for (a process's warm-up calls it)."""

    @property
    def object_dir(self) -> str:
        """The folder of its objects (``videos/<object_dir>/...``, ``queries/<object_dir>/...``)."""
        return self.name

    @abstractmethod
    def extraction(self, views: Views) -> Extraction[E]:
        """A fresh extractor for one video (``views`` matter to signals with views; others ignore them)."""

    # -- what an indexed video keeps ------------------------------------------------------------------------

    def object_key(self, video_id: str, sha256: str) -> str:
        """Per content, so a late run for replaced bytes can never overwrite the new bytes' object."""
        return f"videos/{self.object_dir}/{video_id}/{sha256[:16]}.npy"

    @abstractmethod
    def save(self, stores: SignalStores, video_id: str, sha256: str, evidence: E) -> Record:
        """Store the evidence's object (not its vectors yet) and describe it."""

    @abstractmethod
    def load(self, stores: SignalStores, record: Record) -> E:
        """The evidence back from its object (a retry after a vector-store outage indexes from it)."""

    @abstractmethod
    def index(self, stores: SignalStores, video_id: str, evidence: E, *, known_frames: int | None = None) -> int:
        """Make the vector store hold exactly this evidence's vectors for ``video_id``; returns their count."""

    @abstractmethod
    def forget(self, stores: SignalStores, video_id: str) -> None:
        """Drop the video's vectors (its object and row are dropped by the caller from its ``Record``)."""

    def indexed_videos(self, stores: SignalStores) -> Mapping[str, int]:
        """Video id -> vectors this signal holds for it (fsck compares them with the rows)."""
        return {}

    # -- what a query does with it ------------------------------------------------------------------------------

    def query_key(self, job_id: str) -> str:
        """Where a query's evidence waits between the embed and the match task."""
        return f"queries/{self.object_dir}/{job_id}.npz"

    @abstractmethod
    def save_query(self, stores: SignalStores, job_id: str, evidence: E) -> None: ...

    @abstractmethod
    def load_query(self, stores: SignalStores, job_id: str) -> E: ...


class LocatingSignal[E](Signal[E]):
    """A signal that finds candidates and localises segments in them."""

    role: ClassVar[Role] = "locate"

    @abstractmethod
    def match(self, query: E, *, stores: SignalStores, references: References, params: QueryParams,
              exclude: Collection[str], timings: dict[str, float]) -> list[Match]:
        """Matches of the query in the library reaching ``params.min_score``, best first."""

    @abstractmethod
    def localise(self, query: E, video_ids: list[str], *, stores: SignalStores, references: References,
                 params: QueryParams) -> list[Match]:
        """Matches of the query in those videos (candidates another signal proposed), best first."""


class RankingSignal[E](Signal[E]):
    """A signal that scores whole video pairs."""

    role: ClassVar[Role] = "rank"

    @abstractmethod
    def rank(self, query: E, also: list[str], *, stores: SignalStores, references: References,
             exclude: Collection[str], timings: dict[str, float]) -> list[tuple[str, float]]:
        """(video id, similarity) best first: the library's nearest videos plus ``also`` (already matched)."""
