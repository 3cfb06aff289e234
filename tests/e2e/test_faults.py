"""The fault suite (``bench/faults.py``) in a bounded form: a small batch on real PostgreSQL, Redis,
SeaweedFS and the Milvus standalone server, with every kind of fault, and nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import SuiteConfig, print_report, run_suite
from stack.services import private_network_works, venv_binary
from tests.conftest import require

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_a_batch_survives_kills_restarts_replayed_events_and_poison(clips_dir: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        venv_binary("milvus-server")
    except FileNotFoundError:
        require(False, "milvus-server (PyPI package milvus, dev extra)")
    require(private_network_works(), "a private network namespace for Milvus standalone")
    config = SuiteConfig(uploads=12, long_s=60, deletes=3, lease_s=15, recover_interval_s=5, milvus="standalone",
                         drain_timeout_s=900)
    report = run_suite(config, tmp_path, clips_dir)
    print_report(report)
    assert report.lost == [] and report.unexpected_failures == []
    assert report.duplicate_vectors == 0 and report.vector_mismatches == 0 and report.fsck == {}
    assert report.failed_without_reason == 0
    assert report.failed == {"empty_file": 1, "not_a_video": 2, "truncated": 1}  # the four broken files
    assert report.indexed == config.uploads - config.deletes + 2  # the batch kept, and both long videos
    assert all(seconds is not None for seconds in report.recoveries.values()), report.recoveries
    assert report.restarts_seen >= 4  # embed twice, watcher, index: each restarted by `up`
