"""Replay the query path on the fixture benchmark with and without the low-information mask.

Why: the mask (``workers/informative.py`` + ``workers/localise.py::mask_similarity``) must remove the
matches on black, blank and title frames without losing copies, and that is measured before it is wired
into the product. Embeds every fixture video once with the product's model (whole frames for references;
whole frames and 2x2 tiles for queries, as ``COPYCAT_QUERY__CROP_GRID=2`` does), caches the features and
masks, then replays search (exact inner product in place of Milvus, ``search_limit`` hits per view),
selection (``select_candidates``), localisation (``TemporalNetwork`` with the product's defaults) and the
video-score threshold, and scores the result with ``copycat evaluate``'s metric.

With the mask, uninformative reference frames (pixel statistics and, unless ``--no-patterns``, test-pattern
descriptors) are left out of the search bank, uninformative query views are not searched, and both masks
go to ``TemporalNetwork.localise``.

    python -m bench.mask_replay [--fixtures DIR] [--quick] [--raw out.json] [--min-length N] [--top-k K]

``--min-length`` and ``--top-k`` replace the product's ``min_length`` and ``top_k`` (to measure short copies).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from workers.select import select_candidates

from bench.fixtures import build_fixtures
from cli.evaluate import load_ground_truth, score
from tasks.settings import Settings
from workers.decode import FrameGeometry, decode_all
from workers.embed import create_embedder
from workers.embed.base import FrameEmbedder
from workers.informative import informative_frames, pattern_frames, unlike_patterns
from workers.localise import TemporalNetwork, bounded_video_score, video_score

CLIPS = Path("/work/shared/data/clips")
GRID = 2


def embed_views(path: Path, embedder: FrameEmbedder, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors and informative masks of the whole frames and, for grid > 1, the grid x grid tiles.

    Returns float32 [V, T, D] and bool [V, T], view 0 the whole frame, then tiles in reading order.
    """
    size = embedder.geometry.size
    whole = decode_all(path, embedder.geometry, fps=1.0)
    views = [whole]
    if grid > 1:
        big = decode_all(path, FrameGeometry(size * grid, "squash"), fps=1.0)
        count = min(len(big), len(whole))
        whole = whole[:count]
        views = [whole] + [
            np.ascontiguousarray(big[:count, r * size : (r + 1) * size, c * size : (c + 1) * size])
            for r, c in itertools.product(range(grid), range(grid))
        ]
    features = np.stack([embedder.embed(view) for view in views])
    masks = np.stack([informative_frames(view) for view in views])
    return features, masks


