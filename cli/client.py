"""What the command line does on the user's behalf: upload and queue videos, submit queries, wait.

Shared by the ``ingest``, ``query`` and ``evaluate`` commands and by ``demo``, each passing the ``Resources``
its command built. In embedded mode the queued tasks run inside ``.delay()``; in queue mode the waits poll
the database.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery.result import allow_join_result

from db import jobs, videos
from db.models import VideoStatus
from service.resources import Resources
from workers.types import QueryParams

TERMINAL_VIDEO = {VideoStatus.INDEXED, VideoStatus.FAILED}
TERMINAL_JOB = {"done", "failed"}


def ingest_file(res: Resources, path: Path, key: str, *, force: bool = False,
                progress: Callable[[int, int], None] | None = None) -> str:
    """Upload ``path`` to the uploads bucket under ``key`` and queue its ingest unless already indexed.

    A failed video is tried again; ``force`` re-ingests an indexed one too.
    """
    from service.operations import register_upload

    obj = res.objects.put_file(res.settings.s3.uploads_bucket, key, path, "video/octet-stream")
    video_id = videos.video_id_for(obj.bucket, key)
    if progress is not None:
        res.progress_listeners[video_id] = progress
    try:
        register_upload(res, obj.bucket, key, obj.size, obj.etag, retry_failed=True, force=force)
    finally:
        res.progress_listeners.pop(video_id, None)
    return video_id


@contextmanager
def parallel_ingest(res: Resources, files: int) -> Iterator[Callable[[], None]]:
    """Embedded mode: run the queued tasks on ``COPYCAT_EMBED__PARALLEL_VIDEOS`` threads of this process, so
    several videos decode at once (each its own ffmpeg) while sharing one loaded model; the block's uploads go
    on meanwhile, and the model and the Milvus collection get ready on another thread from the start (built
    once: the threads wait for them, see ``Resources.start_warm_up``). Yields ``throttle()``, to call after
    each queued file: it waits while every thread is busy, so uploads stay at most one video ahead. The block
    ends when every task has. Outside embedded mode, or with one thread or one file, tasks run as usual
    (inline, or on the workers).
    """
    warming = res.start_warm_up() if res.settings.embedded else None
    try:
        workers = res.settings.embed.parallel_videos
        if warming is None or workers < 2 or files < 2:
            yield lambda: None
        else:
            with _task_threads(res, workers) as throttle:
                yield throttle
    finally:
        if warming is not None:
            warming.join()  # an early error must not end the process while Milvus Lite is half started


@contextmanager
def _task_threads(res: Resources, workers: int) -> Iterator[Callable[[], None]]:
    """The embedded tasks queued inside the block run on ``workers`` threads; yields ``throttle()``."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="ingest")
    pending: list[Future[object]] = []
    lock = threading.Lock()  # tasks queue follow-on tasks (copy detection) from the pool's threads

    def run(send: Callable[[], object]) -> None:
        with lock:
            pending.append(pool.submit(send))

    def running() -> list[Future[object]]:
        with lock:
            finished = [f for f in pending if f.done()]
            pending[:] = [f for f in pending if not f.done()]
            busy = list(pending)
        for future in finished:  # a task's own failure is recorded on its row; this is one that never ran
            if (error := future.exception()) is not None:
                raise error
        return busy

    def throttle() -> None:
        while len(busy := running()) >= workers:
            wait(busy, return_when=FIRST_COMPLETED)

    res.run_tasks_with(run)
    # Celery's eager apply() sets a process-wide "never block on a result" flag and restores the value it
    # found; tasks overlapping on threads restore each other's and can leave it set for good, after which
    # every result.get() in this process refuses. allow_join_result puts back the value from before the block.
    with allow_join_result():
        try:
            yield throttle
            while busy := running():
                wait(busy)
        finally:
            res.run_tasks_with(None)
            pool.shutdown(wait=True)


def wait_for_videos(res: Resources, ids: list[str], *, timeout: float = 24 * 3600, poll_s: float = 1.0,
                    on_poll: Callable[[int], None] | None = None) -> None:
    """Block until every video is indexed or failed (or deleted)."""
    deadline = time.monotonic() + timeout
    while True:
        with res.session() as s:
            rows = [videos.get_video(s, vid) for vid in ids]
        done = sum(1 for r in rows if r is None or r.status in TERMINAL_VIDEO)
        if on_poll is not None:
            on_poll(done)
        if done == len(ids):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids) - done} of {len(ids)} videos still in progress after {timeout:.0f} s")
        time.sleep(poll_s)


def submit_query(res: Resources, source: str, params: QueryParams, *, callback_url: str | None = None) -> str:
    """Create a query job for a local file (uploaded to the queries bucket) or an ``s3://bucket/key``;
    ``callback_url`` (http or https) gets the job's ``query.done`` webhook."""
    from service.operations import submit_query as submit
    from service.settings import check_webhook_url

    if callback_url:
        check_webhook_url(callback_url)
    if source.startswith("s3://"):
        bucket, _, key = source[5:].partition("/")
        if not bucket or not key:
            raise ValueError(f"expected s3://bucket/key, got {source!r}")
        return submit(res, bucket, key, params, source=source, callback_url=callback_url)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{source} is not a file")
    job_id = str(uuid.uuid4())
    return submit(res, res.settings.s3.queries_bucket, f"{job_id}/{path.name}", params, source=str(path),
                  job_id=job_id, put=lambda bucket, key: res.objects.put_file(bucket, key, path, "video/octet-stream"),
                  callback_url=callback_url)


def wait_for_job(res: Resources, job_id: str, *, timeout: float = 3600.0, poll_s: float = 0.5) -> dict[str, Any]:
    """The job's result JSON once it is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        with res.session() as s:
            job = jobs.get_job(s, job_id)
            result = jobs.result_json(job) if job else None
        if result is None:
            raise LookupError(f"query job {job_id} vanished")
        if result["status"] in TERMINAL_JOB:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"query job {job_id} still {result['status']} after {timeout:.0f} s; "
                               f"check later with: copycat result {job_id}")
        time.sleep(poll_s)
