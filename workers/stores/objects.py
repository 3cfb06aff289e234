"""Object storage: an S3 server through the ``minio`` SDK, or a local folder behind the same interface.

Everything Copycat keeps as a blob goes through ``ObjectStore``: uploaded videos, query videos and the
per-video frame matrices (``.npy``). Errors come out as Copycat's families: a missing object is an
``ObjectMissing`` (input problem, no retry), an unreachable server a ``StorageUnavailable`` (retried).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from workers.errors import ConfigError, InvalidObjectKey, ObjectMissing, StorageUnavailable
from workers.stores.events import NotificationsUnsupported, ObjectEvent, listen
from workers.types import ObjectInfo, StreamedObject

OCTET = "application/octet-stream"
PIECE = 1 << 20
"""Bytes per piece of a streamed read."""
NAME_MAX = 255  # bytes in one file name on Linux file systems: the longest part of a key the local store takes


class ObjectStore(Protocol):
    """The operations Copycat needs from a blob store."""

    def ensure_bucket(self, bucket: str) -> None: ...
    def put_file(self, bucket: str, key: str, path: Path, content_type: str = OCTET) -> ObjectInfo: ...
    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = OCTET) -> ObjectInfo: ...
    def put_stream(self, bucket: str, key: str, stream: BinaryIO, size: int,
                   content_type: str = OCTET) -> ObjectInfo: ...
    def get_file(self, bucket: str, key: str, dest: Path) -> ObjectInfo: ...
    def get_bytes(self, bucket: str, key: str) -> bytes: ...
    def read(self, bucket: str, key: str) -> StreamedObject: ...
    def stat(self, bucket: str, key: str) -> ObjectInfo | None: ...
    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def remove(self, bucket: str, key: str) -> None: ...
    def listen(self, bucket: str) -> Iterator[ObjectEvent]: ...


class S3ObjectStore:
    """Any S3 server (MinIO, SeaweedFS, AWS) through the ``minio`` SDK."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, *, secure: bool = False,
                 region: str = "", timeout_s: float = 30.0) -> None:
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=timeout_s),
            retries=urllib3.Retry(total=3, backoff_factor=0.3, status_forcelist=(500, 502, 503, 504)),
            maxsize=16,
        )
        self.endpoint = endpoint
        self._client = Minio(endpoint, access_key=access_key or None, secret_key=secret_key or None,
                             secure=secure, region=region or None, http_client=http)

    def ensure_bucket(self, bucket: str) -> None:
        with _s3_errors(bucket):
            if not self._client.bucket_exists(bucket):
                try:
                    self._client.make_bucket(bucket)
                except Exception as exc:  # a concurrent creator won the race
                    if getattr(exc, "code", "") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise

    def put_file(self, bucket: str, key: str, path: Path, content_type: str = OCTET) -> ObjectInfo:
        with _s3_errors(bucket, key):
            self._client.fput_object(bucket, key, str(path), content_type=content_type)
        return self._stat_or_fail(bucket, key)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = OCTET) -> ObjectInfo:
        with _s3_errors(bucket, key):
            self._client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)
        return self._stat_or_fail(bucket, key)

    def put_stream(self, bucket: str, key: str, stream: BinaryIO, size: int,
                   content_type: str = OCTET) -> ObjectInfo:
        """Store ``size`` bytes read from ``stream``, a part at a time (an HTTP upload never sits in memory)."""
        with _s3_errors(bucket, key):
            self._client.put_object(bucket, key, stream, size, content_type=content_type)
        return self._stat_or_fail(bucket, key)

    def get_file(self, bucket: str, key: str, dest: Path) -> ObjectInfo:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _s3_errors(bucket, key):
            obj = self._client.fget_object(bucket, key, str(dest))
        return ObjectInfo(bucket, key, int(obj.size or dest.stat().st_size), _clean_etag(obj.etag), obj.last_modified)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        with _s3_errors(bucket, key):
            response = self._client.get_object(bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def read(self, bucket: str, key: str) -> StreamedObject:
        """The object's bytes as they arrive over one GET; the ETag and size are the response's."""
        with _s3_errors(bucket, key):
            response = self._client.get_object(bucket, key)
        headers = response.headers
        info = ObjectInfo(bucket, key, int(headers.get("content-length", 0)), _clean_etag(headers.get("etag")),
                          _http_date(headers.get("last-modified")))

        def pieces() -> Iterator[bytes]:
            try:
                with _s3_errors(bucket, key):
                    yield from response.stream(PIECE)
            finally:
                release()

        def release() -> None:
            response.close()
            response.release_conn()

        return StreamedObject(pieces(), info.size, lambda: info, release)

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            with _s3_errors(bucket, key):
                obj = self._client.stat_object(bucket, key)
        except ObjectMissing:
            return None
        return ObjectInfo(bucket, key, int(obj.size or 0), _clean_etag(obj.etag), obj.last_modified)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        with _s3_errors(bucket):
            for obj in self._client.list_objects(bucket, prefix=prefix or None, recursive=True):
                if not obj.is_dir:
                    yield ObjectInfo(bucket, obj.object_name, int(obj.size or 0), _clean_etag(obj.etag),
                                     obj.last_modified)

    def remove(self, bucket: str, key: str) -> None:
        with _s3_errors(bucket, key):
            self._client.remove_object(bucket, key)

    def listen(self, bucket: str) -> Iterator[ObjectEvent]:
        """Created/removed events of ``bucket`` (MinIO only; see ``workers.stores.events``)."""
        return listen(self._client, bucket)

    def _stat_or_fail(self, bucket: str, key: str) -> ObjectInfo:
        info = self.stat(bucket, key)
        if info is None:
            raise StorageUnavailable(f"s3://{bucket}/{key} vanished right after it was written")
        return info


class LocalObjectStore:
    """Buckets as folders under ``root``: the embedded default, no server to run.

    The ETag is the file's MD5, as S3 gives for a single-part upload. It is computed once per version of a
    file (its inode, size and mtime; a put replaces the inode), while the bytes are written when it can be,
    so the watcher's sweep every few seconds does not re-read the whole library.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._md5: dict[Path, tuple[tuple[int, int, int], str]] = {}

    def ensure_bucket(self, bucket: str) -> None:
        (self.root / _safe_part(bucket)).mkdir(parents=True, exist_ok=True)

    def put_file(self, bucket: str, key: str, path: Path, content_type: str = OCTET) -> ObjectInfo:
        target = self._path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, prefix=".upload-") as tmp, \
                path.open("rb") as src:
            digest = _copy_hashing(src, tmp)
        return self._publish(bucket, key, Path(tmp.name), digest)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = OCTET) -> ObjectInfo:
        target = self._path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, prefix=".upload-") as tmp:
            tmp.write(data)
        return self._publish(bucket, key, Path(tmp.name), hashlib.md5(data, usedforsecurity=False).hexdigest())

    def put_stream(self, bucket: str, key: str, stream: BinaryIO, size: int,
                   content_type: str = OCTET) -> ObjectInfo:
        target = self._path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, prefix=".upload-") as tmp:
            digest = _copy_hashing(stream, tmp)
        return self._publish(bucket, key, Path(tmp.name), digest)

    def get_file(self, bucket: str, key: str, dest: Path) -> ObjectInfo:
        """Copy the object to ``dest``; size and ETag describe the bytes copied, even if it is replaced meanwhile."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._open(bucket, key) as src, dest.open("wb") as out:
            stat = os.fstat(src.fileno())
            digest = _copy_hashing(src, out)
            size = out.tell()
        return ObjectInfo(bucket, key, size, digest, datetime.fromtimestamp(stat.st_mtime, UTC))

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return self._existing(bucket, key).read_bytes()

    def read(self, bucket: str, key: str) -> StreamedObject:
        """The file's bytes through one open handle (a replacement meanwhile does not mix versions); the
        ETag is the MD5 of the bytes read."""
        handle = self._open(bucket, key)
        stat = os.fstat(handle.fileno())
        digest = hashlib.md5(usedforsecurity=False)
        read = [0]

        def pieces() -> Iterator[bytes]:
            with handle:
                for block in iter(lambda: handle.read(PIECE), b""):
                    digest.update(block)
                    read[0] += len(block)
                    yield block

        def info() -> ObjectInfo:
            return ObjectInfo(bucket, key, read[0], digest.hexdigest(), datetime.fromtimestamp(stat.st_mtime, UTC))

        return StreamedObject(pieces(), stat.st_size, info, handle.close)

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        return self._info(bucket, key) if self._path(bucket, key).is_file() else None

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / _safe_part(bucket)
        if not base.is_dir():
            raise ObjectMissing(f"bucket {bucket} does not exist")
        for path in sorted(base.rglob("*")):
            key = path.relative_to(base).as_posix()
            if path.is_file() and not path.name.startswith(".upload-") and key.startswith(prefix):
                yield self._info(bucket, key)

    def remove(self, bucket: str, key: str) -> None:
        path = self._path(bucket, key)
        path.unlink(missing_ok=True)
        self._md5.pop(path, None)

    def listen(self, bucket: str) -> Iterator[ObjectEvent]:
        raise NotificationsUnsupported("a local folder sends no notifications; the watcher sweeps it")

    def _path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in {"", ".", ".."} for p in parts):
            raise InvalidObjectKey(f"invalid object key {key!r}: empty, '.' or '..' parts")
        if any(len(p.encode()) > NAME_MAX for p in parts):
            raise InvalidObjectKey(f"invalid object key {key!r}: a part is longer than {NAME_MAX} bytes")
        return self.root / _safe_part(bucket) / Path(*parts)

    def _existing(self, bucket: str, key: str) -> Path:
        path = self._path(bucket, key)
        if not path.is_file():
            raise ObjectMissing(f"{bucket}/{key} does not exist")
        return path

    def _open(self, bucket: str, key: str) -> BinaryIO:
        try:
            return self._existing(bucket, key).open("rb")
        except (FileNotFoundError, IsADirectoryError):  # removed since the check
            raise ObjectMissing(f"{bucket}/{key} does not exist") from None

    def _info(self, bucket: str, key: str) -> ObjectInfo:
        """Size, MTime and MD5 of one version of the file: all read through one open handle."""
        path = self._path(bucket, key)
        with self._open(bucket, key) as handle:
            stat = os.fstat(handle.fileno())
            version = _version(stat)
            cached = self._md5.get(path)
            if cached is not None and cached[0] == version:
                digest = cached[1]
            else:
                digest = _copy_hashing(handle, None)
                self._md5[path] = (version, digest)
        return ObjectInfo(bucket, key, stat.st_size, digest, datetime.fromtimestamp(stat.st_mtime, UTC))

    def _publish(self, bucket: str, key: str, written: Path, digest: str) -> ObjectInfo:
        """Move a fully written temporary file into place, remembering the MD5 computed while writing it."""
        target = self._path(bucket, key)
        stat = written.stat()
        os.replace(written, target)
        self._md5[target] = (_version(stat), digest)
        return self._info(bucket, key)


