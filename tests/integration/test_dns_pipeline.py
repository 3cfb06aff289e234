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
from db import dns as dns_db
from db import jobs, videos
from db.session import session_scope
from service import resources
from tasks import dns
from tests.conftest import use_fresh_resources
from workers.stores.objects import load_matrix

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


def ingest_with_dns(clips_dir: Path, names: list[str]) -> dict[str, str]:
    """Upload + index each clip: with DnS on, one ingest run stores the DnS outputs too; name -> video id."""
    return {name: client.ingest_file(resources.current(), clips_dir / name, name) for name in names}


@pytest.mark.slow
def test_index_stores_coarse_vector_fine_index_and_selector_stat(dns_env: dict[str, str], clips_dir: Path):
    ids = ingest_with_dns(clips_dir, [BIKES, EARTH])
    index = resources.current().video_index
    assert index.collection == f"{dns_env['COPYCAT_MILVUS__COLLECTION_PREFIX']}_dns_cg_student"
    assert index.count() == 2
    stored = index.get(list(ids.values()))
    assert {vid: vec.shape for vid, vec in stored.items()} == {vid: (1024,) for vid in ids.values()}
    for vector in stored.values():
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)

    cfg = resources.current().settings
    with session_scope(resources.current().engine) as session:
        for name, video_id in ids.items():
            video, row = videos.get_video(session, video_id), dns_db.get_video_dns(session, video_id)
            assert video.status == "indexed" and "dns_embed" in video.timings
            assert (row.student, row.fine_dtype, row.fine_bucket) == ("fg_att_student", "float32",
                                                                      cfg.s3.matrices_bucket)
            assert row.frames == video.frame_count == {BIKES: 10, EARTH: 5}[name]
            assert np.isfinite(row.selector_stat)
            fine = load_matrix(resources.current().objects, row.fine_bucket, row.fine_key)
            assert fine.shape == (row.frames, 9, 512) and fine.dtype == np.float32

    # Indexing again (the backfill task) replaces, never duplicates.
    assert dns.index_video_dns.delay("dns", ids[EARTH]).get()["student"] == "fg_att_student"
    assert index.count() == 2

    # A deleted video takes its vector, fine object and row with it.
    with session_scope(resources.current().engine) as session:
        gone = dns_db.get_video_dns(session, ids[EARTH])
        fine_object = (gone.fine_bucket, gone.fine_key)
    with session_scope(resources.current().engine) as session:
        dns.forget_video(resources.current(), session, ids[EARTH])
        videos.delete_video(session, ids[EARTH])
    with session_scope(resources.current().engine) as session:
        assert dns_db.get_video_dns(session, ids[EARTH]) is None
    assert index.count() == 1 and index.get([ids[EARTH]]) == {}
    assert resources.current().objects.stat(*fine_object) is None


@pytest.mark.slow
@pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
def test_query_with_dns_reports_video_similarity(dns_env: dict[str, str], clips_dir: Path):
    """A query job with DnS on: one decode gives frames and DnS frames; matches carry ``video_similarity``."""
    from tasks.query import StoredFrameLibrary, query_dns_key
    from workers.dns.representation import DnsRepresentation
    from workers.query import DnsStage
    from workers.stores.objects import load_arrays
    from workers.types import QueryParams

    ids = ingest_with_dns(clips_dir, [BIKES, EARTH])
    res = resources.current()
    result = client.wait_for_job(res, client.submit_query(res, str(clips_dir / BIKES), res.settings.query_params()))
    assert result["status"] == "done", result["error"]
    assert result["matches"][0]["name"] == BIKES and result["matches"][0]["segments"]
    for match in result["matches"]:
        assert isinstance(match["video_similarity"], float)
    assert {"dns_embed", "dns_search", "dns_select", "dns_fine", "dns_localise"} <= set(result["timings"])

    # A copy the frame search missed is found through DnS and localised like any candidate.
    cfg = res.settings
    with session_scope(res.engine) as session:
        matrix_key = jobs.get_job(session, result["job_id"]).matrix_key
    views = load_matrix(res.objects, cfg.s3.matrices_bucket, matrix_key).astype(np.float32)
    stored = load_arrays(res.objects, cfg.s3.matrices_bucket, query_dns_key(result["job_id"], cfg.dns.student))
    stage = DnsStage(DnsRepresentation(stored["coarse"], stored["fine"], float(stored["selector_stat"])),
                     res.dns_models, dns.StoredDnsLibrary(res), rerank_percentage=0.5)
    library, params = StoredFrameLibrary(res), QueryParams(top_k=2, min_score=0.3)
    timings: dict[str, float] = {}
    found = stage.rerank([], views, fps=1.0, library=library, localiser=res.localiser, params=params,
                         exclude=frozenset(), timings=timings)
    assert ids[BIKES] in {m.video_id for m in found}
    bikes = next(m for m in found if m.video_id == ids[BIKES])
    assert bikes.segments and bikes.video_similarity is not None
    assert timings["dns_localise"] > 0

    # Excluded videos are neither candidates nor added.
    assert stage.rerank([], views, fps=1.0, library=library, localiser=res.localiser, params=params,
                        exclude={ids[BIKES], ids[EARTH]}, timings={}) == []


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
        resources.current().video_index.upsert(rows[name], vector / np.linalg.norm(vector))

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
