"""Decode: sample frames from a video file with ffmpeg, streamed in bounded chunks.

Frame ``i`` stands for seconds ``[i / fps, (i + 1) / fps)``. ffmpeg's ``fps`` filter fills each output
slot with the input frame nearest to the slot's timestamp (it keeps the last frame before ``(i + 0.5) / fps``),
so a clip of duration ``d`` yields ``round(d * fps)`` frames: 10.4 s gives 10 frames at 1 fps, 10.6 s gives 11.

Scaling happens inside ffmpeg, so only model-sized RGB frames cross the pipe. A reader thread keeps
ffmpeg decoding while the caller runs the model on the previous chunk; at most ``queue_chunks + 2``
chunks are alive at once, whatever the video's length.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import queue
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import ffmpeg
import numpy as np

from workers.admission import (
    PIPE_URL,
    InputLimits,
    check_file_size,
    check_limits,
    decode_options,
    demuxer_of,
    input_url,
    open_options,
    path_free_errors,
    refused_container,
)
from workers.errors import (
    CorruptVideo,
    DecodeTimeout,
    EmptyFile,
    NotAVideo,
    NoVideoStream,
    TruncatedVideo,
)
from workers.heap import release_large_buffers
from workers.types import FrameGeometry, VideoInfo

log = logging.getLogger(__name__)
STDERR_TAIL_LINES = 20
_ADDRESS = re.compile(r" @ 0x[0-9a-f]+")


@path_free_errors
def probe(path: Path, label: str | None = None, limits: InputLimits | None = None) -> VideoInfo:
    """Read container and stream metadata; raise an ``InputError`` naming what is wrong with the file.

    ``label`` names the video in error messages (the upload's name rather than a scratch file's). Only
    the demuxers of ``workers.admission.CONTAINERS`` are opened, and a video over ``limits`` (default:
    ``InputLimits()``) is refused here, before any frame is decoded.
    """
    name = label or path.name
    limits = limits or InputLimits()
    if not path.exists():
        raise NotAVideo(f"{name}: file does not exist")
    size = path.stat().st_size
    if size == 0:
        raise EmptyFile(f"{name}: the file is empty (0 bytes)")
    check_file_size(size, limits, name)
    try:
        meta = ffmpeg.probe(input_url(path), v="error", **open_options())
    except ffmpeg.Error as exc:
        stderr = exc.stderr.decode("utf-8", "replace")
        if (refused := refused_container(stderr, name)) is not None:
            raise refused from None
        reason = _last_lines(stderr, 3)
        if "moov atom not found" in reason and _looks_like_mp4(path):
            raise TruncatedVideo(f"{name}: the file is cut short (MP4 index missing): {reason}") from None
        raise NotAVideo(f"{name}: not a readable video: {reason or 'ffprobe failed'}") from None
    except json.JSONDecodeError:
        raise NotAVideo(f"{name}: ffprobe returned unreadable metadata") from None
    demuxer = demuxer_of(str(meta.get("format", {}).get("format_name", "")), name)

    videos = [
        s for s in meta.get("streams", [])
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    if not videos:
        kinds = sorted({s.get("codec_type", "?") for s in meta.get("streams", [])}) or ["none"]
        raise NoVideoStream(f"{name}: no video stream (streams: {', '.join(kinds)})")
    stream = videos[0]
    # The video stream's own length when the container records it (Matroska keeps it in a DURATION tag);
    # otherwise the container's, which covers the longest stream (audio may outlast the picture).
    stream_duration = _first_positive(stream.get("duration"), _clock_seconds(stream.get("tags", {}).get("DURATION")))
    duration = stream_duration or _first_positive(meta.get("format", {}).get("duration"))
    if duration is None:
        raise NotAVideo(f"{name}: the video stream has no duration (a still image or a broken header)")
    if not (stream.get("width") and stream.get("height")):
        raise NotAVideo(f"{name}: the video stream has no frame size (an unknown codec or a broken header)")
    info = VideoInfo(
        duration=duration,
        duration_is_exact=stream_duration is not None,
        width=int(stream["width"]),
        height=int(stream["height"]),
        fps=_rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")) or 0.0,
        codec=str(stream.get("codec_name", "unknown")),
        stream_index=int(stream["index"]),
        demuxer=demuxer,
    )
    check_limits(info, limits, name)
    return info


@path_free_errors
def timestamp_span(path: Path, info: VideoInfo) -> float:
    """Seconds the video stream's packets span, plus one typical frame interval: its length where the
    container records none of its own (some WebM and FLV files), at the price of reading every packet."""
    try:
        data = ffmpeg.probe(input_url(path), v="error", select_streams=str(info.stream_index),
                            show_entries="packet=pts_time", **open_options(info.demuxer))
    except ffmpeg.Error as exc:
        raise NotAVideo(f"{path.name}: packets unreadable: {_last_lines(exc.stderr.decode('utf-8', 'replace'), 3)}")\
            from None
    pts = sorted(float(p["pts_time"]) for p in data.get("packets", []) if p.get("pts_time") not in (None, "N/A"))
    if not pts:
        raise NotAVideo(f"{path.name}: the video stream has no timestamps")
    steps = [b - a for a, b in zip(pts, pts[1:], strict=False) if b > a]
    return pts[-1] - pts[0] + (float(np.median(steps)) if steps else 0.04)


def expected_frames(duration: float, fps: float) -> int:
    """Frames ffmpeg's fps filter yields for a stream of ``duration`` seconds (see module docstring)."""
    return max(1, int(np.floor(duration * fps + 0.5)))


