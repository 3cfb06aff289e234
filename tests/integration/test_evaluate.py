"""``copycat evaluate`` through the embedded product: references are told apart by id, not by file name."""

from __future__ import annotations

import json
from pathlib import Path

from cli.evaluate import run_evaluation
from service import resources


def test_references_with_one_file_name_in_two_folders(copycat_env: Path, clips_dir: Path, tmp_path: Path) -> None:
    """``a/x.mp4`` and ``b/x.mp4`` are both ``x.mp4`` to a match; the copy of ``b/x.mp4`` is scored against it."""
    copy = clips_dir / "clip19_pillow.mp4"  # 7 s
    gt = {
        "references": [{"name": "a/x.mp4", "path": str(clips_dir / "clip05_bikes.mp4")},
                       {"name": "b/x.mp4", "path": str(copy)}],
        "queries": [{"name": "q/x.mp4", "path": str(copy), "transform": "identity",
                     "matches": [{"reference": "b/x.mp4", "segments": [[0, 0, 7, 7]]}]}],
    }
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    report = run_evaluation(resources.current(), gt_path, resources.current().settings.query_params())
    assert report.video == {"precision": 1.0, "recall": 1.0}
    assert report.segment["recall"] > 0.7, report.segment
    assert [m["name"] for m in report.queries[0]["matches"]] == ["x.mp4"]
