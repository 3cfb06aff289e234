"""The HTTP API: a thin FastAPI front over the same functions as the ``copycat`` commands.

``create_api(settings)`` builds the app; ``copycat api`` serves it with uvicorn. Each resource is one
router in ``ROUTERS`` (adding one is one line). In queue mode a request only records rows, stores objects
and queues tasks for the workers. In embedded mode (no broker) the tasks run in this process, on one
background thread, one at a time (SQLite and Milvus Lite have one writer), so a request still answers at
once; tasks still waiting when the API stops are dropped (their rows stay ``pending``; upload again).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api import events, health, keys, queries, videos
from api.errors import BodyLimit, install_error_handlers
from api.metrics import CopycatCollector
from service import resources
from service.events import stop_in_process_deliveries
from service.resources import Resources
from service.settings import Settings

log = logging.getLogger(__name__)

ROUTERS = (health.router, videos.router, queries.router, keys.router, events.router)

DESCRIPTION = """Find copied video segments over HTTP.

Every route but `/healthz` and `/readyz` needs an API key (`copycat keys create --role read|write|admin`),
sent as `Authorization: Bearer KEY`. `read` keys may GET, `write` keys may also POST and DELETE, `admin` keys
may also manage keys. Errors are `{"error": {"code", "message"}}`.
"""


def create_api(settings: Settings) -> FastAPI:
    """The app over this process's resources, built from ``settings`` (an entry point: the tasks that run in
    this process in embedded mode use the same ones); routes get them from ``app.state.resources``."""
    res = resources.use(settings)
    app = FastAPI(title="Copycat", version=version("copycat"), description=DESCRIPTION, lifespan=_lifespan)
    app.state.resources = res
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CopycatCollector(res, settings.api.metrics_buckets_s))
    app.state.metrics = registry
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_upload_mib * 2**20)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Embedded mode: queued tasks go to one background thread while the app runs."""
    res: Resources = app.state.resources
    if not res.settings.embedded:
        yield
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copycat-tasks")
    res.run_tasks_with(lambda send: pool.submit(_run, send))
    log.info("embedded mode: tasks run in this process, one at a time")
    try:
        yield
    finally:
        res.run_tasks_with(None)
        pool.shutdown(wait=True, cancel_futures=True)
        stop_in_process_deliveries(res)  # retries still planned are logged, not waited for


def _run(send: Callable[[], object]) -> None:
    try:
        send()  # eager: runs the task here; a task failure is recorded on its row by the task base
    except Exception:
        log.exception("an in-process task crashed")
