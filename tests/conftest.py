"""Shared fixtures: real PostgreSQL, Redis, SeaweedFS S3, Milvus Lite (file and server) and Milvus standalone.

Outside CI a missing PostgreSQL or Redis skips the tests that need it; in CI (``CI=true``) it fails them,
so a green CI run always means the services were really exercised.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest

from stack.services import (
    free_port,
    milvus_lite_server,
    milvus_standalone,
    port_open,
    private_network_works,
    seaweed_s3,
    venv_binary,
    wait_for_milvus,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIPS = SHARED / "data" / "clips"
BROKEN = SHARED / "data" / "broken"
PG_HOST, PG_PORT = os.environ.get("COPYCAT_TEST_PG_HOST", "127.0.0.1"), 5432
REDIS_PORT = 6379
REDIS_DB = int(os.environ.get("COPYCAT_TEST_REDIS_DB", "9"))  # read at import: tests clear COPYCAT_* variables
S3_KEYS = ("copycat", "copycat-test-secret")
TEST_S3_VOLUMES = 32
"""SeaweedFS volumes of the tests' S3, whatever the free disk: one per live bucket, and each test removes its
buckets when it ends (``services_env``), so a test that keeps buckets shows up as 500s long before a disk fills."""
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REAPER = Path(__file__).with_name("reaper.py")


def pytest_configure(config: pytest.Config) -> None:
    """Start the session's reaper (``tests/reaper.py``) before anything else: whatever this session starts
    (servers, workers, ``copycat up``) carries its token, and is stopped when pytest ends, even by SIGKILL."""
    from tests.reaper import REAPER_VARIABLE

    token = uuid.uuid4().hex
    os.environ[REAPER_VARIABLE] = token  # every process started from now on inherits it
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():  # its report goes to the real stderr
        config.stash[_reaper_key] = subprocess.Popen(
            [sys.executable, str(REAPER), "--pid", str(os.getpid()), "--token", token],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)


_reaper_key = pytest.StashKey[subprocess.Popen]()


def require(condition: bool, what: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    require(CLIPS.is_dir(), f"shared clips at {CLIPS}")
    return CLIPS


@pytest.fixture(scope="session")
def broken_dir() -> Path:
    require(BROKEN.is_dir(), f"shared broken files at {BROKEN}")
    return BROKEN


FIXTURE_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "fixtures"


def cached_fixtures(clips: Path, *, quick: bool) -> Path:
    """The fixture benchmark (``bench.fixtures``), built with ffmpeg once and kept in ``.cache/fixtures/`` for
    later sessions; returns its ground-truth JSON. The folder is named after the build's ``VERSION`` and a hash
    of ``bench/fixtures.py`` (a changed plan rebuilds even without a new version); builds of other keys are
    removed. ``build_fixtures`` itself returns a complete build as it is; the lock keeps two sessions on one
    checkout from building into the same folder at once."""
    import fcntl
    import hashlib

    from bench import fixtures

    source = hashlib.sha256(Path(fixtures.__file__).read_bytes()).hexdigest()[:12]
    key = f"v{fixtures.VERSION}-{source}"
    FIXTURE_CACHE.mkdir(parents=True, exist_ok=True)
    with (FIXTURE_CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in FIXTURE_CACHE.iterdir():
            if stale.is_dir() and stale.name != key:
                shutil.rmtree(stale, ignore_errors=True)
        return fixtures.build_fixtures(clips, FIXTURE_CACHE / key / ("quick" if quick else "full"), quick=quick)


@pytest.fixture(scope="session")
def quick_fixtures(clips_dir: Path) -> Path:
    """The quick fixture set's ground-truth JSON (built once, see ``cached_fixtures``); read-only for tests."""
    require(shutil.which("ffmpeg") is not None, "ffmpeg")
    return cached_fixtures(clips_dir, quick=True)


@pytest.fixture(scope="session")
def full_fixtures(clips_dir: Path) -> Path:
    """The full fixture set's ground-truth JSON (built once, see ``cached_fixtures``); read-only for tests."""
    require(shutil.which("ffmpeg") is not None, "ffmpeg")
    return cached_fixtures(clips_dir, quick=False)


