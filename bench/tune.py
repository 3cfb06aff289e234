"""Choose the query defaults by measurement: model, frame mask, localiser options, views and the threshold.

Embeds the fixture benchmark once per model, with and without the low-information frame mask (cached as
.npz: references as whole frames, queries as every view the product can search), then replays the
product's own frame matching, ``workers.matching.match_query``, over an exact in-memory index
(``workers.stores.memory.MemoryLibrary``) for a grid of settings: every ``TNParams`` option the
product has (``split_jump``, ``merge_gap``, ``end_floor``, ``query_overlap`` included) and the query's
``crop_grid``, ``extra_views``, ``top_k`` and ``reduce``. Prints segment F1 (VCSL micro), video-level
precision/recall and, per setting, the score gap between true and false matches; ``--per-query N`` the
worst (query, reference) pairs with their boxes, ``--calibration`` what each score band holds, and
``--ablation`` each change of ``ABLATION`` in turn as a table.

Every setting is scored on each fixture set of ``--sets`` (``bench/sets.py``: v2, v3, the footage's tuning
part ``tune`` and its ``check`` part): a per-set table for the defaults, and for every setting of a grid
or ablation its F1 per set, the minimum over the tuning sets (v2, v3, tune) that defaults are chosen on,
the check set's F1 beside it (never part of the minimum), and ``bench.sets.verdict`` against the defaults.

    python -m bench.tune [--sets v2,v3,tune,check] [--models sscd_distilled,sscd] [--quick] [--masks on,off]
    python -m bench.tune --grid '{"end_floor": [0, 0.5], "extra_views": [[], ["flip"]]}'
    python -m bench.tune --ablation
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.sets import FixtureSet, load_sets, minimum, parse_sets, set_table, verdict
from service.settings import Settings
from workers.embed import create_embedder
from workers.evaluate import precision_recall, score
from workers.localise import TemporalNetwork
from workers.matching import match_query
from workers.signals.frames import embed_video
from workers.stores.memory import MemoryLibrary
from workers.types import QueryParams
from workers.views import EXTRA_VIEWS, VIEW_COUNTS

MAX_GRID = 2
"""Queries are embedded with tiles of this grid; ``crop_grid`` 1 uses their whole-frame view only."""
QUERY_OPTIONS = ("crop_grid", "top_k", "reduce", "per_video", "extra_views")
"""Grid keys that set the query's ``QueryParams``; every other key is a localiser option (``TNParams``)."""
def embed_set(gt: dict[str, Any], model: str, cache: Path, mask: bool, extra: bool = False) -> dict[str, np.ndarray]:
    """Features keyed by name: references [T, D], queries [1 + MAX_GRID², T, D] (with ``extra``, every extra
    view of ``workers.views`` after those: ``view_rows``), uninformative views zeroed when ``mask`` (the
    product's ``FrameFilter``); cached per fixture version, model, views and mask (the file name lists the
    extra views, so a cache made before a view was added is not read as if it had it)."""
    options = Settings().decode_options()
    named = f"{gt['set']}_" if "set" in gt else ""  # the footage parts; v2/v3 keep their old file names
    views = f"_extra-{'-'.join(EXTRA_VIEWS)}" if extra else ""
    path = cache / (f"features_{named}v{gt['version']}_{model}_views{MAX_GRID}{views}"
                    f"{'_masked' if mask else ''}{'_skipnonref' if options.skip_nonref else ''}.npz")
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    embedder = create_embedder(model, device="cpu")
    frame_filter = replace(Settings().frame_filter(), enabled=mask)
    feats = {e["name"]: embed_video(Path(e["path"]), embedder, options, frame_filter=frame_filter).features
             for e in gt["references"]}
    feats |= {e["name"]: embed_video(Path(e["path"]), embedder, options, crop_grid=MAX_GRID,
                                     extra_views=EXTRA_VIEWS if extra else (), frame_filter=frame_filter).views
              for e in gt["queries"]}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **feats)
    return feats


def view_rows(crop_grid: int, extra_views: Sequence[str]) -> list[int]:
    """Rows of a cached query [1 + MAX_GRID² + extras, T, D] that a query with these views searches."""
    rows = [0] + (list(range(1, 1 + MAX_GRID**2)) if crop_grid == MAX_GRID else [])
    start = 1 + MAX_GRID**2
    for view in EXTRA_VIEWS:
        if view in extra_views:
            rows += list(range(start, start + VIEW_COUNTS[view]))
        start += VIEW_COUNTS[view]
    return rows


