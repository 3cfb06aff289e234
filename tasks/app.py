"""The Celery application, built from ``Settings``.

Queues keep model work apart from everything else, so each scales on its own:

- ``embed``: the ingest of an upload (decode, embed, frame matrix, Milvus vectors, DnS) and the embedding
  of queries. Runs where the model runs (GPU workers); frames never cross the broker.
- ``index``: removals of deleted uploads (Milvus deletes, objects, rows; CPU workers).
- ``query``: batched Milvus search, candidate selection and temporal localisation (CPU or GPU).
- ``ops``: the reconciliation sweep and bucket events (one small worker, plus beat).

Messages are JSON with ids only. ``acks_late`` plus ``reject_on_worker_lost`` hand a task to another
worker when its process dies mid-way; every task is idempotent, so running one twice is harmless.
With no broker configured, tasks run in the calling process (the embedded mode).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from tasks.settings import Settings

QUEUES = ("embed", "index", "query", "ops")

ROUTES = {
    "copycat.ingest.embed": {"queue": "embed"},
    "copycat.query.embed": {"queue": "embed"},
    "copycat.ingest.remove": {"queue": "index"},
    "copycat.dns.index": {"queue": "embed"},
    "copycat.query.match": {"queue": "query"},
    "copycat.ops.*": {"queue": "ops"},
}

TASK_MODULES = ("tasks.ingest", "tasks.query", "tasks.ops", "tasks.dns")


def create_app(settings: Settings) -> Celery:
    broker = settings.broker
    app = Celery("copycat", broker=broker.url or "memory://localhost//",
                 backend=broker.result_backend or broker.url or None, include=list(TASK_MODULES))
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="ops",
        task_routes=ROUTES,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        worker_prefetch_multiplier=broker.prefetch_multiplier,
        task_time_limit=broker.task_time_limit_s,
        task_soft_time_limit=max(broker.task_time_limit_s - 30, 1),
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": broker.task_time_limit_s + 600},
        task_always_eager=settings.embedded,
        task_eager_propagates=False,
        timezone="UTC",
        beat_schedule={
            "reconcile-buckets": {"task": "copycat.ops.reconcile", "schedule": float(broker.reconcile_interval_s)},
        },
    )
    return app


def queue_lengths(broker_url: str) -> dict[str, int | None]:
    """Messages waiting per queue (Redis broker only; None elsewhere)."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return {queue: None for queue in QUEUES}
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=2)
    try:
        return {queue: int(client.llen(queue)) for queue in QUEUES}
    finally:
        client.close()
