"""``copycat up`` and ``copycat status``: the whole system on one machine without Docker, and its state.

``up`` starts what is not already running: SeaweedFS S3 (when no S3 endpoint is configured), the Milvus
Lite server (when no Milvus server URI is configured), one Celery worker per queue, beat, the watcher,
Flower and the HTTP API. Redis and the database are used at their configured URLs (Redis defaults to 127.0.0.1:6379).

It owns its ``COPYCAT_HOME``: one stack per home, its connection settings written to ``stack.env`` there
for every other command (``stack/stackfile.py``), and its broker keys under a namespace of its own, so two
stacks on one Redis never take each other's work. Its processes are supervised (``stack/supervisor.py``):
one that dies is restarted with backoff; none outlives ``up``, however ``up`` ends.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.api_commands import api_command_line
from service.settings import Settings
from stack.services import ManagedProcess, milvus_lite_server, port_open, seaweed_s3
from stack.stackfile import StackFile
from stack.supervisor import RestartPolicy, Supervisor
from tasks.app import QUEUES

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
SERVERS = ("seaweedfs", "milvus-lite")  # stopped last: the other processes use them
# Settings other commands need to reach the stack; written to stack.env.
CONNECTION = ("COPYCAT_BROKER__URL", "COPYCAT_BROKER__NAMESPACE", "COPYCAT_DATABASE__URL", "COPYCAT_S3__ENDPOINT",
              "COPYCAT_S3__ACCESS_KEY", "COPYCAT_S3__SECRET_KEY", "COPYCAT_S3__SECURE", "COPYCAT_MILVUS__URI",
              "COPYCAT_API__ADDRESS", "COPYCAT_API__PORT")


def namespace_for(home: Path) -> str:
    """The broker namespace of the stack that owns ``home`` (stable across restarts of that stack)."""
    return "copycat-" + hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12] + ":"


def stack_environment(cfg: Settings) -> tuple[dict[str, str], list[tuple[ManagedProcess, int]]]:
    """Environment for the stack's processes, and the servers to start first (with their ports)."""
    env = dict(os.environ)
    env["COPYCAT_HOME"] = str(cfg.home.resolve())
    env["COPYCAT_BROKER__URL"] = cfg.broker.url or DEFAULT_BROKER
    env["COPYCAT_BROKER__NAMESPACE"] = cfg.broker.namespace or namespace_for(cfg.home)
    env["COPYCAT_DATABASE__URL"] = cfg.database_url
    env.setdefault("COPYCAT_COPIES__ON_INGEST", "true")  # a stack finds copies as videos arrive
    env["COPYCAT_API__ADDRESS"], env["COPYCAT_API__PORT"] = cfg.api.address, str(cfg.api.port)
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
    """Workers per queue, beat, watcher, Flower and the HTTP API."""
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
    processes.append(ManagedProcess("api", api_command_line(), logs / "api.log", env))
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


class _Stop(Exception):
    """A signal asked the stack to stop."""


