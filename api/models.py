"""Request and response bodies of the HTTP API (what ``/openapi.json`` documents)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field

# S3 bucket names (3-63 lower-case letters, digits, dots, hyphens; the SDK's own check below) and keys
# without control characters.
BUCKET = r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"
KEY = r"^[^\x00-\x1f\x7f]+$"


def _bucket_name(name: str | None) -> str | None:
    """The S3 SDK's rules (no '..', no IP address, ...): a name it refuses is a 422 here, not a 500 later."""
    from minio.helpers import check_bucket_name

    if name is not None:
        check_bucket_name(name)
    return name


BucketName = Annotated[str | None, AfterValidator(_bucket_name)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VideoObject(Strict):
    """An object already in the uploads bucket, to index."""

    bucket: BucketName = Field(None, pattern=BUCKET, description="the uploads bucket (the default)")
    key: str = Field(min_length=1, max_length=1024, pattern=KEY, description="object key")
    force: bool = Field(False, description="re-index even when these bytes are indexed already")


class VideoForm(Strict):
    """Form fields next to an uploaded video (none yet besides the file)."""


class QueryOptions(Strict):
    top_k: int | None = Field(None, ge=1, description="candidate videos localised (default from the settings)")
    min_score: float | None = Field(None, ge=0, le=1, description="smallest video score reported")
    crops: int | None = Field(None, ge=1, le=4, description="also search NxN tiles of each frame (1: whole frames)")
    callback_url: AnyHttpUrl | None = Field(None, description="where the job's end is announced (webhook)")

    def overrides(self) -> dict[str, Any]:
        """The job's parameters in the settings' names (``copycat query`` passes the same)."""
        return {"top_k": self.top_k, "min_score": self.min_score, "crop_grid": self.crops}


class QueryObject(QueryOptions):
    """A query video already in a bucket."""

    bucket: BucketName = Field(None, pattern=BUCKET, description="bucket (default: the queries bucket)")
    key: str = Field(min_length=1, max_length=1024, pattern=KEY, description="object key")


class VideoAccepted(BaseModel):
    video_id: str
    status: str


class VideoDeleting(BaseModel):
    video_id: str
    status: str = Field(description="'deleting': vectors, matrix and row are being removed")


class JobAccepted(BaseModel):
    job_id: str


class Segment(BaseModel):
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float
    signals: list[str] = Field(description="the signals that found it (\"video\": the frame descriptors)")


class Match(BaseModel):
    video_id: str
    name: str
    score: float
    signals: list[str] = Field(description="the signals that found any of its segments")
    segments: list[Segment]
    video_similarity: float | None = None


class QueryResult(BaseModel):
    """Exactly what ``copycat query --json`` prints."""

    job_id: str
    query: str
    status: str
    error: str | None
    timings: dict[str, Any]
    matches: list[Match]


class Video(BaseModel):
    """Exactly one row of ``copycat videos --json``."""

    video_id: str
    name: str
    bucket: str
    key: str
    status: str
    duration: float | None
    frames: int | None
    fps: float | None
    model: str | None
    dim: int | None
    size: int | None
    etag: str | None
    sha256: str | None
    matrix_key: str | None
    timings: dict[str, Any]
    error: str | None


class VideoPage(BaseModel):
    videos: list[Video]
    total: int
    limit: int
    offset: int


class KeyCreate(Strict):
    role: str = Field(pattern="^(read|write|admin)$")
    name: str = Field("", max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")


class KeyInfo(BaseModel):
    id: str
    name: str
    role: str
    prefix: str
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyInfo):
    key: str = Field(description="the key itself: shown only now")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ReadyCheck(BaseModel):
    status: str = Field(description="ok or error")
    seconds: float | None = None
    detail: str | None = None
    error: str | None = None


class Readiness(BaseModel):
    status: str = Field(description="ok when every check is ok")
    checks: dict[str, ReadyCheck] = Field(description="database, broker, s3, milvus")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a router gives."""
    return {status: {"model": ErrorResponse, "description": "error"} for status in statuses}


RESOURCE_ERRORS = error_responses(400, 401, 403, 404, 413, 415, 422, 503)
