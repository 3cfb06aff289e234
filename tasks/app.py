"""The Celery application, built from ``Settings``.

Queues keep model work apart from everything else, so each scales on its own:

- ``embed``: the ingest of an upload (decode, embed, frame matrix, Milvus vectors, DnS) and the embedding
  of queries. Runs where the model runs (GPU workers); frames never cross the broker.
- ``index``: removals of deleted uploads (Milvus deletes, objects, rows; CPU workers).
- ``query``: batched Milvus search, candidate selection and temporal localisation (CPU or GPU), for query jobs
  and for the copy detection of newly indexed videos.
- ``ops``: the reconciliation sweep, bucket events and webhook deliveries (one small worker, plus beat).

Messages are JSON with ids only. ``COPYCAT_BROKER__NAMESPACE`` prefixes every broker key, so two stacks
on one Redis never consume each other's messages. ``acks_late`` plus ``reject_on_worker_lost`` hand a task to another
worker when its process dies mid-way; every task is idempotent, so running one twice is harmless.
With no broker configured, tasks run in the calling process (the embedded mode).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from service.settings import Settings

QUEUES = ("embed", "index", "query", "ops")

ROUTES = {
    "copycat.ingest.embed": {"queue": "embed"},
    "copycat.query.embed": {"queue": "embed"},
    "copycat.ingest.remove": {"queue": "index"},
    "copycat.signals.backfill": {"queue": "embed"},
    "copycat.query.match": {"queue": "query"},
    "copycat.copies.*": {"queue": "query"},
    "copycat.ops.*": {"queue": "ops"},
}

TASK_MODULES = ("tasks.ingest", "tasks.query", "tasks.maintenance", "tasks.backfill", "tasks.fsck", "tasks.deliveries",
                "tasks.copies")


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
        broker_transport_options=transport_options(settings),
        task_always_eager=settings.embedded,
        task_eager_propagates=False,
        timezone="UTC",
        beat_schedule={
            "reconcile-buckets": {"task": "copycat.ops.reconcile", "schedule": float(broker.reconcile_interval_s)},
            "recover-dead-runs": {"task": "copycat.ops.recover", "schedule": float(broker.recover_interval_s)},
            "check-consistency": {"task": "copycat.ops.fsck", "schedule": float(settings.fsck.interval_s)},
        },
    )
    return app


def transport_options(settings: Settings) -> dict[str, object]:
    """Broker options: the redelivery timeout, and the stack's key prefix (Redis) that keeps stacks sharing
    one broker apart: queues, unacknowledged messages and the workers' control channel all carry it."""
    options: dict[str, object] = {"visibility_timeout": settings.ingest_time_limit_s + 600}
    if settings.broker.namespace:
        options["global_keyprefix"] = settings.broker.namespace
    return options


def queue_lengths(cfg: Settings) -> dict[str, int | None]:
    """Messages waiting per queue (Redis broker only; None elsewhere), in the stack's namespace."""
    url = cfg.broker.url
    if not url.startswith(("redis://", "rediss://")):
        return {queue: None for queue in QUEUES}
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return {queue: int(client.llen(cfg.broker.namespace + queue)) for queue in QUEUES}
    finally:
        client.close()
