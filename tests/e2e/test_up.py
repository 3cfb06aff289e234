"""`copycat up`: the whole system from one command, without Docker, and Ctrl-C stops all of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.services import free_port, port_open
from tests.conftest import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_up_starts_everything_indexes_an_upload_and_stops(fresh_database: str, redis_url: str, clips_dir: Path,
                                                           tmp_path: Path) -> None:
    from workers.stores.objects import S3ObjectStore

    pg_url = fresh_database
    s3_port, milvus_port, flower_port = free_port(with_grpc=True), free_port(), free_port()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPYCAT_")}
    env.update({"COPYCAT_HOME": str(home), "COPYCAT_DATABASE__URL": pg_url,
                "COPYCAT_BROKER__URL": redis_url.rsplit("/", 1)[0] + "/11",
                "COPYCAT_STACK__S3_PORT": str(s3_port), "COPYCAT_STACK__MILVUS_PORT": str(milvus_port),
                "COPYCAT_FLOWER__PORT": str(flower_port), "COPYCAT_WATCH__POLL_INTERVAL_S": "1"})
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen([sys.executable, "-m", "cli.main", "up"], env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "press Ctrl-C" in log.read_text() or up.poll() is not None, timeout=240,
                   what="stack started")
        assert up.poll() is None, log.read_text()
        printed = log.read_text()
        assert f"127.0.0.1:{s3_port}" in printed and f"127.0.0.1:{milvus_port}" in printed
        assert f"http://127.0.0.1:{flower_port}" in printed
        access, secret = (home / "seaweedfs" / "credentials").read_text().split()
        store = S3ObjectStore(f"127.0.0.1:{s3_port}", access, secret)
        wait_until(lambda: _bucket_ready(store, "copycat-uploads"), timeout=60, what="S3 answering")
        store.put_file("copycat-uploads", "clip05_bikes.mp4", clips_dir / "clip05_bikes.mp4")

        def copycat(*args: str) -> dict | list:
            done = subprocess.run([sys.executable, "-m", "cli.main", *args, "--json"], env=env,
                                  capture_output=True, text=True, timeout=60, check=True)
            return json.loads(done.stdout)

        wait_until(lambda: [v["status"] for v in copycat("videos")] == ["indexed"], timeout=180,
                   what="upload indexed by the stack")
        status = copycat("status")
        assert status["mode"] == "queue" and status["videos"] == {"indexed": 1}
        assert {q for queues in status["workers"].values() for q in queues} == {"embed", "index", "query", "ops"}
        assert port_open("127.0.0.1", flower_port)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(90)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    time.sleep(1)
    for port in (s3_port, milvus_port, flower_port):
        assert not port_open("127.0.0.1", port), f"port {port} still open after Ctrl-C"
    leftovers = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes left behind: {leftovers}"


def _bucket_ready(store, bucket: str) -> bool:  # noqa: ANN001
    from workers.errors import CopycatError

    try:
        store.ensure_bucket(bucket)
    except CopycatError:
        return False
    return True
