"""`copycat up`: the whole system from one command, without Docker; supervised, and nothing left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.services import free_port, port_open
from tests.conftest import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]


@dataclass
class Stack:
    process: subprocess.Popen
    home: Path
    log: Path
    env: dict[str, str]
    ports: tuple[int, ...]

    def printed(self) -> str:
        return self.log.read_text()

    def pid_of(self, name: str) -> int:
        return int(re.search(rf"^{name}\s+pid (\d+)", self.printed(), re.M).group(1))

    def copycat(self, *args: str, only_home: bool = False) -> subprocess.CompletedProcess:
        """Run a command as a person in a second terminal would: with ``only_home``, nothing but COPYCAT_HOME."""
        env = self.env
        if only_home:
            env = {k: v for k, v in self.env.items() if not k.startswith("COPYCAT_")} | {"COPYCAT_HOME": str(self.home)}
        return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
                              timeout=300)

    def json(self, *args: str, only_home: bool = False) -> dict | list:
        done = self.copycat(*args, "--json", only_home=only_home)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@contextmanager
def running_stack(tmp_path: Path, pg_url: str, broker: str, name: str = "home") -> Iterator[Stack]:
    s3_port, milvus_port, flower_port, api_port = free_port(with_grpc=True), free_port(), free_port(), free_port()
    home = tmp_path / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPYCAT_")}
    env.update({"COPYCAT_HOME": str(home), "COPYCAT_DATABASE__URL": pg_url, "COPYCAT_BROKER__URL": broker,
                "COPYCAT_STACK__S3_PORT": str(s3_port), "COPYCAT_STACK__MILVUS_PORT": str(milvus_port),
                "COPYCAT_FLOWER__PORT": str(flower_port), "COPYCAT_API__PORT": str(api_port),
                "COPYCAT_WATCH__POLL_INTERVAL_S": "1",
                "COPYCAT_STACK__STOP_GRACE_S": "5"})
    log = tmp_path / f"{name}-up.log"
    with log.open("w") as out:
        up = subprocess.Popen([sys.executable, "-m", "cli.main", "up"], env=env, stdout=out, stderr=subprocess.STDOUT)
    stack = Stack(up, home, log, env, (s3_port, milvus_port, flower_port, api_port))
    try:
        wait_until(lambda: "press Ctrl-C" in log.read_text() or up.poll() is not None, timeout=300,
                   what="stack ready")
        assert up.poll() is None, log.read_text()
        yield stack
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(90)
            except subprocess.TimeoutExpired:
                up.kill()
                raise


def processes_of(home: Path) -> list[int]:
    """Every live process started for the stack of ``home`` (they all carry its COPYCAT_HOME)."""
    needle = f"COPYCAT_HOME={home}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry.name))
    return found


def assert_nothing_left(stack: Stack) -> None:
    wait_until(lambda: not processes_of(stack.home), timeout=30, what="every stack process gone")
    for port in stack.ports:
        assert not port_open("127.0.0.1", port), f"port {port} still open after the stack stopped"


def test_up_serves_the_home_restarts_a_killed_worker_and_stops_on_two_signals(
        fresh_database: str, redis_url: str, clips_dir: Path, tmp_path: Path) -> None:
    from workers.stores.objects import S3ObjectStore

    broker = redis_url.rsplit("/", 1)[0] + "/11"
    with running_stack(tmp_path, fresh_database, broker) as stack:
        printed = stack.printed()
        s3_port, milvus_port, flower_port, api_port = stack.ports
        assert f"127.0.0.1:{s3_port}" in printed and f"127.0.0.1:{milvus_port}" in printed
        assert f"http://127.0.0.1:{flower_port}" in printed and f"http://127.0.0.1:{api_port}" in printed
        access, secret = (stack.home / "seaweedfs" / "credentials").read_text().split()
        assert f"access key  {access}" in printed and f"secret key  {secret}" in printed
        assert f"aws --endpoint-url http://127.0.0.1:{s3_port} s3 cp video.mp4 s3://copycat-uploads/" in printed
        # "ready" means ready: the bucket takes an upload at once.
        store = S3ObjectStore(f"127.0.0.1:{s3_port}", access, secret)
        store.put_file("copycat-uploads", "clip05_bikes.mp4", clips_dir / "clip05_bikes.mp4")

        # A second terminal with nothing but COPYCAT_HOME uses the stack, not an empty embedded index.
        wait_until(lambda: [v["status"] for v in stack.json("videos", only_home=True)] == ["indexed"],
                   timeout=180, what="upload indexed by the stack")
        answer = stack.json("query", str(clips_dir / "clip05_bikes.mp4"), only_home=True)
        assert [m["name"] for m in answer["matches"]] == ["clip05_bikes.mp4"]
        status = stack.json("status", only_home=True)
        assert status["mode"] == "queue" and status["videos"] == {"indexed": 1}
        assert {q for queues in status["workers"].values() for q in queues} == {"embed", "index", "query", "ops"}

        # kill -9 of a worker's main process: the supervisor says so and restarts it; the stack goes on.
        os.kill(stack.pid_of("worker-embed"), signal.SIGKILL)
        wait_until(lambda: "worker-embed restarted" in stack.printed(), timeout=60, what="embed worker restarted")
        assert "worker-embed exited (killed by SIGKILL)" in stack.printed()
        store.put_file("copycat-uploads", "clip02_airfield.mp4", clips_dir / "clip02_airfield.mp4")
        wait_until(lambda: sorted(v["status"] for v in stack.json("videos")) == ["indexed", "indexed"],
                   timeout=180, what="second upload indexed by the restarted worker")
        assert stack.process.poll() is None

        # SIGINT, then SIGTERM 2 s later (an impatient supervisor): everything still goes.
        stack.process.send_signal(signal.SIGINT)
        time.sleep(2)
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGTERM)
        stack.process.wait(60)
    assert_nothing_left(stack)
    refused = stack.copycat("videos", only_home=True)
    assert refused.returncode != 0 and "not running" in refused.stderr and "copycat up" in refused.stderr


def test_one_stack_per_home_and_up_killed_with_sigkill_leaves_nothing(
        fresh_database: str, redis_url: str, tmp_path: Path) -> None:
    broker = redis_url.rsplit("/", 1)[0] + "/11"
    with running_stack(tmp_path, fresh_database, broker) as stack:
        again = stack.copycat("up")
        assert again.returncode != 0 and "a stack already runs" in again.stderr
        values = (stack.home / "stack.env").read_text()
        assert "COPYCAT_BROKER__NAMESPACE='copycat-" in values
        assert oct((stack.home / "stack.env").stat().st_mode & 0o777) == "0o600"
        stack.process.kill()
        stack.process.wait(10)
    assert_nothing_left(stack)
