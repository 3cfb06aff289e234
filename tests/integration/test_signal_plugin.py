"""A signal plugs in as one module plus one registry line (``tests/signals/colour.py``): ingest indexes it,
a query searches and localises with it and fuses its segments with the frame descriptors', fsck checks it
and removal cleans it up, with no other module changed. On the real services (one Milvus backend: what is
checked is the signal interface, not the vector store)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import client
from cli.main import cli
from db import signals as signal_rows
from db.session import session_scope
from service import resources
from service.video_rows import VideoRows
from tests.conftest import use_fresh_resources
from workers.signals import registry

pytestmark = [pytest.mark.services, pytest.mark.slow]

REFERENCE, OTHER = "clip05_bikes.mp4", "clip17_earth.webm"


@pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
def test_a_test_only_signal_indexes_searches_localises_and_is_cleaned_up(
        services_env: dict[str, str], clips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.SIGNALS, "colour", "tests.signals.colour:ColourSignal")  # the one registry line
    use_fresh_resources()
    res = resources.current()
    assert [s.name for s in res.signals] == ["frames", "colour"]
    colour = res.signals[1]

    ids = {name: client.ingest_file(res, clips_dir / name, name) for name in (REFERENCE, OTHER)}
    with session_scope(res.engine) as s:
        rows = {name: signal_rows.records_of(s, vid) for name, vid in ids.items()}
    assert {name: set(r) for name, r in rows.items()} == {REFERENCE: {"colour"}, OTHER: {"colour"}}
    assert colour.indexed_videos(res.stores)[ids[REFERENCE]] > 0

    query = tmp_path / "cut.mp4"  # seconds 2-8 of the reference, re-encoded
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "2", "-i", str(clips_dir / REFERENCE), "-t", "6", "-an",
                    "-c:v", "libx264", "-preset", "veryfast", str(query)], check=True)
    result = client.wait_for_job(res, client.submit_query(res, str(query), res.settings.query_params()))
    assert result["status"] == "done", result["error"]
    best = result["matches"][0]
    assert best["name"] == REFERENCE and "colour" in best["signals"] and "video" in best["signals"]
    both = [s for s in best["segments"] if s["signals"] == ["colour", "video"]]
    assert both and abs((both[0]["ref_start"] - both[0]["query_start"]) - 2.0) <= 1.0
    assert "colour_embed" in result["timings"]

    done = CliRunner().invoke(cli, ["fsck", "--json"])
    assert done.exit_code == 0 and json.loads(done.output)["consistent"], done.output
    colour.forget(res.stores, ids[OTHER])  # damage only fsck can see
    report = json.loads(CliRunner().invoke(cli, ["fsck", "--json"]).output)
    assert report["items"]["missing_signal_vectors"] == [f"colour:{ids[OTHER]}"]

    key = rows[REFERENCE]["colour"].object_key
    assert VideoRows(res).remove(ids[REFERENCE])
    assert ids[REFERENCE] not in colour.indexed_videos(res.stores)
    assert res.objects.stat(res.settings.s3.matrices_bucket, key) is None
