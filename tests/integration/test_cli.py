"""The command line in embedded mode (SQLite, Milvus Lite file, local objects, tasks in-process)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_ingest_list_query_result_jobs(copycat_env: Path, clips_dir: Path, broken_dir: Path) -> None:
    code, out = run("ingest", str(clips_dir / "clip04_cockatoo.mp4"), str(clips_dir / "clip12_armwrestle.mp4"),
                    str(broken_dir / "broken02_clip05_bikes_TRUNCATED_half.mp4"))
    assert code == 1  # one input failed: scripts can tell
    assert "indexed" in out and "truncated" in out

    code, out = run("videos", "--json")
    listed = {v["name"]: v for v in json.loads(out)}
    assert listed["clip04_cockatoo.mp4"]["status"] == "indexed" and listed["clip04_cockatoo.mp4"]["frames"] == 14
    assert listed["broken02_clip05_bikes_TRUNCATED_half.mp4"]["error"].startswith("truncated: ")
    assert (copycat_env / "copycat.db").exists() and (copycat_env / "milvus.db").exists()

    code, out = run("query", str(clips_dir / "clip12_armwrestle.mp4"), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "done" and result["error"] is None
    assert [m["name"] for m in result["matches"]] == ["clip12_armwrestle.mp4"]
    [segment] = result["matches"][0]["segments"]
    assert segment == {"query_start": 0.0, "query_end": 10.0, "ref_start": 0.0, "ref_end": 10.0,
                       "score": segment["score"], "signals": ["video"]}

    code, out = run("result", result["job_id"])
    assert code == 0 and "00:00:00-00:00:10  ~  00:00:00-00:00:10" in out and "video" in out

    code, out = run("query", str(clips_dir / "clip15_grampa.flv"))
    assert code == 0 and "no copied footage found" in out

    code, out = run("jobs", "--json")
    assert [j["status"] for j in json.loads(out)] == ["done", "done"]

    code, out = run("query", str(broken_dir / "broken01_decord_corrupted.mp4"), "--json")
    failed = json.loads(out)
    assert code == 1 and failed["status"] == "failed" and failed["error"].startswith("corrupt: ")
    assert failed["matches"] == []


def test_status_and_config(copycat_env: Path) -> None:
    code, out = run("status", "--json")
    assert code == 0 and json.loads(out)["mode"] == "embedded"
    code, out = run("config")
    assert "COPYCAT_EMBED__MODEL" in out and "sscd_distilled" in out
