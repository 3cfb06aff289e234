"""Celery signal handlers: logging set-up and per-process resources."""

from __future__ import annotations

import logging

from celery.signals import after_setup_logger, worker_process_init

from tasks import context


@worker_process_init.connect
def _fresh_resources(**_: object) -> None:
    """A forked worker process opens its own connections (kept light: Celery gives this 4 seconds)."""
    context.reset()


@after_setup_logger.connect
def _quiet_libraries(logger: logging.Logger, **_: object) -> None:
    for name in ("urllib3", "pymilvus", "milvus_lite", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Milvus Lite's gRPC server logs pymilvus's optional AllocTimestamp probe as an error.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
