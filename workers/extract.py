"""The one decode: a video (a file, or an object being downloaded) through every enabled signal's extractor.

``extract_video`` starts one ffmpeg process per video whatever the signals ask for (``sample_views`` gives
each chunk at every geometry any of them wants), and hands each extraction the geometries it declared;
decoding overlaps their work. An extraction that needs another sampling rate than the product's gets a decode
of its own. ``extract_object`` reads the video from storage first (streamed into a scratch file and decoded
while it lands, when its container allows) and hashes the bytes meanwhile, so ingest and query take the same
path.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workers.admission import check_file_size
from workers.decode import DecodeOptions, decodes_in_ranges, expected_frames, probe, sample_views
from workers.errors import InputError
from workers.signals.base import Extraction
from workers.spool import Spool, sha256_file, streamable_head
from workers.types import FrameGeometry, ObjectInfo, StreamedObject, VideoInfo

HEAD_BYTES = 1 << 16
"""Bytes of an object read before deciding whether its container can be decoded while it downloads."""
ProgressFn = Callable[[int, int], None]
"""Called with (frames done, frames expected) after each decoded chunk."""


@dataclass
class Extracted:
    """One decode of a video through every extraction: their evidence by signal name, and what it took."""

    info: VideoInfo
    fps: float
    evidence: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class ExtractedObject:
    """An extracted video read from storage, with what identifies the bytes that were read."""

    video: Extracted
    source: ObjectInfo
    sha256: str


Extractors = Mapping[str, Callable[[], Extraction]]
"""By signal name, what makes a fresh extraction for one decode (``Signal.extraction`` with the job's views)."""


def extract_video(path: Path, extractors: Extractors, options: DecodeOptions = DecodeOptions(), *,
                  progress: ProgressFn | None = None, label: str | None = None, info: VideoInfo | None = None,
                  feed: Callable[[], Iterator[bytes]] | None = None) -> Extracted:
    """Probe ``path`` (unless ``info`` is its probe), decode it once at ``options.fps`` and feed every
    extraction sampling at that rate; each other rate gets one more decode. With ``feed``, ffmpeg reads the
    bytes from it (``sample_views``); a second decode then reads the file, which is complete by then.

    Timings: ``probe``, ``decode_embed`` (the shared decode and what ran on its chunks), ``decode_wait`` (of
    it, the time spent waiting for frames) and each extraction's own time under its ``timing`` name.
    """
    started = time.perf_counter()
    info = info or probe(path, label, options.limits)
    probed = time.perf_counter()
    extractions = {name: make() for name, make in extractors.items()}
    by_rate: dict[float, dict[str, Extraction]] = {}
    for name, extraction in extractions.items():
        by_rate.setdefault(extraction.fps or options.fps, {})[name] = extraction
    evidence: dict[str, Any] = {}
    timings = {"probe": probed - started}
    for fps, group in sorted(by_rate.items(), key=lambda item: item[0] != options.fps):
        shared = fps == options.fps
        tick = time.perf_counter()
        evidence |= _decode_into(path, info, group, replace(options, fps=fps), progress=progress if shared else None,
                                 label=label, feed=feed if shared else None)
        if shared:
            timings["decode_embed"] = time.perf_counter() - tick
            timings["decode_wait"] = timings["decode_embed"] - sum(e.seconds for e in group.values())
    for extraction in extractions.values():
        timings[extraction.timing] = timings.get(extraction.timing, 0.0) + extraction.seconds
    return Extracted(info, options.fps, evidence, {k: round(v, 4) for k, v in timings.items()})


def _decode_into(path: Path, info: VideoInfo, extractions: Mapping[str, Extraction], options: DecodeOptions, *,
                 progress: ProgressFn | None, label: str | None,
                 feed: Callable[[], Iterator[bytes]] | None) -> dict[str, Any]:
    """One decode at ``options.fps`` feeding ``extractions``; their evidence by name."""
    geometries: list[FrameGeometry] = []
    for extraction in extractions.values():
        geometries.extend(g for g in extraction.geometries if g not in geometries)
    slots = {name: [geometries.index(g) for g in e.geometries] for name, e in extractions.items()}
    for extraction in extractions.values():
        extraction.start()
    expected = expected_frames(info.duration, options.fps)
    done = 0
    for views in sample_views(path, info, geometries, options, label=label, feed=feed):
        for name, extraction in extractions.items():
            tick = time.perf_counter()
            extraction.add([views[i] for i in slots[name]])
            extraction.seconds += time.perf_counter() - tick
        done += views[0].shape[0]
        if progress is not None:
            progress(done, max(expected, done))
    evidence = {}
    for name, extraction in extractions.items():
        tick = time.perf_counter()
        evidence[name] = extraction.finish()
        extraction.seconds += time.perf_counter() - tick
    return evidence


def extract_object(extractors: Extractors, options: DecodeOptions = DecodeOptions(), *,
                   scratch_dir: Path, label: str, fetch: Callable[[Path], ObjectInfo] | None = None,
                   stream: Callable[[], StreamedObject] | None = None,
                   progress: ProgressFn | None = None) -> ExtractedObject:
    """Read an object into a private scratch folder and ``extract_video`` it, hashing it meanwhile; clean up.

    ``fetch(dest)`` downloads the whole object first. ``stream()`` (instead) opens it for reading piece by
    piece: the pieces are spooled to the scratch file and hashed as they arrive, and a container that can
    be decoded from a pipe (``workers.spool.streamable_head``: MP4 with its index first, Matroska/WebM) is
    probed from its head and fed to ffmpeg while the rest downloads (unless it is long enough for parallel
    range decoders, ``workers.decode.plan_ranges``, which read the file); any other waits for the whole file.
    The folder, with anything a broken download left beside the file, is removed whatever happens.
    """
    if (fetch is None) == (stream is None):
        raise ValueError("extract_object needs exactly one of fetch and stream")
    started = time.perf_counter()
    scratch_dir.mkdir(parents=True, exist_ok=True)
    extract = functools.partial(extract_video, extractors=extractors, options=options, progress=progress,
                                label=label)
    with tempfile.TemporaryDirectory(dir=scratch_dir) as folder:
        path = Path(folder) / f"input{Path(label).suffix[:16]}"
        if stream is not None:
            video, source, sha256 = _extract_streamed(stream(), path, extract, options, label)
        else:
            assert fetch is not None
            source = fetch(path)
            downloaded = time.perf_counter() - started
            with ThreadPoolExecutor(1, thread_name_prefix="sha256") as hasher:  # hashes while ffmpeg decodes
                digest = hasher.submit(sha256_file, path)
                video = extract(path)
                sha256 = digest.result()
            video.timings = {"download": round(downloaded, 4), **video.timings}
    return ExtractedObject(video, source, sha256)


def _extract_streamed(obj: StreamedObject, path: Path, extract: Callable[..., Extracted], options: DecodeOptions,
                      label: str) -> tuple[Extracted, ObjectInfo, str]:
    """``extract_object`` over a streamed read: (video, the bytes' ObjectInfo, their SHA-256)."""
    check_file_size(obj.size, options.limits, label)
    started = time.perf_counter()
    spool = Spool(obj.pieces, path).start()
    try:
        need = streamable_head(spool.head(HEAD_BYTES), obj.size)
        info = None
        if need is not None:
            spool.wait_for(need)
            with contextlib.suppress(InputError):  # the head alone did not do: probe the whole file below
                info = probe(path, label, options.limits)
        if info is not None and decodes_in_ranges(info, options):
            info = None  # parallel decoders on the whole file beat one decoder reading the download as it lands
        head_s = time.perf_counter() - started
        if info is None:
            sha256 = spool.finish()
            video = extract(path)
            video.timings = {"download": round(spool.seconds, 4), **video.timings}
        else:
            video = extract(path, info=info, feed=spool.tail)
            sha256 = spool.finish()
            if info.demuxer == "matroska" and probe(path, label, options.limits) != info:
                # Tags at the end (a stream's DURATION) changed what the head said: decode the file instead.
                video = extract(path)
            video.timings = {"download": round(spool.seconds, 4), "download_head": round(head_s, 4), **video.timings}
    except BaseException:
        obj.close()
        with contextlib.suppress(Exception):
            spool.finish()
        raise
    return video, obj.info(), sha256
