"""Task base classes: the retry policy, and every status change of a video or a query job.

Bad input (``InputError``) and misconfiguration (``ConfigError``) fail at once: Celery logs them at INFO
without a traceback (``throws``). Transient faults are retried with exponential backoff and jitter, up
to ``COPYCAT_BROKER__MAX_RETRIES`` times. Whatever finally fails lands in the row of the video or job the
task was about, with a code and a message, and the worker carries on with the next task.

Task bodies never write a status themselves: they call the lifecycle methods here (``claim``,
``progress``, ``finish``), which call the named transitions in ``db/``; a final failure is announced
as a webhook event (``video.failed``, ``query.done``) once it is recorded. The pipeline stages in
``workers/`` know nothing of either; they report progress through a plain callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ClassVar

from celery import Task
from sqlalchemy.orm import Session

from db import copies, jobs, videos
from db.failures import mark_failed
from db.models import Failable, QueryJob, Video
from service import events, resources
from service.resources import session
from service.video_rows import video_event
from workers.errors import ConfigError, CopycatError, InputError, TransientError
from workers.extract import ProgressFn
from workers.signals.registry import SIGNALS

log = logging.getLogger(__name__)

TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "throws": (InputError, ConfigError),
    "autoretry_for": (TransientError,),
    "retry_backoff": 2,
    "retry_jitter": True,
    "acks_late": True,
}
PROGRESS_EVERY_S = 2.0
"""Least time between two progress reports of a running task (Celery state, CLI bar)."""


def failure_reason(exc: BaseException, retries: int = 0) -> tuple[str, str]:
    """(code, message) for a failed task, worded for the person reading ``copycat videos``."""
    if isinstance(exc, TransientError):
        return exc.code, f"gave up after {retries} retries: {exc}"
    if isinstance(exc, CopycatError):
        return exc.code, str(exc)
    return "internal", f"{type(exc).__name__}: {exc}"


class CopycatTask(Task):
    """Retries and backoff read from the settings when the task runs, not when it is imported."""

    abstract = True

    @property
    def max_retries(self) -> int:  # type: ignore[override]
        return resources.current().settings.broker.max_retries

    @property
    def retry_backoff_max(self) -> int:  # type: ignore[override]
        return resources.current().settings.broker.retry_backoff_max_s


class RecordedTask(CopycatTask):
    """A task about one row (first argument: its id); a final failure is written to that row."""

    abstract = True
    subject = "row"
    row_type: ClassVar[type[Failable]]

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        object_id = args[0] if args else next(iter(kwargs.values()), None)
        code, detail = failure_reason(exc, self.request.retries)
        log.warning("%s %s failed in %s: %s: %s", self.subject, object_id, self.name, code, detail)
        if not isinstance(object_id, str):
            return  # a malformed message names no row
        with session() as s:
            found = mark_failed(s, self.row_type, object_id, code, detail)
        self.after_failure(object_id)
        if found:
            self.announce_failure(object_id)

    def after_failure(self, object_id: str) -> None:
        """Clean-up once the failure is recorded (nothing by default)."""

    def announce_failure(self, object_id: str) -> None:
        """Tell the webhooks (nothing by default)."""

    def renew_lease(self, s: Session, object_id: str, run_id: str, lease: timedelta) -> bool:
        """Extend the run's lease on its row (False when the run lost it); see ``leased``."""
        raise NotImplementedError

    @contextmanager
    def leased(self, object_id: str) -> Iterator[None]:
        """Renew the row's lease while the block runs (a thread, so downloads and long inserts count too):
        if this process dies, the lease runs out and the recovery check queues the row again."""
        stop = threading.Event()
        period = self._lease().total_seconds() / 4
        run_id, lease = self._run_id(), self._lease()

        def heartbeat() -> None:
            while not stop.wait(period):
                try:
                    with session() as s:
                        if not self.renew_lease(s, object_id, run_id, lease):
                            return
                except CopycatError as exc:  # the database is down: the run goes on, the lease may lapse
                    log.warning("%s %s: lease not renewed (%s)", self.subject, object_id, exc)

        thread = threading.Thread(target=heartbeat, name=f"lease-{object_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _run_id(self) -> str:
        """The run's identity: the task id, which a retry or a redelivery after a worker's death keeps."""
        return str(self.request.id or "direct")

    def _lease(self) -> timedelta:
        return timedelta(seconds=resources.current().settings.broker.lease_s)

    def reporter(self, on_first: Callable[[], None] | None = None, *,
                 forward: ProgressFn | None = None) -> ProgressFn:
        """A progress callback for a stage: frames done/total in the task's Celery state (seen in Flower),
        at most every ``PROGRESS_EVERY_S``; ``on_first`` runs once, at the first report; ``forward`` (the
        CLI's bar in embedded mode) gets every report."""
        last = [0.0]
        first = [on_first]

        def report(done: int, total: int) -> None:
            if first[0] is not None:
                first[0]()
                first[0] = None
            if forward is not None:
                forward(done, total)
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or done >= total:
                last[0] = now
                if self.request.id and not self.request.is_eager:
                    self.update_state(state="PROGRESS", meta={"done": done, "total": total})

        return report


class VideoTask(RecordedTask):
    """A task about a video; failures go to ``videos.failure_code``/``failure_detail``.

    A failed video is taken out of the search (its vectors deleted, best effort): after a bad re-upload,
    the old footage must not keep matching under a name whose object no longer holds it.
    """

    abstract = True
    subject = "video"
    row_type = Video

    def claim(self, video_id: str, model: str, dim: int) -> Video | None:
        """Start a run (``decoding``) holding the video's lease; None when there is nothing to do (row gone,
        duplicate message, or another live run holds the lease)."""
        with session() as s:
            video = videos.claim_for_ingest(s, video_id, model=model, dim=dim, retrying=bool(self.request.retries),
                                            run_id=self._run_id(), lease=self._lease())
            if video is None:
                log.info("video %s is gone, past embedding or in another live run; ingest message ignored",
                         video_id)
            return video

    def renew_lease(self, s: Session, object_id: str, run_id: str, lease: timedelta) -> bool:
        return videos.renew_lease(s, object_id, run_id, lease)

    def embedding(self, video_id: str) -> None:
        """Frames are flowing: ``embedding`` (the first progress report of a run); a row deleted meanwhile is
        left alone (the run's result is dropped when it tries to store it)."""
        with session() as s:
            videos.mark_embedding(s, video_id)

    @contextmanager
    def dropped_if_superseded(self, video_id: str, etag: str | None) -> Iterator[None]:
        """Bad input in the block is the video's failure, unless its bytes are no longer the ones this run read
        (replaced or deleted meanwhile): the newer upload has its own run, and this run's failure is dropped."""
        try:
            yield
        except InputError:
            with session() as s:
                row = videos.get_video(s, video_id)
                if row is not None and row.etag == etag:
                    raise
            log.info("video %s was replaced or deleted while a failing run read it; failure dropped", video_id)

    def after_failure(self, object_id: str) -> None:
        """Vectors out of the search, and the copy relations of the footage it no longer holds."""
        res = resources.current()
        try:
            for name in SIGNALS:  # those switched off too: none of them may keep matching the footage it lost
                res.signal(name).forget(res.stores, object_id)
        except CopycatError as exc:
            log.warning("video %s: vectors not removed after its failure (%s); it stays out of results since "
                        "only indexed videos are localised", object_id, exc)
        with session() as s:
            copies.forget_video(s, object_id)

    def announce_failure(self, object_id: str) -> None:
        with session() as s:
            video = videos.get_video(s, object_id)
            data = video_event(video) if video is not None else None
        if data is not None:
            events.emit(resources.current(), "video.failed", data)


class EnrichmentTask(CopycatTask):
    """Optional extra work on an indexed video (DnS): a failure is logged and the video stays searchable."""

    abstract = True

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        code, detail = failure_reason(exc, self.request.retries)
        log.error("video %s: %s failed, the video stays indexed without it: %s: %s",
                  args[0] if args else kwargs, self.name, code, detail)


class JobTask(RecordedTask):
    """A task about a query job; failures go to ``query_jobs.failure_code``/``failure_detail``."""

    abstract = True
    subject = "query job"
    row_type = QueryJob

    def start(self, job_id: str, model: str) -> QueryJob | None:
        """The job is running under this run's lease (a re-run starts from a clean slate); None when there is
        nothing to do (job gone or ended, or another live run has it)."""
        with session() as s:
            job = jobs.start_job(s, job_id, run_id=self._run_id(), lease=self._lease(),
                                 retrying=bool(self.request.retries), model=model, timings={})
            if job is None:
                log.info("query job %s is gone, ended or in another live run; message ignored", job_id)
            return job

    def claim_match(self, job_id: str) -> QueryJob | None:
        with session() as s:
            job = jobs.claim_match(s, job_id, run_id=self._run_id(), lease=self._lease())
            if job is None:
                log.info("query job %s is gone, not embedded, ended or in another live run; message ignored",
                         job_id)
            return job

    def release(self, job_id: str) -> None:
        with session() as s:
            jobs.release_lease(s, job_id)

    def renew_lease(self, s: Session, object_id: str, run_id: str, lease: timedelta) -> bool:
        return jobs.renew_lease(s, object_id, run_id, lease)

    def announce_failure(self, object_id: str) -> None:
        announce_job(object_id)


def announce_job(job_id: str) -> None:
    """``query.done`` for a job that ended (done or failed): its result JSON, to the endpoints and its callback."""
    with session() as s:
        job = jobs.get_job(s, job_id)
        found = (jobs.result_json(job), job.callback_url) if job is not None else None
    if found is not None:
        events.emit(resources.current(), "query.done", found[0], callback_url=found[1])
