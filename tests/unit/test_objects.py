"""The local object store: ETags that match the bytes, without re-reading the library at every sweep."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from workers.errors import InvalidObjectKey, ObjectMissing
from workers.stores.objects import LocalObjectStore


def bytes_read() -> int:
    """Bytes this process has read through read() calls so far (Linux ``/proc/self/io``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_bucket("uploads")
    return store


def test_etag_is_the_md5_of_the_content(store: LocalObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "clip.bin"
    source.write_bytes(b"a" * 3000)
    assert store.put_file("uploads", "a/clip.bin", source).etag == md5(b"a" * 3000)
    assert store.put_bytes("uploads", "b.bin", b"xyz").etag == md5(b"xyz")
    with source.open("rb") as stream:
        streamed = store.put_stream("uploads", "c/streamed.bin", stream, 3000)
    assert (streamed.etag, streamed.size) == (md5(b"a" * 3000), 3000)
    assert store.get_bytes("uploads", "c/streamed.bin") == b"a" * 3000
    assert {i.key: i.etag for i in store.list("uploads")} == {"a/clip.bin": md5(b"a" * 3000), "b.bin": md5(b"xyz"),
                                                              "c/streamed.bin": md5(b"a" * 3000)}


def test_a_sweep_does_not_reread_the_library(store: LocalObjectStore) -> None:
    """Listing 16 MiB of objects twice reads them at most once; stat of an unchanged object reads nothing."""
    for index in range(8):
        store.put_bytes("uploads", f"video{index}.mp4", os.urandom(2 << 20))
    fresh = LocalObjectStore(store.root)  # another process: nothing remembered yet
    before = bytes_read()
    first = list(fresh.list("uploads"))
    after_first = bytes_read()
    second = list(fresh.list("uploads"))
    fresh.stat("uploads", "video3.mp4")
    after_second = bytes_read()
    assert first == second
    assert after_first - before >= 16 << 20  # the first sweep hashes each file once
    assert after_second - after_first < 1 << 20  # the next ones only look at the file's inode, size and mtime
    store.stat("uploads", "video0.mp4")
    assert bytes_read() - after_second < 1 << 20  # what this store wrote was hashed while writing


def test_a_changed_file_gets_a_new_etag(store: LocalObjectStore) -> None:
    store.put_bytes("uploads", "v.mp4", b"1" * 100)
    path = store.root / "uploads" / "v.mp4"
    path.write_bytes(b"2" * 100)  # edited in place, same size (and maybe within one tick of the clock)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert store.stat("uploads", "v.mp4").etag == md5(b"2" * 100)
    store.put_bytes("uploads", "v.mp4", b"3" * 100)  # replaced, same size
    assert store.stat("uploads", "v.mp4").etag == md5(b"3" * 100)


def test_get_file_reports_the_bytes_it_copied(store: LocalObjectStore, tmp_path: Path) -> None:
    """The object is replaced over and over while it is copied: size and ETag always describe the copy."""
    versions = [bytes([n]) * ((1 + n) << 18) for n in range(4)]  # 256 KiB .. 1 MiB, each a different size
    store.put_bytes("uploads", "hot.mp4", versions[0])
    stop = threading.Event()

    def replace_forever() -> None:
        other = LocalObjectStore(store.root)
        n = 0
        while not stop.is_set():
            n += 1
            other.put_bytes("uploads", "hot.mp4", versions[n % len(versions)])

    writer = threading.Thread(target=replace_forever)
    writer.start()
    try:
        for attempt in range(150):
            dest = tmp_path / "scratch" / f"copy{attempt}.mp4"
            info = store.get_file("uploads", "hot.mp4", dest)
            copied = dest.read_bytes()
            assert (info.size, info.etag) == (len(copied), md5(copied)), attempt
            assert copied in versions
    finally:
        stop.set()
        writer.join()


def test_missing_objects_name_no_server_path(store: LocalObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectMissing) as caught:
        store.get_file("uploads", "gone.mp4", tmp_path / "x.mp4")
    assert str(store.root) not in str(caught.value)
    with pytest.raises(ObjectMissing) as caught:
        list(store.list("no-such-bucket"))
    assert str(store.root) not in str(caught.value)
    assert store.stat("uploads", "gone.mp4") is None


@pytest.mark.parametrize("key", ["../escape.mp4", "a/./b.mp4", "", "long/" + "é" * 128 + ".mp4"])
def test_keys_that_cannot_name_a_file_are_refused(store: LocalObjectStore, key: str) -> None:
    with pytest.raises(InvalidObjectKey) as caught:
        store.put_bytes("uploads", key, b"x")
    assert caught.value.code == "invalid_key"
    with pytest.raises(ObjectMissing):
        store.stat("uploads", key)


def test_a_1000_character_key_of_short_parts_is_stored(store: LocalObjectStore) -> None:
    key = "/".join(["k" * 199] * 5)
    assert store.put_bytes("uploads", key, b"x").key == key
    assert [info.key for info in store.list("uploads")] == [key]
