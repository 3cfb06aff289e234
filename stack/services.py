"""Local service processes started without Docker: SeaweedFS S3, the Milvus Lite server and Milvus standalone.

Used by ``copycat up`` and by the integration tests, so both run the real servers the same way.
Each server is bound to loopback (Milvus standalone, which cannot be, is shut in a network namespace of its
own, see ``stack/netns.py``), writes under its own data folder and is stopped with its process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port(with_grpc: bool = False) -> int:
    """A free loopback port; with ``with_grpc`` also ``port + 10000`` (SeaweedFS's gRPC convention)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 45000)
        if not _bindable(port) or (with_grpc and not _bindable(port + 10000)):
            continue
        return port
    raise RuntimeError("no free port pair found on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def venv_binary(name: str) -> str:
    """A console script installed next to this interpreter (the venv's bin/), else on PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH")
    return found


@dataclass
class ManagedProcess:
    """A child process in its own process group, with its output in a log file."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    process: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=self.env, start_new_session=True)
        log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self) -> None:
        """Ask the whole group to stop (``stop_signal``), without waiting."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, self.stop_signal)

    def kill_group(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self, timeout: float = 15.0) -> None:
        """Signal the whole group, wait for the leader, then kill whatever of the group is left (also when
        the leader had already died: a Celery worker's pool children outlive a killed main process)."""
        if self.process is None:
            return
        self.signal_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        self.kill_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_for_port(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if port_open("127.0.0.1", port):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not listen on port {port} within {timeout:.0f} s:\n{self.log_tail()}")


def seaweed_s3(data_dir: Path, *, port: int, access_key: str, secret_key: str, max_volumes: int = 0) -> ManagedProcess:
    """SeaweedFS ``weed mini`` (master, volume, filer, S3) on loopback, S3 on ``port``, telemetry off.

    Every other listener gets a free port, so several instances (tests, a dev stack) can coexist. Each
    bucket takes a volume of its own (256 MB at most, written sparsely); ``max_volumes`` 0 lets SeaweedFS
    allow free disk / 256 MB of them, and PUTs to a new bucket beyond that are answered 500.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "copycat",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}))
    ports = {flag: free_port(with_grpc=True) for flag in ("master.port", "volume.port", "filer.port", "admin.port")}
    args = [venv_binary("weed"), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config}", f"-s3.port={port}", "-master.volumeSizeLimitMB=256", f"-volume.max={max_volumes}",
            *(f"-{flag}={value}" for flag, value in ports.items())]
    return ManagedProcess("seaweedfs", args, data_dir / "weed.log")


def milvus_lite_server(data_dir: Path, *, port: int) -> ManagedProcess:
    """The Milvus Lite gRPC server, so several worker processes can share one Milvus Lite data folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [venv_binary("milvus-lite"), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
            "--port", str(port)]
    return ManagedProcess("milvus-lite", args, data_dir / "milvus-lite.log")


MILVUS_SERVER_CONFIG: dict[str, int] = {"dataCoord.segment.maxSize": 4096}
"""Production's milvus.yaml overrides (``docker/milvus.yaml``), given to every server started here: fewer,
larger segments, so a search visits fewer graphs (docs/performance.md, "Milvus server")."""

MILVUS_STANDALONE_PORT = 19530  # the proxy's port inside the server's own network namespace


def private_network_works() -> bool:
    """Whether this process may start a server in a private network namespace (root or user namespaces)."""
    check = [sys.executable, str(Path(__file__).with_name("netns.py")), "--host-port", "0", "--port", "1", "--", "true"]
    return subprocess.run(check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def milvus_standalone(data_dir: Path, *, port: int, config: dict[str, int] | None = None) -> ManagedProcess:
    """Milvus standalone 2.3 (PyPI ``milvus``: embedded etcd, local storage), served on 127.0.0.1:``port``.

    It binds its gRPC and metrics ports on every interface and etcd on fixed ports, with no option to change
    that, so it runs in a private network namespace (``stack/netns.py``) that only its own loopback reaches;
    the proxy is forwarded to ``port`` on host loopback. Ready in ~30-40 s; SIGINT stops it in ~2 s.
    It runs with production's ``MILVUS_SERVER_CONFIG``; ``config`` overrides further milvus.yaml keys (dotted,
    e.g. ``dataCoord.segment.maxSize``) for benchmarks.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    overrides = [arg for key, value in {**MILVUS_SERVER_CONFIG, **(config or {})}.items()
                 for arg in ("--extra-config", f"{key}={value}")]
    args = [sys.executable, str(Path(__file__).with_name("netns.py")), "--host-port", str(port),
            "--port", str(MILVUS_STANDALONE_PORT), "--", venv_binary("milvus-server"), "--data", str(data_dir),
            "--proxy-port", str(MILVUS_STANDALONE_PORT), *overrides]
    return ManagedProcess("milvus-standalone", args, data_dir / "milvus-server.log", stop_signal=signal.SIGINT)


def wait_for_milvus(server: ManagedProcess, uri: str, timeout: float = 180.0) -> str:
    """Poll ``uri`` until Milvus answers its version (the port opens long before); returns the version."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            client = MilvusClient(uri, timeout=5)
        except MilvusException:
            time.sleep(1.0)
            continue
        try:
            return str(client.get_server_version())
        finally:
            client.close()
    raise TimeoutError(f"{server.name} did not answer at {uri} within {timeout:.0f} s:\n{server.log_tail()}")


def private_redis(data_dir: Path, *, port: int) -> ManagedProcess:
    """A Redis of its own on loopback with an append-only file, as production runs it (docker/compose.yaml):
    queued messages survive its restart. For the fault suite, which restarts it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port", str(port),
            "--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    return ManagedProcess("redis", args, data_dir / "redis.log")


POSTGRES_USER = "postgres"


def private_postgres(data_dir: Path, *, port: int) -> ManagedProcess:
    """A PostgreSQL cluster of its own (Debian's binaries), on loopback with trust auth, so the fault suite
    can restart it without touching the machine's server. Initialised on first use; as root the server runs
    as the ``postgres`` user, as PostgreSQL requires, so ``data_dir`` must be reachable by that user (e.g. a
    fresh folder under /tmp)."""
    bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
    as_user = ["runuser", "-u", POSTGRES_USER, "--"] if os.geteuid() == 0 else []
    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        if as_user:
            shutil.chown(data_dir, POSTGRES_USER)
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", POSTGRES_USER],
                       check=True, capture_output=True)
    args = [*as_user, str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(port), "-k", str(data_dir),
            "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"]
    return ManagedProcess("postgres", args, data_dir / "postgres.log", stop_signal=signal.SIGINT)
