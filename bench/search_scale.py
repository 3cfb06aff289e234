"""Vector index types on a real Milvus server: recall@64 against exact search, build, load, query time, RSS.

The collection has the product's schema (``VectorIndex``) and holds, for each size N:

- the real clips' frame descriptors (``sscd_distilled``, 512-d) sampled at ``--real-fps`` (4: runs of
  near-identical consecutive frames, as in static shots);
- synthetic video-like vectors up to N: videos of 1-10 minutes at 1 fps made of shots (~6 s on average)
  whose frames are near-identical (cosine ~0.95), frames of one video correlated; a tenth of the videos
  are near-duplicates of another (every frame an edited copy, cosine ~0.8, like a cropped re-encode).

Queries are 60 s at 1 fps (60 vectors), alone and with 2x2 tiles (60 + 240 = 300 vectors, one search call):
an edited copy (crop, brightness, re-encode) of real clips, and edited windows of synthetic near-duplicate
sources. ``rec@64`` is the share of the exact top-64 (numpy, inner product) that the index returns, over
the whole-frame query vectors (``real``: of the real query alone), ``tiles`` the same over the tile
vectors; ``rec>=ms`` counts only the exact top-64 neighbours at or above the localiser's ``min_sim`` (frames
that can lie on a matched path: below it the top-64 of a large library is the extreme tail of unrelated
frames, near-ties an index need not order), ``copy`` only those on the copied videos (the hits that make
the copy a candidate); ``tie`` is ann-benchmarks' recall, a hit counting when its similarity is within
``TIE_EPSILON`` of the exact 64th (which of several equal frames an index returns is no miss), and ``lost``
the share of whole-frame query vectors with under half their exact top-64 found (a walk that never reached
the query's neighbourhood, against one that only misses its edge);
``cand`` compares the top-5 videos that ``select_candidates`` (sum over all 300 vectors) picks from the
index's hits with those it picks from the exact hits, ``true`` is the share of the really copied videos among
the index's top 5. ``MB/h`` is the server's RSS growth over idle per hour of video at 1 fps (an upper bound:
it includes buffers). Searches use Bounded consistency, so the times are the index's own; the product's path
(Strong reads, batched calls) is timed once, on the default index.

    python -m bench.search_scale [--sizes 100000] [--uri http://127.0.0.1:19530] [--work DIR] [--pq]
        [--default-only | --only TYPE]

Without ``--uri`` it starts Milvus standalone (PyPI ``milvus``) under ``--work`` and stops it afterwards.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from bench.query_speed import BUCKET, seed_style, wait_for_index
from service.settings import Settings
from stack.services import MILVUS_SERVER_CONFIG, ManagedProcess, free_port, milvus_standalone, wait_for_milvus
from workers.decode import FULL_DECODE
from workers.embed import create_embedder
from workers.informative import FrameFilter
from workers.localise import TemporalNetwork
from workers.matching import match_query
from workers.selection import select_candidates
from workers.signals.frames import embed_video
from workers.stores.milvus import IndexSpec
from workers.stores.objects import LocalObjectStore, load_matrix, save_matrix
from workers.stores.vectors import VectorIndex

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
RAW = FrameFilter(enabled=False)
"""Every frame embedded: the index is measured on all of a video's descriptors."""
DIM, LIMIT, TOP_K, QUERY_FRAMES = 512, 64, 5, 60
TIE_EPSILON = 1e-3  # ann-benchmarks' k-NN recall threshold
REAL_QUERY_CLIPS = ("clip06_bottles.mp4", "clip03_bigbuckbunny.webm")  # 40 s + 30 s of real footage
EDIT = "crop=iw*0.85:ih*0.85,eq=brightness=0.06:contrast=1.1,scale=640:-2"


@dataclass(frozen=True)
class IndexConfig:
    """One vector index to build and the search parameters to try on it."""

    index_type: str
    build: dict[str, int]
    searches: list[dict[str, int]]

    def label(self, search: dict[str, int]) -> str:
        params = {**self.build, **search}
        return f"{self.index_type} " + " ".join(f"{k}={v}" for k, v in params.items())


