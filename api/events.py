"""``/v1/copies``, ``/v1/queries/{id}/report`` and ``/v1/deliveries``: what the platform learns without asking
for it (copies found on upload, webhook deliveries) and the human-readable report of a query."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from api.auth import READ
from api.deps import Res
from api.errors import ApiError
from api.models import RESOURCE_ERRORS
from db import copies, webhooks
from service.events import Event
from service.report import JobNotFound, render_job_report
from service.resources import Resources

router = APIRouter(tags=["events"], responses=RESOURCE_ERRORS)

OFFSET = Query(0, ge=0, le=2**62)


def _page(res: Resources, limit: int) -> int:
    return min(limit, res.settings.api.max_page_size)


@router.get("/v1/copies", dependencies=[READ],
            summary="Copy relations found when videos were indexed (COPYCAT_COPIES__ON_INGEST), newest first;"
                    " with video_id, those of that video, seen from its side")
def list_copies(res: Res, video_id: uuid.UUID | None = None, limit: int = Query(100, ge=1),
                offset: int = OFFSET) -> JSONResponse:
    limit = _page(res, limit)
    with res.session() as s:
        rows = copies.list_copies(s, str(video_id) if video_id else None, limit, offset)
    return JSONResponse({"copies": rows, "limit": limit, "offset": offset})


@router.get("/v1/queries/{job_id}/report", dependencies=[READ], response_class=HTMLResponse,
            summary="The query's HTML report: thumbnails per segment, similarity matrices, scores (one file)")
async def query_report(job_id: uuid.UUID, res: Res) -> HTMLResponse:
    try:
        html = await run_in_threadpool(render_job_report, res, str(job_id))
    except JobNotFound:
        raise ApiError(404, f"no query job {job_id}") from None
    return HTMLResponse(html)


@router.get("/v1/deliveries", dependencies=[READ], summary="Webhook delivery attempts, newest first")
def list_deliveries(res: Res, event_id: uuid.UUID | None = None, event: Event | None = None,
                    limit: int = Query(100, ge=1), offset: int = OFFSET) -> JSONResponse:
    limit = _page(res, limit)
    with res.session() as s:
        rows = webhooks.list_deliveries(s, event_id=str(event_id) if event_id else None, event=event, limit=limit,
                                        offset=offset)
        page = [webhooks.delivery_json(row) for row in rows]
    return JSONResponse({"deliveries": page, "limit": limit, "offset": offset})