class CoreShare:
    """The CPU cores a video may decode on: ``cores`` (by default this process's usable cores) over the videos
    decoding with this share at the moment (``sample_views`` holds a share while it runs), at least one. One
    long video alone gets every core; a batch decoding ``embed.parallel_videos`` at once gets its share each.
    A process builds one and passes it in every ``DecodeOptions`` (``DecodeOptions.cores``)."""

    def __init__(self, cores: int | None = None) -> None:
        self.cores = cores or len(os.sched_getaffinity(0))
        self._videos = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def share(self) -> Iterator[int]:
        with self._lock:
            self._videos += 1
            cores = max(1, self.cores // self._videos)
        try:
            yield cores
        finally:
            with self._lock:
                self._videos -= 1


@dataclass(frozen=True)
class DecodeOptions:
    """How a worker decodes: sampling rate, chunking, and the limits that protect it.

    The defaults are what the product runs: ``COPYCAT_DECODE__<FIELD>`` sets each one (``DecodeSettings``
    takes its defaults from here; ``Settings.decode_options`` builds these from it). ``limits`` are checked
    by ``probe``, before any frame is decoded. A decode that must give the same pixels on every machine
    (tests comparing them) says ``hwaccel="none"``; ``FULL_DECODE`` also decodes every frame."""

    fps: float = 1.0
    """Frames sampled per second of video."""
    chunk_frames: int = 64
    """Frames read from ffmpeg at a time (bounds memory)."""
    timeout_s: float = 1800.0
    """Limit of ffmpeg's time decoding one video, the least any video gets (``timeout_for``)."""
    max_errors: int = 0
    """Decoder errors tolerated before a video counts as corrupt."""
    limits: InputLimits = InputLimits()
    skip_nonref: bool = True
    """H.264/HEVC: skip non-reference frames (a sample may come up to 2 source frames early; ``plan_decode``)."""
    timeout_per_s: float = 0.5
    """Decode time allowed per second of probed video, when that is more than ``timeout_s``; 0 = ``timeout_s``."""
    threads: int = 0
    """ffmpeg decoder threads per ffmpeg process; 0 lets ffmpeg decide."""
    keyframe_max_gap_s: float = 0.0
    """Decode key frames only for streams whose key frames are at most this far apart; 0 = never."""
    hwaccel: Literal["auto", "cuda", "none"] = "auto"
    """NVDEC when offered (auto), NVDEC logging why not (cuda), or never (none); see ``plan_decode``."""
    decoders: int = 0
    """ffmpeg processes decoding one long video at once, each a time range (``plan_ranges``); 0 = the cores
    this video's share gives it."""
    segment_s: float = 120.0
    """Length of one time range decoded in parallel."""
    cores: CoreShare | None = field(default=None, compare=False)
    """The cores this decode shares with the other videos its process decodes at once: a process decoding
    several videos in parallel passes each the same share (``Resources.decode_options``); None gives the
    decode a share of its own, all of this process's usable cores."""

    def core_share(self) -> CoreShare:
        """``cores``, or a share of its own when there is none."""
        return self.cores or CoreShare()

    def timeout_for(self, duration: float) -> float:
        """The decode time limit of a video of ``duration`` seconds: ``timeout_s``, or ``timeout_per_s`` per
        second of video when that is more (a 2-hour upload gets a longer limit than a 30-second one)."""
        return max(self.timeout_s, self.timeout_per_s * duration)


FULL_DECODE = DecodeOptions(skip_nonref=False, timeout_per_s=0.0, hwaccel="none", decoders=1)
"""Every frame decoded, on the CPU, by one ffmpeg per video: the benchmarks measured this way keep measuring
it. Not what the product runs (``DecodeOptions()``)."""


def sample_frames(path: Path, info: VideoInfo, geometry: FrameGeometry, options: DecodeOptions = DecodeOptions(),
                  *, label: str | None = None) -> Iterator[np.ndarray]:
    """Yield uint8 RGB chunks [n, size, size, 3] of frames sampled at ``options.fps`` (one geometry)."""
    for (chunk,) in sample_views(path, info, (geometry,), options, label=label):
        yield chunk


@path_free_errors
def sample_views(
    path: Path,
    info: VideoInfo,
    geometries: Sequence[FrameGeometry],
    options: DecodeOptions = DecodeOptions(),
    *,
    queue_chunks: int = 2,
    label: str | None = None,
    feed: Callable[[], Iterator[bytes]] | None = None,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield, per chunk of sampled frames, one uint8 RGB array [n, size, size, 3] per geometry, in order.

    With ``feed``, ffmpeg reads the file's bytes from its stdin as ``feed()`` yields them (a download still
    under way: ``workers.spool``), the probed demuxer forced and the ``pipe`` protocol alone allowed; ``path``
    must then be a container ``workers.spool.streamable_head`` accepts.

    One ffmpeg process decodes the stream once: after the ``fps`` filter the frames are ``split``, each branch
    is scaled to its geometry, and the branches are padded and stacked vertically into one raw frame
    [sum(size), max(size), 3] that this function slices apart. Every view is pixel-identical to what a
    decode of that geometry alone gives. A long video read from a file is cut into time ranges decoded by
    parallel ffmpeg processes (``plan_ranges``, ``options.decoders``), its samples yielded in order.

    Raises ``CorruptVideo`` when ffmpeg reports more than ``max_errors`` decode errors, ``TruncatedVideo``
    when far fewer frames arrive than the duration promises, ``DecodeTimeout`` when ffmpeg has spent
    ``timeout_s`` producing frames. Time the caller spends on the frames (the model) does not count: the
    clock runs only while the reader waits for ffmpeg.
    """
    if not geometries:
        raise ValueError("sample_views needs at least one geometry")
    plan = plan_decode(info, geometries, options, keyframe_gap=_keyframe_gap(path, info, options),
                       hardware=hardware_decoders() if options.hwaccel != "none" else None)
    name = label or path.name
    with options.core_share().share() as cores:
        ranges = plan_ranges(info, options, cores) if feed is None and plan.hwaccel is None else [WHOLE]
        decoders = min(len(ranges), options.decoders or cores)
        if len(ranges) > 1:
            plan = replace(plan, threads=plan.threads or 1,
                           reason=f"{plan.reason}, {len(ranges)} time ranges by {decoders} decoders")
        if plan.hwaccel or plan.skip_frame == "nokey" or len(ranges) > 1:
            log.info("%s: decoding with %s", name, plan.reason)
        if len(ranges) > 1:
            yield from _run_ranges(path, info, geometries, options, plan, ranges, decoders, name)
            return
        yield from _decode_with_fallback(path, info, geometries, options, plan, queue_chunks, name, feed)


def _decode_with_fallback(path: Path, info: VideoInfo, geometries: Sequence[FrameGeometry], options: DecodeOptions,
                          plan: DecodePlan, queue_chunks: int, label: str,
                          feed: Callable[[], Iterator[bytes]] | None) -> Iterator[tuple[np.ndarray, ...]]:
    """One decoder over the whole stream; an NVDEC decode failing before its first frame is run on the CPU."""
    produced = 0
    try:
        for views in _run_decoder(path, info, geometries, options, plan, queue_chunks, label, feed):
            produced += views[0].shape[0]
            yield views
    except CorruptVideo as exc:
        if plan.hwaccel is None or produced:
            raise
        log.warning("%s: NVDEC decode failed before the first frame (%s); decoding on the CPU instead", label, exc)
        cpu = replace(plan, hwaccel=None, reason=f"{plan.reason}; NVDEC failed, CPU fall-back")
        yield from _run_decoder(path, info, geometries, options, cpu, queue_chunks, label, feed)


def _run_decoder(path: Path, info: VideoInfo, geometries: Sequence[FrameGeometry], options: DecodeOptions,
                 plan: DecodePlan, queue_chunks: int, name: str,
                 feed: Callable[[], Iterator[bytes]] | None, span: TimeRange | None = None,
                 cancel: threading.Event | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    """One ffmpeg process running ``plan`` over the whole stream, or over ``span`` of it; ``cancel`` set from
    another thread kills it."""
    span = span or WHOLE
    cmd = _decoder_command(path, info, geometries, options.fps, plan, pipe=feed is not None, span=span)
    width, height = max(g.size for g in geometries), sum(g.size for g in geometries)
    frame_bytes = width * height * 3
    chunk_frames, timeout_s = options.chunk_frames, options.timeout_for(info.duration)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL if feed is None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr_lines: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    error_count = [0]
    timed_out = threading.Event()

    def drain_stderr() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = _ADDRESS.sub("", raw.decode("utf-8", "replace")).rstrip()
            if line:
                stderr_lines.append(line)
                error_count[0] += 1

    chunks: queue.Queue[tuple[np.ndarray, ...] | BaseException | None] = queue.Queue(maxsize=queue_chunks)
    stop = threading.Event()
    clock = DecodeClock()

    def kill_on_deadline() -> None:
        while not stop.wait(0.1):
            if cancel is not None and cancel.is_set():
                proc.kill()
                return
            if clock.elapsed() > timeout_s and proc.poll() is None:
                timed_out.set()
                proc.kill()
                return

    def read_chunks() -> None:
        assert proc.stdout is not None
        try:
            while not stop.is_set():
                with clock:
                    data = _read_exact(proc.stdout, frame_bytes * chunk_frames)
                whole = len(data) // frame_bytes
                if whole:
                    frames = np.frombuffer(data[: whole * frame_bytes], np.uint8).reshape(whole, height, width, 3)
                    chunks.put(_unstack(frames, geometries))
                if len(data) < frame_bytes * chunk_frames:
                    break
        except BaseException as exc:  # handed to the consumer, which re-raises it
            chunks.put(exc)
        finally:
            chunks.put(None)

    def write_input() -> None:
        assert proc.stdin is not None and feed is not None
        try:
            for piece in feed():
                if stop.is_set():
                    break
                proc.stdin.write(piece)
        except (BrokenPipeError, ValueError):  # ffmpeg stopped reading: its exit status tells why
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()

    watchdog = threading.Thread(target=kill_on_deadline, daemon=True)
    threads = [threading.Thread(target=drain_stderr, daemon=True), threading.Thread(target=read_chunks, daemon=True)]
    watchdog.start()
    for thread in threads:
        thread.start()
    writer = threading.Thread(target=write_input, daemon=True) if feed is not None else None
    if writer is not None:
        writer.start()
    started, produced = time.monotonic(), 0
    try:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            produced += item[0].shape[0]
            yield item
        returncode = proc.wait()
        threads[0].join()
        if timed_out.is_set():
            raise DecodeTimeout(
                f"{name}: ffmpeg needed more than {timeout_s:.0f} s of decoding (stopped after "
                f"{time.monotonic() - started:.0f} s, {produced} frames read); raise COPYCAT_DECODE__TIMEOUT_S"
                " or COPYCAT_DECODE__TIMEOUT_PER_S"
            )
        detail = " | ".join(stderr_lines)
        if error_count[0] > options.max_errors and "partial file" in detail:
            raise TruncatedVideo(f"{name}: the file ends early after {produced} frames: {detail}")
        if error_count[0] > options.max_errors:
            raise CorruptVideo(f"{name}: decoder reported {error_count[0]} errors: {detail}")
        if returncode != 0:
            raise CorruptVideo(f"{name}: ffmpeg exited with {returncode}: {detail or 'no message'}")
        expected = span.frames or expected_frames(info.duration - span.start, options.fps)
        if produced == 0:
            raise CorruptVideo(f"{name}: no frame could be decoded")
        if span.frames is not None and produced != span.frames:
            raise TruncatedVideo(f"{name}: the range from {span.start:.0f} s gave {produced} of its {span.frames}"
                                 " frames")
        if info.duration_is_exact and produced < 0.8 * expected - 1:
            raise TruncatedVideo(
                f"{name}: decoded {produced} frames but the stream's duration promises {expected}"
            )
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        # Unblock a reader waiting on a full queue, then reap everything.
        while threads[1].is_alive():
            with contextlib.suppress(queue.Empty):
                chunks.get(timeout=0.05)
        proc.wait()
        if writer is not None:
            writer.join()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


SKIPPABLE_CODECS = ("h264", "hevc")
"""Codecs whose decoder can skip non-reference frames (``skip_nonref``)."""
NVDEC_CODECS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg1video", "mpeg2video", "mpeg4", "vc1", "mjpeg")
"""Codecs ffmpeg's ``cuda`` hwaccel decodes on NVIDIA GPUs (NVDEC; the GPU generation may support fewer)."""
KEYFRAME_PROBE_S = 30.0
"""Seconds of packets read to measure a stream's key-frame spacing (``keyframe_max_gap_s``)."""


@dataclass(frozen=True)
class DecodePlan:
    """How one stream is decoded, chosen from its probe (``plan_decode``); ``reason`` goes to the log."""

    skip_frame: str | None = None
    threads: int = 0
    hwaccel: str | None = None
    reason: str = "full decode"


@dataclass(frozen=True)
class TimeRange:
    """The samples from ``start`` seconds on that one ffmpeg process decodes: ``frames`` of them, or (None) all
    to the end of the stream, as a decode of the whole video does."""

    start: float = 0.0
    frames: int | None = None


WHOLE = TimeRange()




def plan_ranges(info: VideoInfo, options: DecodeOptions, cores: int) -> list[TimeRange]:
    """Cut a long video into consecutive time ranges of about ``options.segment_s`` (half to twice it) for
    parallel decoders, as many as a multiple of the decoders where that holds: 5 ranges on 2 decoders
    leave one core idle while the last decodes (a 10-minute video decoded alone in 17.1-18.7 s, in 6 ranges
    14.0-15.1 s).

    Single-threaded decoders on separate ranges use the cores better than one decoder's frame threads (a
    10-minute 720p H.264 video on 2 cores: 29.2 s against 36.3 s, docs/performance.md). Boundaries fall on sample slots,
    so the ranges' samples are the whole decode's. One range (``WHOLE``) when only one decoder may run
    (``options.decoders``, 0 meaning ``cores``), when the video is shorter than two ranges, or when its
    duration is not known exactly (the last range would start at a guess).
    """
    decoders = options.decoders or cores
    if decoders < 2 or options.segment_s <= 0 or not info.duration_is_exact or info.duration < 2 * options.segment_s:
        return [WHOLE]
    count = int(info.duration // options.segment_s)
    balanced = -(-count // decoders) * decoders  # a multiple of the decoders: the last wave keeps them all busy
    count = min(balanced, int(info.duration // (options.segment_s / 2)))  # ranges of at least half segment_s
    total = expected_frames(info.duration, options.fps)
    bounds = [round(k * total / count) for k in range(count + 1)]
    return [TimeRange(start / options.fps, end - start if k < count - 1 else None)
            for k, (start, end) in enumerate(itertools.pairwise(bounds))]


def decodes_in_ranges(info: VideoInfo, options: DecodeOptions) -> bool:
    """Whether ``sample_views`` would cut this video into parallel time ranges, given the whole file."""
    return len(plan_ranges(info, options, options.core_share().cores)) > 1


class _RangeReader:
    """A thread draining one range's decoder into memory, so that it decodes while an earlier range is read."""

    def __init__(self, span: TimeRange, decode: Callable[[threading.Event], Iterator[tuple[np.ndarray, ...]]]) -> None:
        self.span = span
        self._chunks: queue.Queue[tuple[np.ndarray, ...] | BaseException | None] = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._drain, args=(decode,), daemon=True,
                                        name=f"decode-from-{span.start:.0f}s")
        self._thread.start()

    def _drain(self, decode: Callable[[threading.Event], Iterator[tuple[np.ndarray, ...]]]) -> None:
        try:
            for views in decode(self._cancel):
                self._chunks.put(views)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._chunks.put(exc)
        finally:
            self._chunks.put(None)

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        while (item := self._chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        """Kill the range's ffmpeg (if still running) and wait for the thread."""
        self._cancel.set()
        self._thread.join()


def _run_ranges(path: Path, info: VideoInfo, geometries: Sequence[FrameGeometry], options: DecodeOptions,
                plan: DecodePlan, ranges: Sequence[TimeRange], decoders: int,
                name: str) -> Iterator[tuple[np.ndarray, ...]]:
    """``ranges`` decoded by up to ``decoders`` ffmpeg processes at once, yielded in order: while the caller
    reads one range, the next ones decode ahead, so at most ``decoders`` ranges of frames are held.

    A range that fails (a stream that does not seek cleanly: open GOPs, a broken index, timestamp gaps; or
    one that ends early) hands the rest of the video to one decoder reading from the start, whose frames
    before that range are dropped: a seek problem costs time, never frames, and a broken video fails with
    the whole decode's own error.
    """
    release_large_buffers()  # each range's reader thread would otherwise keep its chunks in a heap arena
    upcoming = iter(ranges)
    readers: deque[_RangeReader] = deque()

    def start_next() -> None:
        if (span := next(upcoming, None)) is not None:
            readers.append(_RangeReader(span, lambda cancel: _run_decoder(
                path, info, geometries, options, plan, 2, name, None, span, cancel)))

    produced = 0
    try:
        for _ in range(decoders):
            start_next()
        while readers:
            try:
                for views in readers[0]:
                    produced += views[0].shape[0]
                    yield views
            except (CorruptVideo, TruncatedVideo) as exc:
                log.warning("%s: the range from %.0f s failed (%s); decoding the rest with one decoder from the"
                            " start", name, readers[0].span.start, exc)
                while readers:
                    readers.popleft().stop()
                whole = replace(plan, threads=options.threads, reason=f"{plan.reason}; one decoder after a failed"
                                " range")
                yield from _drop_frames(_run_decoder(path, info, geometries, options, whole, 2, name, None), produced)
                return
            readers.popleft().stop()
            start_next()
    finally:
        while readers:
            readers.popleft().stop()


def _drop_frames(chunks: Iterator[tuple[np.ndarray, ...]], count: int) -> Iterator[tuple[np.ndarray, ...]]:
    """``chunks`` without their first ``count`` frames."""
    for views in chunks:
        if count >= views[0].shape[0]:
            count -= views[0].shape[0]
            continue
        yield tuple(view[count:] for view in views) if count else views
        count = 0


@dataclass(frozen=True)
class HardwareDecoders:
    """What this machine's ffmpeg and driver offer for GPU decoding (``hardware_decoders``)."""

    hwaccels: frozenset[str] = frozenset()
    filters: frozenset[str] = frozenset()
    device: bool = False


def plan_decode(info: VideoInfo, geometries: Sequence[FrameGeometry], options: DecodeOptions, *,
                keyframe_gap: float | None = None, hardware: HardwareDecoders | None = None) -> DecodePlan:
    """Decode only what sampling at ``options.fps`` needs, per stream (every mode keeps the ``fps`` filter's
    slots; a sample is the nearest decoded frame, so what a mode skips bounds its timestamp error):

    - key frames only (``-skip_frame nokey``) when the probed key frames are at most ``keyframe_max_gap_s``
      apart: a sample may come up to that gap early;
    - else, for H.264/HEVC with ``skip_nonref``, non-reference frames skipped (``-skip_frame noref``): up to
      a run of non-reference frames early (2 frames, 80 ms, with x264's B-frames at 25 fps);
    - NVDEC (``-hwaccel cuda``, frames scaled by ``scale_cuda`` on the GPU) when ``options.hwaccel`` is
      ``auto`` or ``cuda``, the codec is one NVDEC decodes, every geometry is a plain resize (``squash``), and
      ffmpeg offers the ``cuda`` hwaccel and ``scale_cuda`` with an NVIDIA device present; the frames are
      the same samples, scaled by another implementation.
    """
    reasons, skip = [], None
    if options.keyframe_max_gap_s > 0 and keyframe_gap is not None and keyframe_gap <= options.keyframe_max_gap_s:
        skip = "nokey"
        reasons.append(f"key frames only (at most {keyframe_gap:.2f} s apart)")
    elif options.skip_nonref and info.codec in SKIPPABLE_CODECS:
        skip = "noref"
        reasons.append("non-reference frames skipped")
    hwaccel, why_not = None, ""
    if options.hwaccel in ("auto", "cuda"):
        if hardware is None or "cuda" not in hardware.hwaccels or "scale_cuda" not in hardware.filters:
            why_not = "ffmpeg offers no cuda hwaccel with scale_cuda"
        elif not hardware.device:
            why_not = "no NVIDIA device"
        elif info.codec not in NVDEC_CODECS:
            why_not = f"NVDEC does not decode {info.codec}"
        elif any(g.resize != "squash" for g in geometries):
            why_not = "a cropped geometry"
        else:
            hwaccel = "cuda"
            reasons.append("NVDEC")
        if why_not and options.hwaccel == "cuda":
            reasons.append(f"CPU decode ({why_not})")
    return DecodePlan(skip_frame=skip, threads=options.threads, hwaccel=hwaccel,
                      reason=", ".join(reasons) or "full decode")


@functools.cache
def hardware_decoders() -> HardwareDecoders:
    """This process's ffmpeg hwaccels and filters, and whether an NVIDIA device node exists (asked once)."""
    def listing(flag: str) -> str:
        try:
            return subprocess.run(["ffmpeg", "-hide_banner", flag], capture_output=True, text=True,
                                  timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""

    hwaccels = frozenset(line.strip() for line in listing("-hwaccels").splitlines()[1:] if line.strip())
    filters = frozenset(parts[1] for line in listing("-filters").splitlines()
                        if len(parts := line.split()) > 2 and "->" in parts[2])
    device = Path("/dev/nvidiactl").exists() and Path("/proc/driver/nvidia/version").exists()
    return HardwareDecoders(hwaccels, filters, device)


def keyframe_gap(path: Path, info: VideoInfo, seconds: float = KEYFRAME_PROBE_S) -> float | None:
    """The largest gap (seconds) between key frames in the stream's first ``seconds``, from packet flags (no
    decoding); None when there are fewer than two key frames to measure."""
    try:
        data = ffmpeg.probe(input_url(path), v="error", select_streams=str(info.stream_index),
                            show_entries="packet=pts_time,flags", read_intervals=f"%+{seconds:g}",
                            **open_options(info.demuxer))
    except ffmpeg.Error:
        return None
    keys = sorted(float(p["pts_time"]) for p in data.get("packets", [])
                  if "K" in p.get("flags", "") and p.get("pts_time") not in (None, "N/A"))
    if len(keys) < 2:
        return None
    gaps = np.diff(keys)
    # The gap after the last key frame read runs to the end of what was read, at least as long as any.
    return float(max(gaps.max(), min(seconds, info.duration) - keys[-1]))


def _keyframe_gap(path: Path, info: VideoInfo, options: DecodeOptions) -> float | None:
    return keyframe_gap(path, info) if options.keyframe_max_gap_s > 0 else None


def _decoder_command(path: Path, info: VideoInfo, geometries: Sequence[FrameGeometry], fps: float,
                     plan: DecodePlan = DecodePlan(), *, pipe: bool = False,
                     span: TimeRange | None = None) -> list[str]:
    """The ffmpeg command line of ``plan``: sample at ``fps``, one scaled branch per geometry, stacked into one
    raw frame. Measured choices (docs/measurements/, bench/ingest_throughput.py): not ``skip_frame bidir``: with
    B-pyramids it drops reference B-frames and the decoder reports errors; not ``skip_loop_filter all``:
    F1 -0.0067 on the fixture benchmark.
    """
    extra: dict[str, object] = {}
    if plan.skip_frame:
        extra["skip_frame"] = plan.skip_frame
    if plan.threads:
        extra["threads"] = plan.threads
    if plan.hwaccel:
        extra.update(hwaccel=plan.hwaccel, hwaccel_output_format=plan.hwaccel)
    output: dict[str, object] = {}
    if span is not None and span.start > 0:
        extra["ss"] = f"{span.start:.6f}"
    if span is not None and span.frames is not None:
        # One sample period more is read than the range holds, so the fps filter sees the frame after its
        # last slot; the output stops at the range's own frames.
        extra["t"] = f"{(span.frames + 1) / fps:.6f}"
        output["frames:v"] = span.frames
    source = PIPE_URL if pipe else input_url(path)
    sampled = ffmpeg.input(source, **extra, **decode_options(info, pipe=pipe))[str(info.stream_index)].filter(
        "fps", fps=fps)
    branches = [sampled] if len(geometries) == 1 else [sampled.split()[i] for i in range(len(geometries))]
    width = max(g.size for g in geometries)
    scaled = []
    for branch, geometry in zip(branches, geometries, strict=True):
        if plan.hwaccel:
            # bicubic like the CPU scaler; 8-bit 4:2:0 whatever the stream's depth, so hwdownload's format is known
            branch = (branch.filter("scale_cuda", w=geometry.size, h=geometry.size, interp_algo="bicubic",
                                    format="yuv420p").filter("hwdownload").filter("format", "yuv420p"))
        else:
            for filter_name, kwargs in geometry.filters():
                branch = branch.filter(filter_name, **kwargs)
        if geometry.size < width:
            branch = branch.filter("pad", w=width, h=geometry.size, x=0, y=0)
        scaled.append(branch)
    stacked = scaled[0] if len(scaled) == 1 else ffmpeg.filter(scaled, "vstack", inputs=len(scaled))
    return (
        stacked.output("pipe:", format="rawvideo", pix_fmt="rgb24", **output)
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-an", "-sn", "-dn")
        .compile()
    )


def _unstack(frames: np.ndarray, geometries: Sequence[FrameGeometry]) -> tuple[np.ndarray, ...]:
    """[n, sum(size), max(size), 3] -> one contiguous [n, size, size, 3] per geometry (see ``_decoder_command``)."""
    if len(geometries) == 1:
        return (frames,)
    views, top = [], 0
    for geometry in geometries:
        views.append(np.ascontiguousarray(frames[:, top : top + geometry.size, : geometry.size]))
        top += geometry.size
    return tuple(views)


class DecodeClock:
    """Seconds spent inside ``with clock:`` blocks so far, including a block still running: the time a
    reader waited on ffmpeg, not the time the caller spent on the frames."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._total = 0.0
        self._since: float | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            self._since = self._now()

    def __exit__(self, *_: object) -> None:
        with self._lock:
            if self._since is not None:
                self._total += self._now() - self._since
            self._since = None

    def elapsed(self) -> float:
        with self._lock:
            running = self._now() - self._since if self._since is not None else 0.0
            return self._total + running


@path_free_errors
def frames_at(path: Path, info: VideoInfo, times: Sequence[float], height: int,
              options: DecodeOptions = DecodeOptions(), *, label: str | None = None) -> list[np.ndarray]:
    """uint8 RGB frames [height, W, 3] (the display aspect kept, W even) shown at each of ``times`` (seconds).

    For report thumbnails: one short ffmpeg run per time, seeking to it, opened exactly like ``sample_views``
    (the probed demuxer forced, the ``file`` protocol only, the decoder's frame size capped), so ``info``
    must come from ``probe`` of the same file. A time past the end gives the last frame.
    """
    name = label or path.name
    width = max(2, int(round(info.width * height / max(info.height, 1) / 2)) * 2)
    frames = []
    for moment in times:
        seek = float(min(max(moment, 0.0), max(info.duration - 0.05, 0.0)))
        cmd = (ffmpeg.input(input_url(path), ss=f"{seek:.3f}", **decode_options(info))[str(info.stream_index)]
               .filter("scale", w=width, h=height, flags="bicubic")
               .output("pipe:", format="rawvideo", pix_fmt="rgb24", vframes=1)
               .global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-an", "-sn", "-dn").compile())
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=options.timeout_s)
        except subprocess.TimeoutExpired:
            raise DecodeTimeout(f"{name}: ffmpeg needed more than {options.timeout_s:.0f} s for the frame at "
                                f"{seek:.1f} s") from None
        data = done.stdout[: width * height * 3]
        if done.returncode != 0 or len(data) < width * height * 3:
            detail = _last_lines(done.stderr.decode("utf-8", "replace"), 3) or f"exit code {done.returncode}"
            raise CorruptVideo(f"{name}: no frame at {seek:.1f} s: {detail}")
        frames.append(np.frombuffer(data, np.uint8).reshape(height, width, 3).copy())
    return frames


def decode_all(path: Path, geometry: FrameGeometry, options: DecodeOptions = DecodeOptions()) -> np.ndarray:
    """All sampled frames of a short video as uint8 [T, size, size, 3] (tests and small clips only)."""
    parts = list(sample_frames(path, probe(path, limits=options.limits), geometry, options))
    return np.concatenate(parts) if parts else np.zeros((0, geometry.size, geometry.size, 3), np.uint8)


def _read_exact(pipe: object, size: int) -> bytes:
    """Read ``size`` bytes unless the pipe ends first."""
    parts, remaining = [], size
    while remaining:
        data = pipe.read(remaining)  # type: ignore[attr-defined]
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)


def _clock_seconds(value: str | None) -> float | None:
    """'00:00:10.333000000' -> 10.333."""
    if not value:
        return None
    try:
        hours, minutes, seconds = value.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _looks_like_mp4(path: Path) -> bool:
    """An ISO-BMFF file starts with an ``ftyp`` box; without one, 'moov not found' means 'not a video'."""
    with path.open("rb") as handle:
        return handle.read(12)[4:8] == b"ftyp"


def _rate(value: str | None) -> float | None:
    if not value or "/" not in value:
        return None
    num, den = value.split("/", 1)
    try:
        return float(num) / float(den) if float(den) else None
    except ValueError:
        return None


def _first_positive(*values: object) -> float | None:
    for value in values:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if number > 0 and np.isfinite(number):
            return number
    return None


def _last_lines(text: str, count: int) -> str:
    """The last ``count`` non-empty lines, without ffmpeg's memory addresses, joined for one log line."""
    lines = [_ADDRESS.sub("", line).strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])