PRODUCT = Settings().index_spec()
"""The product's index (the COPYCAT_MILVUS__ settings): the ``DEFAULT`` row and the product path search it."""
PROBES = [{"nprobe": 16}, {"nprobe": 64}]
DEFAULT = IndexConfig(PRODUCT.index_type, PRODUCT.build_params(),
                      [{"ef": ef} for ef in (64, 128, 256, 512, 1024)] if PRODUCT.index_type == "HNSW" else PROBES)


def configs(size: int, with_pq: bool, only: str | None, slow_max: int) -> list[IndexConfig]:
    """The indexes to compare; HNSW M=8 (recall@64 0.79-0.87 at 20k) is left out. FLAT (exhaustive, 3.3 s per
    300 vectors at 100k), IVF_PQ, HNSW M=32 and IVF_FLAT (slow builds on 2 cores) only up to ``slow_max``
    vectors. DISKANN is not offered: the PyPI 2.3.5 server fails its build ("C Runtime Exception:
    bad_function_call") and retries it forever. ``only``: "default" or one index type (a row measured alone)."""
    nlist = int(2 ** round(math.log2(4 * math.sqrt(size))))  # the usual 4 * sqrt(N), as a power of two
    if only == "default":
        return [DEFAULT]
    slow = size <= slow_max
    chosen = [
        *([IndexConfig("FLAT", {}, [{}])] if slow else []),
        DEFAULT,
        *([IndexConfig("HNSW", {"M": 32, "efConstruction": 200}, [{"ef": 64}, {"ef": 128}, {"ef": 256}]),
           IndexConfig("IVF_FLAT", {"nlist": nlist}, PROBES)] if slow else []),
        IndexConfig("IVF_SQ8", {"nlist": nlist}, PROBES),
    ]
    if with_pq and slow:  # 2.3.5 took 172 s to build IVF_PQ (m=64) on 20k vectors, for recall@64 0.69
        chosen.append(IndexConfig("IVF_PQ", {"nlist": nlist, "m": 32, "nbits": 8}, PROBES[1:]))
    return [config for config in chosen if only in (None, config.index_type)]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def edited(frames: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Copies of unit ``frames`` [T, D] at about ``cosine`` to the originals (noise orthogonal on average)."""
    noise = unit(rng.standard_normal(frames.shape))
    return unit(cosine * frames + math.sqrt(1 - cosine**2) * noise)


def synthetic_library(out: np.ndarray, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """Fills ``out`` [N, D] with synthetic videos; returns them (views of ``out``, so the vectors exist once:
    6 GB at 3M, beside the server's ~10 GB) and which of them are near-duplicate sources."""
    videos: list[np.ndarray] = []
    sources: list[int] = []
    total = 0
    while total < out.shape[0]:
        length = min(int(rng.integers(60, 601)), out.shape[0] - total)
        if videos and rng.random() < 0.1:  # a near-duplicate of an earlier video (cut to this length)
            source = int(rng.integers(len(videos)))
            original = videos[source][:length]
            matrix = out[total : total + original.shape[0]]
            matrix[:] = edited(original, 0.8, rng)
            sources.append(source)
        else:
            matrix = out[total : total + length]
            style = unit(rng.standard_normal(DIM))
            frames = 0
            while frames < length:
                shot = min(int(rng.geometric(1 / 6)), length - frames)
                centre = edited(style[None], 0.45, rng)[0]  # frames of one video share a look
                matrix[frames : frames + shot] = edited(np.repeat(centre[None], shot, 0), 0.95, rng)
                frames += shot
        videos.append(matrix)
        total += matrix.shape[0]
    return videos, sources


def real_descriptors(work: Path, fps: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Real clips at ``fps`` {name: [T, D]}, and the edited real query: whole frames [60, D], tiles [240, D]."""
    cache = work / f"real-{fps:g}.npz"
    if not cache.exists():
        embedder = create_embedder("sscd_distilled", device="cpu")
        clips = {p.name: embed_video(p, embedder, replace(FULL_DECODE, fps=fps), frame_filter=RAW).features
                 for p in sorted(CLIPS.glob("clip*"))}
        query = work / "query.mp4"
        inputs = [arg for name in REAL_QUERY_CLIPS for arg in ("-i", str(CLIPS / name))]
        chain = "".join(f"[{i}:v]scale=1280:720,setsar=1,fps=25[v{i}];" for i in range(len(REAL_QUERY_CLIPS)))
        joined = "".join(f"[v{i}]" for i in range(len(REAL_QUERY_CLIPS)))
        subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex",
                        f"{chain}{joined}concat=n={len(REAL_QUERY_CLIPS)}:v=1:a=0,{EDIT}",
                        "-t", str(QUERY_FRAMES), "-c:v", "libx264", "-preset", "veryfast", str(query)], check=True)
        whole = embed_video(query, embedder, FULL_DECODE, frame_filter=RAW).features[:QUERY_FRAMES]
        tiles = embed_video(query, embedder, FULL_DECODE, crop_grid=2,
                            frame_filter=RAW).crops[:, :QUERY_FRAMES].reshape(-1, DIM)
        np.savez(cache, whole=whole, tiles=tiles, **{f"clip:{k}": v for k, v in clips.items()})
    data = np.load(cache)
    clips = {k.removeprefix("clip:"): data[k] for k in data.files if k.startswith("clip:")}
    return clips, data["whole"], data["tiles"]


def cross_video_cosines(frames: np.ndarray, owner: np.ndarray, rng: np.random.Generator,
                        pairs: int = 20_000) -> np.ndarray:
    """Cosines of ``pairs`` random pairs of frames [N, D] from different videos (``owner`` [N]): how unrelated
    the generator's unrelated frames are, beside real SSCD's (near random directions: the top-64 of a large
    library ends in the extreme tail of these)."""
    first, second = rng.integers(0, frames.shape[0], (2, pairs))
    keep = owner[first] != owner[second]
    return np.einsum("pd,pd->p", frames[first[keep]], frames[second[keep]])


def exact_top(queries: np.ndarray, library: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices [Q, limit] of the ``limit`` largest inner products, best first, and those products
    (chunked over queries)."""
    out = np.empty((queries.shape[0], limit), np.int64)
    values = np.empty((queries.shape[0], limit), np.float32)
    for start in range(0, queries.shape[0], 64):
        scores = queries[start : start + 64] @ library.T
        part = np.argpartition(-scores, limit - 1, axis=1)[:, :limit]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        out[start : start + 64] = np.take_along_axis(part, order, 1)
        values[start : start + 64] = np.take_along_axis(scores, out[start : start + 64], 1)
    return out, values


def tie_recall(queries: np.ndarray, rows: list[list[int]], kth: np.ndarray, library: np.ndarray) -> list[float]:
    """Per query vector [Q, D], the share of its ``LIMIT`` hits whose similarity (recomputed from ``library``)
    is at least the exact ``kth`` one less ``TIE_EPSILON``."""
    return [min(int(np.sum(library[np.sort(np.asarray(r, np.int64))] @ q >= floor - TIE_EPSILON)), LIMIT) / LIMIT
            for q, r, floor in zip(queries, rows, kth, strict=True)]


def server_stats(server: ManagedProcess) -> list[list[str]]:
    """``/proc/PID/stat`` fields (after the name) of the ``milvus`` processes in the server's process group."""
    stats = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if "(milvus)" in stat and os.getpgid(int(pid)) == server.process.pid:
                stats.append(stat.rsplit(")", 1)[1].split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return stats


def milvus_rss_mb(server: ManagedProcess | None) -> float:
    """Resident memory of the ``milvus`` processes in the server's process group (0 for an outside server)."""
    if server is None or server.process is None:
        return 0.0
    return sum(int(fields[21]) for fields in server_stats(server)) * os.sysconf("SC_PAGE_SIZE") / 2**20


def search(index: VectorIndex, queries: np.ndarray, params: dict[str, int], level: str = "Bounded"
           ) -> tuple[float, list[list[int]], list[list[float]]]:
    tick = time.perf_counter()
    results = index.client.search(index.collection, data=queries.tolist(), limit=LIMIT, output_fields=["row"],
                                  search_params={"metric_type": "IP", "params": params}, consistency_level=level)
    seconds = time.perf_counter() - tick
    return seconds, [[h["entity"]["row"] for h in hits] for hits in results], \
        [[h["distance"] for h in hits] for hits in results]


def product_path(index: VectorIndex, store: LocalObjectStore, views: np.ndarray, copied: set[str], repeats: int,
                 label: str, seed: bool = True) -> None:
    """The product's own query (``match_query`` with the default settings: top_k, limit, localiser) per
    stage, whole frames and 2x2 tiles, per-video hits off/on, ``search_batch`` 256 and 1024; then (with
    ``seed``) the seed-style path (one search per frame, top 100 candidates, all loaded and localised)."""
    settings = Settings()
    tn = TemporalNetwork(settings.tn_params())
    base = settings.query_params()
    load = partial(load_references, store)
    print(f"  product path on {label} (Bounded reads, ef {index.index.search_ef}; stage medians, s): "
          f"{'search':>7} {'select':>7} {'load':>6} {'localise':>8} {'total':>6} found")
    for tiles, per_video, batch in ((False, False, 256), (True, False, 256), (True, False, 1024),
                                    (True, True, 1024)):
        query = views if tiles else views[:1]
        params = replace(base, per_video=per_video)
        index.search_batch = batch
        runs, found = [], set()
        for _ in range(repeats):
            timings: dict[str, float] = {}
            matches = match_query(query, fps=1.0, search=index.search, load_references=load, localiser=tn,
                                  params=params, timings=timings)
            runs.append(timings)
            found = {m.video_id for m in matches}
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        name = f"{query.shape[0] * query.shape[1]} vectors{' per-video' if per_video else ''}, {batch}/call"
        print(f"    {name:40} {m['search']:7.3f} {m['select']:7.4f} {m['load_candidates']:6.3f} {m['localise']:8.3f} "
              f"{sum(m.values()):6.3f} {len(found & copied)}/{len(copied)} copied")
    index.search_batch = settings.milvus.search_batch
    if not seed:
        return
    runs = []
    for _ in range(repeats):
        timings = {}
        seed_style(views.reshape(-1, views.shape[-1]), index, store, tn, timings)
        runs.append(timings)
    m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"    {'seed-style, one search per vector':40} {m['search']:7.3f} {m['select']:7.4f} "
          f"{m['load_candidates']:6.3f} {m['localise']:8.3f} {sum(m.values()):6.3f}")


def load_references(store: LocalObjectStore, video_ids: list[str]) -> dict[str, np.ndarray]:
    return {vid: load_matrix(store, BUCKET, f"{vid}.npy").astype(np.float32) for vid in video_ids}


def save_library(store: LocalObjectStore, names: list[str], matrices: list[np.ndarray]) -> None:
    """Every video's frame matrix in the object store, float16 as the product stores them."""
    store.ensure_bucket(BUCKET)
    for name, matrix in zip(names, matrices, strict=True):
        save_matrix(store, BUCKET, f"{name}.npy", matrix.astype(np.float16))


def lite_side_by_side(work: Path, size: int, names: list[str], owner: np.ndarray, library: np.ndarray,
                      store: LocalObjectStore, queries: list, views: np.ndarray, copied: set[str],
                      repeats: int) -> None:
    """The same vectors in a Milvus Lite file (the embedded default), searched as the product does."""
    path = work / f"lite-{size}.db"
    path.unlink(missing_ok=True)
    index = VectorIndex(str(path), "bench", DIM, prefix=f"scale_{size}")
    index.ensure_collection()
    tick = time.perf_counter()
    for start in range(0, library.shape[0], 5000):
        rows = [{"pk": f"{names[owner[i]]}:{i}", "video_id": names[owner[i]], "frame": i,
                 "embedding": library[i].tolist()} for i in range(start, min(start + 5000, library.shape[0]))]
        index.client.insert(index.collection, rows)
    index.client.flush(index.collection)
    index.search(library[:1], 1)
    print(f"  Milvus Lite {index.features.version}: insert + flush + first search {time.perf_counter() - tick:.1f} s")
    for _, whole, tiles in queries[:1]:
        for name, q in (("60", whole), ("300", np.concatenate([whole, tiles]))):
            seconds = []
            for _ in range(repeats):
                tick = time.perf_counter()
                index.search(q, LIMIT)
                seconds.append(time.perf_counter() - tick)
            print(f"    Lite search of {name} vectors: {statistics.median(seconds):.3f} s")
    product_path(index, store, views, copied, repeats, "Milvus Lite")
    index.close()
    path.unlink(missing_ok=True)


class BenchIndex(VectorIndex):
    """The product's frame collection plus the row number, so hits can be compared with exact search."""

    def _add_fields(self, schema, data_type) -> None:  # noqa: ANN001
        super()._add_fields(schema, data_type)
        schema.add_field("row", data_type.INT64)


def compact(index: VectorIndex, poll_s: float = 2.0, max_rounds: int = 5, patience: int = 3,
            settle_s: float = 30.0) -> None:
    """Merge the sealed segments before the index is built, as a loaded server's automatic compaction does
    over time: otherwise a graph is built on each small segment and again on the merged one. Rounds repeat
    while they lower the segment count (2.3.5 merged 3M rows into 2.6M + 0.4M in one round, below 8192 MB);
    a round that merges nothing is tried again ``patience`` times after ``settle_s``, because 2.3 leaves out
    segments whose indexes (the FLAT and the scalar one) are still being built (at 3M a first round once
    left 1955k + 3 x 325k + 70k rows, which the server merged only after their graphs were built)."""
    tick = time.perf_counter()
    rows: list[int] = []
    misses = 0
    for _ in range(max_rounds + patience):
        wait_for_indexes(index)
        job = index.client.compact(index.collection)
        while index.client.get_compaction_state(job) != "Completed":
            time.sleep(poll_s)
        wait_for_indexes(index)  # the merged segment's own: its segment set is settled
        before, rows = rows, sorted((s.num_rows for s in index.client.list_persistent_segments(index.collection)),
                                    reverse=True)
        if len(rows) <= 1:
            break
        if before and len(rows) >= len(before):
            misses += 1
            if misses > patience:
                break
            time.sleep(settle_s)
    print(f"compaction {time.perf_counter() - tick:.1f} s: segments of {', '.join(map(str, rows))} rows")


def wait_for_indexes(index: VectorIndex) -> None:
    """Wait until every index of the collection (vectors and scalar fields) covers every sealed row."""
    for name in index.client.list_indexes(index.collection):
        wait_for_index(index, name=name)


def server_cpu_s(server: ManagedProcess) -> float:
    """CPU seconds used so far by the server's ``milvus`` processes (user + system)."""
    return sum(int(f[11]) + int(f[12]) for f in server_stats(server)) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(server: ManagedProcess | None, window_s: float = 5.0, busy: float = 0.15,
                    timeout_s: float = 3600.0) -> None:
    """Wait until the server uses under ``busy`` of a core over ``window_s``: a background index build (2.3.5
    may build a compacted segment's graph twice) would otherwise share the cores with the timed searches."""
    if server is None or server.process is None:
        return
    tick = time.perf_counter()
    while time.perf_counter() - tick < timeout_s:
        before = server_cpu_s(server)
        time.sleep(window_s)
        if (server_cpu_s(server) - before) / window_s < busy:
            print(f"server idle after {time.perf_counter() - tick:.0f} s")
            return
    print(f"server still busy after {timeout_s:.0f} s: the times below share its cores")


def run(sizes: list[int], uri: str | None, work: Path, real_fps: float, repeats: int, with_pq: bool,
        only: str | None, slow_max: int = 100_000, lite_max: int = 100_000, segment_mb: int | None = None,
        product_ef: list[int] | None = None) -> None:
    work.mkdir(parents=True, exist_ok=True)
    real, real_whole, real_tiles = real_descriptors(work, real_fps)
    server = None
    if uri is None:
        port = free_port()
        shutil.rmtree(work / "milvus", ignore_errors=True)
        config = {"dataCoord.segment.maxSize": segment_mb} if segment_mb else None
        server = milvus_standalone(work / "milvus", port=port, config=config)
        server.start()
        uri = f"http://127.0.0.1:{port}"
    try:
        if server is not None:
            wait_for_milvus(server, uri)
        idle_rss = milvus_rss_mb(server)
        mb = segment_mb or MILVUS_SERVER_CONFIG["dataCoord.segment.maxSize"]
        segments = f"; segments up to {mb} MB" if server else ""
        print(f"Milvus at {uri}; idle RSS {idle_rss:.0f} MB (0: not started here){segments}")
        for size in sizes:
            run_size(size, uri, server, idle_rss, real, real_fps, real_whole, real_tiles, repeats, with_pq,
                     only, work, slow_max, lite_max, product_ef or [PRODUCT.search_ef])
    finally:
        if server is not None:
            server.stop()


def run_size(size: int, uri: str, server: ManagedProcess | None, idle_rss: float, real: dict[str, np.ndarray],
             real_fps: float, real_whole: np.ndarray, real_tiles: np.ndarray, repeats: int, with_pq: bool,
             only: str | None, work: Path, slow_max: int, lite_max: int, product_ef: list[int]) -> None:
    rng = np.random.default_rng(size)
    library_path = work / f"library-{size}.npy"  # on disk: the kernel may drop its pages while the server builds
    library = np.lib.format.open_memmap(library_path, mode="w+", dtype=np.float32, shape=(size, DIM))
    real_rows = sum(m.shape[0] for m in real.values())
    library[:real_rows] = np.concatenate(list(real.values()))
    synthetic, sources = synthetic_library(library[real_rows:], rng)
    names = list(real) + [f"synthetic-{i:05d}" for i in range(len(synthetic))]
    matrices = np.split(library[:real_rows], np.cumsum([m.shape[0] for m in real.values()])[:-1]) + synthetic
    owner = np.repeat(np.arange(len(names)), [m.shape[0] for m in matrices])
    consecutive = np.einsum("td,td->t", synthetic[0][1:], synthetic[0][:-1])
    real_consecutive = np.concatenate([np.einsum("td,td->t", m[1:], m[:-1]) for m in real.values()])
    pairs = np.random.default_rng(0)  # its own stream: the queries below stay those of earlier runs
    real_cross = cross_video_cosines(library[:real_rows], owner[:real_rows], pairs)
    synthetic_cross = cross_video_cosines(library[real_rows:], owner[real_rows:], pairs)
    print(f"\nN = {library.shape[0]} vectors ({library.shape[0] / 3600:.1f} h at 1 fps): {len(real)} real clips "
          f"at {real_fps:g} fps, {len(synthetic)} synthetic videos, {len(sources)} near-duplicates; consecutive-frame "
          f"cosine median real {np.median(real_consecutive):.2f}, synthetic {np.median(consecutive):.2f}; cosine of "
          f"frames of different videos (mean, std) real {real_cross.mean():.3f}, {real_cross.std():.3f}, synthetic "
          f"{synthetic_cross.mean():.3f}, {synthetic_cross.std():.3f} (random directions: 0, {1 / math.sqrt(DIM):.3f})")

    queries = [(set(REAL_QUERY_CLIPS), real_whole, real_tiles)]
    for source in sorted(set(sources))[:3]:
        frames = synthetic[source]
        start = int(rng.integers(0, max(1, frames.shape[0] - QUERY_FRAMES)))
        whole = edited(frames[start : start + QUERY_FRAMES], 0.8, rng)
        tiles = edited(np.repeat(whole, 4, 0), 0.5, rng)  # a tile resembles its frame only loosely
        queries.append(({f"synthetic-{source:05d}"}, whole, tiles))
    exact = [exact_top(np.concatenate([w, t]), library, LIMIT) for _, w, t in queries]
    views = np.concatenate([real_whole[None], real_tiles.reshape(4, QUERY_FRAMES, DIM)])
    store = LocalObjectStore(work / f"objects-{size}")
    save_library(store, names, matrices)

    index = BenchIndex(uri, "bench", DIM, prefix=f"scale_{size}", index=IndexSpec(index_type="FLAT"))
    if index.exists():
        index.client.drop_collection(index.collection)
    index.ensure_collection()
    print(f"Milvus {index.features.version}")
    tick = time.perf_counter()
    for start in range(0, library.shape[0], 5000):
        rows = [{"pk": f"{names[owner[i]]}:{i}", "video_id": names[owner[i]], "frame": i, "row": i,
                 "embedding": library[i].tolist()} for i in range(start, min(start + 5000, library.shape[0]))]
        index.client.insert(index.collection, rows)
    index.client.flush(index.collection)
    print(f"insert + flush {time.perf_counter() - tick:.1f} s")
    compact(index)

    min_sim = Settings().localise.min_sim
    print(f"{'index':34} {'build s':>7} {'load s':>6} {'RSS MB':>6} {'MB/h':>5} {'rec@64':>6} {'tie':>5} {'lost':>5} "
          f"{'rec>=ms':>7} {'copy':>5} {'real':>5} {'tiles':>5} {'cand':>5} {'true':>5} {'60 q s':>6} {'300 q s':>7}")
    for config in configs(library.shape[0], with_pq, only, slow_max):
        index.client.release_collection(index.collection)
        index.client.drop_index(index.collection, "embedding")
        params = index.client.prepare_index_params()
        params.add_index(field_name="embedding", index_type=config.index_type, metric_type="IP",
                         params=config.build)
        tick = time.perf_counter()
        try:
            index.client.create_index(index.collection, params)
            wait_for_index(index)
        except Exception as exc:  # noqa: BLE001 - an index type this server lacks is a result, not a crash
            print(f"{config.index_type:34} not built: {str(exc)[:160]}")
            continue
        build_s = time.perf_counter() - tick
        tick = time.perf_counter()
        index.client.load_collection(index.collection)
        load_s = time.perf_counter() - tick
        wait_until_idle(server)
        rss = milvus_rss_mb(server)
        loaded = index.client.list_loaded_segments(index.collection)
        state = index.client.describe_index(index.collection, "embedding")
        print(f"{config.label({})}: {len(loaded)} loaded segments of {', '.join(str(s.num_rows) for s in loaded)} "
              f"rows, each searched on its own; {state.get('indexed_rows')} of {state.get('total_rows')} rows in "
              "the vector index (a segment without it is searched through Milvus's interim one: faster, lower recall)")
        per_hour = (rss - idle_rss) / (library.shape[0] / 3600) if server else 0.0
        for search_params in config.searches:
            recalls, tie_recalls, tile_recalls, candidate_recalls, true_recalls = [], [], [], [], []
            times_60, times_300 = [], []
            real_recall = 0.0
            found_near = wanted_near = found_copy = wanted_copy = 0
            for (copied, whole, tiles), truth in zip(queries, exact, strict=True):
                both = np.concatenate([whole, tiles])
                for _ in range(repeats):
                    times_60.append(search(index, whole, search_params)[0])
                    seconds, rows, scores = search(index, both, search_params)
                    times_300.append(seconds)
                overlap = [len(set(r) & set(t)) / LIMIT for r, t in zip(rows, truth[0].tolist(), strict=True)]
                recalls += overlap[: whole.shape[0]]
                tie_recalls += tie_recall(whole, rows[: whole.shape[0]], truth[1][: whole.shape[0], -1], library)
                if copied == set(REAL_QUERY_CLIPS):
                    real_recall = statistics.mean(overlap[: whole.shape[0]])
                n = whole.shape[0]
                copied_ids = [names.index(name) for name in copied]
                for r, t, v in zip(rows[:n], truth[0][:n], truth[1][:n], strict=True):
                    near = set(t[v >= min_sim].tolist())
                    found_near += len(near & set(r))
                    wanted_near += len(near)
                    on_copy = set(t[np.isin(owner[t], copied_ids)].tolist())
                    found_copy += len(on_copy & set(r))
                    wanted_copy += len(on_copy)
                tile_recalls += overlap[whole.shape[0] :]
                hit_rows = np.asarray([r for rs in rows for r in rs])
                found = {names[int(c.video_id)] for c in
                         select_candidates(owner[hit_rows], np.concatenate(scores), top_k=TOP_K)}
                truth, exact_scores = truth
                wanted = {names[int(c.video_id)] for c in
                          select_candidates(owner[truth.reshape(-1)], exact_scores.reshape(-1), top_k=TOP_K)}
                candidate_recalls.append(len(found & wanted) / len(wanted))
                true_recalls.append(len(found & copied) / len(copied))
            print(f"{config.label(search_params):34} {build_s:7.1f} {load_s:6.1f} {rss:6.0f} {per_hour:5.0f} "
                  f"{statistics.mean(recalls):6.3f} {statistics.mean(tie_recalls):5.3f} "
                  f"{np.mean(np.asarray(recalls) < 0.5):5.3f} {found_near / max(wanted_near, 1):7.3f} "
                  f"{found_copy / max(wanted_copy, 1):5.3f} {real_recall:5.3f} {statistics.mean(tile_recalls):5.3f} "
                  f"{statistics.mean(candidate_recalls):5.2f} {statistics.mean(true_recalls):5.2f} "
                  f"{statistics.median(times_60):6.3f} {statistics.median(times_300):7.3f}")
            build_s = load_s = 0.0  # the same index: only its first row pays for building it
        if config == DEFAULT:
            for ef in product_ef:
                index.index = replace(PRODUCT, search_ef=ef)
                product_path(index, store, views, set(REAL_QUERY_CLIPS), repeats, f"the server, {config.label({})}",
                             seed=ef == product_ef[0])
    index.client.drop_collection(index.collection)
    index.close()
    if size <= lite_max:
        lite_side_by_side(work, size, names, owner, library, store, queries, views, set(REAL_QUERY_CLIPS),
                          repeats)
    shutil.rmtree(work / f"objects-{size}", ignore_errors=True)
    del library
    library_path.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--uri", default=None, help="an existing Milvus server; default: start one")
    parser.add_argument("--work", type=Path, default=Path(".cache/bench-search-scale"))
    parser.add_argument("--real-fps", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pq", action="store_true", help="also IVF_PQ (builds for minutes on 2 cores)")
    parser.add_argument("--default-only", dest="only", action="store_const", const="default",
                        help="only the default index (HNSW M=16)")
    parser.add_argument("--only", metavar="INDEX_TYPE", help="only this index type, e.g. IVF_PQ (with --pq)")
    parser.add_argument("--slow-max", type=int, default=100_000, help="FLAT, IVF_PQ, DISKANN up to this size")
    parser.add_argument("--lite-max", type=int, default=100_000, help="Milvus Lite side by side up to this size")
    parser.add_argument("--segment-mb", type=int, default=None,
                        help="the started server's dataCoord.segment.maxSize (default: production's, "
                        "stack.services.MILVUS_SERVER_CONFIG; Milvus 2.3's own is 512)")
    parser.add_argument("--product-ef", default=None,
                        help="ef values for the product path, comma-separated (default: the search_ef setting)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout still stops the server it started
    run([int(s) for s in args.sizes.split(",")], args.uri, args.work, args.real_fps, args.repeats, args.pq,
        args.only, args.slow_max, args.lite_max, args.segment_mb,
        [int(ef) for ef in args.product_ef.split(",")] if args.product_ef else None)


if __name__ == "__main__":
    main()
