"""``/v1/videos``: upload or register a video to index, list, read and delete videos.

The same functions as ``copycat ingest`` and ``copycat videos``: an upload lands in the uploads bucket and
is registered exactly as the watcher registers an object dropped there, so a file that is not a video is
accepted here and ends ``failed`` with the same reason.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.auth import READ, WRITE
from api.bodies import Upload, body_spec, read_body
from api.deps import Res
from api.errors import ApiError
from api.models import RESOURCE_ERRORS, Video, VideoAccepted, VideoDeleting, VideoForm, VideoObject, VideoPage
from db import videos
from db.models import VideoStatus
from service.operations import ingest_object, register_upload
from service.queue import enqueue_remove
from service.resources import Resources
from workers.errors import InvalidObjectKey, ObjectMissing

router = APIRouter(prefix="/v1/videos", tags=["videos"], responses=RESOURCE_ERRORS)


@router.post("", status_code=202, response_model=VideoAccepted, dependencies=[WRITE],
             openapi_extra=body_spec(VideoForm, VideoObject),
             summary="Upload a video (multipart field 'file') or index an object of the uploads bucket (JSON)")
async def create_video(request: Request, res: Res) -> VideoAccepted:
    async with read_body(request, VideoForm, VideoObject) as body:
        return await run_in_threadpool(_accept, res, body)


def _accept(res: Resources, body: tuple[Upload, VideoForm] | VideoObject) -> VideoAccepted:
    video_id = _store_upload(res, body[0]) if isinstance(body, tuple) else _register_object(res, body)
    with res.session() as s:
        row = videos.get_video(s, video_id)
        status = row.status if row is not None else VideoStatus.PENDING
    return VideoAccepted(video_id=video_id, status=status)


def _store_upload(res: Resources, upload: Upload) -> str:
    bucket, key = res.settings.s3.uploads_bucket, upload.key()
    info = upload.send_to(res.objects, bucket, key)
    register_upload(res, bucket, key, info.size, info.etag)
    return videos.video_id_for(bucket, key)


def _register_object(res: Resources, body: VideoObject) -> str:
    uploads = res.settings.s3.uploads_bucket
    if body.bucket not in (None, uploads):
        raise ApiError(422, f"bucket: videos are indexed from the uploads bucket {uploads!r} (the library follows"
                       " that bucket: deleting an object there removes its video)")
    try:
        return ingest_object(res, uploads, body.key, force=body.force)
    except InvalidObjectKey as exc:
        raise ApiError(422, f"key: {exc}") from None
    except ObjectMissing:
        raise ApiError(422, f"key: no object {body.key!r} in the uploads bucket {uploads!r}") from None


@router.get("", response_model=VideoPage, dependencies=[READ], summary="Videos, oldest first, a page at a time")
def list_videos(res: Res, status: VideoStatus | None = None, limit: int = Query(100, ge=1),
                offset: int = Query(0, ge=0, le=2**62)) -> JSONResponse:
    limit = min(limit, res.settings.api.max_page_size)
    with res.session() as s:
        rows = videos.list_videos(s, status, limit, offset)
        total = videos.count_videos(s, status)
        page = [videos.video_json(v) for v in rows]
    return JSONResponse({"videos": page, "total": total, "limit": limit, "offset": offset})


@router.get("/{video_id}", response_model=Video, dependencies=[READ], summary="One video (as `copycat videos --json`)")
def get_video(video_id: uuid.UUID, res: Res) -> JSONResponse:
    with res.session() as s:
        row = videos.get_video(s, str(video_id))
        if row is None:
            raise ApiError(404, f"no video {video_id}")
        return JSONResponse(videos.video_json(row))


@router.delete("/{video_id}", status_code=202, response_model=VideoDeleting, dependencies=[WRITE],
               summary="Delete a video: its object, vectors, matrix and row")
def delete_video(video_id: uuid.UUID, res: Res) -> VideoDeleting:
    """The object goes first, then the removal is queued, as when the object is deleted from the bucket."""
    with res.session() as s:
        row = videos.get_video(s, str(video_id))
        if row is None:
            raise ApiError(404, f"no video {video_id}")
        bucket, key, name = row.bucket, row.key, row.name
    res.objects.remove(bucket, key)
    enqueue_remove(res, str(video_id), name)
    return VideoDeleting(video_id=str(video_id), status="deleting")
