"""Request bodies that come either as a multipart upload (field ``file``, parameters as form fields) or as
JSON naming an object already in a bucket; both validated by one pydantic model, errors naming the field.

Starlette spools an uploaded part to a temporary file once it passes 1 MiB, so an upload is never held
whole in memory; the object store then sends that file on a part at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from api.errors import ApiError

NAME_BYTES = 200  # an object key part must stay under the 255 bytes a file name may have (local store)
MAX_FORM_FIELDS = 20


@dataclass
class Upload:
    """A received file part (spooled by Starlette) and its safe object name."""

    file: UploadFile
    name: str

    def key(self) -> str:
        """A key of its own, so uploads of the same file name never replace each other."""
        return f"{uuid.uuid4()}/{self.name}"

    def send_to(self, store: Any, bucket: str, key: str) -> Any:
        """Write the spooled part to the store, a part at a time (runs in a worker thread)."""
        self.file.file.seek(0)
        return store.put_stream(bucket, key, self.file.file, int(self.file.size or 0), "video/octet-stream")


def upload_name(filename: str | None) -> str:
    """The client's file name without folders or control characters, cut to ``NAME_BYTES``; 'upload' if none."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    if len(name.encode()) > NAME_BYTES:
        stem, dot, suffix = name.rpartition(".")
        suffix = f".{suffix}" if dot and len(suffix.encode()) <= 16 else ""
        name = (stem if suffix else name).encode()[: NAME_BYTES - len(suffix.encode())].decode(errors="ignore") + suffix
    return name if name not in {"", ".", ".."} else "upload"


def validated[M: BaseModel](model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


@asynccontextmanager
async def read_body[F: BaseModel, J: BaseModel](request: Request, form_model: type[F],
                                                json_model: type[J]) -> AsyncIterator[tuple[Upload, F] | J]:
    """(upload, its form parameters) for multipart, the JSON model for JSON; 415 for anything else.

    The upload's temporary file is removed when the block ends.
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
        except HTTPException as exc:  # a malformed body, or more parts than allowed
            raise ApiError(400, f"body: not a valid upload form ({exc.detail})") from None
        try:
            part = form.get("file")
            if not isinstance(part, UploadFile):
                raise RequestValidationError([{"loc": ("body", "file"), "msg": "a multipart upload needs the video"
                                               " in the field 'file' (a file part)", "type": "missing"}])
            fields = {key: value for key, value in form.multi_items() if key != "file"}
            yield Upload(part, upload_name(part.filename)), validated(form_model, fields)
        finally:
            await form.close()
    elif content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise ApiError(400, "body: not valid JSON") from None
        yield validated(json_model, data)
    else:
        raise ApiError(415, "send multipart/form-data with the video in the field 'file', or application/json"
                       " naming an object ({\"bucket\", \"key\"})")


def body_spec(form_model: type[BaseModel], json_model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that takes both kinds of body."""
    form = form_model.model_json_schema()
    form["properties"] = {"file": {"type": "string", "format": "binary", "description": "the video"},
                          **form.get("properties", {})}
    form["required"] = ["file", *form.get("required", [])]
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": form},
        "application/json": {"schema": json_model.model_json_schema()},
    }}}
