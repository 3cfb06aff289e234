"""A query job's HTML report: reads what ``workers.report`` draws (frames, matrices) from storage.

``render_job_report(res, job_id)`` returns the page as bytes (``copycat report`` writes it; the API serves it).
Thumbnails come from the query object and each reference's upload, downloaded into scratch and opened only
after ``probe`` has admitted them, exactly as ingest opens uploads (``workers.admission``). Whatever is
gone (a deleted reference, a query object removed from its bucket, a file that no longer decodes) leaves a
note in the report instead of failing it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from db import jobs, videos
from service.resources import Resources
from workers.decode import frames_at, probe
from workers.errors import CopycatError
from workers.localise import similarity
from workers.matching import informative
from workers.report import JobReport, MatchReport, SegmentFrames, render_report, sample_times
from workers.stores.objects import load_matrix
from workers.types import Segment, VideoInfo

log = logging.getLogger(__name__)


class JobNotFound(LookupError):
    """No query job has this id."""


def render_job_report(res: Resources, job_id: str) -> bytes:
    """The report of one query job as UTF-8 HTML (any state: a running or failed job says so)."""
    cfg = res.settings
    fps = cfg.decode.fps
    with res.session() as s:
        job = jobs.get_job(s, job_id)
        if job is None:
            raise JobNotFound(f"no query job {job_id}")
        result = jobs.result_json(job)
        refs = videos.videos_by_ids(s, [m["video_id"] for m in result["matches"]])
        references = {vid: (v.bucket, v.key, v.name, v.matrix_bucket, v.matrix_key) for vid, v in refs.items()}
        header = JobReport(job_id=job.id, name=job.name, query=job.source, status=job.status, error=result["error"],
                           created=job.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"), timings=result["timings"])
        query_object, query_matrix = (job.bucket, job.key, job.name), job.matrix_key
    query_views = _matrix(res, cfg.s3.matrices_bucket, query_matrix, header.notes, "the query's descriptors")
    with tempfile.TemporaryDirectory(dir=_scratch(cfg.scratch_dir)) as folder:
        query_file = _Source(res, Path(folder) / "query", *query_object)
        matches = []
        for match in result["matches"]:
            segments = [SegmentFrames(segment=_segment(s), query_times=sample_times(s["query_start"], s["query_end"],
                                                                                    fps),
                                      ref_times=sample_times(s["ref_start"], s["ref_end"], fps))
                        for s in match["segments"]]
            report = MatchReport(video_id=match["video_id"], name=match["name"], score=match["score"],
                                 segments=segments, video_similarity=match.get("video_similarity"))
            ref = references.get(match["video_id"])
            if ref is None:
                report.notes.append("the reference video was deleted since the query ran")
            else:
                reference = _matrix(res, ref[3], ref[4], report.notes, "the reference's descriptors")
                if query_views is not None and reference is not None:
                    report.similarity = similarity(query_views, reference, cfg.localise.device,
                                                   query_informative=informative(query_views),
                                                   reference_informative=informative(reference))
            ref_file = _Source(res, Path(folder) / f"ref{len(matches)}", *ref[:3]) if ref else None
            for seg in segments:
                seg.query_frames = query_file.frames(seg.query_times, cfg.report.thumbnail_height, header.notes)
                if ref_file is not None:
                    seg.ref_frames = ref_file.frames(seg.ref_times, cfg.report.thumbnail_height, report.notes)
            matches.append(report)
    html = render_report(header, matches, fps=fps, matrix_max_px=cfg.report.matrix_max_px)
    return html.encode("utf-8")


class _Source:
    """One video object, downloaded and probed on first use; a failure becomes one note and no frames."""

    def __init__(self, res: Resources, folder: Path, bucket: str, key: str, name: str) -> None:
        self.res, self.folder, self.bucket, self.key, self.name = res, folder, bucket, key, name
        self.path = folder / f"input{Path(name).suffix[:16]}"
        self.info: VideoInfo | None = None
        self.failed = False

    def frames(self, times: tuple[float, ...], height: int, notes: list[str]) -> list[np.ndarray | None]:
        if self.failed:
            return [None] * len(times)
        options = self.res.decode_options
        try:
            if self.info is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.res.objects.get_file(self.bucket, self.key, self.path)
                self.info = probe(self.path, self.name, options.limits)
            return list(frames_at(self.path, self.info, times, height, options, label=self.name))
        except CopycatError as exc:
            self.failed = True
            notes.append(f"frames of {self.name} unavailable: {exc}")
            log.info("report: frames of %s unavailable: %s", self.name, exc)
            return [None] * len(times)


def _matrix(res: Resources, bucket: str | None, key: str | None, notes: list[str],
            what: str) -> np.ndarray | None:
    if not bucket or not key:
        notes.append(f"{what} are not stored (the job did not get that far)")
        return None
    try:
        return load_matrix(res.objects, bucket, key).astype(np.float32)
    except CopycatError as exc:
        notes.append(f"{what} are unavailable: {exc}")
        return None


def _segment(data: dict[str, Any]) -> Segment:
    return Segment(data["query_start"], data["query_end"], data["ref_start"], data["ref_end"], data["score"],
                   tuple(data.get("signals", ())))


def _scratch(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