def run_stack(cfg: Settings, echo: Callable[[str], None]) -> None:
    """Start everything, say when it is ready and how to use it, keep it running until a signal."""
    home = cfg.home.resolve()
    stack_file = StackFile(home)
    owner = stack_file.owner()
    if owner is not None:
        raise RuntimeError(f"a stack already runs in COPYCAT_HOME={home} (copycat up, pid {owner}); stop it"
                           " first, or give this one another COPYCAT_HOME")
    env, servers = stack_environment(cfg)
    broker = env["COPYCAT_BROKER__URL"]
    if broker.startswith("redis://") and not port_open(*_host_port(broker, 6379)):
        raise RuntimeError(f"Redis is not reachable at {broker}; start it or set COPYCAT_BROKER__URL")
    stack_cfg = _settings_from(env)
    _refuse_foreign_workers(stack_cfg)
    supervisor = Supervisor(RestartPolicy(cfg.stack.restart_backoff_s, cfg.stack.restart_backoff_max_s,
                                          cfg.stack.stable_after_s), echo, grace_s=cfg.stack.stop_grace_s)
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if stopping:  # a second signal while stopping: no more waiting
            echo(f"{signal.Signals(signum).name} again: killing every process of the stack now")
            supervisor.kill()
            return
        stopping = True
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for server, port in servers:
            if port_open("127.0.0.1", port):
                raise RuntimeError(f"port {port} is taken; is another stack running? ({server.name})")
            supervisor.start(server)
            server.wait_for_port(port, timeout=120)
            echo(f"{server.name:12s} 127.0.0.1:{port}  (log {server.log_path})")
        _prepare_storage(stack_cfg)
        stack_file.write({name: env[name] for name in CONNECTION if env.get(name)}, os.getpid())
        for process in stack_processes(cfg, env):
            supervisor.start(process)
            echo(f"{process.name:12s} pid {process.process.pid}  (log {process.log_path})")
        _wait_ready(stack_cfg, cfg, supervisor)
        _print_usage(echo, cfg, env, stack_file)
        while True:
            supervisor.check()
            time.sleep(0.5)
    except _Stop as stop:
        echo(f"{stop}: stopping the stack")
    finally:
        stopping = True
        supervisor.stop(names_last=SERVERS)
        stack_file.release(os.getpid())
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _settings_from(env: dict[str, str]) -> Settings:
    """The settings the stack's processes see (this process's environment is left alone)."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _refuse_foreign_workers(cfg: Settings) -> None:
    """Workers already consuming this namespace belong to another stack (or outlived an old one): two stacks
    on one namespace would take each other's work, so refuse and say so."""
    from tasks.app import create_app

    app = create_app(cfg)
    try:
        replies = app.control.ping(timeout=1.0) or []
    finally:
        app.close()
    if replies:
        names = ", ".join(sorted(name for reply in replies for name in reply))
        raise RuntimeError(f"workers already consume broker namespace {cfg.broker.namespace!r} on"
                           f" {_redact(cfg.broker.url)}: {names}. Another stack with this COPYCAT_HOME is running"
                           " elsewhere, or workers outlived an old one; stop them, or set COPYCAT_BROKER__NAMESPACE")


def _prepare_storage(cfg: Settings) -> None:
    """Migrate the database and create the buckets before anything is announced (an upload right after
    'ready' must find its bucket)."""
    from service.resources import Resources
    from workers.errors import StorageUnavailable

    resources = Resources(cfg)
    try:
        resources.engine  # noqa: B018  (migrates)
        deadline = time.monotonic() + 60
        while True:
            try:
                resources.objects  # noqa: B018  (creates the buckets)
                return
            except StorageUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        resources.close()


def _wait_ready(stack_cfg: Settings, cfg: Settings, supervisor: Supervisor, timeout_s: float = 180.0) -> None:
    """Until a worker answers on every queue, and Flower and the API listen."""
    from tasks.app import create_app

    app = create_app(stack_cfg)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            supervisor.check()
            replies = app.control.inspect(timeout=1.0).active_queues() or {}
            served = {q["name"] for queues in replies.values() for q in queues}
            if served >= set(QUEUES) and port_open(cfg.flower.address, cfg.flower.port) \
                    and port_open(cfg.api.address, cfg.api.port):
                return
            time.sleep(0.5)
    finally:
        app.close()
    raise RuntimeError(f"the stack did not become ready within {timeout_s:.0f} s; see the logs in {cfg.home / 'logs'}")


def _print_usage(echo: Callable[[str], None], cfg: Settings, env: dict[str, str], stack_file: StackFile) -> None:
    endpoint = env["COPYCAT_S3__ENDPOINT"]
    url = f"{'https' if cfg.s3.secure else 'http'}://{endpoint}"
    access, secret = env.get("COPYCAT_S3__ACCESS_KEY", ""), env.get("COPYCAT_S3__SECRET_KEY", "")
    bucket = cfg.s3.uploads_bucket
    echo(f"flower       http://{cfg.flower.address}:{cfg.flower.port}")
    echo(f"api          http://{cfg.api.address}:{cfg.api.port}  (docs at /docs; keys: copycat keys create)")
    echo(f"database     {_redact(env['COPYCAT_DATABASE__URL'])}")
    echo(f"broker       {_redact(env['COPYCAT_BROKER__URL'])} (namespace {env['COPYCAT_BROKER__NAMESPACE']})")
    echo(f"ready. Upload videos to s3://{bucket} (indexed as they arrive; queries go to s3://"
         f"{cfg.s3.queries_bucket}):")
    echo(f"  endpoint    {url}")
    echo(f"  access key  {access}")
    echo(f"  secret key  {secret}")
    echo(f"  e.g.        AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY={secret} aws --endpoint-url {url}"
         f" s3 cp video.mp4 s3://{bucket}/")
    echo(f"Every copycat command with COPYCAT_HOME={cfg.home.resolve()} uses this stack (settings in"
         f" {stack_file.env_path}).")
    echo("press Ctrl-C to stop")


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