def predict(gt: dict[str, Any], feats: dict[str, np.ndarray], tn: TemporalNetwork,
            params: QueryParams) -> dict[str, list[tuple[str, float, list[list[float]]]]]:
    """Per query: (reference, video score, boxes) for every match, before any threshold (min_score 0)."""
    library = MemoryLibrary({r["name"]: feats[r["name"]] for r in gt["references"]})
    out = {}
    for query in gt["queries"]:
        views = feats[query["name"]][view_rows(params.crop_grid, params.extra_views)]
        matches = match_query(views, fps=1.0, search=library.search, load_references=library.load,
                              searchable=library.searchable, localiser=tn, params=replace(params, min_score=0.0))
        out[query["name"]] = [(m.video_id, m.score, [[s.query_start, s.ref_start, s.query_end, s.ref_end]
                                                     for s in m.segments]) for m in matches]
    return out


def per_transform(gt: dict[str, Any], raw: dict[str, list], threshold: float) -> list[str]:
    """Markdown rows (transformation, pairs, mean VCSL precision and recall of the true or predicted pairs)."""
    predictions = {q: {ref: boxes for ref, value, boxes in items if value >= threshold} for q, items in raw.items()}
    report = score(gt, gt["queries"], predictions)
    return [f"| {label} | {row['pairs']} | {row['precision']:.2f} | {row['recall']:.2f} |"
            for label, row in report.per_transform.items()]


def evaluate(gt: dict[str, Any], raw: dict[str, list], threshold: float) -> dict[str, float]:
    predictions = {q: {ref: boxes for ref, value, boxes in items if value >= threshold} for q, items in raw.items()}
    report = score(gt, gt["queries"], predictions)
    return {"f1": report.segment["f1"], "seg_p": report.segment["precision"], "seg_r": report.segment["recall"],
            "vid_p": report.video["precision"], "vid_r": report.video["recall"]}


def per_query(gt: dict[str, Any], raw: dict[str, list], threshold: float) -> list[dict[str, Any]]:
    """Every (query, reference) pair that is predicted or true, with its VCSL precision and recall, worst first:
    where a setting loses segment precision or recall, and to which boxes."""
    rows = []
    for query in gt["queries"]:
        truth = {m["reference"]: m["segments"] for m in query["matches"]}
        predicted = {ref: boxes for ref, value, boxes in raw[query["name"]] if value >= threshold}
        scores = {ref: value for ref, value, _ in raw[query["name"]]}
        for ref in sorted(set(truth) | set(predicted)):
            p, r = precision_recall(predicted.get(ref, []), truth.get(ref, []))
            rows.append({"query": query["name"], "reference": ref, "precision": round(p, 3), "recall": round(r, 3),
                         "score": round(scores.get(ref, 0.0), 3), "truth": truth.get(ref, []),
                         "predicted": [[round(v, 2) for v in box] for box in predicted.get(ref, [])]})
    return sorted(rows, key=lambda row: min(row["precision"], row["recall"]))


def calibration(gt: dict[str, Any], raw: dict[str, list], cuts: Sequence[float] = (0.1, 0.2, 0.3, 0.35, 0.4, 0.5,
                                                                                 0.6, 0.7, 0.8, 0.9)) -> list[str]:
    """What a video score means: per band [cut, next cut) the matches reported there, how many are true
    (a reference the query copies) and their mean VCSL segment precision; lines for people."""
    truth = {q["name"]: {m["reference"]: m["segments"] for m in q["matches"]} for q in gt["queries"]}
    lines = []
    for low, high in zip(cuts, [*cuts[1:], 1.01], strict=True):
        band = [(q, ref, boxes) for q, items in raw.items() for ref, value, boxes in items if low <= value < high]
        true = [b for b in band if b[1] in truth[b[0]]]
        seg_p = [precision_recall(boxes, truth[q].get(ref, []))[0] for q, ref, boxes in band]
        lines.append(f"score {low:.2f}-{min(high, 1.0):.2f}: {len(band):3d} matches, {len(true):3d} true"
                     + (f" (video precision {len(true) / len(band):.2f}, segment precision "
                        f"{np.mean(seg_p):.2f})" if band else ""))
    return lines


