"""Admission of untrusted uploads: container whitelist, input limits, path-free messages, hostile corpus.

Every file of the corpus is built here with ffmpeg (a few KB each) and goes through ``probe`` and
``sample_frames`` as a worker would: named ``input<suffix>`` in a scratch folder, labelled with the
upload's key. Each ends as an ``InputError`` with its code and a message that names the upload and no
server path, or is accepted where it is a valid video within the limits.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from workers.admission import (
    CONTAINERS,
    InputLimits,
    check_limits,
    decode_options,
    demuxer_of,
    input_url,
    open_options,
    scrub_paths,
)
from workers.decode import DecodeOptions, expected_frames, probe, sample_frames
from workers.errors import (
    CorruptVideo,
    EmptyFile,
    FileTooLarge,
    FrameRateTooHigh,
    FrameTooLarge,
    InputError,
    NotAVideo,
    NoVideoStream,
    TruncatedVideo,
    UnsupportedContainer,
    VideoTooLong,
)
from workers.types import FrameGeometry, VideoInfo

TINY = FrameGeometry(16)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def pattern(out: Path, *extra: str, size: str = "64x64", rate: str = "5", seconds: str = "2") -> Path:
    ffmpeg("-f", "lavfi", "-t", seconds, "-i", f"testsrc=size={size}:rate={rate}", *extra, str(out))
    return out


def admit(path: Path, label: str, limits: InputLimits | None = None) -> int:
    """What a worker does with a downloaded upload: probe, then decode every frame (long ones in parallel
    ranges). Returns the frame count."""
    info = probe(path, label, limits)
    return sum(chunk.shape[0] for chunk in sample_frames(path, info, TINY, DecodeOptions(decoders=2), label=label))


# --- the attack that started it: a playlist that makes ffmpeg read a file from the server's disk -------------


@pytest.fixture(scope="module")
def server_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video elsewhere on the server's disk, which no upload may make a worker read."""
    return pattern(tmp_path_factory.mktemp("server") / "private.ts", "-c:v", "libx264", "-f", "mpegts",
                   size="96x64", seconds="3")


def hls_playlist(target: Path) -> bytes:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3.0,\n{target}\n#EXT-X-ENDLIST\n".encode()


@pytest.mark.parametrize("options", [[], ["-protocol_whitelist", "file"]])
def test_the_hls_attack_is_real_for_plain_ffprobe(server_file: Path, tmp_path: Path, options: list[str]) -> None:
    """Without the format whitelist ffmpeg follows the playlist and reads the server's file (what probe used
    to do); allowing only the ``file`` protocol does not stop it, the file is local."""
    upload = tmp_path / "x.mp4"
    upload.write_bytes(hls_playlist(server_file))
    out = subprocess.run(["ffprobe", "-v", "error", *options, "-show_entries",
                          "format=format_name:stream=width,height", "-of", "compact", str(upload)],
                         capture_output=True, text=True, check=True).stdout
    assert "format_name=hls" in out and "width=96|height=64" in out


def test_an_hls_playlist_saved_as_mp4_is_refused(server_file: Path, tmp_path: Path) -> None:
    upload = tmp_path / "input.mp4"
    upload.write_bytes(hls_playlist(server_file))
    with pytest.raises(UnsupportedContainer, match="x.mp4: the hls format is not a video container") as caught:
        admit(upload, "x.mp4")
    assert caught.value.code == "unsupported_container"
    assert str(server_file) not in str(caught.value)


@pytest.mark.parametrize("demuxer", ["hls", ""])
def test_ffmpeg_itself_refuses_the_playlist_whatever_the_probe_said(server_file: Path, tmp_path: Path,
                                                                    demuxer: str) -> None:
    """Decoding is guarded on its own: forced to ``hls`` or left to detect, ffmpeg will not open it."""
    upload = tmp_path / "input.mp4"
    upload.write_bytes(hls_playlist(server_file))
    info = VideoInfo(duration=3.0, width=96, height=64, fps=5.0, codec="h264", stream_index=0, demuxer=demuxer)
    with pytest.raises(CorruptVideo, match="Format not on whitelist") as caught:
        list(sample_frames(upload, info, TINY, label="x.mp4"))
    assert str(tmp_path) not in str(caught.value)