def embed_set(gt: dict[str, Any], cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(features [V, T, D], masks [V, T]) of every reference (V = 1) and query (V = 1 + GRID²), cached."""
    path = cache / f"views_{'quick' if gt['quick'] else 'full'}_v{gt['version']}.npz"
    if path.exists():
        with np.load(path) as data:
            return {name: (data[f"{name}|f"], data[f"{name}|m"]) for name in {k.split("|")[0] for k in data.files}}
    embedder = create_embedder("sscd_distilled", device="cpu")
    out = {}
    for entry in gt["references"]:
        out[entry["name"]] = embed_views(Path(entry["path"]), embedder, 1)
    for entry in gt["queries"]:
        out[entry["name"]] = embed_views(Path(entry["path"]), embedder, GRID)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{n}|{k}": v for n, (f, m) in out.items() for k, v in (("f", f), ("m", m))})
    return out


def predict(
    gt: dict[str, Any],
    views: dict[str, tuple[np.ndarray, np.ndarray]],
    tn: TemporalNetwork,
    *,
    masked: bool,
    limit: int,
    top_k: int,
) -> dict[str, list[dict[str, Any]]]:
    """Per query, every localised candidate: reference, video score and segments, before the threshold."""
    names = [r["name"] for r in gt["references"]]
    rows = [(name, i) for name in names for i in range(views[name][0].shape[1]) if not masked or views[name][1][0, i]]
    bank = np.stack([views[name][0][0, i] for name, i in rows])
    owner = np.array([name for name, _ in rows], dtype=object)
    out: dict[str, list[dict[str, Any]]] = {}
    for query in gt["queries"]:
        features, masks = views[query["name"]]
        flat = features.reshape(-1, features.shape[-1])
        searched = flat[masks.reshape(-1)] if masked else flat
        results = []
        if len(searched):
            sims = searched @ bank.T
            k = min(limit, bank.shape[0])
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            candidates = select_candidates(
                owner[top].ravel(), np.take_along_axis(sims, top, 1).ravel(), reduce="sum", top_k=top_k
            )
            for candidate in candidates:
                ref_features, ref_masks = views[candidate.video_id]
                extra = {"query_informative": masks, "reference_informative": ref_masks[0]} if masked else {}
                segments = tn.localise(features, ref_features[0], 1.0, **extra)
                if segments:
                    results.append(
                        {
                            "reference": candidate.video_id,
                            "score": video_score(segments),
                            "bounded": bounded_video_score(segments, 1.0),
                            "segments": [s.to_json() for s in segments],
                        }
                    )
        out[query["name"]] = results
    return out


def evaluate(
    gt: dict[str, Any], raw: dict[str, list[dict[str, Any]]], threshold: float, key: str = "score"
) -> dict[str, Any]:
    """Segment and video metrics at a threshold on ``key`` (``score`` or ``bounded``), and matched hard negatives."""
    predictions = {
        q: {
            m["reference"]: [[s["query_start"], s["ref_start"], s["query_end"], s["ref_end"]] for s in m["segments"]]
            for m in items
            if m[key] >= threshold
        }
        for q, items in raw.items()
    }
    report = score(gt, gt["queries"], predictions)
    hard = {q["name"] for q in gt["queries"] if q.get("hard_negative")}
    false_hard = {q: [(m["reference"], round(m[key], 3)) for m in raw[q] if m[key] >= threshold] for q in sorted(hard)}
    return {
        "segment": report.segment,
        "video": report.video,
        "per_transform": report.per_transform,
        "hard_negative_matches": {q: v for q, v in false_hard.items() if v},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mask_replay", description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", type=Path, default=Path(".cache/fixtures"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--raw", type=Path, default=None, help="write every localised candidate to this JSON")
    parser.add_argument("--min-length", type=int, default=None, help="TN min_length instead of the setting's")
    parser.add_argument("--top-k", type=int, default=None, help="candidates localised instead of the setting's")
    parser.add_argument("--masked-only", action="store_true", help="replay only with the mask")
    parser.add_argument("--no-patterns", action="store_true", help="mask by pixel statistics only")
    parser.add_argument(
        "--bounded",
        type=float,
        default=None,
        metavar="THRESHOLD",
        help="decide on bounded_video_score >= THRESHOLD instead of video_score >= min_score",
    )
    args = parser.parse_args(argv)
    gt_path = build_fixtures(CLIPS, args.fixtures, quick=args.quick)
    gt = load_ground_truth(gt_path)
    views = embed_set(gt, args.fixtures / "cache")
    if not args.no_patterns:
        embedder = create_embedder("sscd_distilled", device="cpu")
        patterns = embedder.embed(pattern_frames(embedder.geometry.size))
        views = {
            name: (features, masks & np.stack([unlike_patterns(view, patterns) for view in features]))
            for name, (features, masks) in views.items()
        }
    cfg = Settings()
    loc = cfg.localise
    tn = TemporalNetwork(
        tn_max_step=loc.tn_max_step,
        tn_top_k=loc.tn_top_k,
        max_path=loc.max_path,
        min_sim=loc.min_sim,
        min_length=loc.min_length if args.min_length is None else args.min_length,
        max_iou=loc.max_iou,
        trim=loc.trim,
        merge_gap=loc.merge_gap,
        split_jump=loc.split_jump,
        device="cpu",
    )
    raws = {}
    top_k = cfg.select.top_k if args.top_k is None else args.top_k
    for masked in (True,) if args.masked_only else (False, True):
        raw = predict(gt, views, tn, masked=masked, limit=cfg.select.search_limit, top_k=top_k)
        raws["masked" if masked else "plain"] = raw
        if args.bounded is None:
            result = evaluate(gt, raw, cfg.query.min_score)
        else:
            result = evaluate(gt, raw, args.bounded, key="bounded")
        seg, vid = result["segment"], result["video"]
        print(
            f"{'with mask' if masked else 'no mask':>9}: segment P {seg['precision']:.3f} R {seg['recall']:.3f} "
            f"F1 {seg['f1']:.3f}; video P {vid['precision']:.3f} R {vid['recall']:.3f}; "
            f"hard negatives matched {len(result['hard_negative_matches'])}"
        )
        for query, found in result["hard_negative_matches"].items():
            print(f"           {query}: {found}")
        for label, values in result["per_transform"].items():
            print(
                f"           {label:<12} pairs {values['pairs']:>3}  P {values['precision']:.3f}  "
                f"R {values['recall']:.3f}"
            )
    if args.raw:
        args.raw.write_text(json.dumps(raws, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