@contextmanager
def new_database() -> Iterator[str]:
    """A freshly created, empty PostgreSQL database, dropped afterwards."""
    require(port_open(PG_HOST, PG_PORT), f"PostgreSQL on {PG_HOST}:{PG_PORT}")
    import psycopg

    name = f"copycat_test_{uuid.uuid4().hex[:8]}"
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The test session's PostgreSQL database (tests empty its tables through ``services_env``)."""
    with new_database() as url:
        yield url


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database of its own, for a test whose processes migrate it themselves."""
    with new_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Database 9 of the shared Redis, flushed; ``COPYCAT_TEST_REDIS_DB`` picks another, so that two test
    sessions on one machine do not take each other's tasks (their workers share the queue names)."""
    require(port_open("127.0.0.1", REDIS_PORT), f"Redis on 127.0.0.1:{REDIS_PORT}")
    import redis

    url = f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SeaweedFS S3 server on a free loopback port; yields its endpoint host:port."""
    require(shutil.which("weed") is not None or (Path(os.sys.executable).parent / "weed").exists(), "weed binary")
    port = free_port(with_grpc=True)
    server = seaweed_s3(tmp_path_factory.mktemp("seaweed"), port=port, access_key=S3_KEYS[0],
                        secret_key=S3_KEYS[1], max_volumes=TEST_S3_VOLUMES)
    server.start()
    try:
        server.wait_for_port(port, timeout=60)
        _wait_s3_ready(f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


def _wait_s3_ready(endpoint: str, timeout: float = 60.0) -> None:
    """The S3 port opens before the filer behind it is ready; retry a bucket call until it works."""
    import time

    from workers.errors import StorageUnavailable
    from workers.stores.objects import S3ObjectStore

    store = S3ObjectStore(endpoint, *S3_KEYS, timeout_s=5)
    deadline = time.monotonic() + timeout
    while True:
        try:
            store.ensure_bucket("copycat-ready-check")
            return
        except StorageUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Milvus Lite server (the multi-process mode); yields its URI."""
    port = free_port()
    server = milvus_lite_server(tmp_path_factory.mktemp("milvus-server"), port=port)
    server.start()
    try:
        server.wait_for_port(port, timeout=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def milvus_standalone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus standalone server (PyPI ``milvus``, 2.3.5), started once per session; yields its URI.

    Its own ports are shut in a private network namespace; only 127.0.0.1:PORT reaches it (stack/netns.py).
    """
    try:
        venv_binary("milvus-server")
    except FileNotFoundError:
        require(False, "milvus-server (PyPI package milvus, dev extra)")
    require(private_network_works(), "a private network namespace (root or user namespaces) for Milvus standalone")
    port = free_port()
    server = milvus_standalone(tmp_path_factory.mktemp("milvus-standalone"), port=port)
    server.start()
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_for_milvus(server, uri)
        yield uri
    finally:
        server.stop()


MILVUS_BACKENDS = ("lite", "server", "standalone")
"""Every way Copycat talks to Milvus: an embedded Milvus Lite file, the Milvus Lite server (several
processes), and a real Milvus standalone server (2.3.5: the oldest version Copycat supports)."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Which Milvus a test that uses ``milvus_uri`` runs on, unless it names its backends itself
    (``@pytest.mark.parametrize("milvus_uri", [...], indirect=True)``):

    - marked ``every_milvus`` (it checks vector-store behaviour): on each of ``MILVUS_BACKENDS``;
    - with a Celery worker (several processes share the store): on the Milvus Lite server;
    - else on a Milvus Lite file, the cheapest (and ``copycat``'s default).

    The real standalone server still serves the store contract tests, a worker ingest
    (``test_ingest.py``), the quick benchmark end to end (``e2e/test_query.py``) and the fault suite.
    """
    if "milvus_uri" not in metafunc.fixturenames or _parametrizes(metafunc.definition, "milvus_uri"):
        return
    if metafunc.definition.get_closest_marker("every_milvus"):
        backends: tuple[str, ...] = MILVUS_BACKENDS
    elif "celery_worker" in metafunc.fixturenames:
        backends = ("server",)
    else:
        backends = ("lite",)
    metafunc.parametrize("milvus_uri", backends, indirect=True)


def _parametrizes(item: pytest.Function, name: str) -> bool:
    for mark in item.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs["argnames"]
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if name in names:
            return True
    return False


@pytest.fixture
def milvus_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's Milvus (``pytest_generate_tests`` picks it): a Milvus Lite file of its own, the session's
    Milvus Lite server or the session's Milvus standalone server."""
    backend = request.param
    if backend == "lite":
        return str(tmp_path / "milvus.db")
    if backend == "server":
        return request.getfixturevalue("milvus_server")
    assert backend == "standalone", backend
    return request.getfixturevalue("milvus_standalone_server")


@pytest.fixture(scope="session", autouse=True)
def _one_embedder_per_setting() -> Iterator[None]:
    """Resources rebuilt from the environment (``use_fresh_resources``, about 30 times a session) take the
    frame embedder built for the same embed settings earlier in this process, loaded model and all, instead
    of loading the model again. An embedder holds nothing but its model (an inference session), so no test
    sees another's state; other settings (model, path, batch size, device, threads, ...) get their own."""
    from service import resources

    build = resources.create_embedder
    built: dict[tuple, object] = {}

    def create_embedder(model: str, **options: object) -> object:
        key = (model, tuple(sorted(options.items())))
        if key not in built:
            built[key] = build(model, **options)
        return built[key]

    resources.create_embedder = create_embedder
    yield
    resources.create_embedder = build


def use_fresh_resources() -> None:
    """Rebuild this process's resources from the environment, with their Celery app as the current one
    (tests call tasks directly, which run on the current app)."""
    from service import resources

    resources.reset()
    resources.current().app  # noqa: B018


@pytest.fixture
def copycat_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """An empty COPYCAT_HOME for one test; cached resources are rebuilt from the environment."""
    from service import resources

    for key in list(os.environ):
        if key.startswith("COPYCAT_"):
            monkeypatch.delenv(key)
    home = tmp_path / "copycat-home"
    monkeypatch.setenv("COPYCAT_HOME", str(home))
    use_fresh_resources()
    yield home
    resources.reset()


@pytest.fixture
def services_env(copycat_env: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str, seaweed: str,
                 milvus_uri: str) -> Iterator[dict[str, str]]:
    """Postgres + SeaweedFS S3 + Milvus (file or server) for one test, with its own buckets and collection."""
    from sqlalchemy import text

    from service import resources

    tag = uuid.uuid4().hex[:8]
    env = {
        "COPYCAT_DATABASE__URL": pg_url,
        "COPYCAT_S3__ENDPOINT": seaweed,
        "COPYCAT_S3__ACCESS_KEY": S3_KEYS[0],
        "COPYCAT_S3__SECRET_KEY": S3_KEYS[1],
        "COPYCAT_S3__UPLOADS_BUCKET": f"uploads-{tag}",
        "COPYCAT_S3__QUERIES_BUCKET": f"queries-{tag}",
        "COPYCAT_S3__MATRICES_BUCKET": f"matrices-{tag}",
        "COPYCAT_MILVUS__URI": milvus_uri,
        "COPYCAT_MILVUS__COLLECTION_PREFIX": f"test_{tag}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    use_fresh_resources()
    with resources.current().engine.begin() as conn:
        conn.execute(text("TRUNCATE videos, query_jobs, query_matches, query_segments, copies, webhook_events, "
                          "webhook_deliveries, api_keys CASCADE"))
    yield env
    resources.reset()
    _remove_buckets(seaweed, [env[f"COPYCAT_S3__{name}_BUCKET"] for name in ("UPLOADS", "QUERIES", "MATRICES")])


def _remove_buckets(endpoint: str, buckets: list[str]) -> None:
    """Empty and remove a test's buckets: SeaweedFS gives every bucket a volume of its own and has as many
    volumes as free disk / volume size, so a suite that kept its ~400 buckets ran out on a fuller disk
    (PUTs answered 500)."""
    from minio import Minio
    from minio.deleteobjects import DeleteObject

    client = Minio(endpoint, access_key=S3_KEYS[0], secret_key=S3_KEYS[1], secure=False)
    for bucket in buckets:
        if not client.bucket_exists(bucket):
            continue
        doomed = [DeleteObject(obj.object_name) for obj in client.list_objects(bucket, recursive=True)]
        for error in client.remove_objects(bucket, doomed):
            raise RuntimeError(f"could not remove s3://{bucket}/{error.name}: {error.message}")
        client.remove_bucket(bucket)


@pytest.fixture
def celery_worker(services_env: dict[str, str], redis_url: str, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A real Celery worker process on every queue, fed through Redis; needs the Milvus server mode."""
    if "://" not in services_env["COPYCAT_MILVUS__URI"]:
        pytest.skip("several processes share Milvus Lite only through its server")

    queue_tag = uuid.uuid4().hex[:6]
    monkeypatch.setenv("COPYCAT_BROKER__URL", redis_url)
    # Queues of their own: a worker of another test session on this machine (CI beside a developer's run)
    # never takes this test's messages, nor this worker theirs.
    monkeypatch.setenv("COPYCAT_BROKER__NAMESPACE", f"test-{queue_tag}:")
    use_fresh_resources()
    env = {**os.environ, "COPYCAT_HOME": str(tmp_path / "worker-home")}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks.worker", "worker", "-Q", "embed,index,query,ops", "-c", "2",
         "--without-gossip", "--without-mingle", "-n", f"test-{queue_tag}@%h", "-l", "INFO"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        _wait_for_worker(worker, tmp_path / "worker.log", f"test-{queue_tag}@{socket.gethostname()}")
        yield worker
    finally:
        # The test is over: no need for Celery's warm or cold shutdown (~2 s either way, measured); the whole
        # group (main process and pool children) goes at once.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)
        log.close()


def _wait_for_worker(worker: subprocess.Popen, log_path: Path, name: str, timeout: float = 60.0) -> None:
    """Until the worker called ``name`` answers a ping. A ping to a named worker returns as soon as it answers
    (a ping to all waits its whole timeout), and no other worker on this Redis can answer in its place."""
    from service import resources

    app = resources.current().app
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"celery worker exited:\n{log_path.read_text()[-3000:]}")
        if app.control.ping(destination=[name], timeout=1.0):
            return
    raise TimeoutError(f"celery worker did not answer a ping:\n{log_path.read_text()[-3000:]}")


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
