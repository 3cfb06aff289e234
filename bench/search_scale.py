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
the whole-frame query vectors, ``tiles`` the same over the tile vectors; ``cand`` compares the top-5 videos
that ``select_candidates`` (sum over all 300 vectors) picks from the index's hits with those it picks from
the exact hits, ``true`` is the share of the really copied videos among the index's top 5. ``MB/h`` is
the server's RSS growth over idle per hour of video at 1 fps (an upper bound: it includes buffers).
Searches use Bounded consistency, so the times
are the index's own; the product's path (Strong reads, batched calls) is timed once, on the default index.

    python -m bench.search_scale [--sizes 100000] [--uri http://127.0.0.1:19530] [--work DIR] [--pq] [--default-only]

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.query_speed import wait_for_index
from tasks.services import ManagedProcess, free_port, milvus_standalone, wait_for_milvus
from workers.decode import DecodeOptions
from workers.embed import create_embedder
from workers.informative import FrameFilter
from workers.pipeline import embed_video
from workers.selection import select_candidates
from workers.stores.vectors import VectorIndex

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
RAW = FrameFilter(enabled=False)
"""Every frame embedded: the index is measured on all of a video's descriptors."""
DIM, LIMIT, TOP_K, QUERY_FRAMES = 512, 64, 5, 60
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


DEFAULT = IndexConfig("HNSW", {"M": 16, "efConstruction": 200}, [{"ef": 64}, {"ef": 128}, {"ef": 256}])


def configs(size: int, with_pq: bool, only_default: bool) -> list[IndexConfig]:
    """The indexes to compare; HNSW M=8 (recall@64 0.79-0.87 at 20k) is left out."""
    nlist = int(2 ** round(math.log2(4 * math.sqrt(size))))  # the usual 4 * sqrt(N), as a power of two
    probes = [{"nprobe": 16}, {"nprobe": 64}]
    if only_default:
        return [DEFAULT]
    chosen = [
        IndexConfig("FLAT", {}, [{}]),
        DEFAULT,
        IndexConfig("HNSW", {"M": 32, "efConstruction": 200}, [{"ef": 64}, {"ef": 128}, {"ef": 256}]),
        IndexConfig("IVF_FLAT", {"nlist": nlist}, probes),
        IndexConfig("IVF_SQ8", {"nlist": nlist}, probes),
    ]
    if with_pq:  # 2.3.5 took 172 s to build IVF_PQ (m=64) on 20k vectors, for recall@64 0.69
        chosen.append(IndexConfig("IVF_PQ", {"nlist": nlist, "m": 32, "nbits": 8}, [{"nprobe": 64}]))
    return chosen


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def edited(frames: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Copies of unit ``frames`` [T, D] at about ``cosine`` to the originals (noise orthogonal on average)."""
    noise = unit(rng.standard_normal(frames.shape))
    return unit(cosine * frames + math.sqrt(1 - cosine**2) * noise)


def synthetic_library(size: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """Video matrices [T_i, D] summing to ``size`` frames, and which of them are near-duplicate sources."""
    videos: list[np.ndarray] = []
    sources: list[int] = []
    total = 0
    while total < size:
        length = min(int(rng.integers(60, 601)), size - total)
        if videos and rng.random() < 0.1:  # a near-duplicate of an earlier video (cut to this length)
            source = int(rng.integers(len(videos)))
            original = videos[source][:length]
            matrix = edited(original, 0.8, rng)
            sources.append(source)
        else:
            style = unit(rng.standard_normal(DIM))
            shots, frames = [], 0
            while frames < length:
                shot = min(int(rng.geometric(1 / 6)), length - frames)
                centre = edited(style[None], 0.45, rng)[0]  # frames of one video share a look
                shots.append(edited(np.repeat(centre[None], shot, 0), 0.95, rng))
                frames += shot
            matrix = np.concatenate(shots)
        videos.append(matrix)
        total += matrix.shape[0]
    return videos, sources


def real_descriptors(work: Path, fps: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Real clips at ``fps`` {name: [T, D]}, and the edited real query: whole frames [60, D], tiles [240, D]."""
    cache = work / f"real-{fps:g}.npz"
    if not cache.exists():
        embedder = create_embedder("sscd_distilled", device="cpu")
        clips = {p.name: embed_video(p, embedder, DecodeOptions(fps=fps), frame_filter=RAW).features
                 for p in sorted(CLIPS.glob("clip*"))}
        query = work / "query.mp4"
        inputs = [arg for name in REAL_QUERY_CLIPS for arg in ("-i", str(CLIPS / name))]
        chain = "".join(f"[{i}:v]scale=1280:720,setsar=1,fps=25[v{i}];" for i in range(len(REAL_QUERY_CLIPS)))
        joined = "".join(f"[v{i}]" for i in range(len(REAL_QUERY_CLIPS)))
        subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex",
                        f"{chain}{joined}concat=n={len(REAL_QUERY_CLIPS)}:v=1:a=0,{EDIT}",
                        "-t", str(QUERY_FRAMES), "-c:v", "libx264", "-preset", "veryfast", str(query)], check=True)
        whole = embed_video(query, embedder, frame_filter=RAW).features[:QUERY_FRAMES]
        tiles = embed_video(query, embedder, crop_grid=2, frame_filter=RAW).crops[:, :QUERY_FRAMES].reshape(-1, DIM)
        np.savez(cache, whole=whole, tiles=tiles, **{f"clip:{k}": v for k, v in clips.items()})
    data = np.load(cache)
    clips = {k.removeprefix("clip:"): data[k] for k in data.files if k.startswith("clip:")}
    return clips, data["whole"], data["tiles"]