def save_matrix(store: ObjectStore, bucket: str, key: str, matrix: np.ndarray) -> ObjectInfo:
    """Store a frame matrix [T, D] as ``.npy`` bytes."""
    buffer = io.BytesIO()
    np.save(buffer, matrix, allow_pickle=False)
    return store.put_bytes(bucket, key, buffer.getvalue(), "application/x-npy")


def load_matrix(store: ObjectStore, bucket: str, key: str) -> np.ndarray:
    """Read back a matrix written by ``save_matrix``."""
    return np.load(io.BytesIO(store.get_bytes(bucket, key)), allow_pickle=False)


def save_arrays(store: ObjectStore, bucket: str, key: str, **arrays: np.ndarray) -> ObjectInfo:
    """Store several named arrays as one ``.npz`` object (e.g. a query's DnS representation)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return store.put_bytes(bucket, key, buffer.getvalue(), "application/x-npz")


def load_arrays(store: ObjectStore, bucket: str, key: str) -> dict[str, np.ndarray]:
    """Read back the arrays written by ``save_arrays``."""
    with np.load(io.BytesIO(store.get_bytes(bucket, key)), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _version(stat: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file's bytes do: a new inode (replaced), a new size or a new mtime (edited)."""
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _copy_hashing(src: BinaryIO, dest: BinaryIO | None) -> str:
    """MD5 of everything read from ``src``, written on to ``dest`` as it is read (when given)."""
    digest = hashlib.md5(usedforsecurity=False)
    for block in iter(lambda: src.read(1 << 20), b""):
        digest.update(block)
        if dest is not None:
            dest.write(block)
    return digest.hexdigest()


