"""Spool: an object's bytes written to a scratch file by a thread, hashed as they arrive, read while written.

The decoder need not wait for the whole download: ``Spool.tail()`` yields the file's bytes as they land,
for ffmpeg's stdin. Whether it may start early depends on the container (``streamable_head``): a
demuxer reading from a pipe cannot seek, and ffprobe must find everything it reports in the bytes before
the frames. MP4/MOV qualifies only when its index (``moov``) comes before the media data (``faststart``);
Matroska/WebM keeps its header, length included, at the start. Every other container (and MP4 with the index
at the end, common for phone recordings) is decoded from the complete file.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

PIECE = 1 << 20
"""Bytes per read and write of the spool."""
MATROSKA_HEAD = 1 << 20
"""Bytes of a Matroska/WebM file to have before probing it (its header with segment info and tracks)."""
_EBML = b"\x1a\x45\xdf\xa3"


def streamable_head(head: bytes, size: int) -> int | None:
    """How many leading bytes of a ``size``-byte file ffprobe needs before the frames can be read from a pipe,
    judged from its first bytes ``head`` (64 KiB are plenty); None when the whole file is needed.

    MP4/MOV: the top-level boxes up to and including ``moov``, when ``moov`` comes before ``mdat``. Matroska
    and WebM: the first ``MATROSKA_HEAD`` bytes.
    """
    if head[:4] == _EBML:
        return min(size, MATROSKA_HEAD)
    if head[4:8] != b"ftyp":
        return None
    offset = 0
    while offset + 8 <= len(head):
        box_size, kind = struct.unpack(">I4s", head[offset : offset + 8])
        if box_size == 1 and offset + 16 <= len(head):
            box_size = struct.unpack(">Q", head[offset + 8 : offset + 16])[0]
        if box_size < 8:  # 0 = "to the end of the file", or garbage
            return None
        if kind == b"moov":
            end = offset + box_size
            return end if end <= size else None
        if kind == b"mdat":
            return None
        offset += box_size
    return None


class Spool:
    """Write ``pieces`` to ``path`` on a thread, hashing them (SHA-256); readers wait for the bytes they need.

    ``wait_for(n)`` blocks until ``n`` bytes are written (or the spool ended), ``tail()`` yields everything
    as it is written, ``finish()`` waits for the end and returns the hash, re-raising the download's error.
    """

    def __init__(self, pieces: Iterator[bytes], path: Path) -> None:
        self.path = path
        self._pieces = pieces
        self._written = 0
        self._done = False
        self._error: BaseException | None = None
        self._digest = hashlib.sha256()
        self.seconds = 0.0  # how long the download took, once it ended
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="spool", daemon=True)

    def start(self) -> Spool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            with self.path.open("wb") as out:
                for piece in self._pieces:
                    out.write(piece)
                    out.flush()
                    self._digest.update(piece)
                    with self._changed:
                        self._written += len(piece)
                        self._changed.notify_all()
        except BaseException as exc:  # handed to whoever waits (finish re-raises it)
            self._error = exc
        finally:
            self.seconds = time.perf_counter() - started
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def wait_for(self, count: int) -> int:
        """Bytes written once at least ``count`` are (or the spool ended first)."""
        with self._changed:
            self._changed.wait_for(lambda: self._done or self._written >= count)
            return self._written

    def head(self, count: int) -> bytes:
        """The first ``count`` bytes (fewer if the object is shorter)."""
        self.wait_for(count)
        with self.path.open("rb") as handle:
            return handle.read(count)

    def tail(self) -> Iterator[bytes]:
        """Every byte of the object in order, each as soon as it is written; ends when the spool does."""
        with self.path.open("rb") as handle:
            offset = 0
            while True:
                with self._changed:
                    self._changed.wait_for(lambda at=offset: self._done or self._written > at)
                    available, done = self._written, self._done
                while offset < available:
                    piece = handle.read(min(PIECE, available - offset))
                    if not piece:
                        break
                    offset += len(piece)
                    yield piece
                if done and offset >= available:
                    return

    def finish(self) -> str:
        """Wait for the end of the download; its SHA-256, or the error that stopped it."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

    @property
    def failed(self) -> bool:
        return self._done and self._error is not None


def sha256_file(path: Path) -> str:
    """Content hash of a file: identifies the same footage uploaded under different names."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