def separation(gt: dict[str, Any], raw: dict[str, list]) -> tuple[float, float]:
    """(lowest video score of a true match, not counting hard queries; highest of a false match)."""
    truth = {q["name"]: {m["reference"] for m in q["matches"]} for q in gt["queries"]}
    hard = {q["name"] for q in gt["queries"] if q.get("hard")}
    true_scores = [value for q, items in raw.items() if q not in hard for ref, value, _ in items if ref in truth[q]]
    false_scores = [value for q, items in raw.items() for ref, value, _ in items if ref not in truth[q]]
    return min(true_scores, default=float("nan")), max(false_scores, default=float("nan"))


PREVIOUS_ROUND = {"snap_ends": False, "min_segment_score": 0.0, "prefer_stronger": False}
"""The localiser options this round added, off: the earlier ``ABLATION`` rows are measured without them."""
BEFORE_UNFILL = {"extra_views": ("flip", "unborder")}
"""The query views before ``unfill`` (docs/measurements/2026-12-07-blurred-fill-view.md)."""
ABLATION: tuple[tuple[str, dict[str, Any]], ...] = (
    ("before (v2 defaults)", {"end_floor": 0.0, "query_overlap": 1.0, "reduce": "sum", "extra_views": (),
                              **PREVIOUS_ROUND}),
    ("+ end_floor 0.5", {"query_overlap": 1.0, "reduce": "sum", "extra_views": (), **PREVIOUS_ROUND}),
    ("+ query_overlap 0.5", {"reduce": "sum", "extra_views": (), **PREVIOUS_ROUND}),
    ("+ reduce row_max", {"extra_views": (), **PREVIOUS_ROUND}),
    ("+ flip view", {"extra_views": ("flip",), **PREVIOUS_ROUND}),
    ("+ unborder view", {**BEFORE_UNFILL, **PREVIOUS_ROUND}),
    ("+ snap_ends", {"min_segment_score": 0.0, "prefer_stronger": False, **BEFORE_UNFILL}),
    ("+ min_segment_score 0.2", {"prefer_stronger": False, **BEFORE_UNFILL}),
    ("+ prefer_stronger", BEFORE_UNFILL),
    ("+ unfill view", {}),
    ("+ halves views", {"extra_views": ("flip", "unborder", "unfill", "halves")}),
    ("defaults without end_floor", {"end_floor": 0.0}),
    ("defaults without query_overlap", {"query_overlap": 1.0}),
    ("defaults without row_max (sum)", {"reduce": "sum"}),
    ("defaults without extra views", {"extra_views": ()}),
    ("defaults without snap_ends", {"snap_ends": False}),
    ("defaults without min_segment_score", {"min_segment_score": 0.0}),
    ("defaults without prefer_stronger", {"prefer_stronger": False}),
)
"""``--ablation``: each change added in turn from the previous defaults, then each left out of the defaults."""


def features(sets: Sequence[FixtureSet], model: str, mask: bool) -> dict[Path, dict[str, np.ndarray]]:
    """Each set's folder's features (``embed_set`` with every extra view), by the folder's cache path."""
    out: dict[Path, dict[str, np.ndarray]] = {}
    for fixture in sets:
        if fixture.cache not in out:
            out[fixture.cache] = embed_set(fixture.folder, model, fixture.cache, mask, extra=True)
    return out


def predict_sets(sets: Sequence[FixtureSet], feats: dict[Path, dict[str, np.ndarray]], tn: TemporalNetwork,
                 params: QueryParams) -> dict[str, dict[str, list]]:
    """``predict`` per set, keyed by set name, each holding its own queries (predicted once per folder: v2's
    queries are v3's)."""
    by_folder = {cache: predict(next(f.folder for f in sets if f.cache == cache), folder_feats, tn, params)
                 for cache, folder_feats in feats.items()}
    return {fixture.name: {q["name"]: by_folder[fixture.cache][q["name"]] for q in fixture.gt["queries"]}
            for fixture in sets}


