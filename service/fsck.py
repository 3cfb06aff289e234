"""``copycat fsck``: read every store, compare (``workers/consistency.py``), optionally repair, record.

The inventory reads the object store and Milvus before the database (see ``Inventory``). Every repair
re-checks its finding under the video's lock first, so a run that changed things since the inventory is
never undone: only what is still inconsistent is deleted or queued again. Beat runs the check in report
mode every ``COPYCAT_FSCK__INTERVAL_S``; its counts are kept in ``fsck_runs`` (``copycat status``, metrics).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from db import fsck as fsck_db
from db import jobs, videos
from db import signals as signal_rows
from db.models import VideoStatus, utcnow
from service import resources
from service.operations import register_upload
from service.queue import enqueue_remove
from workers.consistency import KINDS, Findings, Inventory, find_inconsistencies
from workers.signals.registry import PRIMARY, SIGNALS

log = logging.getLogger(__name__)

QUERY_PREFIX = "queries/"


@dataclass
class FsckResult:
    findings: Findings
    repaired: dict[str, int]
    seconds: float
    after: Findings | None = None  # the check once more after repairing

    @property
    def consistent(self) -> bool:
        return (self.after or self.findings).consistent

    def as_json(self) -> dict[str, object]:
        return {"consistent": self.consistent, "seconds": round(self.seconds, 3), "counts": self.findings.counts(),
                "items": self.findings.items, "repaired": self.repaired,
                "after_repair": self.after.counts() if self.after else None}


def take_inventory(res: resources.Resources) -> Inventory:
    cfg = res.settings
    uploads, recent = set(), set()
    settled_before = utcnow() - timedelta(seconds=cfg.fsck.upload_grace_s)
    for obj in res.objects.list(cfg.s3.uploads_bucket):
        uploads.add(f"{obj.bucket}/{obj.key}")
        if obj.last_modified is not None and obj.last_modified > settled_before:
            recent.add(f"{obj.bucket}/{obj.key}")
    others = [res.signal(name) for name in SIGNALS if name != PRIMARY]  # switched off ones keep their objects
    signal_dirs = tuple(f"videos/{s.object_dir}/" for s in others)
    matrices, signal_objects, query_objects = set(), set(), {}
    for obj in res.objects.list(cfg.s3.matrices_bucket):
        if obj.key.startswith(QUERY_PREFIX):
            query_objects[obj.key] = obj.key.rsplit("/", 1)[-1].split(".", 1)[0]
        elif obj.key.startswith(signal_dirs):
            signal_objects.add(obj.key)
        else:
            matrices.add(obj.key)
    frame_vectors = res.signals[0].indexed_videos(res.stores)
    signal_vectors = {s.name: set(s.indexed_videos(res.stores)) for s in others}
    with res.session() as s:
        rows = fsck_db.row_states(s)
        job_ids = fsck_db.job_ids(s)
    return Inventory(rows=rows, model=res.embedder.name, frame_vectors=frame_vectors, signal_vectors=signal_vectors,
                     matrix_objects=matrices, signal_objects=signal_objects, query_objects=query_objects,
                     job_ids=job_ids, uploads=uploads, recent_uploads=recent,
                     enabled_signals={s.name for s in res.signals})


def check(res: resources.Resources, repair: bool = False) -> FsckResult:
    """Compare every store; with ``repair``, fix what is found and check once more."""
    tick, started = time.perf_counter(), utcnow()
    findings = find_inconsistencies(take_inventory(res))
    repaired = repair_findings(res, findings) if repair and not findings.consistent else {}
    after = find_inconsistencies(take_inventory(res)) if repaired else None
    result = FsckResult(findings, repaired, time.perf_counter() - tick, after)
    with res.session() as s:
        fsck_db.record_run(s, started_at=started, seconds=result.seconds, repaired=bool(repaired),
                           counts=findings.counts())
    if findings.consistent:
        log.info("fsck: consistent (%.1f s)", result.seconds)
    else:
        log.warning("fsck: %d inconsistencies: %s%s", findings.total,
                    ", ".join(f"{k} {n}" for k, n in findings.counts().items() if n),
                    f"; repaired {repaired}" if repaired else "; run `copycat fsck --repair` to fix them")
    return result


def repair_findings(res: resources.Resources, findings: Findings) -> dict[str, int]:
    """Fix each finding that still holds (re-checked under the video's lock); returns how many per kind."""
    cfg, items = res.settings, findings.items
    done = {kind: 0 for kind in KINDS}
    for vid in items["orphan_vectors"]:
        with res.session() as s:
            row = videos.lock_video(s, vid)
            if row is None or row.status == VideoStatus.FAILED:
                res.signals[0].forget(res.stores, vid)
                done["orphan_vectors"] += 1
    for kind in ("vector_count_mismatch", "missing_matrix", "missing_signal_vectors"):
        for item in items[kind]:
            done[kind] += _reingest(res, item.rpartition(":")[2])
    for kind in ("orphan_matrices", "orphan_signal_objects"):
        for key in items[kind]:
            if _still_unreferenced(res, key):
                res.objects.remove(cfg.s3.matrices_bucket, key)
                done[kind] += 1
    for item in items["orphan_signal_vectors"]:
        signal, _, vid = item.partition(":")
        with res.session() as s:
            if videos.lock_video(s, vid) is None or signal not in signal_rows.records_of(s, vid):
                res.signal(signal).forget(res.stores, vid)
                done["orphan_signal_vectors"] += 1
    for key in items["orphan_query_objects"]:
        with res.session() as s:
            gone = jobs.get_job(s, key.rsplit("/", 1)[-1].split(".", 1)[0]) is None
        if gone:
            res.objects.remove(cfg.s3.matrices_bucket, key)
            done["orphan_query_objects"] += 1
    for path in items["unregistered_uploads"]:
        bucket, key = path.split("/", 1)
        info = res.objects.stat(bucket, key)
        if info is not None and register_upload(res, bucket, key, info.size, info.etag):
            done["unregistered_uploads"] += 1
    for vid in items["rows_without_upload"]:
        with res.session() as s:
            row = videos.get_video(s, vid)
            name = row.name if row is not None else None
        if name is not None:
            enqueue_remove(res, vid, name)  # the removal itself checks that the object is really gone
            done["rows_without_upload"] += 1
    return {kind: n for kind, n in done.items() if n}


def _reingest(res: resources.Resources, video_id: str) -> int:
    with res.session() as s:
        row = videos.get_video(s, video_id)
        if row is None or row.status != VideoStatus.INDEXED:
            return 0
        bucket, key, size, etag = row.bucket, row.key, row.size, row.etag
    return int(register_upload(res, bucket, key, size, etag, force=True))


def _still_unreferenced(res: resources.Resources, key: str) -> bool:
    """A per-video object (``videos/<model>/<video_id>/<sha>.npy``) that its video's row, read under the
    video's lock, neither refers to nor may be writing now."""
    parts = key.split("/")
    video_id = parts[2] if len(parts) >= 4 else None
    with res.session() as s:
        row = videos.lock_video(s, video_id) if video_id else None
        if row is None:
            return True
        if row.status in videos.IN_PROGRESS or row.matrix_key == key:
            return False
        return all(r.object_key != key for r in signal_rows.records_of(s, video_id).values())
