"""Choose the query defaults by measurement: model, frame mask, localiser options, views and the threshold.

Embeds the fixture benchmark once per model, with and without the low-information frame mask (cached as
.npz: references as whole frames, queries as every view the product can search), then replays the
product's own query path, ``workers.query.answer_query``, over an exact in-memory index
(``workers.stores.memory.MemoryLibrary``) for a grid of settings: every ``TemporalNetwork`` option the
product has (``split_jump`` and ``merge_gap`` included) and the query's ``crop_grid``. Prints segment F1
(VCSL micro), video-level precision/recall and, per setting, the score gap between true and false matches.

    python -m bench.tune [--fixtures DIR] [--models sscd_distilled,sscd] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.fixtures import build_fixtures
from tasks.settings import Settings
from workers.embed import create_embedder
from workers.evaluate import load_ground_truth, score
from workers.localise import TemporalNetwork
from workers.pipeline import embed_video
from workers.query import answer_query
from workers.stores.memory import MemoryLibrary
from workers.types import QueryParams

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
MAX_GRID = 2
"""Queries are embedded with tiles of this grid; ``crop_grid`` 1 uses their whole-frame view only."""


def embed_set(gt: dict[str, Any], model: str, cache: Path, mask: bool) -> dict[str, np.ndarray]:
    """Features keyed by name: references [T, D], queries [1 + MAX_GRID², T, D], uninformative views zeroed
    when ``mask`` (the product's ``FrameFilter``); cached per fixture version, model and mask."""
    options = Settings().decode_options()
    path = cache / (f"features_v{gt['version']}_{model}_views{MAX_GRID}{'_masked' if mask else ''}"
                    f"{'_skipnonref' if options.skip_nonref else ''}.npz")
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    embedder = create_embedder(model, device="cpu")
    frame_filter = replace(Settings().frame_filter(), enabled=mask)
    feats = {e["name"]: embed_video(Path(e["path"]), embedder, options, frame_filter=frame_filter).features
             for e in gt["references"]}
    feats |= {e["name"]: embed_video(Path(e["path"]), embedder, options, crop_grid=MAX_GRID,
                                     frame_filter=frame_filter).views for e in gt["queries"]}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **feats)
    return feats


def predict(gt: dict[str, Any], feats: dict[str, np.ndarray], tn: TemporalNetwork,
            params: QueryParams) -> dict[str, list[tuple[str, float, list[list[float]]]]]:
    """Per query: (reference, video score, boxes) for every match, before any threshold (min_score 0)."""
    library = MemoryLibrary({r["name"]: feats[r["name"]] for r in gt["references"]})
    out = {}
    for query in gt["queries"]:
        views = feats[query["name"]]
        views = views[:1] if params.crop_grid == 1 else views
        result = answer_query(views, fps=1.0, library=library, localiser=tn, params=replace(params, min_score=0.0))
        out[query["name"]] = [(m.video_id, m.score, [[s.query_start, s.ref_start, s.query_end, s.ref_end]
                                                     for s in m.segments]) for m in result.matches]
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
    parser.add_argument("--defaults-only", action="store_true", help="the product's defaults alone, mask on and off")
    args = parser.parse_args(argv)
    gt_path = build_fixtures(CLIPS, args.fixtures, quick=args.quick)
    gt = load_ground_truth(gt_path)
    grid = {"crop_grid": [1, MAX_GRID], "trim": [True, False], "merge_gap": [None, 2], "split_jump": [None, 3],
            "min_length": [1, 3], "min_sim": [0.2, 0.3], "tn_top_k": [5, 10]}
    defaults = Settings()
    if args.defaults_only:
        grid = {"crop_grid": [defaults.query.crop_grid]}
    rows = []
    for model, mask in itertools.product(args.models.split(","), (True, False)):
        started = time.perf_counter()
        feats = embed_set(gt, model, args.fixtures / "cache", mask)
        print(f"{model} (mask {mask}): features ready in {time.perf_counter() - started:.1f} s")
        for values in itertools.product(*grid.values()):
            setting = dict(zip(grid, values, strict=True))
            crop_grid = setting.pop("crop_grid")
            tn = replace(TemporalNetwork(**defaults.localise.model_dump()), device="cpu", **setting)
            raw = predict(gt, feats, tn, replace(defaults.query_params(), crop_grid=crop_grid))
            low_true, high_false = separation(gt, raw)
            for threshold in sorted({0.0, 0.25, defaults.query.min_score, 0.5}):
                rows.append({"model": model, "mask": mask, "crop_grid": crop_grid, **setting, "threshold": threshold,
                             "min_true": round(low_true, 3), "max_false": round(high_false, 3),
                             **{k: round(v, 4) for k, v in evaluate(gt, raw, threshold).items()}})
    if args.out:
        args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rows.sort(key=lambda r: -r["f1"])
    for row in rows[:15]:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
