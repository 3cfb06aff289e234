"""``/v1/queries``: submit a query video (upload or object) and read its result.

The result is ``db.jobs.result_json``: byte for byte the JSON that ``copycat query --json`` prints.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.auth import READ, WRITE
from api.bodies import Upload, body_spec, read_body
from api.deps import Res
from api.errors import ApiError
from api.models import RESOURCE_ERRORS, JobAccepted, QueryObject, QueryOptions, QueryResult
from db import jobs
from service.operations import submit_query
from service.resources import Resources
from workers.errors import InvalidObjectKey

router = APIRouter(prefix="/v1/queries", tags=["queries"], responses=RESOURCE_ERRORS)


@router.post("", status_code=202, response_model=JobAccepted, dependencies=[WRITE],
             openapi_extra=body_spec(QueryOptions, QueryObject),
             summary="Search the library with a video: an upload (multipart field 'file') or an object (JSON)")
async def create_query(request: Request, res: Res) -> JobAccepted:
    async with read_body(request, QueryOptions, QueryObject) as body:
        job_id = await run_in_threadpool(_submit_upload, res, *body) if isinstance(body, tuple) else \
            await run_in_threadpool(_submit_object, res, body)
    return JobAccepted(job_id=job_id)


def _submit_upload(res: Resources, upload: Upload, options: QueryOptions) -> str:
    job_id = str(uuid.uuid4())
    return submit_query(res, res.settings.s3.queries_bucket, f"{job_id}/{upload.name}",
                        res.settings.query_params(options.overrides()), source=upload.name, job_id=job_id,
                        put=lambda bucket, key: upload.send_to(res.objects, bucket, key),
                        callback_url=_url(options))


def _submit_object(res: Resources, body: QueryObject) -> str:
    bucket = body.bucket or res.settings.s3.queries_bucket
    try:
        found = res.objects.stat(bucket, body.key) is not None
    except InvalidObjectKey as exc:
        raise ApiError(422, f"key: {exc}") from None
    if not found:
        raise ApiError(422, f"key: no object {body.key!r} in bucket {bucket!r}")
    return submit_query(res, bucket, body.key, res.settings.query_params(body.overrides()), callback_url=_url(body))


def _url(options: QueryOptions) -> str | None:
    return str(options.callback_url) if options.callback_url is not None else None


@router.get("/{job_id}", response_model=QueryResult, dependencies=[READ],
            summary="A query's status and result (exactly `copycat query --json`)")
def get_query(job_id: uuid.UUID, res: Res) -> JSONResponse:
    with res.session() as s:
        job = jobs.get_job(s, str(job_id))
        if job is None:
            raise ApiError(404, f"no query job {job_id}")
        return JSONResponse(jobs.result_json(job))
