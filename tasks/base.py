"""Task base classes: retry policy for transient faults, and failure recording in one place.

Bad input (``InputError``) and misconfiguration (``ConfigError``) fail at once: Celery logs them at INFO
without a traceback (``throws``). Transient faults are retried with exponential backoff and jitter, up
to ``COPYCAT_BROKER__MAX_RETRIES`` times. Whatever finally fails lands in the row of the video or job the
task was about, with a code and a message, and the worker carries on with the next task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task
from sqlalchemy.orm import Session

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


class RecordedTask(CopycatTask):
    """A task about one row (first argument: its id); a final failure is written to that row."""

    abstract = True
    subject = "row"
    record_failure: Callable[[Session, str, str, str], object]

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        object_id = args[0] if args else next(iter(kwargs.values()), None)
        code, detail = failure_reason(exc, self.request.retries)
        log.warning("%s %s failed in %s: %s: %s", self.subject, object_id, self.name, code, detail)
        with session_scope(context.engine()) as session:
            type(self).record_failure(session, object_id, code, detail)
        self.after_failure(object_id)

    def after_failure(self, object_id: str) -> None:
        """Clean-up once the failure is recorded (nothing by default)."""


class VideoTask(RecordedTask):
    """A task about a video; failures go to ``videos.failure_code``/``failure_detail``.

    A failed video is taken out of the search (its vectors deleted, best effort): after a bad re-upload,
    the old footage must not keep matching under a name whose object no longer holds it.
    """

    abstract = True
    subject = "video"
    record_failure = staticmethod(videos.mark_failed)

    def after_failure(self, object_id: str) -> None:
        try:
            context.vectors().delete_video(object_id)
        except CopycatError as exc:
            log.warning("video %s: vectors not removed after its failure (%s); it stays out of results since "
                        "only indexed videos are localised", object_id, exc)


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
    record_failure = staticmethod(jobs.mark_failed)
