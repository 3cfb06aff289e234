"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (each dependency named, ok or error),
``/metrics`` (Prometheus text; a read key, as for every other read)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.auth import READ
from api.deps import Res
from api.models import Readiness, error_responses
from service.resources import Resources
from workers.stores.milvus import call

router = APIRouter(tags=["operations"])
CHECKS = ("database", "broker", "s3", "milvus")


@router.get("/healthz", summary="The API process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database, broker, S3 and Milvus reachable (503 when one is not)",
            response_model=Readiness, responses={503: {"model": Readiness, "description": "a dependency is down"}})
def readyz(res: Res) -> JSONResponse:
    timeout = res.settings.api.ready_timeout_s
    pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
    try:
        futures = {name: pool.submit(_timed, CHECK_FUNCTIONS[name], res) for name in CHECKS}
        deadline = time.monotonic() + timeout
        checks = {}
        for name, future in futures.items():
            try:
                checks[name] = future.result(timeout=max(deadline - time.monotonic(), 0.0))
            except FutureTimeout:
                checks[name] = {"status": "error", "error": f"no answer within {timeout:g} s"}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    ready = all(check["status"] == "ok" for check in checks.values())
    return JSONResponse({"status": "ok" if ready else "error", "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", dependencies=[READ], response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
                       **error_responses(401, 403, 503)})
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)


def _timed(check: Callable[[Resources], str | None], res: Resources) -> dict[str, object]:
    started = time.perf_counter()
    try:
        detail = check(res)
    except Exception as exc:  # any failure is the answer: the probe reports it instead of raising
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]}
    result: dict[str, object] = {"status": "ok", "seconds": round(time.perf_counter() - started, 4)}
    if detail:
        result["detail"] = detail
    return result


def _database(res: Resources) -> None:
    with res.session() as s:
        s.execute(text("SELECT 1"))


def _broker(res: Resources) -> str | None:
    if res.settings.embedded:
        return "embedded: tasks run in the API process"
    with res.app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=res.settings.api.ready_timeout_s)
    return None


def _s3(res: Resources) -> None:
    res.objects.ensure_bucket(res.settings.s3.uploads_bucket)


def _milvus(res: Resources) -> str:
    index = res.frame_index
    return f"Milvus {call(index.client.get_server_version, 'get_server_version')}"


CHECK_FUNCTIONS: dict[str, Callable[[Resources], str | None]] = {"database": _database, "broker": _broker, "s3": _s3,
                                                                 "milvus": _milvus}
