"""The stages both jobs share: one decode of a video into every view the job needs, and query matching.

``embed_video`` starts one ffmpeg process per video whatever the job asks for (model frames, 2x2 tiles,
DnS frames: see ``workers.decode.sample_views``), so ingest and query take the same path. ``match_query``
turns query views into matches with storage entering only as callables (``search``, ``load_references``,
``searchable``), so it runs in tests over arrays and in tasks over Milvus and S3.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from workers.admission import check_file_size
from workers.decode import DecodeOptions, decodes_in_ranges, expected_frames, probe, sample_views
from workers.embed.base import FrameEmbedder
from workers.errors import InputError
from workers.informative import FrameFilter, pattern_frames
from workers.localise import Localiser, query_coverage, video_score
from workers.selection import select_candidates
from workers.spool import Spool, streamable_head
from workers.stores.objects import ObjectInfo, StreamedObject, sha256_file
from workers.types import EmbeddedVideo, FrameGeometry, Match, QueryParams, SearchHits, VideoInfo
from workers.views import EXTRA_VIEWS, VIEW_COUNTS, ExtraView, border_box, halves, mirrored, unbordered

if TYPE_CHECKING:
    from workers.dns.video import DnsModels

HEAD_BYTES = 1 << 16
"""Bytes of an object read before deciding whether its container can be decoded while it downloads."""
ProgressFn = Callable[[int, int], None]
"""Called with (frames done, frames expected) after each decoded chunk."""


class SearchFn(Protocol):
    """A frame search: ``search(vectors [N, D], limit, exclude=ids, per_video=bool) -> SearchHits``."""

    def __call__(self, vectors: np.ndarray, limit: int, *, exclude: Collection[str] = ...,
                 per_video: bool = ...) -> SearchHits: ...


@dataclass
class EmbeddedObject:
    """An embedded video read from storage, with what identifies the bytes that were read."""

    video: EmbeddedVideo
    source: ObjectInfo
    sha256: str


def embed_object(fetch: Callable[[Path], ObjectInfo] | None, embedder: FrameEmbedder,
                 options: DecodeOptions = DecodeOptions(), *, scratch_dir: Path, label: str, crop_grid: int = 1,
                 extra_views: Sequence[ExtraView] = (),
                 dns: DnsModels | None = None, dns_geometry: FrameGeometry | None = None,
                 frame_filter: FrameFilter = FrameFilter(), patterns: np.ndarray | None = None,
                 progress: ProgressFn | None = None,
                 stream: Callable[[], StreamedObject] | None = None) -> EmbeddedObject:
    """Read an object into a private scratch folder and ``embed_video`` it, hashing it meanwhile; clean up.

    ``fetch(dest)`` downloads the whole object first. ``stream()`` (instead) opens it for reading piece by
    piece: the pieces are spooled to the scratch file and hashed as they arrive, and a container that can
    be decoded from a pipe (``workers.spool.streamable_head``: MP4 with its index first, Matroska/WebM) is
    probed from its head and fed to ffmpeg while the rest downloads (unless it is long enough for parallel
    range decoders, ``workers.decode.plan_ranges``, which read the file); any other waits for the whole file.
    The folder, with anything a broken download left beside the file, is removed whatever happens.
    """
    if (fetch is None) == (stream is None):
        raise ValueError("embed_object needs exactly one of fetch and stream")
    started = time.perf_counter()
    scratch_dir.mkdir(parents=True, exist_ok=True)
    embed = functools.partial(embed_video, embedder=embedder, options=options, crop_grid=crop_grid,
                              extra_views=extra_views, dns=dns,
                              dns_geometry=dns_geometry, frame_filter=frame_filter, patterns=patterns,
                              progress=progress, label=label)
    with tempfile.TemporaryDirectory(dir=scratch_dir) as folder:
        path = Path(folder) / f"input{Path(label).suffix[:16]}"
        if stream is not None:
            video, source, sha256 = _embed_streamed(stream(), path, embed, options, label)
        else:
            assert fetch is not None
            source = fetch(path)
            downloaded = time.perf_counter() - started
            with ThreadPoolExecutor(1, thread_name_prefix="sha256") as hasher:  # hashes while ffmpeg decodes
                digest = hasher.submit(sha256_file, path)
                video = embed(path)
                sha256 = digest.result()
            video.timings = {"download": round(downloaded, 4), **video.timings}
    return EmbeddedObject(video, source, sha256)


def _embed_streamed(obj: StreamedObject, path: Path, embed: Callable[..., EmbeddedVideo], options: DecodeOptions,
                    label: str) -> tuple[EmbeddedVideo, ObjectInfo, str]:
    """``embed_object`` over a streamed read: (video, the bytes' ObjectInfo, their SHA-256)."""
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
            video = embed(path)
            video.timings = {"download": round(spool.seconds, 4), **video.timings}
        else:
            video = embed(path, info=info, feed=spool.tail)
            sha256 = spool.finish()
            if info.demuxer == "matroska" and probe(path, label, options.limits) != info:
                # Tags at the end (a stream's DURATION) changed what the head said: decode the file instead.
                video = embed(path)
            video.timings = {"download": round(spool.seconds, 4), "download_head": round(head_s, 4), **video.timings}
    except BaseException:
        obj.close()
        with contextlib.suppress(Exception):
            spool.finish()
        raise
    return video, obj.info(), sha256


def pattern_features(embedder: FrameEmbedder) -> np.ndarray:
    """The embedder's descriptors of drawn test patterns, float32 [P, D] (see ``workers.informative``)."""
    return embedder.embed(pattern_frames(embedder.geometry.size))


def embed_video(path: Path, embedder: FrameEmbedder, options: DecodeOptions = DecodeOptions(), *,
                crop_grid: int = 1, extra_views: Sequence[ExtraView] = (), dns: DnsModels | None = None,
                dns_geometry: FrameGeometry | None = None, frame_filter: FrameFilter = FrameFilter(),
                patterns: np.ndarray | None = None, progress: ProgressFn | None = None,
                label: str | None = None, info: VideoInfo | None = None,
                feed: Callable[[], Iterator[bytes]] | None = None) -> EmbeddedVideo:
    """Probe ``path`` (unless ``info`` is its probe), decode it once at ``options.fps`` and embed every view;
    decoding overlaps inference. With ``feed``, ffmpeg reads the bytes from it (``sample_views``).

    Views: whole frames at the model's geometry (always); with ``crop_grid`` > 1 the frames' grid x grid
    tiles, decoded at ``crop_grid`` times the model's size so each tile has the model's size (a copy shown
    as an inset fills a small part of the frame, where whole-frame descriptors barely see it); with ``dns``
    the DnS frames at ``dns_geometry``, fed to the DnS extractor chunk by chunk. ``extra_views``
    (``workers.views``, stacked after the tiles in ``EXTRA_VIEWS`` order): ``flip`` the mirrored frame,
    ``halves`` its left, right, top and bottom halves, ``unborder`` the picture inside a border found in
    the chunk (a zero descriptor, never searched, where there is none).

    Views that ``frame_filter`` finds uninformative (black, blank, title cards, test patterns: no evidence of
    copying) get a zero descriptor, which is their mask from here on: they are never indexed nor searched,
    and no temporal path runs through them. ``patterns`` are ``pattern_features(embedder)``, computed here
    when not given.
    """
    started = time.perf_counter()
    info = info or probe(path, label, options.limits)
    probed = time.perf_counter()
    size = embedder.geometry.size
    geometries = [embedder.geometry]
    extras = [view for view in EXTRA_VIEWS if view in extra_views]
    big_size = size * max(crop_grid, 2 if {"halves", "unborder"} & set(extras) else 1)
    if big_size > size:
        geometries.append(FrameGeometry(big_size, "squash"))
    if dns is not None:
        if dns_geometry is None:
            raise ValueError("embed_video with dns models needs their dns_geometry")
        geometries.append(dns_geometry)
    patterns = pattern_features(embedder) if patterns is None and frame_filter.enabled else patterns
    expected = expected_frames(info.duration, options.fps)
    whole: list[np.ndarray] = []
    n_crops = (crop_grid * crop_grid if crop_grid > 1 else 0) + sum(VIEW_COUNTS[view] for view in extras)
    tiles: list[list[np.ndarray]] = [[] for _ in range(n_crops)]
    dns_parts = []
    done, model_s, dns_s = 0, 0.0, 0.0
    embedder.load()

    def embed_masked(frames: np.ndarray) -> np.ndarray:
        features = embedder.embed(frames)
        features[~frame_filter.keep(frames, features, patterns)] = 0.0
        return features

    for views in sample_views(path, info, geometries, options, label=label, feed=feed):
        tick = time.perf_counter()
        whole.append(embed_masked(views[0]))
        chunk_views: list[np.ndarray | None] = []
        if crop_grid > 1:
            for row, col in itertools.product(range(crop_grid), range(crop_grid)):
                chunk_views.append(np.ascontiguousarray(views[1][:, row * size : (row + 1) * size,
                                                           col * size : (col + 1) * size]))
        if "flip" in extras:
            chunk_views.append(mirrored(views[0]))
        if "halves" in extras:
            chunk_views.extend(halves(views[1] if crop_grid == 2 else _resized(views[1], 2 * size), size))
        if "unborder" in extras:
            box = border_box(views[1])
            chunk_views.append(None if box is None else unbordered(views[1], box, size))
        for index, frames in enumerate(chunk_views):
            tiles[index].append(embed_masked(frames) if frames is not None
                                else np.zeros((views[0].shape[0], embedder.dim), np.float32))
        model_s += time.perf_counter() - tick
        if dns is not None:
            tick = time.perf_counter()
            dns_parts.append(dns.features([views[-1]]))
            dns_s += time.perf_counter() - tick
        done += views[0].shape[0]
        if progress is not None:
            progress(done, max(expected, done))
    empty = np.zeros((0, embedder.dim), np.float32)
    features = np.concatenate(whole) if whole else empty
    crops = np.stack([np.concatenate(parts) if parts else empty for parts in tiles]) if tiles else None
    representation = None
    if dns is not None:
        import torch

        tick = time.perf_counter()
        representation = dns.represent_features(torch.cat(dns_parts))
        dns_s += time.perf_counter() - tick
    total = time.perf_counter() - started
    decode_embed = total - (probed - started)
    timings = {"probe": probed - started, "embed": model_s, "decode_wait": decode_embed - model_s - dns_s,
               "decode_embed": decode_embed}
    if dns is not None:
        timings["dns_embed"] = dns_s
    return EmbeddedVideo(info, features, options.fps, crops=crops, dns=representation,
                         timings={k: round(v, 4) for k, v in timings.items()})


def _resized(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] squashed to [N, size, size, 3] (halves from a tile decode of another grid)."""
    return unbordered(frames, (0, frames.shape[1], 0, frames.shape[2]), size)


MAX_SEARCH_ROUNDS = 3
"""Searches per query at most: the first, and one more for each round of unreportable videos found in hits."""


def match_query(query: np.ndarray, *, fps: float, search: SearchFn,
                load_references: Callable[[list[str]], Mapping[str, np.ndarray]], localiser: Localiser,
                params: QueryParams = QueryParams(), exclude: Collection[str] = frozenset(),
                searchable: Callable[[list[str]], Collection[str]] | None = None,
                timings: dict[str, float] | None = None) -> list[Match]:
    """Query frames [Tq, D] (or views [V, Tq, D]) -> matches whose video score reaches ``min_score``, best first.

    One batched search for every view of every frame (``search_reportable``: videos that may not be
    reported never take a hit slot), hits aggregated per video (``params.reduce``), the ``params.top_k``
    best candidates localised with ``localiser`` against their full frame matrices (one ``load_references``
    call for all of them).
    """
    timings = timings if timings is not None else {}
    tick = time.perf_counter()
    rows = query.reshape(-1, query.shape[-1])
    hits = search_reportable(search, rows[informative(rows)], params, exclude=exclude, searchable=searchable)
    timings["search"] = time.perf_counter() - tick

    tick = time.perf_counter()
    ranked = select_candidates(hits.video_id, hits.score, reduce=params.reduce, top_k=params.top_k,
                               exclude=set(exclude), query_rows=hits.query_frame)
    candidates = [c.video_id for c in ranked]
    timings["select"] = time.perf_counter() - tick

    tick = time.perf_counter()
    references = load_references(candidates)
    timings["load_candidates"] = time.perf_counter() - tick

    tick = time.perf_counter()
    matches = localise_candidates(query, candidates, references, fps=fps, localiser=localiser,
                                  min_score=params.min_score)
    timings["localise"] = time.perf_counter() - tick
    return matches


def search_reportable(search: SearchFn, rows: np.ndarray, params: QueryParams, *,
                      exclude: Collection[str] = frozenset(),
                      searchable: Callable[[list[str]], Collection[str]] | None = None) -> SearchHits:
    """Hits of ``rows`` [N, D] (``params.search_limit`` each) on videos a query may report.

    ``searchable`` (ids -> those that may be reported: indexed, same model and fps, not being removed) is
    asked about every video in the hits. Frames of the others (deleted, failed, being re-indexed) would
    hold hit slots that belong to real candidates, so they join ``exclude``, which the search filters out
    inside the index, and the search is repeated (at most ``MAX_SEARCH_ROUNDS`` searches; what the last
    one still returns of them is dropped).
    """
    blocked = set(exclude)
    for attempt in range(MAX_SEARCH_ROUNDS):
        hits = search(rows, params.search_limit, exclude=frozenset(blocked), per_video=params.per_video)
        if searchable is None:
            break
        found = list(dict.fromkeys(hits.video_id.tolist()))
        allowed = set(searchable(found)) if found else set()
        refused = {vid for vid in found if vid not in allowed}
        if not refused:
            break
        blocked |= refused
        if attempt == MAX_SEARCH_ROUNDS - 1:
            hits = hits.subset(~np.isin(hits.video_id, list(blocked)))
    return hits


def informative(features: np.ndarray) -> np.ndarray:
    """bool [...]: which descriptors (last axis) carry a frame; ``embed_video`` zeroes the uninformative ones."""
    return np.any(np.asarray(features) != 0, axis=-1)


def localise_candidates(query: np.ndarray, video_ids: list[str], references: Mapping[str, np.ndarray], *,
                        fps: float, localiser: Localiser, min_score: float) -> list[Match]:
    """Localise ``query`` against each candidate's matrix; matches scoring ``min_score`` or more, best first.

    Zero descriptors mark uninformative frames (``embed_video``) and are masked for the localiser. A
    candidate without a matrix in ``references`` (deleted or replaced meanwhile) is skipped. Ties are
    broken by how much of the query the segments cover, then by video id.
    """
    matches: list[Match] = []
    coverage: dict[str, float] = {}
    query_mask = informative(query)
    for video_id in video_ids:
        reference = references.get(video_id)
        if reference is None or reference.shape[0] == 0:
            continue
        segments = localiser.localise(query, reference, fps, query_informative=query_mask,
                                      reference_informative=informative(reference))
        score = video_score(segments)
        if segments and score >= min_score:
            matches.append(Match(video_id, score, segments))
            coverage[video_id] = query_coverage(segments, query.shape[-2] / fps)
    matches.sort(key=lambda m: (-round(m.score, 3), -coverage[m.video_id], m.video_id))
    return matches
