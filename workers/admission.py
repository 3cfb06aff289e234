"""Admission: which uploads ffmpeg may open at all, within which limits, and what their errors may say.

An upload is untrusted bytes, and ffmpeg picks a demuxer by content. Some demuxers open further inputs
named inside the file: an HLS or concat playlist saved as ``x.mp4`` that names a ``.ts`` file on the
server's disk makes ffmpeg read and decode that file. So only container demuxers that read nothing but
their own file may be used (``CONTAINERS``). ffprobe refuses any other demuxer before it reads a header
(``format_whitelist``), ffmpeg is then forced to the demuxer ffprobe found (``-f``), and both may use the
``file`` protocol only.

Limits (``InputLimits``) are checked on the probed metadata, before a frame is decoded. Error messages
name the upload (its label), never a path on the server: ffmpeg's own lines name the scratch file.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.errors import (
    CopycatError,
    FileTooLarge,
    FrameRateTooHigh,
    FrameTooLarge,
    UnsupportedContainer,
    VideoTooLong,
)
from workers.types import VideoInfo

# ffmpeg demuxer names (the first name of ffprobe's ``format_name``) of containers that read only their own
# file: MP4/MOV/3GP, Matroska/WebM, AVI, FLV, MPEG-TS, MPEG-PS, Ogg and ASF/WMV. Never hls, dash, concat,
# image2, imf or webm_dash_manifest: they open the files or URLs a playlist names.
CONTAINERS = ("mov", "matroska", "avi", "flv", "mpegts", "mpeg", "ogg", "asf")
PROTOCOLS = "file"

_REFUSED = re.compile(r"\[([\w,]+) @ [^\]]*\] Format not on whitelist")
_PATH = re.compile(r"(?:(?<=[\s'\"(\[=<])|^)(?:file:)?/[^\s'\"|,;)\]>]*")
_PLACEHOLDER = "\x00label\x00"


@dataclass(frozen=True)
class InputLimits:
    """What one upload may cost a worker. Defaults protect a worker; ``DecodeSettings`` exposes each one."""

    max_pixels: int = 7680 * 4320  # 8K UHD
    max_file_bytes: int = 16 * 2**30
    max_duration_s: float = 6 * 3600.0
    max_fps: float = 240.0


def input_url(path: Path) -> str:
    """The one input ffmpeg may open: ``file:`` so a name such as ``concat:a|b`` is never read as a protocol."""
    return f"file:{path.resolve()}"


PIPE_URL = "pipe:0"
"""ffmpeg's input when the bytes arrive on its stdin (a download still under way, ``workers.spool``)."""


def open_options(demuxer: str | None = None, *, pipe: bool = False) -> dict[str, str]:
    """ffmpeg/ffprobe input options: the allowed demuxers and protocol (``pipe`` alone when reading stdin),
    and ``demuxer`` forced when known."""
    options = {"protocol_whitelist": "pipe" if pipe else PROTOCOLS, "format_whitelist": ",".join(CONTAINERS)}
    if demuxer:
        options["f"] = demuxer
    return options


def decode_options(info: VideoInfo, *, pipe: bool = False) -> dict[str, str]:
    """``open_options`` for decoding a probed video, with the decoder's frame size capped.

    A stream may change its frame size mid-way (a new H.264 parameter set), so the probed first frame does
    not bound what the decoder allocates. It may make frames up to twice each side of what was admitted
    (plus the 64-pixel alignment ffmpeg checks), never the 16k x 16k a hostile stream could switch to.
    """
    return {**open_options(info.demuxer, pipe=pipe), "max_pixels": str(4 * (info.width + 64) * (info.height + 64))}


def demuxer_of(format_name: str, name: str) -> str:
    """The demuxer to force for a probed ``format_name`` ('mov,mp4,m4a,...' -> 'mov'), or refuse it."""
    demuxer = format_name.split(",", 1)[0]
    if demuxer not in CONTAINERS:
        raise UnsupportedContainer(_refusal(name, demuxer))
    return demuxer


