"""Task base classes: retry policy for transient faults, and failure recording in one place.

Bad input (``InputError``) and misconfiguration (``ConfigError``) fail at once: Celery logs them at INFO
without a traceback (``throws``). Transient faults are retried with exponential backoff and jitter, up
to ``COPYCAT_BROKER__MAX_RETRIES`` times. Whatever finally fails lands in the row of the video or job the
task was about, with a code and a message, and the worker carries on with the next task.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from db import jobs, videos
from db.session import session_scope
from tasks import context
from workers.errors import ConfigError, CopycatError, InputError, TransientError

log = logging.getLogger(__name__)

TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "throws": (InputError, ConfigError),
    "autoretry_for": (TransientError,),
    "retry_backoff": 2,
    "retry_jitter": True,
    "acks_late": True,
}


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
        return context.settings().broker.max_retries

    @property
    def retry_backoff_max(self) -> int:  # type: ignore[override]
        return context.settings().broker.retry_backoff_max_s


class VideoTask(CopycatTask):
    """A task whose first argument is a video id; failures are written to that video's row."""

    abstract = True

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        video_id = args[0] if args else kwargs.get("video_id")
        code, detail = failure_reason(exc, self.request.retries)
        log.warning("video %s failed in %s: %s: %s", video_id, self.name, code, detail)
        with session_scope(context.engine()) as session:
            videos.mark_failed(session, video_id, code, detail)


class JobTask(CopycatTask):
    """A task whose first argument is a query job id; failures are written to that job's row."""

    abstract = True

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        job_id = args[0] if args else kwargs.get("job_id")
        code, detail = failure_reason(exc, self.request.retries)
        log.warning("query job %s failed in %s: %s: %s", job_id, self.name, code, detail)
        with session_scope(context.engine()) as session:
            jobs.mark_failed(session, job_id, code, detail)
