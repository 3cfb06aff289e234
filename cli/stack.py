"""``copycat up`` and ``copycat status``: the whole system on one machine without Docker, and its state.

``up`` starts what is not already running: SeaweedFS S3 (when no S3 endpoint is configured), the Milvus
Lite server (when no Milvus server URI is configured), one Celery worker per queue, beat, the watcher and
Flower. Redis and the database are used at their configured URLs (Redis defaults to 127.0.0.1:6379).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from tasks.app import QUEUES
from tasks.services import ManagedProcess, milvus_lite_server, port_open, seaweed_s3
from tasks.settings import Settings

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def stack_environment(cfg: Settings) -> tuple[dict[str, str], list[tuple[ManagedProcess, int]]]:
    """Environment for the stack's processes, and the servers to start first (with their ports)."""
    env = dict(os.environ)
    env["COPYCAT_HOME"] = str(cfg.home.resolve())
    env["COPYCAT_BROKER__URL"] = cfg.broker.url or DEFAULT_BROKER
    env["COPYCAT_DATABASE__URL"] = cfg.database_url
    servers: list[tuple[ManagedProcess, int]] = []
    s3_port, milvus_port = cfg.stack.s3_port, cfg.stack.milvus_port
    if not cfg.s3.endpoint:
        keys = _local_s3_keys(cfg.home)
        servers.append((seaweed_s3(cfg.home / "seaweedfs", port=s3_port, access_key=keys[0], secret_key=keys[1]),
                        s3_port))
        env.update({"COPYCAT_S3__ENDPOINT": f"127.0.0.1:{s3_port}", "COPYCAT_S3__ACCESS_KEY": keys[0],
                    "COPYCAT_S3__SECRET_KEY": keys[1]})
    if "://" not in cfg.milvus_uri:
        servers.append((milvus_lite_server(cfg.home / "milvus-server", port=milvus_port), milvus_port))
        env["COPYCAT_MILVUS__URI"] = f"http://127.0.0.1:{milvus_port}"
    return env, servers


def stack_processes(cfg: Settings, env: dict[str, str]) -> list[ManagedProcess]:
    """Workers per queue, beat, watcher and Flower."""
    logs = cfg.home / "logs"
    celery = [sys.executable, "-m", "celery", "-A", "tasks.worker"]
    processes = [
        ManagedProcess(f"worker-{queue}", [*celery, "worker", "-Q", queue, "-n", f"{queue}@%h", "-c",
                                           "1" if queue == "embed" else "2", "-l", cfg.log_level],
                       logs / f"worker-{queue}.log", env)
        for queue in QUEUES
    ]
    processes.append(ManagedProcess("beat", [*celery, "beat", "-l", cfg.log_level, "-s",
                                             str(cfg.home / "celerybeat-schedule")], logs / "beat.log", env))
    copycat = [sys.executable, "-m", "cli.main"]
    processes.append(ManagedProcess("watcher", [*copycat, "-v", "watch"], logs / "watcher.log", env))
    processes.append(ManagedProcess("flower", [*copycat, "flower"], logs / "flower.log", env))
    return processes


def _local_s3_keys(home: Path) -> tuple[str, str]:
    """Credentials of the local SeaweedFS, made once and kept under the data directory."""
    path = home / "seaweedfs" / "credentials"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"copycat\n{secrets.token_urlsafe(24)}\n")
        path.chmod(0o600)
    access, secret = path.read_text().split()
    return access, secret


def run_stack(cfg: Settings, echo: Any) -> None:
    """Start everything, print where it listens, stop it all on Ctrl-C (or when a process dies)."""
    env, servers = stack_environment(cfg)
    broker = env["COPYCAT_BROKER__URL"]
    if broker.startswith("redis://") and not port_open(*_host_port(broker, 6379)):
        raise RuntimeError(f"Redis is not reachable at {broker}; start it or set COPYCAT_BROKER__URL")
    started: list[ManagedProcess] = []
    try:
        for server, port in servers:
            if port_open("127.0.0.1", port):
                raise RuntimeError(f"port {port} is taken; is another stack running? ({server.name})")
            server.start()
            started.append(server)
            server.wait_for_port(port, timeout=120)
            echo(f"{server.name:12s} 127.0.0.1:{port}  (log {server.log_path})")
        from db.migrate import upgrade
        from db.session import create_db_engine

        engine = create_db_engine(env["COPYCAT_DATABASE__URL"])
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        for process in stack_processes(cfg, env):
            process.start()
            started.append(process)
            echo(f"{process.name:12s} pid {process.process.pid}  (log {process.log_path})")
        echo(f"flower       http://{cfg.flower.address}:{cfg.flower.port}")
        echo(f"database     {_redact(env['COPYCAT_DATABASE__URL'])}")
        echo(f"broker       {_redact(broker)}")
        echo(f"uploads      s3://{cfg.s3.uploads_bucket} at {env.get('COPYCAT_S3__ENDPOINT') or cfg.objects_dir}")
        echo("press Ctrl-C to stop")
        while all(p.running for p in started):
            time.sleep(1.0)
        dead = [p for p in started if not p.running]
        echo(f"{dead[0].name} exited; stopping the stack:\n{dead[0].log_tail()}")
    except KeyboardInterrupt:
        echo("stopping")
    finally:
        for process in reversed(started):
            process.stop()


def _host_port(url: str, default: int) -> tuple[str, int]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or default


def _redact(url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def queue_lengths(broker_url: str) -> dict[str, int | None]:
    """Messages waiting per queue (Redis broker only; None elsewhere)."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return {queue: None for queue in QUEUES}
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=2)
    return {queue: int(client.llen(queue)) for queue in QUEUES}