def refused_container(stderr: str, name: str) -> UnsupportedContainer | None:
    """The error for ffprobe output that shows a demuxer outside the whitelist was detected, else None."""
    found = _REFUSED.search(stderr)
    return UnsupportedContainer(_refusal(name, found.group(1).split(",", 1)[0])) if found else None


def check_file_size(file_bytes: int, limits: InputLimits, name: str) -> None:
    """Refuse a file over the size limit (before anything reads it, where the size is known first)."""
    if file_bytes > limits.max_file_bytes:
        raise FileTooLarge(f"{name}: {_size(file_bytes)} is more than the limit of {_size(limits.max_file_bytes)}"
                           " (COPYCAT_DECODE__MAX_FILE_MIB)")


def check_limits(info: VideoInfo, limits: InputLimits, name: str) -> None:
    """Refuse a probed video over a frame-size, frame-rate or length limit, before it costs a decode."""
    if info.width * info.height > limits.max_pixels:
        raise FrameTooLarge(f"{name}: frames of {info.width}x{info.height} have more than the limit of "
                            f"{limits.max_pixels} pixels (COPYCAT_DECODE__MAX_PIXELS)")
    if info.fps > limits.max_fps:
        raise FrameRateTooHigh(f"{name}: {info.fps:g} frames per second is more than the limit of "
                               f"{limits.max_fps:g} (COPYCAT_DECODE__MAX_FPS)")
    if info.duration > limits.max_duration_s:
        raise VideoTooLong(f"{name}: {info.duration:.0f} s is longer than the limit of "
                           f"{limits.max_duration_s:.0f} s (COPYCAT_DECODE__MAX_DURATION_S)")


def scrub_paths(text: str, path: Path, label: str) -> str:
    """``text`` with ``path`` (as ffmpeg wrote it) replaced by ``label`` and any other absolute path elided."""
    for spelling in sorted({input_url(path), str(path.resolve()), str(path), label}, key=len, reverse=True):
        text = text.replace(spelling, _PLACEHOLDER)  # the label too, so a key such as 'a /b' stays whole
    return _PATH.sub("<path>", text).replace(_PLACEHOLDER, label)


def path_free_errors[F: Callable[..., Any]](fn: F) -> F:
    """Make the Copycat errors of ``fn(path, ..., label=...)`` name the label instead of server paths.

    Wraps plain functions and generator functions (``sample_frames``) alike; the error keeps its type
    and traceback, only its message changes.
    """

    def scrub(exc: CopycatError, path: Path, label: str | None) -> None:
        exc.args = tuple(scrub_paths(str(arg), path, label or path.name) for arg in exc.args)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(path: Path, *args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from fn(path, *args, **kwargs))
            except CopycatError as exc:
                scrub(exc, path, _label(args, kwargs, fn))
                raise

        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def plain(path: Path, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(path, *args, **kwargs)
        except CopycatError as exc:
            scrub(exc, path, _label(args, kwargs, fn))
            raise

    return plain  # type: ignore[return-value]


def _label(args: tuple[Any, ...], kwargs: dict[str, Any], fn: Callable[..., Any]) -> str | None:
    """The ``label`` argument of a call, passed by keyword or by position."""
    if "label" in kwargs:
        return kwargs["label"]
    names = list(inspect.signature(fn).parameters)[1:]
    return args[names.index("label")] if "label" in names and names.index("label") < len(args) else None


def _refusal(name: str, demuxer: str) -> str:
    if demuxer.endswith("_pipe") or demuxer.startswith("image2"):
        return f"{name}: a still image, not a video"
    return (f"{name}: the {demuxer or 'unknown'} format is not a video container Copycat opens (accepted: "
            "MP4/MOV, Matroska/WebM, AVI, FLV, MPEG-TS/PS, Ogg, ASF/WMV)")


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count} bytes"