def test_a_file_named_like_a_protocol_is_read_as_itself(server_file: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``concat:a|b`` as a (relative) file name would be ffmpeg's concat protocol; ``file:`` prevents that."""
    monkeypatch.chdir(tmp_path)
    name = Path("concat:elsewhere.ts|elsewhere.ts")
    shutil.copyfile(server_file, tmp_path / name)
    plain = subprocess.run(["ffprobe", "-v", "error", str(name)], capture_output=True, text=True)
    assert "elsewhere.ts: No such file or directory" in plain.stderr  # ffprobe alone opens what the name lists
    assert probe(name).duration == pytest.approx(3.0, abs=0.1)  # probe reads the file itself
    assert input_url(name) == f"file:{tmp_path / name}"


# --- pure parts -----------------------------------------------------------------------------------------------


def test_the_demuxer_is_the_first_name_of_an_accepted_format() -> None:
    assert demuxer_of("mov,mp4,m4a,3gp,3g2,mj2", "a.mp4") == "mov"
    assert demuxer_of("matroska,webm", "a.webm") == "matroska"
    for refused in ("hls", "concat", "dash", "image2", "png_pipe", "imf", "webm_dash_manifest", "tty", ""):
        with pytest.raises(UnsupportedContainer):
            demuxer_of(refused, "a.mp4")


def test_options_allow_only_the_file_protocol_and_the_containers() -> None:
    assert open_options() == {"protocol_whitelist": "file", "format_whitelist": ",".join(CONTAINERS)}
    assert open_options("mov")["f"] == "mov"
    info = VideoInfo(duration=1.0, width=1920, height=1080, fps=25.0, codec="h264", stream_index=0, demuxer="mov")
    assert decode_options(info)["max_pixels"] == str(4 * 1984 * 1144)


def video(width: int = 1920, height: int = 1080, fps: float = 25.0, duration: float = 60.0) -> VideoInfo:
    return VideoInfo(duration=duration, width=width, height=height, fps=fps, codec="h264", stream_index=0)


@pytest.mark.parametrize(("info", "error", "code"), [
    (video(7681, 4320), FrameTooLarge, "frame_too_large"),
    (video(8192, 8192), FrameTooLarge, "frame_too_large"),
    (video(fps=1000.0), FrameRateTooHigh, "frame_rate_too_high"),
    (video(duration=6 * 3600.0 + 1), VideoTooLong, "too_long"),
])
def test_each_limit_has_its_error_and_code(info: VideoInfo, error: type[InputError], code: str) -> None:
    with pytest.raises(error, match="upload.mp4: ") as caught:
        check_limits(info, InputLimits(), "upload.mp4")
    assert caught.value.code == code


def test_limits_at_their_edge_are_accepted() -> None:
    check_limits(video(7680, 4320, fps=240.0, duration=6 * 3600.0), InputLimits(), "upload.mp4")


def test_paths_are_replaced_by_the_label() -> None:
    scratch = Path("/srv/copycat/scratch/tmpab12cd/input.mp4")
    text = (f"{input_url(scratch)}: Invalid data found when processing input | Error opening input file "
            f"{scratch} | could not open '/etc/copycat/other.ts' | rate 30000/1001")
    assert scrub_paths(text, scratch, "a b/clip.mp4") == (
        "a b/clip.mp4: Invalid data found when processing input | Error opening input file a b/clip.mp4 | "
        "could not open '<path>' | rate 30000/1001")
    assert scrub_paths("k /x/y: bad", scratch, "k /x/y") == "k /x/y: bad"  # a label that looks like a path


# --- the hostile corpus -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """One upload: its key, how to build its bytes, and how it must end."""

    key: str
    build: Callable[[Path, Path], None]  # (scratch file to write, folder of other files on the "server")
    error: type[InputError] | None  # None: a valid video, accepted
    match: str = ""
    limits: InputLimits = InputLimits()


def write(data: bytes) -> Callable[[Path, Path], None]:
    return lambda out, _server: out.write_bytes(data)


def copy_of(source: Path, keep: Callable[[bytes], bytes] = lambda b: b) -> Callable[[Path, Path], None]:
    return lambda out, _server: out.write_bytes(keep(source.read_bytes()))


def encoded(*args: str, **kwargs: str) -> Callable[[Path, Path], None]:
    def build(out: Path, _server: Path) -> None:
        tmp = out.with_name("encoded" + out.suffix)
        pattern(tmp, *args, **kwargs)
        tmp.rename(out)
    return build


def lavfi(source: str, *args: str) -> Callable[[Path, Path], None]:
    def build(out: Path, _server: Path) -> None:
        tmp = out.with_name("encoded" + out.suffix)
        ffmpeg("-f", "lavfi", "-i", source, *args, str(tmp))
        tmp.rename(out)
    return build


def playlist(text: str) -> Callable[[Path, Path], None]:
    """A playlist naming ``{server}/private.ts`` (written beside it), whatever the upload is called."""
    def build(out: Path, server: Path) -> None:
        pattern(server / "private.ts", "-c:v", "libx264", "-f", "mpegts")
        out.write_text(text.format(server=server))
    return build


def patched(encode: Callable[[Path, Path], None], patch: Callable[[bytearray], None]) -> Callable[[Path, Path], None]:
    """An encoded file whose header is then edited to lie."""
    def build(out: Path, server: Path) -> None:
        encode(out, server)
        data = bytearray(out.read_bytes())
        patch(data)
        out.write_bytes(bytes(data))
    return build


def avi_frame_size(width: int, height: int) -> Callable[[bytearray], None]:
    """Rewrite an AVI's frame size in its main header and its BITMAPINFOHEADER (the data stays 64x64)."""
    def patch(data: bytearray) -> None:
        main, stream_format = data.find(b"avih"), data.find(b"strf")
        struct.pack_into("<II", data, main + 8 + 32, width, height)
        struct.pack_into("<ii", data, stream_format + 12, width, height)
    return patch


def matroska_duration(clock: bytes) -> Callable[[bytearray], None]:
    """Rewrite the video track's DURATION tag (same length, so no element size changes)."""
    def patch(data: bytearray) -> None:
        start = data.find(b"00:00:02.000000000")
        data[start : start + len(clock)] = clock
    return patch


def mp4_duration(factor: int) -> Callable[[bytearray], None]:
    """Multiply the movie's and the track's header durations (mvhd, tkhd, mdhd; version 0 boxes)."""
    def patch(data: bytearray) -> None:
        for box, field in ((b"mvhd", 16), (b"mdhd", 16), (b"tkhd", 20)):
            at = data.find(box) + 4 + field
            struct.pack_into(">I", data, at, struct.unpack_from(">I", data, at)[0] * factor)
    return patch


def resolution_switch(out: Path, server: Path) -> None:
    """An MPEG-TS whose first frames are 64x64 and whose later ones are 1280x1280 (a new H.264 SPS)."""
    small, large = server / "small.ts", server / "large.ts"
    pattern(small, "-c:v", "libx264", "-f", "mpegts")
    pattern(large, "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", size="1280x1280", seconds="1")
    out.write_bytes(small.read_bytes() + large.read_bytes())


X264 = ("-c:v", "libx264")
LONG_KEY = "long/" + "/".join(["a" * 199] * 4) + "/" + "a" * 191 + ".mp4"  # 1000 characters, parts of < 256
CORPUS = [
    Hostile("empty.mp4", write(b""), EmptyFile, "empty"),
    Hostile("notes.mp4", write(b"this is not a video\n" * 20), NotAVideo, "not a readable video"),
    Hostile("noise.mkv", write(bytes(range(256)) * 64), NotAVideo),
    Hostile("tone.m4a", lavfi("sine=duration=2"), NoVideoStream, "audio"),
    Hostile("tone.mp3", lavfi("sine=duration=2"), UnsupportedContainer, "the mp3 format"),
    Hostile("still.png", lavfi("testsrc=size=64x64", "-frames:v", "1"), UnsupportedContainer, "still image"),
    Hostile("still.mp4", lavfi("testsrc=size=64x64", "-frames:v", "1", "-f", "image2", "-c:v", "mjpeg"),
            UnsupportedContainer, "still image"),
    Hostile("animated.mp4", lavfi("testsrc=size=64x64:rate=5", "-t", "1", "-f", "gif"), UnsupportedContainer,
            "the gif format"),
    Hostile("list.m3u8", playlist("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{server}/private.ts\n"
                                  "#EXT-X-ENDLIST\n"), UnsupportedContainer, "the hls format"),
    Hostile("hls.mp4", playlist("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nprivate.ts\n#EXT-X-ENDLIST\n"),
            UnsupportedContainer, "the hls format"),
    Hostile("ffconcat.mp4", playlist("ffconcat version 1.0\nfile '{server}/private.ts'\n"), UnsupportedContainer,
            "the concat format"),
    Hostile("dash.mp4", playlist('<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" '
                                 'profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" type="static" '
                                 'mediaPresentationDuration="PT2S"><Period><AdaptationSet><Representation '
                                 'id="0" bandwidth="1"><BaseURL>{server}/private.ts</BaseURL></Representation>'
                                 '</AdaptationSet></Period></MPD>\n'), UnsupportedContainer, "the dash format"),
    Hostile("header_16384x16384.avi", patched(encoded("-c:v", "rawvideo", "-pix_fmt", "gray"),
                                              avi_frame_size(16384, 16384)), NotAVideo, "no frame size"),
    Hostile("header_8192x8192.avi", patched(encoded("-c:v", "rawvideo", "-pix_fmt", "gray"),
                                            avi_frame_size(8192, 8192)), FrameTooLarge, "8192x8192"),
    Hostile("header_8192x8192_allowed.avi", patched(encoded("-c:v", "rawvideo", "-pix_fmt", "gray"),
                                                    avi_frame_size(8192, 8192)), CorruptVideo, "Packet too small",
            InputLimits(max_pixels=8192 * 8192)),
    Hostile("size_switch_64_to_1280.ts", resolution_switch, CorruptVideo, "exceeds specified max pixel count"),
    Hostile("duration_10h_tag.mkv", patched(encoded(*X264, "-write_crc32", "0"),
                                            matroska_duration(b"10:00:02.000000000")), VideoTooLong, "36002 s"),
    Hostile("duration_5h_tag.mkv", patched(encoded(*X264, "-write_crc32", "0"),
                                           matroska_duration(b"05:00:02.000000000")), TruncatedVideo,
            "decoded 2 frames but the stream's duration promises 18002"),
    Hostile("duration_10h_header.mp4", patched(encoded(*X264), mp4_duration(36000)), None),
    Hostile("rate_1000fps.mp4", encoded(*X264, rate="1000", seconds="1.2"), FrameRateTooHigh, "1000 frames"),
    Hostile("rate_1000fps_allowed.mp4", encoded(*X264, rate="1000", seconds="1.2"), None,
            limits=InputLimits(max_fps=1000.0)),
    Hostile("gaps_10min.mkv", encoded("-vf", r"setpts='(N+if(gte(N\,2)\,600\,0))/TB'", "-fps_mode", "passthrough",
                                      *X264, rate="1", seconds="4"), None),
    Hostile("gaps_10h.mkv", encoded("-vf", r"setpts='(N+if(gte(N\,2)\,36000\,0))/TB'", "-fps_mode", "passthrough",
                                    *X264, rate="1", seconds="4"), VideoTooLong),
    Hostile("big_file.mp4", encoded(*X264), FileTooLarge, "bytes is more than the limit of 1000 bytes",
            InputLimits(max_file_bytes=1000)),
    Hostile("vidéo 日本 ✓.mp4", encoded(*X264), None),
    Hostile("with spaces/and more spaces.webm", encoded("-c:v", "libvpx", "-b:v", "100k"), None),
    Hostile("../../etc/passwd.mp4", write(b"root:x:0:0:root:/root:/bin/bash\n"), NotAVideo),
    Hostile("../../etc/clip.mp4", encoded(*X264), None),
    Hostile(LONG_KEY, write(b"text"), NotAVideo),
    Hostile(LONG_KEY.replace("a", "b"), encoded(*X264), None),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server")


@pytest.mark.parametrize("case", CORPUS, ids=[c.key[:40] for c in CORPUS])
def test_hostile_upload(case: Hostile, server: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch" / "tmpq1w2e3"
    scratch.mkdir(parents=True)
    path = scratch / f"input{Path(case.key).suffix[:16]}"  # how tasks name a downloaded upload
    case.build(path, server)
    if case.error is None:
        frames = admit(path, case.key, case.limits)
        assert frames == expected_frames(probe(path, case.key, case.limits).duration, 1.0)
        return
    with pytest.raises(case.error) as caught:
        admit(path, case.key, case.limits)
    message = str(caught.value)
    assert message.startswith(f"{case.key}: ")
    assert case.match in message
    assert caught.value.code not in {InputError.code, "error"}
    for server_path in (str(tmp_path), str(server), "file:", "input."):
        assert server_path not in message, message


def test_the_shared_broken_files(broken_dir: Path) -> None:
    with pytest.raises(CorruptVideo) as corrupt:
        admit(broken_dir / "broken01_decord_corrupted.mp4", "uploads/corrupt.mp4")
    with pytest.raises(TruncatedVideo) as truncated:
        admit(broken_dir / "broken02_clip05_bikes_TRUNCATED_half.mp4", "uploads/half.mp4")
    for caught in (corrupt, truncated):
        assert str(broken_dir) not in str(caught.value)


def test_a_truncated_copy_of_each_container(clips_dir: Path, tmp_path: Path) -> None:
    """Half of a real MP4, WebM, Matroska, AVI and FLV: each is refused with a code, none decodes silently."""
    for source in ("clip05_bikes.mp4", "clip17_earth.webm", "clip10_pancake.mkv", "clip13_makeup.avi",
                   "clip15_grampa.flv"):
        data = (clips_dir / source).read_bytes()
        path = tmp_path / f"input{Path(source).suffix}"
        path.write_bytes(data[: len(data) // 2])
        try:
            frames = admit(path, f"half/{source}")
        except InputError as exc:
            assert exc.code in {"truncated", "corrupt", "not_a_video"}, (source, exc.code)
            assert str(tmp_path) not in str(exc)
        else:  # containers without an index end where the bytes end: fewer frames, but no error to report
            assert 0 < frames < expected_frames(probe(clips_dir / source).duration, 1.0), source


def test_a_valid_video_keeps_its_demuxer(clips_dir: Path) -> None:
    expected = {".mp4": "mov", ".webm": "matroska", ".mkv": "matroska", ".avi": "avi", ".flv": "flv"}
    for path in sorted(clips_dir.glob("clip*")):
        assert probe(path).demuxer == expected[path.suffix], path.name


def test_limits_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.settings import load_settings

    monkeypatch.setenv("COPYCAT_DECODE__MAX_PIXELS", str(1920 * 1080))
    monkeypatch.setenv("COPYCAT_DECODE__MAX_FILE_MIB", "100")
    monkeypatch.setenv("COPYCAT_DECODE__MAX_FPS", "60")
    limits = load_settings().decode.limits()
    assert limits == replace(InputLimits(), max_pixels=1920 * 1080, max_file_bytes=100 * 2**20, max_fps=60.0)
