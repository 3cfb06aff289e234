"""Celery signal handlers: logging set-up and per-process resources."""

from __future__ import annotations

import logging

from celery.signals import after_setup_logger, worker_process_init

from service import resources
from service.logs import quiet_libraries


@worker_process_init.connect
def _fresh_resources(**_: object) -> None:
    """A forked worker process opens its own connections (kept light: Celery gives this 4 seconds)."""
    resources.current().after_fork()


@after_setup_logger.connect
def _quiet_libraries(logger: logging.Logger, **_: object) -> None:
    quiet_libraries()
