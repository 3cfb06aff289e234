"""The ingest plan: an upload becomes every enabled signal's evidence, stored and indexed; and its inverse.

``ingest`` reads the object and decodes it once through every signal's extractor (``workers.extract``),
stores each signal's object (keyed by the content, so a late run for replaced bytes never overwrites the
new bytes' objects), records them if the bytes are still the registered ones (the video is then
``indexing``), and writes each signal's vectors under the video's lock (``indexed``). A retry after a
vector-store outage starts at the vectors, from the stored objects (``resume``). ``backfill`` adds one
signal to an indexed video (a signal switched on later); ``forget`` removes everything a video has.

The database enters as ``VideoRows`` (``service/video_rows.py``: every status change of a video, its lock
and the events they announce), storage as ``SignalStores``; nothing here opens a connection.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workers.admission import check_file_size
from workers.decode import DecodeOptions
from workers.extract import ExtractedObject, ProgressFn, extract_object
from workers.signals.base import Record, Signal, SignalStores, Views
from workers.types import ObjectInfo, StreamedObject


@dataclass
class IngestResult:
    """What a run did: vectors per signal, or that it was superseded (bytes replaced or row removed meanwhile);
    ``missing`` the enabled signals that have nothing stored for the video (to backfill)."""

    vectors: dict[str, int] = field(default_factory=dict)
    superseded: bool = False
    missing: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """The task's small JSON: ``superseded``, or the primary signal's vectors as ``frames``."""
        return {"superseded": True} if self.superseded else {"frames": next(iter(self.vectors.values()), 0)}


class IndexTarget(Protocol):
    """The locked video while its vectors are written."""

    known_frames: int | None
    """An upper bound of the frames the primary collection may hold rows of for the video (None: unknown)."""

    def indexed(self, vectors: Mapping[str, int], seconds: float) -> None:
        """All vectors are written: ``indexed`` (committed, then announced, when the lock is released)."""


class VideoRows(Protocol):
    """The database side of the plan."""

    def record(self, video_id: str, stored: ExtractedObject, records: Mapping[str, Record],
               timings: Mapping[str, float]) -> list[str] | None:
        """Record the run's objects if its bytes are still the registered ones (``indexing``); returns the keys
        the rows referred to before (now stale), or None when the run was superseded."""

    def indexing(self, video_id: str, key: str) -> AbstractContextManager[IndexTarget | None]:
        """The video's lock while vectors are written; None when the row is gone or holds another primary object
        than ``key`` (a newer run's)."""

    def add_signal(self, video_id: str, sha256: str, signal: str, record: Record) -> AbstractContextManager[bool]:
        """The video's lock while one signal is added to it, its row saved; False when the video was removed,
        re-ingested or is not indexed any more."""


def views_of(signals: Sequence[Signal[Any]], views: Views = Views()) -> dict[str, Callable[[], Any]]:
    """Extractors of ``signals`` for ``extract_object``, by name."""
    return {s.name: functools.partial(s.extraction, views) for s in signals}


def ingest(video_id: str, read: Callable[[], StreamedObject], *, label: str, size: int | None,
           signals: Sequence[Signal[Any]], stores: SignalStores, rows: VideoRows, options: DecodeOptions,
           scratch_dir: Path, progress: ProgressFn | None = None) -> IngestResult:
    """Decode, store, record and index one upload (``signals`` primary first). An object whose registered
    ``size`` is over the file-size limit is refused before it is read (the decode checks the bytes again)."""
    if size is not None:
        check_file_size(size, options.limits, label)
    extracted = extract_object(views_of(signals), options, scratch_dir=scratch_dir, label=label, stream=read,
                               progress=progress)
    tick = time.perf_counter()
    evidence = extracted.video.evidence
    records = {s.name: s.save(stores, video_id, extracted.sha256, evidence[s.name]) for s in signals}
    timings = {**extracted.video.timings, "store_matrix": round(time.perf_counter() - tick, 4)}
    stale = rows.record(video_id, extracted, records, timings)
    if stale is None:
        _remove(stores, [r.key for r in records.values()])
        return IngestResult(superseded=True)
    _remove(stores, stale)
    primary = records[signals[0].name].key
    assert primary is not None
    return index(video_id, evidence, primary, signals=signals, stores=stores, rows=rows)


def resume(video_id: str, records: Mapping[str, Record], *, signals: Sequence[Signal[Any]], stores: SignalStores,
           rows: VideoRows) -> IngestResult:
    """The vectors of a run whose objects are stored (a retry after a vector-store outage), from those objects;
    a signal with nothing stored (switched on since) is left ``missing``."""
    have = [s for s in signals if s.name in records]
    evidence = {s.name: s.load(stores, records[s.name]) for s in have}
    result = index(video_id, evidence, records[signals[0].name].key or "", signals=have, stores=stores, rows=rows)
    result.missing = [s.name for s in signals if s.name not in records]
    return result


def index(video_id: str, evidence: Mapping[str, Any], key: str, *, signals: Sequence[Signal[Any]],
          stores: SignalStores, rows: VideoRows) -> IngestResult:
    """Make the vector stores hold exactly this evidence under the video's lock, then ``indexed``."""
    with rows.indexing(video_id, key) as target:
        if target is None:
            return IngestResult(superseded=True)
        tick = time.perf_counter()
        vectors = {s.name: s.index(stores, video_id, evidence[s.name], known_frames=target.known_frames)
                   for s in signals}
        target.indexed(vectors, seconds=time.perf_counter() - tick)
    return IngestResult(vectors)


def backfill(video_id: str, signal: Signal[Any], *, sha256: str, fetch: Callable[[Path], ObjectInfo], label: str,
             stores: SignalStores, rows: VideoRows, options: DecodeOptions, scratch_dir: Path) -> IngestResult:
    """Add ``signal`` to an indexed video whose registered bytes hash to ``sha256``: one decode of its own."""
    extracted = extract_object(views_of([signal]), options, scratch_dir=scratch_dir, label=label, fetch=fetch)
    if extracted.sha256 != sha256:
        return IngestResult(superseded=True)
    evidence = extracted.video.evidence[signal.name]
    record = signal.save(stores, video_id, sha256, evidence)
    with rows.add_signal(video_id, sha256, signal.name, record) as current:
        if current:
            count = signal.index(stores, video_id, evidence)
    if not current:
        _remove(stores, [record.key])
        return IngestResult(superseded=True)
    return IngestResult({signal.name: count})


def forget(video_id: str, records: Mapping[str, Record], *, signals: Sequence[Signal[Any]],
           stores: SignalStores) -> None:
    """Drop a video's vectors from every signal, then its objects (called under the video's lock, before its
    rows go: if a store fails, the retry still finds the rows and finishes)."""
    for signal in signals:
        signal.forget(stores, video_id)
    _remove(stores, [record.key for record in records.values()])


def _remove(stores: SignalStores, keys: Iterator[str | None] | Sequence[str | None]) -> None:
    for key in keys:
        if key:
            stores.arrays.remove(key)
