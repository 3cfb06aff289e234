"""Embedded tasks on threads (``cli.client``): eager tasks that overlap must not leave Celery's process-wide
"never wait for a result" flag set, or every later ``result.get()`` in the process refuses."""

from __future__ import annotations

import threading
from pathlib import Path

from celery import Celery
from celery._state import task_join_will_block

from cli.client import _task_threads
from service.resources import Resources
from service.settings import Settings


def test_overlapping_eager_tasks_leave_results_waitable(tmp_path: Path) -> None:
    app = Celery("threads-test", set_as_current=False)
    app.conf.task_always_eager = True
    first_started, second_started, first_done = threading.Event(), threading.Event(), threading.Event()

    @app.task
    def first() -> None:
        first_started.set()
        second_started.wait(5)

    @app.task
    def second() -> None:
        second_started.set()
        first_done.wait(5)

    def later() -> None:
        first_started.wait(5)
        second.delay()

    # first enters (flag set, saved unset), second enters (saved set), first leaves (restores unset), second
    # leaves last and restores "set": Celery's own bookkeeping leaves the flag set after both are done.
    with _task_threads(Resources(Settings(home=tmp_path)), 2):
        threads = [threading.Thread(target=first.delay), threading.Thread(target=later)]
        for thread in threads:
            thread.start()
        threads[0].join(10)
        first_done.set()
        threads[1].join(10)
    assert not task_join_will_block()
