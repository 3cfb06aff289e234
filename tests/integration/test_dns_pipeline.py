"""The DnS stage on the real services (PostgreSQL, SeaweedFS S3, Milvus Lite file and server), random weights.

Random weights make every score meaningless, so these tests check what is stored where, with which shape,
and that the query stage runs and reports ``video_similarity``; the numbers themselves are unit-tested.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli import client
from db import signals as signal_rows
from db import videos
from db.session import session_scope
from service import resources
from tasks.backfill import backfill_signal
from tests.conftest import use_fresh_resources
from workers.signals.dns import DnsSignal

pytestmark = pytest.mark.services

BIKES, EARTH = "clip05_bikes.mp4", "clip17_earth.webm"  # 10 s and 5 s


@pytest.fixture
def dns_env(services_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    settings = {"ENABLED": "true", "ALLOW_RANDOM_WEIGHTS": "true", "WEIGHTS_DIR": str(tmp_path / "no-weights"),
                "RERANK_PERCENTAGE": "0.5"}
    for name, value in settings.items():
        monkeypatch.setenv(f"COPYCAT_DNS__{name}", value)
    use_fresh_resources()
    torch.manual_seed(0)
    return services_env


def dns_signal() -> DnsSignal:
    return next(s for s in resources.current().signals if isinstance(s, DnsSignal))


def ingest_with_dns(clips_dir: Path, names: list[str]) -> dict[str, str]:
    """Upload + index each clip: with DnS on, one ingest run stores the DnS outputs too; name -> video id."""
    return {name: client.ingest_file(resources.current(), clips_dir / name, name) for name in names}


@pytest.mark.slow
def test_index_stores_coarse_vector_fine_index_and_selector_stat(dns_env: dict[str, str], clips_dir: Path):
    ids = ingest_with_dns(clips_dir, [BIKES, EARTH])
    res = resources.current()
    index = dns_signal().collection(res.stores)
    assert index.collection == f"{dns_env['COPYCAT_MILVUS__COLLECTION_PREFIX']}_dns_cg_student"
    assert index.count() == 2
    stored = index.get(list(ids.values()))
    assert {vid: vec.shape for vid, vec in stored.items()} == {vid: (1024,) for vid in ids.values()}
    for vector in stored.values():
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)

    with session_scope(res.engine) as session:
        for name, video_id in ids.items():
            video, row = videos.get_video(session, video_id), signal_rows.records_of(session, video_id)["dns"]
            assert video.status == "indexed" and "dns_embed" in video.timings
            assert (row.data["student"], row.data["fine_dtype"]) == ("fg_att_student", "float32")
            assert row.data["frames"] == video.frame_count == {BIKES: 10, EARTH: 5}[name]
            assert np.isfinite(row.data["selector_stat"])
            stored = res.stores.arrays.get_all(row.object_key)
            assert stored["fine"].shape == (row.data["frames"], 9, 512) and stored["fine"].dtype == np.float32
            assert np.array_equal(stored["coarse"], index.get([video_id])[video_id])

    # Indexing again (the backfill task) replaces, never duplicates, and drops the object it replaced.
    with session_scope(res.engine) as session:
        before = signal_rows.records_of(session, ids[EARTH])["dns"].object_key
    assert backfill_signal.delay("dns", ids[EARTH]).get()["dns"] == 1
    assert index.count() == 2
    with session_scope(res.engine) as session:
        fine_object = signal_rows.records_of(session, ids[EARTH])["dns"].object_key
    assert fine_object == before  # same bytes, same key: the object was rewritten in place

    # A deleted video takes its vector, object and row with it.
    from service.video_rows import VideoRows

    assert VideoRows(res).remove(ids[EARTH])
    with session_scope(res.engine) as session:
        assert signal_rows.records_of(session, ids[EARTH]) == {}
    assert index.count() == 1 and index.get([ids[EARTH]]) == {}
    assert res.objects.stat(res.settings.s3.matrices_bucket, fine_object) is None


@pytest.mark.slow
@pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
def test_query_with_dns_reports_video_similarity(dns_env: dict[str, str], clips_dir: Path):
    """A query job with DnS on: one decode gives frames and DnS frames; matches carry ``video_similarity``."""
    from service.references import StoredReferences
    from workers.query import QueryResult, answer_query
    from workers.signals.frames import FrameSignal
    from workers.types import Match, QueryParams

    ids = ingest_with_dns(clips_dir, [BIKES, EARTH])
    res = resources.current()
    result = client.wait_for_job(res, client.submit_query(res, str(clips_dir / BIKES), res.settings.query_params()))
    assert result["status"] == "done", result["error"]
    assert result["matches"][0]["name"] == BIKES and result["matches"][0]["segments"]
    for match in result["matches"]:
        assert isinstance(match["video_similarity"], float)
    assert {"dns_embed", "dns_search", "dns_select", "dns_fine", "dns_localise"} <= set(result["timings"])

    # A copy the frame search missed is found through DnS and localised like any candidate: a frame signal
    # that matches nothing by itself still localises what DnS proposes.
    class Blind(FrameSignal):
        def match(self, *args: object, **kwargs: object) -> list[Match]:
            return []

    frames = res.signals[0]
    blind = Blind(frames.embedder, frames.localiser, fps=frames.fps)
    evidence = {"frames": frames.load_query(res.stores, result["job_id"]),
                "dns": dns_signal().load_query(res.stores, result["job_id"])}
    params = QueryParams(top_k=2, min_score=0.3)

    def ask(exclude: set[str]) -> QueryResult:
        return answer_query(evidence, [blind, dns_signal()], stores=res.stores, references=StoredReferences(res),
                            params=params, exclude=exclude)

    found = ask(set())
    assert ids[BIKES] in {m.video_id for m in found.matches}
    bikes = next(m for m in found.matches if m.video_id == ids[BIKES])
    assert bikes.segments and bikes.video_similarity is not None and bikes.signals == ["video"]
    assert found.timings["dns_localise"] > 0

    # Excluded videos are neither candidates nor added.
    assert ask({ids[BIKES], ids[EARTH]}).matches == []


@pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
def test_dedup_groups_near_duplicate_videos(dns_env: dict[str, str]):
    """Hand-made coarse vectors: two copies of one video and one of another; a fourth stands alone."""
    from cli.dns_commands import dedup

    names = ["flower.mp4", "flower_reupload.mp4", "earth.mp4", "earth_cropped.mp4", "bikes.mp4"]
    rows = {}
    with session_scope(resources.current().engine) as session:
        for name in names:
            rows[name] = videos.register_upload(session, "uploads", name, size=1, etag=name)[0].id
    basis = np.eye(1024, dtype=np.float32)
    vectors = {"flower.mp4": basis[0], "flower_reupload.mp4": 0.99 * basis[0] + 0.141 * basis[1],
               "earth.mp4": basis[2], "earth_cropped.mp4": 0.95 * basis[2] + 0.312 * basis[3],
               "bikes.mp4": basis[4]}
    for name, vector in vectors.items():
        dns_signal().collection(resources.current().stores).upsert(rows[name], vector / np.linalg.norm(vector))

    result = CliRunner().invoke(dedup, ["--json", "--threshold", "0.9"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["videos"] == 5 and data["threshold"] == 0.9
    groups = [sorted(v["name"] for v in g["videos"]) for g in data["groups"]]
    assert sorted(groups) == [["earth.mp4", "earth_cropped.mp4"], ["flower.mp4", "flower_reupload.mp4"]]

    # The default threshold (0.8) comes from the settings; the text output names the videos.
    text = CliRunner().invoke(dedup, []).output
    assert "2 group(s) of near-duplicates among 5 videos" in text and "flower_reupload.mp4" in text
    assert "bikes.mp4" not in text
    strict = json.loads(CliRunner().invoke(dedup, ["--json", "--threshold", "0.98"]).output)
    assert [[v["name"] for v in g["videos"]] for g in strict["groups"]] in (
        [["flower.mp4", "flower_reupload.mp4"]], [["flower_reupload.mp4", "flower.mp4"]])
