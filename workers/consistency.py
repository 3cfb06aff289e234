"""What ``copycat fsck`` checks: the database rows against what Milvus and the object store hold.

Pure: an ``Inventory`` (what each store holds, read by ``service/fsck.py``) in, ``Findings`` out. Rows with a
run in progress are left out of every check that their run may be changing (their vectors, matrices and other
signals' objects), so a check on a busy system reports nothing that is merely not finished yet. Signals other
than the primary (``workers.signals``) are checked alike: each one's rows, objects and per-video vectors;
their vector findings read ``<signal>:<video_id>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Each kind of inconsistency, in report order, with what ``--repair`` does about it.
KINDS: dict[str, str] = {
    "orphan_vectors": "frame vectors of a video with no row, or of a failed one: deleted",
    "vector_count_mismatch": "indexed video whose frame vectors in Milvus differ from its vector_count: re-ingested",
    "missing_matrix": "indexed video whose frame matrix object is gone: re-ingested",
    "orphan_matrices": "frame matrix objects no row refers to: deleted",
    "orphan_signal_vectors": "a signal's vectors of a video with no row of that signal: deleted",
    "missing_signal_vectors": "indexed video with a signal's row but none of its vectors: re-ingested",
    "orphan_signal_objects": "a signal's objects no row refers to: deleted",
    "orphan_query_objects": "query matrices of a job that no longer exists: deleted",
    "unregistered_uploads": "objects in the uploads bucket the database never registered: registered and queued",
    "rows_without_upload": "rows whose upload object is gone: removed",
}


@dataclass(frozen=True)
class RowState:
    """What the database says about one video."""

    video_id: str
    object_path: str  # "bucket/key" of its upload
    status: str
    model: str | None
    busy: bool  # a run is working on it (pending, decoding, embedding, indexing)
    vector_count: int | None = None
    matrix_key: str | None = None
    signal_keys: Mapping[str, str] = field(default_factory=dict)  # signal -> its object, for the other signals


@dataclass
class Inventory:
    """Everything the stores hold. Read objects and vectors *before* rows: an object or a vector written by
    a run after its listing is then covered by that run's row being busy or referring to it."""

    rows: Mapping[str, RowState]
    model: str  # the frame collection checked is this model's
    frame_vectors: Mapping[str, int]  # video id -> frame vectors in the frame collection
    signal_vectors: Mapping[str, set[str]]  # enabled signal other than the primary -> video ids it has vectors of
    matrix_objects: set[str]  # keys of per-video frame matrices
    signal_objects: set[str]  # keys of the other signals' per-video objects
    query_objects: Mapping[str, str]  # key -> job id, of stored query matrices
    job_ids: set[str]
    uploads: set[str]  # "bucket/key" of every object in the uploads bucket
    recent_uploads: set[str] = field(default_factory=set)  # of those, written within the grace period
    enabled_signals: set[str] = field(default_factory=set)  # a switched-off signal's missing vectors are no fault


@dataclass
class Findings:
    """Per kind, the video ids or object keys found; empty when everything is consistent."""

    items: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def counts(self) -> dict[str, int]:
        return {kind: len(found) for kind, found in self.items.items()}

    @property
    def total(self) -> int:
        return sum(len(found) for found in self.items.values())

    @property
    def consistent(self) -> bool:
        return self.total == 0


def find_inconsistencies(inv: Inventory) -> Findings:
    findings = Findings()
    found = findings.items
    rows = inv.rows
    settled = {vid: row for vid, row in rows.items() if not row.busy}
    indexed = {vid: row for vid, row in settled.items() if row.status == "indexed" and row.model == inv.model}

    for vid, count in inv.frame_vectors.items():
        row = rows.get(vid)
        if count and (row is None or (not row.busy and row.status == "failed")):
            found["orphan_vectors"].append(vid)
    for vid, row in indexed.items():
        if inv.frame_vectors.get(vid, 0) != (row.vector_count or 0):
            found["vector_count_mismatch"].append(vid)
        if row.matrix_key and row.matrix_key not in inv.matrix_objects:
            found["missing_matrix"].append(vid)
        for signal, vectors in inv.signal_vectors.items():
            if signal in inv.enabled_signals and signal in row.signal_keys and vid not in vectors:
                found["missing_signal_vectors"].append(f"{signal}:{vid}")

    referenced = {row.matrix_key for row in rows.values() if row.matrix_key}
    found["orphan_matrices"] = _unreferenced(inv.matrix_objects, referenced, rows)
    signal_referenced = {key for row in rows.values() for key in row.signal_keys.values()}
    found["orphan_signal_objects"] = _unreferenced(inv.signal_objects, signal_referenced, rows)
    for signal, vectors in inv.signal_vectors.items():
        kept = {vid for vid, row in rows.items() if signal in row.signal_keys or row.busy}
        found["orphan_signal_vectors"].extend(f"{signal}:{vid}" for vid in vectors - kept)
    found["orphan_query_objects"] = sorted(key for key, job in inv.query_objects.items() if job not in inv.job_ids)

    registered = {row.object_path for row in rows.values()}
    found["unregistered_uploads"] = sorted(inv.uploads - inv.recent_uploads - registered)
    found["rows_without_upload"] = sorted(vid for vid, row in settled.items() if row.object_path not in inv.uploads)
    for kind in ("orphan_vectors", "vector_count_mismatch", "missing_matrix", "missing_signal_vectors",
                 "orphan_signal_vectors"):
        found[kind].sort()
    return findings


def _unreferenced(keys: Iterable[str], referenced: set[str], rows: Mapping[str, RowState]) -> list[str]:
    """Keys nobody refers to, except those of a video whose run is busy (it may be writing them now).
    Per-video object keys carry the video id as a path segment (``videos/<model>/<video_id>/...``)."""
    busy = {vid for vid, row in rows.items() if row.busy}
    return sorted(key for key in keys if key not in referenced and not (set(key.split("/")) & busy))