@contextmanager
def _s3_errors(bucket: str, key: str = "") -> Iterator[None]:
    """Translate minio/urllib3 exceptions into Copycat's error families."""
    from minio.error import S3Error, ServerError
    from urllib3.exceptions import HTTPError

    where = f"s3://{bucket}/{key}"
    try:
        yield
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}:
            raise ObjectMissing(f"{where} does not exist ({exc.code})") from exc
        if exc.code in {"KeyTooLongError", "InvalidObjectName"}:
            raise InvalidObjectKey(f"{where}: the server refused the key ({exc.code}: {exc.message})") from exc
        if exc.code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            raise ConfigError(f"{where}: S3 refused the credentials ({exc.code})") from exc
        raise StorageUnavailable(f"{where}: S3 error {exc.code}: {exc.message}") from exc
    except (ServerError, HTTPError, ConnectionError, TimeoutError) as exc:
        raise StorageUnavailable(f"{where}: object store unreachable: {exc}") from exc


def _clean_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


def _safe_part(bucket: str) -> str:
    if not bucket or "/" in bucket or bucket in {".", ".."}:
        raise ConfigError(f"invalid bucket name {bucket!r}")
    return bucket


def _http_date(value: str | None) -> datetime | None:
    """An HTTP ``Last-Modified`` header as a datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
