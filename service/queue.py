"""What goes on the queues: each task's name, and ``enqueue`` with the options each one needs.

Callers queue work by name through the functions here, on the app of the ``Resources`` they pass, so nothing
outside ``tasks/`` imports a task module; the task modules register the same names (``tasks/app.py`` routes
them to their queues).
"""

from __future__ import annotations

from typing import Any

from service.resources import Resources

INGEST = "copycat.ingest.embed"
REMOVE = "copycat.ingest.remove"
EMBED_QUERY = "copycat.query.embed"
MATCH_QUERY = "copycat.query.match"
DETECT_COPIES = "copycat.copies.detect"
BACKFILL_SIGNAL = "copycat.signals.backfill"


def enqueue(res: Resources, task_name: str, *args: str, name: str, **options: Any) -> None:
    """Queue ``task_name(*args)`` on the app of ``res``; Flower shows ``name`` next to the ids. ``options`` go to
    ``apply_async`` (per-call time limits). In queue mode the message is sent by name (this process need not
    have imported the task's module: the API does not). In embedded mode the task runs in this process, and
    the process's runner (``Resources.run_tasks_with``) may take the call instead, so an HTTP request answers
    before the work is done."""
    app = res.app
    call = {"args": list(args), "argsrepr": f"({', '.join(repr(a) for a in args)}, name={name!r})", **options}
    if not res.settings.embedded:
        app.send_task(task_name, **call)
        return
    task = app.tasks[task_name]

    def send() -> object:
        return task.apply_async(**call)

    if res.embedded_runner is not None:
        res.embedded_runner(send)
    else:
        send()


def enqueue_ingest(res: Resources, video_id: str, name: str) -> None:
    """Queue the ingest of a registered video.

    The call's Celery limits leave room for the decode limit of the longest video admitted (the decode limit
    itself scales with each video's probed duration, ``DecodeOptions.timeout_for``), so a long upload is
    stopped by that limit, with its reason, not killed by Celery's.
    """
    limit = res.settings.ingest_time_limit_s
    enqueue(res, INGEST, video_id, name=name, time_limit=limit, soft_time_limit=max(limit - 30, 1))


def enqueue_remove(res: Resources, video_id: str, name: str) -> None:
    enqueue(res, REMOVE, video_id, name=name)


def enqueue_query(res: Resources, job_id: str, name: str) -> None:
    enqueue(res, EMBED_QUERY, job_id, name=name)


def enqueue_match(res: Resources, job_id: str, name: str) -> None:
    enqueue(res, MATCH_QUERY, job_id, name=name)


def enqueue_copy_detection(res: Resources, video_id: str, name: str) -> None:
    enqueue(res, DETECT_COPIES, video_id, name=name)


def enqueue_backfill(res: Resources, signal: str, video_id: str, name: str) -> None:
    """Compute one signal's evidence for an indexed video that lacks it (the signal was switched on later)."""
    enqueue(res, BACKFILL_SIGNAL, signal, video_id, name=name)
