"""The fixture sets query defaults are judged on, and the rule that judges them.

Why: accuracy generalises or it does not count. A default is chosen on the minimum segment F1 over the
tuning sets (``TUNING_SETS``: v2 and v3 from ``bench/fixtures.py``, ``tune`` from
``bench/footage_fixtures.py``), never on one set's mean, and a change that lowers any tuning set's F1 by
more than ``MAX_DROP`` is not adopted, whatever it does to the others (``verdict``). The ``check`` set
(footage clips that no default is ever chosen on) is reported beside them and never enters the minimum.

Sets ``v2`` and ``v3`` come from one built folder (v2 is v3 without ``ADDED_IN_V3``), ``tune`` and
``check`` from one folder each; features are embedded once per folder (``FixtureSet.folder``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fixtures import build_fixtures
from bench.footage_fixtures import FOOTAGE, build_footage
from workers.evaluate import load_ground_truth

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
SETS = ("v2", "v3", "tune", "check")
TUNING_SETS = ("v2", "v3", "tune")
"""The sets whose minimum F1 defaults are chosen on."""
MAX_DROP = 0.005
"""A change that lowers one tuning set's F1 by more than this is not adopted, even if it raises others."""
ADDED_IN_V3 = (
    "q_clip04_side_by_side_with_clip13.mp4",
    "q_clip06_top_bottom_with_clip17.mp4",
    "q_clip10_clip14_side_by_side.mp4",
    "q_clip11_mirror_grid_blueborder.mp4",
    "q_clip12_mirror_pillarbox.mp4",
    "q_clip18_greenframe.mp4",
    "q_clip07_3-7_in_long_at61.4.mp4",
)
"""The queries fixture version 3 added; set ``v2`` leaves them out, so a change is checked on both sets
(version 2's queries are built byte for byte as before)."""


@dataclass(frozen=True)
class FixtureSet:
    """One scored set: ``gt`` holds its queries; ``folder`` is the whole ground truth of the built folder it
    comes from (every query of which is embedded), ``cache`` the folder's feature cache."""

    name: str
    gt: dict[str, Any]
    folder: dict[str, Any]
    cache: Path

    @property
    def tuning(self) -> bool:
        return self.name in TUNING_SETS


def parse_sets(text: str) -> tuple[str, ...]:
    """``"v2,v3,tune,check"`` as names, in ``SETS`` order; an unknown name is an error that names it."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SETS))
    if unknown or not names:
        raise ValueError(f"unknown fixture sets {unknown or text!r}; expected some of {', '.join(SETS)}")
    return tuple(name for name in SETS if name in names)


def load_sets(names: Sequence[str], *, fixtures: Path, footage: Path, quick: bool = False,
              clips_dir: Path = CLIPS, footage_dir: Path = FOOTAGE) -> list[FixtureSet]:
    """Build (or reuse) the folders the named sets come from and return the sets in ``SETS`` order."""
    sets = []
    if {"v2", "v3"} & set(names):
        gt_path = build_fixtures(clips_dir, fixtures, quick=quick)
        folder = load_ground_truth(gt_path)
        sets += [FixtureSet(name, query_subset(folder, name), folder, gt_path.parent / "cache")
                 for name in ("v2", "v3") if name in names]
    parts = [name for name in ("tune", "check") if name in names]
    if parts:
        for name, gt_path in build_footage(footage_dir, footage, quick=quick, parts=parts).items():
            folder = load_ground_truth(gt_path)
            sets.append(FixtureSet(name, folder, folder, gt_path.parent / "cache"))
    return sets


def query_subset(gt: dict[str, Any], name: str) -> dict[str, Any]:
    """The ground truth with the queries of one fixture set: ``v3`` all of them, ``v2`` without ``ADDED_IN_V3``."""
    if name not in ("v2", "v3"):
        raise ValueError(f"unknown fixture set {name!r}; expected v2 or v3")
    if name == "v3":
        return gt
    return gt | {"queries": [q for q in gt["queries"] if q["name"] not in ADDED_IN_V3]}


def minimum(f1: Mapping[str, float]) -> tuple[float, str]:
    """(lowest F1, its set) over the tuning sets in ``f1``; (nan, "") when none is there."""
    tuning = [(value, name) for name, value in f1.items() if name in TUNING_SETS]
    return min(tuning, default=(math.nan, ""))


def verdict(candidate: Mapping[str, float], baseline: Mapping[str, float]) -> str:
    """Whether a change from ``baseline`` to ``candidate`` (F1 by set) may be adopted: only if it raises the
    minimum over the tuning sets and lowers none of them by more than ``MAX_DROP``. The check set is
    not consulted."""
    tuning = [name for name in TUNING_SETS if name in candidate and name in baseline]
    drops = {name: baseline[name] - candidate[name] for name in tuning}
    too_low = [f"{name} -{drop:.4f}" for name, drop in drops.items() if drop > MAX_DROP]
    gain = minimum(candidate)[0] - minimum(baseline)[0]
    if too_low:
        return f"no: lowers {', '.join(too_low)}"
    if gain > 0:
        return f"yes: min +{gain:.4f}"
    return "no: min unchanged" if gain == 0 else f"no: min {gain:+.4f}"


def set_table(results: Mapping[str, Mapping[str, float]], sets: Sequence[FixtureSet]) -> list[str]:
    """Markdown rows: each set's segment P/R/F1 and video P/R (``bench.tune.evaluate``'s keys), the minimum
    F1 over the tuning sets, then the check set."""
    lines = ["| set | queries | true pairs | seg P | seg R | seg F1 | video P | video R |",
             "|---|---|---|---|---|---|---|---|"]

    def row(fixture: FixtureSet, label: str) -> str:
        r = results[fixture.name]
        queries = fixture.gt["queries"]
        pairs = sum(len(q["matches"]) for q in queries)
        return (f"| {label} | {len(queries)} | {pairs} | {r['seg_p']:.3f} | {r['seg_r']:.3f} | {r['f1']:.4f} | "
                f"{r['vid_p']:.3f} | {r['vid_r']:.3f} |")

    lines += [row(fixture, fixture.name) for fixture in sets if fixture.tuning]
    low, worst = minimum({name: r["f1"] for name, r in results.items()})
    if worst:
        names = ", ".join(fixture.name for fixture in sets if fixture.tuning)
        lines.append(f"| **min over {names}** | | | | | **{low:.4f}** ({worst}) | | |")
    lines += [row(fixture, f"{fixture.name} (never chosen on)") for fixture in sets if not fixture.tuning]
    return lines