def exact_top(queries: np.ndarray, library: np.ndarray, limit: int) -> np.ndarray:
    """Row indices [Q, limit] of the ``limit`` largest inner products, best first (chunked over queries)."""
    out = np.empty((queries.shape[0], limit), np.int64)
    for start in range(0, queries.shape[0], 64):
        scores = queries[start : start + 64] @ library.T
        part = np.argpartition(-scores, limit - 1, axis=1)[:, :limit]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        out[start : start + 64] = np.take_along_axis(part, order, 1)
    return out


def milvus_rss_mb(server: ManagedProcess | None) -> float:
    """Resident memory of the ``milvus`` processes in the server's process group (0 for an outside server)."""
    if server is None or server.process is None:
        return 0.0
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if "(milvus)" in stat and os.getpgid(int(pid)) == server.process.pid:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 2**20


def search(index: VectorIndex, queries: np.ndarray, params: dict[str, int], level: str = "Bounded"
           ) -> tuple[float, list[list[int]], list[list[float]]]:
    tick = time.perf_counter()
    results = index.client.search(index.collection, data=queries.tolist(), limit=LIMIT, output_fields=["row"],
                                  search_params={"metric_type": "IP", "params": params}, consistency_level=level)
    seconds = time.perf_counter() - tick
    return seconds, [[h["entity"]["row"] for h in hits] for hits in results], \
        [[h["distance"] for h in hits] for hits in results]


def product_path(index: VectorIndex, queries: np.ndarray, repeats: int) -> None:
    """The product's own search (``VectorIndex.search``, ``search_batch`` vectors per call) at both consistencies."""
    for consistency in ("Bounded", "Strong"):
        for batch in (256, 1024):
            index.search_batch, index.search_consistency = batch, consistency
            seconds = []
            for _ in range(repeats):
                tick = time.perf_counter()
                index.search(queries, LIMIT)
                seconds.append(time.perf_counter() - tick)
            print(f"  VectorIndex.search of the {queries.shape[0]} real query vectors ({consistency}, ef "
                  f"{index.search_ef}, {batch} per call): {statistics.median(seconds):.3f} s")


class BenchIndex(VectorIndex):
    """The product's frame collection plus the row number, so hits can be compared with exact search."""

    def _add_fields(self, schema, data_type) -> None:  # noqa: ANN001
        super()._add_fields(schema, data_type)
        schema.add_field("row", data_type.INT64)


def run(sizes: list[int], uri: str | None, work: Path, real_fps: float, repeats: int, with_pq: bool,
        only_default: bool) -> None:
    work.mkdir(parents=True, exist_ok=True)
    real, real_whole, real_tiles = real_descriptors(work, real_fps)
    server = None
    if uri is None:
        port = free_port()
        shutil.rmtree(work / "milvus", ignore_errors=True)
        server = milvus_standalone(work / "milvus", port=port)
        server.start()
        uri = f"http://127.0.0.1:{port}"
    try:
        if server is not None:
            wait_for_milvus(server, uri)
        idle_rss = milvus_rss_mb(server)
        print(f"Milvus at {uri}; idle RSS {idle_rss:.0f} MB (0: not started here)")
        for size in sizes:
            run_size(size, uri, server, idle_rss, real, real_fps, real_whole, real_tiles, repeats, with_pq,
                     only_default)
    finally:
        if server is not None:
            server.stop()