def configure(defaults: Settings, options: dict[str, Any]) -> tuple[TemporalNetwork, QueryParams]:
    """The localiser and query parameters of the defaults with ``options`` (``QUERY_OPTIONS`` keys set the
    query, every other key the localiser's ``TNParams``; lists become tuples)."""
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    params = replace(defaults.query_params(), **{k: v for k, v in options.items() if k in QUERY_OPTIONS})
    tn = TemporalNetwork(replace(defaults.tn_params(), device="cpu",
                                 **{k: v for k, v in options.items() if k not in QUERY_OPTIONS}))
    return tn, params


def f1_by_set(sets: Sequence[FixtureSet], raw: dict[str, dict[str, list]], threshold: float) -> dict[str, float]:
    return {fixture.name: evaluate(fixture.gt, raw[fixture.name], threshold)["f1"] for fixture in sets}


def f1_cells(sets: Sequence[FixtureSet], f1: dict[str, float]) -> str:
    """Markdown cells: the tuning sets' F1, their minimum, then the check set's F1."""
    tuning = [f"{f1[s.name]:.4f}" for s in sets if s.tuning]
    check = [f"{f1[s.name]:.4f}" for s in sets if not s.tuning]
    low = minimum(f1)[0]
    return " | ".join([*tuning, f"**{low:.4f}**" if tuning else "-", *check])


def f1_header(sets: Sequence[FixtureSet]) -> str:
    tuning = [s.name for s in sets if s.tuning]
    check = [f"{s.name} F1 (never chosen on)" for s in sets if not s.tuning]
    return " | ".join([*(f"{name} F1" for name in tuning), f"min F1 ({', '.join(tuning)})", *check])


