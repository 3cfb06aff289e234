"""Query speed against growing indexes, side by side with a seed-style baseline, in one run.

For each index size N the Milvus collection holds N synthetic unit vectors (videos of 100 frames; their
frame matrices stored like real ones) plus the real clips. One fixture query (a clip excerpt inserted in
other footage) is then answered twice:

- ``copycat``: the product's path (``workers.matching.match_query``): all query frames in batched
  searches, hits summed per video, the top 5 candidates' matrices loaded and localised.
- ``seed``: the towhee-style path: one Milvus search per query frame, ``select_video(top_k=100)``, every
  candidate's full matrix loaded and localised, no batching.

Both use the same Milvus collection, object store and temporal network, so the ratio is the method's.

    python -m bench.query_speed [--sizes 10000,100000] [--repeats 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.fixtures import build_fixtures
from workers.decode import FULL_DECODE
from workers.embed import create_embedder
from workers.evaluate import load_ground_truth
from workers.localise import VCSL_TN, TemporalNetwork
from workers.matching import match_query
from workers.selection import select_candidates
from workers.signals.frames import embed_video
from workers.stores.objects import LocalObjectStore, load_matrix, save_matrix
from workers.stores.vectors import VectorIndex
from workers.types import QueryParams, SearchHits

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
FRAMES_PER_SYNTHETIC_VIDEO = 100
QUERY = "q_clip04_5-14_in_clip13_at3.mp4"
BUCKET = "matrices"
SEED_LIKE = QueryParams(top_k=5, search_limit=64, reduce="sum", per_video=False, min_score=0.35, crop_grid=1,
                        extra_views=())
"""The ``copycat`` path's parameters: every hit summed per video, the top 5 localised, whole frames only."""


def populate(index: VectorIndex, store: LocalObjectStore, size: int, real: dict[str, np.ndarray],
             rng: np.random.Generator, batch: int = 5000) -> None:
    """N synthetic vectors (in 100-frame videos) plus the real references, each with a stored matrix.

    The real clips go through ``replace_video`` like an ingest; the synthetic bulk is upserted in large
    batches of the same rows (one call per video would make populating 1M vectors take hours).
    """
    for name, matrix in real.items():
        index.replace_video(name, matrix)
        save_matrix(store, BUCKET, f"{name}.npy", matrix.astype(np.float16))
    rows: list[dict[str, object]] = []
    for start in range(0, size, FRAMES_PER_SYNTHETIC_VIDEO):
        count = min(FRAMES_PER_SYNTHETIC_VIDEO, size - start)
        frames = rng.standard_normal((count, index.dim)).astype(np.float32)
        frames /= np.linalg.norm(frames, axis=1, keepdims=True)
        video_id = f"synthetic-{start // FRAMES_PER_SYNTHETIC_VIDEO:07d}"
        save_matrix(store, BUCKET, f"{video_id}.npy", frames.astype(np.float16))
        rows += [{"pk": f"{video_id}:{i}", "video_id": video_id, "frame": i, "embedding": frames[i].tolist()}
                 for i in range(count)]
        if len(rows) >= batch:
            index.client.upsert(index.collection, rows)
            rows = []
    if rows:
        index.client.upsert(index.collection, rows)
    index.client.flush(index.collection)
    wait_for_index(index)