def run_size(size: int, uri: str, server: ManagedProcess | None, idle_rss: float, real: dict[str, np.ndarray],
             real_fps: float, real_whole: np.ndarray, real_tiles: np.ndarray, repeats: int, with_pq: bool,
             only_default: bool) -> None:
    rng = np.random.default_rng(size)
    synthetic, sources = synthetic_library(size - sum(m.shape[0] for m in real.values()), rng)
    names = list(real) + [f"synthetic-{i:05d}" for i in range(len(synthetic))]
    matrices = list(real.values()) + synthetic
    owner = np.repeat(np.arange(len(names)), [m.shape[0] for m in matrices])
    library = np.concatenate(matrices)
    consecutive = np.einsum("td,td->t", synthetic[0][1:], synthetic[0][:-1])
    real_consecutive = np.concatenate([np.einsum("td,td->t", m[1:], m[:-1]) for m in real.values()])
    print(f"\nN = {library.shape[0]} vectors ({library.shape[0] / 3600:.1f} h at 1 fps): {len(real)} real clips "
          f"at {real_fps:g} fps, {len(synthetic)} synthetic videos, {len(sources)} near-duplicates; consecutive-frame "
          f"cosine median real {np.median(real_consecutive):.2f}, synthetic {np.median(consecutive):.2f}")

    queries = [(set(REAL_QUERY_CLIPS), real_whole, real_tiles)]
    for source in sorted(set(sources))[:3]:
        frames = synthetic[source]
        start = int(rng.integers(0, max(1, frames.shape[0] - QUERY_FRAMES)))
        whole = edited(frames[start : start + QUERY_FRAMES], 0.8, rng)
        tiles = edited(np.repeat(whole, 4, 0), 0.5, rng)  # a tile resembles its frame only loosely
        queries.append(({f"synthetic-{source:05d}"}, whole, tiles))
    exact = [exact_top(np.concatenate([w, t]), library, LIMIT) for _, w, t in queries]

    index = BenchIndex(uri, "bench", DIM, prefix=f"scale_{size}", index_type="FLAT")
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

    print(f"{'index':34} {'build s':>7} {'load s':>6} {'RSS MB':>6} {'MB/h':>5} {'rec@64':>6} {'tiles':>5} "
          f"{'cand':>5} {'true':>5} {'60 q s':>6} {'300 q s':>7}")
    for config in configs(library.shape[0], with_pq, only_default):
        index.client.release_collection(index.collection)
        index.client.drop_index(index.collection, "embedding")
        params = index.client.prepare_index_params()
        params.add_index(field_name="embedding", index_type=config.index_type, metric_type="IP",
                         params=config.build)
        tick = time.perf_counter()
        index.client.create_index(index.collection, params)
        wait_for_index(index)
        build_s = time.perf_counter() - tick
        tick = time.perf_counter()
        index.client.load_collection(index.collection)
        load_s = time.perf_counter() - tick
        rss = milvus_rss_mb(server)
        per_hour = (rss - idle_rss) / (library.shape[0] / 3600) if server else 0.0
        for search_params in config.searches:
            recalls, tile_recalls, candidate_recalls, true_recalls, times_60, times_300 = [], [], [], [], [], []
            for (copied, whole, tiles), truth in zip(queries, exact, strict=True):
                both = np.concatenate([whole, tiles])
                for _ in range(repeats):
                    times_60.append(search(index, whole, search_params)[0])
                    seconds, rows, scores = search(index, both, search_params)
                    times_300.append(seconds)
                overlap = [len(set(r) & set(t)) / LIMIT for r, t in zip(rows, truth.tolist(), strict=True)]
                recalls += overlap[: whole.shape[0]]
                tile_recalls += overlap[whole.shape[0] :]
                hit_rows = np.asarray([r for rs in rows for r in rs])
                found = {names[int(c.video_id)] for c in
                         select_candidates(owner[hit_rows], np.concatenate(scores), top_k=TOP_K)}
                exact_scores = np.take_along_axis(both @ library.T, truth, 1)
                wanted = {names[int(c.video_id)] for c in
                          select_candidates(owner[truth.reshape(-1)], exact_scores.reshape(-1), top_k=TOP_K)}
                candidate_recalls.append(len(found & wanted) / len(wanted))
                true_recalls.append(len(found & copied) / len(copied))
            print(f"{config.label(search_params):34} {build_s:7.1f} {load_s:6.1f} {rss:6.0f} {per_hour:5.0f} "
                  f"{statistics.mean(recalls):6.3f} {statistics.mean(tile_recalls):5.3f} "
                  f"{statistics.mean(candidate_recalls):5.2f} {statistics.mean(true_recalls):5.2f} "
                  f"{statistics.median(times_60):6.3f} {statistics.median(times_300):7.3f}")
            build_s = load_s = 0.0  # the same index: only its first row pays for building it
        if config == DEFAULT:
            product_path(index, np.concatenate(queries[0][1:]), repeats)
    index.client.drop_collection(index.collection)
    index.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--uri", default=None, help="an existing Milvus server; default: start one")
    parser.add_argument("--work", type=Path, default=Path(".cache/bench-search-scale"))
    parser.add_argument("--real-fps", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pq", action="store_true", help="also IVF_PQ (builds for minutes on 2 cores)")
    parser.add_argument("--default-only", action="store_true", help="only the default index (HNSW M=16)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout still stops the server it started
    run([int(s) for s in args.sizes.split(",")], args.uri, args.work, args.real_fps, args.repeats, args.pq,
        args.default_only)


if __name__ == "__main__":
    main()
