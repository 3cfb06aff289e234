"""Choose the query defaults by measurement: model, TN options and the video-level decision threshold.

Embeds the fixture benchmark once per model (cached as .npz), then replays selection and localisation for
a grid of settings with the product's own pure functions (``select_candidates``, ``TemporalNetwork``,
``video_score``) and an exact inner-product search in place of Milvus. Prints segment F1 (VCSL micro),
video-level precision/recall and, per setting, the score gap between true and false matches.

    python -m bench.tune [--fixtures DIR] [--models sscd_distilled,sscd] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.fixtures import build_fixtures
from cli.evaluate import load_ground_truth, score
from workers.decode import FrameGeometry
from workers.embed import create_embedder
from workers.localise import TemporalNetwork, video_score
from workers.pipeline import embed_file
from workers.select import select_candidates

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


def embed_set(gt: dict[str, Any], model: str, cache: Path,
              geometry: FrameGeometry | None = None) -> dict[str, np.ndarray]:
    """Features of every reference and query, keyed by name; cached per model."""
    path = cache / f"features_{model}{'' if geometry is None else f'_{geometry.size}{geometry.resize}'}.npz"
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    embedder = create_embedder(model, device="cpu")
    if geometry is not None:
        embedder.geometry = geometry
    feats = {e["name"]: embed_file(Path(e["path"]), embedder).features for e in gt["references"] + gt["queries"]}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **feats)
    return feats


def predict(gt: dict[str, Any], feats: dict[str, np.ndarray], tn: TemporalNetwork, *, limit: int = 64,
            top_k: int = 5, reduce: str = "sum") -> dict[str, list[tuple[str, float, list[list[float]]]]]:
    """Per query: (reference, video score, boxes) for every localised candidate, before any threshold."""
    names = [r["name"] for r in gt["references"]]
    bank = np.concatenate([feats[n] for n in names])
    owner = np.concatenate([np.full(len(feats[n]), n, dtype=object) for n in names])
    out = {}
    for query in gt["queries"]:
        q = feats[query["name"]]
        sims = q @ bank.T
        k = min(limit, bank.shape[0])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        candidates = select_candidates(owner[top].ravel(), np.take_along_axis(sims, top, 1).ravel(), reduce=reduce,
                                       top_k=top_k)
        results = []
        for cand in candidates:
            segments = tn.localize(q, feats[cand.video_id], 1.0)
            if segments:
                boxes = [[s.query_start, s.ref_start, s.query_end, s.ref_end] for s in segments]
                results.append((cand.video_id, video_score(segments), boxes))
        out[query["name"]] = results
    return out


def evaluate(gt: dict[str, Any], raw: dict[str, list], threshold: float) -> dict[str, float]:
    predictions = {q: {ref: boxes for ref, value, boxes in items if value >= threshold} for q, items in raw.items()}
    report = score(gt, gt["queries"], predictions)
    return {"f1": report.segment["f1"], "seg_p": report.segment["precision"], "seg_r": report.segment["recall"],
            "vid_p": report.video["precision"], "vid_r": report.video["recall"]}


def separation(gt: dict[str, Any], raw: dict[str, list]) -> tuple[float, float]:
    """(lowest video score of a true match, not counting hard queries; highest of a false match)."""
    truth = {q["name"]: {m["reference"] for m in q["matches"]} for q in gt["queries"]}
    hard = {q["name"] for q in gt["queries"] if q.get("hard")}
    true_scores = [value for q, items in raw.items() if q not in hard for ref, value, _ in items if ref in truth[q]]
    false_scores = [value for q, items in raw.items() for ref, value, _ in items if ref not in truth[q]]
    return min(true_scores, default=float("nan")), max(false_scores, default=float("nan"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, default=Path(".cache/fixtures"))
    parser.add_argument("--models", default="sscd_distilled,sscd")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write every row as JSON lines")
    args = parser.parse_args(argv)
    gt_path = build_fixtures(CLIPS, args.fixtures, quick=args.quick)
    gt = load_ground_truth(gt_path)
    grid = {"trim": [True, False], "merge_gap": [None, 2], "min_length": [3, 5], "min_sim": [0.2, 0.3],
            "tn_top_k": [5, 10]}
    rows = []
    for model in args.models.split(","):
        started = time.perf_counter()
        feats = embed_set(gt, model, args.fixtures / "cache")
        print(f"{model}: features ready in {time.perf_counter() - started:.1f} s")
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values, strict=True))
            raw = predict(gt, feats, TemporalNetwork(device="cpu", **params))
            low_true, high_false = separation(gt, raw)
            for threshold in (0.0, 0.25, 0.35, 0.5):
                rows.append({"model": model, **params, "threshold": threshold, "min_true": round(low_true, 3),
                             "max_false": round(high_false, 3),
                             **{k: round(v, 4) for k, v in evaluate(gt, raw, threshold).items()}})
    if args.out:
        args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rows.sort(key=lambda r: -r["f1"])
    for row in rows[:15]:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