def wait_for_index(index: VectorIndex, timeout: float = 3600.0, name: str = "embedding") -> None:
    """Milvus builds the HNSW graphs of flushed segments in the background; measure once they exist.
    ``name``: which of the collection's indexes (the vectors' by default, or a scalar field's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = index.client.describe_index(index.collection, name)
        if state.get("pending_index_rows", 0) == 0 and state.get("indexed_rows") == state.get("total_rows"):
            return
        time.sleep(1.0)
    raise TimeoutError(f"index {name} of {index.collection} not built after {timeout:.0f} s")


def seed_style(query: np.ndarray, index: VectorIndex, store: LocalObjectStore, tn: TemporalNetwork,
               timings: dict[str, float]) -> int:
    """One search per frame, top 100 candidates, every candidate matrix loaded and localised."""
    tick = time.perf_counter()
    parts = [index.search(query[i : i + 1], 64) for i in range(query.shape[0])]
    hits = SearchHits(*(np.concatenate([getattr(p, f) for p in parts]) for f in SearchHits.__dataclass_fields__))
    timings["search"] = time.perf_counter() - tick
    tick = time.perf_counter()
    candidates = select_candidates(hits.video_id, hits.score, reduce="sum", top_k=100)
    timings["select"] = time.perf_counter() - tick
    found = 0
    load_s = localise_s = 0.0
    for candidate in candidates:
        tick = time.perf_counter()
        reference = load_matrix(store, BUCKET, f"{candidate.video_id}.npy").astype(np.float32)
        load_s += time.perf_counter() - tick
        tick = time.perf_counter()
        found += bool(tn.localise(query, reference, 1.0))
        localise_s += time.perf_counter() - tick
    timings["load_candidates"], timings["localise"] = load_s, localise_s
    return found


def run(sizes: list[int], repeats: int, work: Path) -> None:
    gt = load_ground_truth(build_fixtures(CLIPS, work / "fixtures"))
    embedder = create_embedder("sscd_distilled", device="cpu")
    real = {r["name"]: embed_video(Path(r["path"]), embedder, FULL_DECODE).features for r in gt["references"]}
    query_path = Path(next(q["path"] for q in gt["queries"] if q["name"] == QUERY))
    tick = time.perf_counter()
    query = embed_video(query_path, embedder, FULL_DECODE).features
    embed_s = time.perf_counter() - tick
    print(f"query {QUERY}: {query.shape[0]} frames, decode+embed {embed_s:.2f} s (same for both paths)\n")
    tn = TemporalNetwork(replace(VCSL_TN, tn_top_k=10, min_length=3, trim=True, merge_gap=2, device="cpu"))
    rng = np.random.default_rng(0)
    header = f"{'N vectors':>10} {'path':8} {'search':>8} {'select':>8} {'load':>8} {'localise':>9} {'total':>8}"
    print(header)
    totals: dict[int, float] = {}
    for size in sizes:
        folder = work / f"index-{size}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        store = LocalObjectStore(folder / "objects")
        store.ensure_bucket(BUCKET)
        index = VectorIndex(str(folder / "milvus.db"), "sscd_distilled", 512, insert_batch=5000)
        tick = time.perf_counter()
        populate(index, store, size, real, rng)
        index.search(query[:1], 1)  # first search builds/loads the index: not part of a query's cost
        print(f"{'':>10} (index of {index.count()} vectors built in {time.perf_counter() - tick:.0f} s)")
        results: dict[str, list[dict[str, float]]] = {"copycat": [], "seed": []}
        for _ in range(repeats):
            ours: dict[str, float] = {}
            matches = match_query(query, fps=1.0, search=index.search,
                                  load_references=lambda ids, s=store: {v: load_matrix(s, BUCKET, f"{v}.npy")
                                                                        for v in ids},
                                  localiser=tn, params=SEED_LIKE, timings=ours)
            assert [m.video_id for m in matches] == ["clip04_cockatoo.mp4"], matches
            results["copycat"].append(ours)
            theirs: dict[str, float] = {}
            seed_style(query, index, store, tn, theirs)
            results["seed"].append(theirs)
        medians = {path: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for path, runs in results.items()}
        for path in ("copycat", "seed"):
            m = medians[path]
            total = sum(m.values())
            if path == "copycat":
                totals[size] = total
            print(f"{size:>10} {path:8} {m['search']:8.3f} {m['select']:8.4f} {m['load_candidates']:8.3f} "
                  f"{m['localise']:9.3f} {total:8.3f}")
        ratio = sum(medians["seed"].values()) / sum(medians["copycat"].values())
        search_ratio = medians["seed"]["search"] / medians["copycat"]["search"]
        print(f"{'':>10} ratio seed/copycat: total {ratio:.1f}x, search {search_ratio:.1f}x")
        index.close()
    if len(totals) > 1:
        smallest, largest = min(totals), max(totals)
        print(f"\ncopycat query cost (without decode+embed): {totals[smallest]:.3f} s at N={smallest}, "
              f"{totals[largest]:.3f} s at N={largest}: x{totals[largest] / totals[smallest]:.2f} for "
              f"x{largest / smallest:.0f} vectors")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(".cache/bench-query"))
    args = parser.parse_args(argv)
    run([int(s) for s in args.sizes.split(",")], args.repeats, args.work)


if __name__ == "__main__":
    main()
