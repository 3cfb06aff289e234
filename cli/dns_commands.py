"""``copycat weights`` and ``copycat dedup``: the DnS weight files, and near-duplicate videos in the library.

Both are plain click commands; ``cli/main.py`` registers them with ``cli.add_command(weights)`` and
``cli.add_command(dedup)``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cli.output import table


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Weights folder (default: COPYCAT_DNS__WEIGHTS_DIR, else $COPYCAT_HOME/weights).")
@click.option("--download", is_flag=True, help="Fetch the missing files from their official URLs.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per download request.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def weights(folder: Path | None, download: bool, timeout: float, as_json: bool) -> None:
    """Which DnS weight files are present, which are missing, and where to get them."""
    from service import resources
    from workers.dns.files import download_weights, weights_status
    from workers.dns.representation import required_files
    from workers.signals.dns import weights_folder

    cfg = resources.current().settings
    folder = folder or weights_folder(cfg)
    needed = {f.name for f in required_files(cfg.dns.student)}
    results = {}
    if download:
        missing = [s.file for s in weights_status(folder) if not s.present]
        results = {r.file.name: r for r in download_weights(folder, missing, timeout=timeout)}
    rows = []
    for status in weights_status(folder):
        outcome = results.get(status.file.name)
        state = outcome.outcome if outcome and outcome.outcome != "present" else (
            "present" if status.present else "missing")
        rows.append({"file": status.file.name, "status": state, "needed": status.file.name in needed,
                     "used_by": list(status.file.used_by), "path": str(status.path), "url": status.file.url,
                     "error": outcome.error if outcome else None})
    missing_needed = [r["file"] for r in rows if r["needed"] and r["status"] not in {"present", "downloaded"}]
    failed = [r for r in rows if r["status"] == "failed"]
    if as_json:
        click.echo(json.dumps({"folder": str(folder), "student": cfg.dns.student, "files": rows,
                               "ready": not missing_needed}, indent=2))
    else:
        click.echo(f"DnS weights in {folder} (student {cfg.dns.student}; * = needed by it)")
        click.echo(table([(r["file"] + (" *" if r["needed"] else ""), r["status"], r["url"]) for r in rows],
                         ["file", "status", "url"]))
        for row in failed:
            click.echo(f"download failed: {row['file']}: {row['error']}", err=True)
        if missing_needed:
            click.echo(f"\nmissing {len(missing_needed)} needed file(s): {', '.join(missing_needed)}. "
                       f"Download each URL above to {folder}/<file>, or run `copycat weights --download`.")
        else:
            click.echo("\nall files DnS needs are present")
    if failed or (download and missing_needed):
        sys.exit(1)


@click.command()
@click.option("--threshold", type=float, default=None,
              help="Coarse similarity at or above which two videos are duplicates "
              "(default: COPYCAT_DNS__DEDUP_THRESHOLD).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dedup(threshold: float | None, as_json: bool) -> None:
    """Groups of near-duplicate videos in the library, from DnS coarse vectors."""
    from db import videos
    from service import resources
    from workers.dns.dedup import duplicate_groups

    res = resources.current()  # the command line's edge
    cfg = res.settings
    threshold = cfg.dns.dedup_threshold if threshold is None else threshold
    index = res.signal("dns").collection(res.stores)
    ids, vectors = index.all() if index.exists() else ([], None)
    groups = duplicate_groups(ids, vectors, threshold) if ids else []
    with res.session() as s:
        names = {vid: v.name for vid, v in videos.videos_by_ids(s, [v for g in groups for v in g.video_ids]).items()}
    data: dict[str, Any] = {
        "threshold": threshold, "videos": len(ids),
        "groups": [{"videos": [{"video_id": vid, "name": names.get(vid, "")} for vid in g.video_ids],
                    "min_similarity": round(g.min_similarity, 4), "max_similarity": round(g.max_similarity, 4)}
                   for g in groups],
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if not ids:
        click.echo("no DnS video vectors yet: enable DnS (COPYCAT_DNS__ENABLED=true) and ingest videos")
        return
    click.echo(f"{len(groups)} group(s) of near-duplicates among {len(ids)} videos (coarse similarity >= "
               f"{threshold})")
    for number, group in enumerate(data["groups"], start=1):
        click.echo(f"\ngroup {number}: {len(group['videos'])} videos, similarity "
                   f"{group['min_similarity']:.3f}-{group['max_similarity']:.3f}")
        for video in group["videos"]:
            click.echo(f"  {video['name'] or '(deleted)'}  ({video['video_id']})")