def ablation(sets: Sequence[FixtureSet], feats: dict[Path, dict[str, np.ndarray]], defaults: Settings) -> list[str]:
    """Markdown rows of every ``ABLATION`` row: F1 per set, the minimum over the tuning sets, the check set,
    false matches per set, the score gap over the tuning sets and the verdict against the defaults."""
    threshold = defaults.query.min_score
    names = [s.name for s in sets]
    header = (f"| setting | {f1_header(sets)} | false matches ({'/'.join(names)}) | lowest true | highest false "
              "| adopt (vs defaults) |")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    baseline = f1_by_set(sets, predict_sets(sets, feats, *configure(defaults, {})), threshold)
    for label, options in ABLATION:
        raw = predict_sets(sets, feats, *configure(defaults, options))
        f1 = f1_by_set(sets, raw, threshold)
        false = []
        gaps = [separation(fixture.gt, raw[fixture.name]) for fixture in sets if fixture.tuning]
        low_true = min((low for low, _ in gaps if low == low), default=float("nan"))
        high_false = max((high for _, high in gaps if high == high), default=float("nan"))
        for fixture in sets:
            truth = {q["name"]: {m["reference"] for m in q["matches"]} for q in fixture.gt["queries"]}
            false.append(sum(1 for q in truth for ref, value, _ in raw[fixture.name][q]
                             if value >= threshold and ref not in truth[q]))
        lines.append(f"| {label} | {f1_cells(sets, f1)} | {'/'.join(map(str, false))} | {low_true:.2f} | "
                     f"{high_false:.2f} | {verdict(f1, baseline)} |")
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, default=Path(".cache/fixtures"), help="v2/v3 fixture folder")
    parser.add_argument("--footage", type=Path, default=Path(".cache/footage"),
                        help="folder of the footage sets (tune/ and check/ in it)")
    parser.add_argument("--sets", "--set", type=parse_sets, default=parse_sets("v2,v3,tune,check"),
                        help="fixture sets to score, of v2, v3, tune (the tuning sets: defaults are chosen on "
                             "their minimum F1) and check (reported, never chosen on); default all four")
    parser.add_argument("--models", default="sscd_distilled,sscd")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write every row as JSON lines")
    parser.add_argument("--defaults-only", action="store_true", help="the product's defaults alone, mask on and off")
    parser.add_argument("--per-query", type=int, default=0, metavar="N",
                        help="print the N worst (query, reference) pairs of each setting at the default threshold")
    parser.add_argument("--grid", type=json.loads, default=None,
                        help='JSON {option: [values]} of localiser options (and crop_grid) to vary around the '
                             'defaults, e.g. \'{"end_floor": [null, 0.5]}\'')
    parser.add_argument("--ablation", action="store_true", help="each change in turn (ABLATION), as a table")
    parser.add_argument("--calibration", action="store_true", help="print what each video score band holds")
    parser.add_argument("--masks", default="on,off", help="frame mask settings to run: on, off or both")
    parser.add_argument("--per-transform", action="store_true",
                        help="print each setting's precision and recall per transformation, per set")
    args = parser.parse_args(argv)
    sets = load_sets(args.sets, fixtures=args.fixtures, footage=args.footage, quick=args.quick)
    grid = {"crop_grid": [1, MAX_GRID], "trim": [True, False], "merge_gap": [None, 2], "split_jump": [None, 3],
            "min_length": [1, 3], "min_sim": [0.2, 0.3], "tn_top_k": [5, 10]}
    defaults = Settings()
    threshold = defaults.query.min_score
    if args.defaults_only or args.grid:
        grid = {"crop_grid": [defaults.query.crop_grid]} | (args.grid or {})
    if args.ablation:
        feats = features(sets, args.models.split(",")[0], True)
        print("\n".join(ablation(sets, feats, defaults)))
        return
    rows = []
    for model, mask in itertools.product(args.models.split(","), [m == "on" for m in args.masks.split(",")]):
        started = time.perf_counter()
        feats = features(sets, model, mask)
        print(f"{model} (mask {mask}): features ready in {time.perf_counter() - started:.1f} s")
        default_config = configure(defaults, {})
        base_raw = predict_sets(sets, feats, *default_config)
        base = {s.name: evaluate(s.gt, base_raw[s.name], threshold) for s in sets}
        print(f"\ndefaults ({model}, mask {mask}, threshold {threshold}):")
        print("\n".join(set_table(base, sets)))
        summary = [f"| setting | {f1_header(sets)} | adopt (vs defaults) |"]
        for values in itertools.product(*grid.values()):
            setting = dict(zip(grid, values, strict=True))
            tn, params = configure(defaults, setting)
            raw = base_raw if (tn, params) == default_config else predict_sets(sets, feats, tn, params)
            label = f"{model} mask {mask} {json.dumps(setting)}"
            for fixture in sets:
                gt, set_raw = fixture.gt, raw[fixture.name]
                if args.calibration:
                    print(f"score calibration of {fixture.name}, {label}:")
                    print("\n".join("  " + line for line in calibration(gt, set_raw)))
                if args.per_transform:
                    print(f"\nper transformation of {fixture.name}, {label}:")
                    print("| transformation | pairs | P | R |\n|---|---|---|---|")
                    print("\n".join(per_transform(gt, set_raw, threshold)))
                if args.per_query:
                    print(f"worst pairs of {fixture.name}, {label}:")
                    for row in per_query(gt, set_raw, threshold)[: args.per_query]:
                        print("  " + json.dumps(row))
            f1 = f1_by_set(sets, raw, threshold)
            judged = "(the defaults)" if raw is base_raw else verdict(f1, {name: r["f1"] for name, r in base.items()})
            summary.append(f"| {json.dumps(setting)} | {f1_cells(sets, f1)} | {judged} |")
            for cut in sorted({0.0, 0.25, threshold, 0.5}):
                row = {"model": model, "mask": mask, "crop_grid": params.crop_grid,
                       "extra_views": ",".join(params.extra_views), **setting, "threshold": cut}
                results = {s.name: evaluate(s.gt, raw[s.name], cut) for s in sets}
                low, row["min_set"] = minimum({name: r["f1"] for name, r in results.items()})
                row["min_f1"] = round(low, 4)
                for fixture in sets:
                    low_true, high_false = separation(fixture.gt, raw[fixture.name])
                    row |= {f"{fixture.name}_{k}": round(v, 4) for k, v in results[fixture.name].items()}
                    row |= {f"{fixture.name}_min_true": round(low_true, 3),
                            f"{fixture.name}_max_false": round(high_false, 3)}
                rows.append(row)
        print(f"\nsettings at threshold {threshold} ({model}, mask {mask}):")
        print("\n".join([summary[0], "|---" * (summary[0].count("|") - 1) + "|", *summary[1:]]))
    if args.out:
        args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rows.sort(key=lambda r: -r["min_f1"] if r["min_f1"] == r["min_f1"] else 0.0)
    print("\nbest rows by the minimum F1 over the tuning sets:")
    for row in rows[:15]:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
