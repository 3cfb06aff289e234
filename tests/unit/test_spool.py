"""Spool: which containers decode while they download, and the bytes, hash and errors of a streamed read."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from workers.decode import DecodeOptions, probe, sample_views
from workers.spool import MATROSKA_HEAD, Spool, streamable_head
from workers.types import FrameGeometry


def box(kind: bytes, size: int) -> bytes:
    return struct.pack(">I4s", size, kind) + b"\0" * (size - 8)


def test_mp4_streams_only_with_its_index_first() -> None:
    faststart = box(b"ftyp", 32) + box(b"moov", 4000) + box(b"mdat", 16)
    assert streamable_head(faststart, 10_000_000) == 4032
    assert streamable_head(box(b"ftyp", 32) + box(b"free", 8) + box(b"mdat", 64), 10_000_000) is None
    assert streamable_head(box(b"ftyp", 32) + box(b"moov", 4000)[:100], 2000) is None  # index past the end
    assert streamable_head(b"\x1a\x45\xdf\xa3" + b"\0" * 60, 5 * MATROSKA_HEAD) == MATROSKA_HEAD
    assert streamable_head(b"RIFF....AVI LIST", 10_000) is None  # AVI, TS, FLV...: the whole file


def test_spool_writes_hashes_and_tails_while_writing(tmp_path: Path) -> None:
    release = threading.Event()
    data = [bytes([i]) * 1000 for i in range(5)]

    def pieces() -> Iterator[bytes]:
        yield data[0]
        release.wait(10)
        yield from data[1:]

    spool = Spool(pieces(), tmp_path / "video.bin").start()
    assert spool.head(1000) == data[0]  # readable before the rest arrives
    tail = spool.tail()
    assert next(tail) == data[0]
    release.set()
    assert b"".join([data[0], *tail]) == b"".join(data)
    assert spool.finish() == hashlib.sha256(b"".join(data)).hexdigest()
    assert (tmp_path / "video.bin").read_bytes() == b"".join(data)


def test_spool_hands_the_download_error_to_finish(tmp_path: Path) -> None:
    def pieces() -> Iterator[bytes]:
        yield b"abc"
        raise ConnectionError("reset by peer")

    spool = Spool(pieces(), tmp_path / "video.bin").start()
    assert b"".join(spool.tail()) == b"abc"
    with pytest.raises(ConnectionError):
        spool.finish()


@pytest.mark.parametrize("name", ["faststart.mp4", "clip03_bigbuckbunny.webm"])
def test_streamed_decode_equals_the_file_decode(name: str, clips_dir: Path, tmp_path: Path) -> None:
    """Probed from the head alone, decoded from a pipe fed while the file is written: the same frames."""
    if name == "faststart.mp4":
        path = tmp_path / name
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(clips_dir / "clip16_highway.mp4"), "-c", "copy",
                        "-movflags", "+faststart", str(path)], check=True)
    else:
        path = clips_dir / name
    data = path.read_bytes()
    need = streamable_head(data[:65536], len(data))
    assert need is not None
    spool = Spool(iter([data[i : i + 65536] for i in range(0, len(data), 65536)]), tmp_path / f"in{path.suffix}")
    spool.start().wait_for(need)
    head_probe = probe(spool.path)
    options = DecodeOptions(skip_nonref=True, hwaccel="none")
    streamed = np.concatenate([v[0] for v in sample_views(spool.path, head_probe, (FrameGeometry(224),), options,
                                                          feed=spool.tail)])
    spool.finish()
    full = np.concatenate([v[0] for v in sample_views(path, probe(path), (FrameGeometry(224),), options)])
    assert head_probe == probe(path) and np.array_equal(streamed, full)


@pytest.mark.parametrize("faststart", [True, False])
def test_streamed_object_embeds_like_a_downloaded_one(faststart: bool, clips_dir: Path, tmp_path: Path) -> None:
    """Through ``LocalObjectStore.read``: same descriptors, SHA-256 and ETag as a full download first; only an
    MP4 with its index first is decoded while it downloads (``download_head``)."""
    from workers.embed import create_embedder
    from workers.extract import extract_object
    from workers.signals.frames import FrameExtraction
    from workers.spool import sha256_file
    from workers.stores.objects import LocalObjectStore

    source = tmp_path / "upload.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clips_dir / "clip16_highway.mp4"), "-t", "8", "-c", "copy",
                    *(["-movflags", "+faststart"] if faststart else []), str(source)], check=True)
    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_bucket("up")
    put = store.put_file("up", "v.mp4", source)
    embedder = create_embedder("sscd_distilled", device="cpu")
    options = DecodeOptions(skip_nonref=True, hwaccel="none")
    frames = {"frames": lambda: FrameExtraction(embedder)}
    streamed = extract_object(frames, options, scratch_dir=tmp_path / "s1", label="v.mp4",
                              stream=lambda: store.read("up", "v.mp4"))
    fetched = extract_object(frames, options, scratch_dir=tmp_path / "s2", label="v.mp4",
                             fetch=lambda dest: store.get_file("up", "v.mp4", dest))
    assert np.array_equal(streamed.video.evidence["frames"].features, fetched.video.evidence["frames"].features)
    assert streamed.sha256 == fetched.sha256 == sha256_file(source)
    assert streamed.source.etag == fetched.source.etag == put.etag and streamed.source.size == put.size
    assert ("download_head" in streamed.video.timings) is faststart and "download" in streamed.video.timings
    assert not any((tmp_path / "s1").iterdir())  # the scratch folder is gone
