"""Prometheus text for ``/metrics``, read from the database and the broker at scrape time.

The API process does not run the tasks (in queue mode), so the stage latencies come from the timings each
task records on its row: each scrape reads the rows finished since the previous one and adds their stages
to cumulative histograms (counters from this process's start, as Prometheus expects; a restart of the API
is a counter reset). Rows are read with an overlap, and remembered, so one committed late is not missed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import func, select

from db import fsck as fsck_db
from db import videos
from db.models import JobStatus, QueryJob, Video, VideoStatus
from service.resources import Resources
from tasks.app import queue_lengths
from workers.consistency import KINDS

OVERLAP = timedelta(minutes=5)  # longer than any commit takes after its row's timestamp was set


class StageHistograms:
    """Cumulative per-stage latency histograms of one kind of row (videos: ingest; query jobs: query)."""

    def __init__(self, res: Resources, kind: str, model: Any, finished: Any, done: str, bounds: list[float]) -> None:
        self.res = res
        self.kind, self.model, self.finished, self.done = kind, model, finished, done
        self.bounds = sorted(bounds)
        self.counts: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self.seen: dict[tuple[str, datetime], datetime] = {}
        self.mark: datetime | None = None

    def refresh(self) -> None:
        """Add the rows finished since the last refresh."""
        query = select(self.model.id, self.finished, self.model.timings).where(
            self.model.status == self.done, self.finished.is_not(None))
        if self.mark is not None:
            query = query.where(self.finished >= self.mark - OVERLAP)
        with self.res.session() as s:
            rows = s.execute(query).all()
        for row_id, finished, timings in rows:
            if (row_id, finished) in self.seen:
                continue
            self.seen[(row_id, finished)] = finished
            for stage, seconds in (timings or {}).items():
                if isinstance(seconds, int | float):
                    self._observe(stage, float(seconds))
            self.mark = finished if self.mark is None else max(self.mark, finished)
        if self.mark is not None:
            self.seen = {k: t for k, t in self.seen.items() if t >= self.mark - OVERLAP}

    def _observe(self, stage: str, seconds: float) -> None:
        counts = self.counts.setdefault(stage, [0] * (len(self.bounds) + 1))
        index = next((i for i, bound in enumerate(self.bounds) if seconds <= bound), len(self.bounds))
        counts[index] += 1
        self.sums[stage] = self.sums.get(stage, 0.0) + seconds

    def add_to(self, family: HistogramMetricFamily) -> None:
        for stage, counts in sorted(self.counts.items()):
            cumulative, buckets = 0, []
            for bound, count in zip([*self.bounds, float("inf")], counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
            family.add_metric([self.kind, stage], buckets, self.sums[stage])


class CopycatCollector(Collector):
    """Videos and query jobs per state, messages waiting per queue, per-stage latencies."""

    def __init__(self, res: Resources, bounds: list[float]) -> None:
        self.res = res
        self.lock = threading.Lock()
        self.histograms = [
            StageHistograms(res, "ingest", Video, Video.indexed_at, VideoStatus.INDEXED, bounds),
            StageHistograms(res, "query", QueryJob, QueryJob.finished_at, JobStatus.DONE, bounds),
        ]

    def collect(self) -> Iterator[Metric]:
        with self.res.session() as s:
            video_states = videos.count_by_status(s)
            job_states = dict(s.execute(select(QueryJob.status, func.count()).group_by(QueryJob.status)).all())
            last_fsck = fsck_db.latest_run(s)
            fsck_counts = dict(last_fsck.counts) if last_fsck else {}
            fsck_at = last_fsck.started_at.timestamp() if last_fsck else None
        yield _by_state("copycat_videos", "Videos per state", video_states, [s.value for s in VideoStatus])
        yield _by_state("copycat_query_jobs", "Query jobs per state", job_states, [s.value for s in JobStatus])
        cfg = self.res.settings
        if not cfg.embedded:
            waiting = GaugeMetricFamily("copycat_queue_messages", "Messages waiting per Celery queue", labels=["queue"])
            try:
                lengths = queue_lengths(cfg)
            except RedisError:  # the broker is down: /readyz says so; the other metrics still answer
                lengths = {}
            for queue, count in lengths.items():
                if count is not None:
                    waiting.add_metric([queue], count)
            yield waiting
        found = GaugeMetricFamily("copycat_fsck_inconsistencies", "Inconsistencies per kind found by the last"
                                  " consistency check (copycat fsck)", labels=["kind"])
        for kind in KINDS:
            if fsck_at is not None:
                found.add_metric([kind], int(fsck_counts.get(kind, 0)))
        yield found
        if fsck_at is not None:
            yield GaugeMetricFamily("copycat_fsck_last_run_timestamp_seconds", "When the last consistency check"
                                    " ran (Unix time)", value=fsck_at)
        stages = HistogramMetricFamily("copycat_stage_seconds", "Time per pipeline stage of finished work, as"
                                       " recorded on its row", labels=["kind", "stage"])
        with self.lock:
            for histogram in self.histograms:
                histogram.refresh()
                histogram.add_to(stages)
        yield stages


def _by_state(name: str, text: str, counts: dict[str, int], states: list[str]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=["state"])
    for state in states:
        family.add_metric([state], counts.get(state, 0))
    return family
