"""Bucket notifications: parse S3/MinIO event records and listen to a MinIO bucket.

Event records follow the S3 notification format (``Records[].eventName``, ``s3.bucket.name``,
``s3.object.key`` URL-encoded as in a query string, ``size``, ``eTag``). Only MinIO streams them to a
client (``listen_bucket_notification``); other S3 servers answer "not implemented", and the watcher then
relies on its periodic sweep instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from workers.errors import StorageUnavailable

EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")


@dataclass(frozen=True)
class ObjectEvent:
    """An object was created (or overwritten) or removed."""

    kind: Literal["created", "removed"]
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None


class NotificationsUnsupported(Exception):
    """The S3 server cannot stream bucket notifications to a client (anything but MinIO)."""


def parse_records(message: dict[str, Any]) -> list[ObjectEvent]:
    """The object events of one notification message; unknown event types are skipped."""
    events = []
    for record in message.get("Records") or []:
        name = str(record.get("eventName", ""))
        if name.startswith("s3:"):
            name = name[3:]
        kind: Literal["created", "removed"]
        if name.startswith("ObjectCreated:"):
            kind = "created"
        elif name.startswith("ObjectRemoved:"):
            kind = "removed"
        else:
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        obj = s3.get("object") or {}
        if not bucket or not obj.get("key"):
            continue
        etag = obj.get("eTag") or obj.get("etag")
        size = obj.get("size")
        events.append(ObjectEvent(kind, bucket, unquote_plus(obj["key"]), int(size) if size is not None else None,
                                  str(etag).strip('"') if etag else None))
    return events


def listen(client: Any, bucket: str) -> Iterator[ObjectEvent]:
    """Object events of ``bucket`` as MinIO sends them; ends only when the connection does.

    ``client`` is a ``minio.Minio``. Raises ``NotificationsUnsupported`` on servers without the API and
    ``StorageUnavailable`` when the connection fails (the watcher reconnects with backoff).
    """
    from minio.error import S3Error
    from urllib3.exceptions import HTTPError

    try:
        with client.listen_bucket_notification(bucket, events=EVENTS) as stream:
            for message in stream:
                yield from parse_records(message)
    except S3Error as exc:
        if exc.code in {"NotImplemented", "XNotImplemented", "MethodNotAllowed"}:
            raise NotificationsUnsupported(f"{bucket}: the S3 server does not stream notifications") from exc
        raise StorageUnavailable(f"{bucket}: notification stream failed: {exc.code}") from exc
    except (HTTPError, ConnectionError, TimeoutError) as exc:
        raise StorageUnavailable(f"{bucket}: notification stream broke: {exc}") from exc
