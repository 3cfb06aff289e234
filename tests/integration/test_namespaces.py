"""Stacks sharing one Redis stay apart: every broker key carries the stack's namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.settings import Settings
from tasks.app import create_app
from tests.conftest import wait_until

pytestmark = pytest.mark.services


def settings_for(namespace: str, redis_url: str, database: str) -> Settings:
    return Settings.model_validate({"broker": {"url": redis_url, "namespace": namespace},
                                    "database": {"url": database}})


def test_a_worker_never_takes_another_namespaces_messages(redis_url: str, fresh_database: str,
                                                          tmp_path: Path) -> None:
    import redis

    from cli.stack import _refuse_foreign_workers, namespace_for

    a, b = namespace_for(tmp_path / "a"), namespace_for(tmp_path / "b")
    assert a != b and a == namespace_for(tmp_path / "a")
    app_a, app_b = (create_app(settings_for(ns, redis_url, fresh_database)) for ns in (a, b))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPYCAT_")}
    env |= {"COPYCAT_HOME": str(tmp_path / "b"), "COPYCAT_BROKER__URL": redis_url, "COPYCAT_BROKER__NAMESPACE": b,
            "COPYCAT_DATABASE__URL": fresh_database}
    log = tmp_path / "worker-b.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tasks.worker", "worker", "-Q", "ops",
                                   "-c", "1", "-n", "b@%h", "-l", "INFO"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    client = redis.Redis.from_url(redis_url)
    try:
        wait_until(lambda: bool(app_b.control.ping(timeout=1.0)), timeout=60, what="worker b answering")
        assert app_a.control.ping(timeout=1.0) == []  # the control channel is namespaced too
        with pytest.raises(RuntimeError, match="workers already consume broker namespace"):
            _refuse_foreign_workers(settings_for(b, redis_url, fresh_database))
        _refuse_foreign_workers(settings_for(a, redis_url, fresh_database))  # a's namespace is free

        app_a.send_task("copycat.ops.recover", queue="ops")
        time.sleep(5)  # b's worker polls its queue every second; a's message must still be waiting
        assert client.llen(f"{a}ops") == 1 and client.llen("ops") == 0
        app_b.send_task("copycat.ops.recover", queue="ops")
        wait_until(lambda: b"copycat.ops.recover" in log.read_bytes() and b"succeeded" in log.read_bytes(),
                   timeout=60, what="worker b running its own namespace's task")
        assert client.llen(f"{a}ops") == 1
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        client.delete(f"{a}ops")
        app_a.close()
        app_b.close()
