"""Fault suite: a whole stack on real services, faults injected while a batch drains, and what survived.

    python -m bench.faults                      # 300 uploads, every fault, Milvus standalone 2.3.5
    python -m bench.faults --uploads 30 --long-s 120 --lease-s 20

It starts its own PostgreSQL, Redis (append-only, as production runs it), SeaweedFS S3 and Milvus standalone
server (``--milvus lite`` for the Milvus Lite server), then ``copycat up`` on them: the four workers, beat,
the watcher (polling the bucket) and Flower, supervised. It uploads the batch concurrently through S3 (plus
broken files and two long videos), and while the stack works through it:

- kills (``kill -9``) the embed worker's main process while a long video is being embedded, the watcher in
  the middle of its sweeps, the embed worker's whole process group (main and pool child: a dying machine)
  while a long video's vectors are being inserted (small insert batches make that phase last), and the index
  worker while it removes deleted uploads;
- restarts Redis, SeaweedFS, Milvus and PostgreSQL, one after the other;
- feeds the event path duplicate and out-of-order bucket events, and sends poison messages (malformed
  arguments, unknown ids, an unknown task) to every queue.

Then it waits for the queues to drain and prints: uploaded, indexed, failed with reason, lost, duplicate
vectors, fsck inconsistencies, time to drain, and for each kill the seconds until its video was indexed.
Target: lost 0, duplicates 0, inconsistencies 0, every failure with its reason. ``tests/e2e/test_faults.py``
runs a bounded form of it in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stack.services import (
    ManagedProcess,
    free_port,
    milvus_lite_server,
    milvus_standalone,
    private_postgres,
    private_redis,
    seaweed_s3,
    wait_for_milvus,
)

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
S3_KEYS = ("copycat", "copycat-faults-secret")
BUCKET = "copycat-uploads"
TERMINAL = {"indexed", "failed"}


@dataclass(frozen=True)
class SuiteConfig:
    uploads: int = 300  # short clips uploaded concurrently
    long_s: int = 480  # length of the two long videos (the highway clip looped)
    deletes: int = 20  # uploads deleted again, to exercise removals (and the index worker's kill)
    lease_s: int = 90  # COPYCAT_BROKER__LEASE_S of the stack (the product's default)
    recover_interval_s: int = 30
    milvus: str = "standalone"  # or "lite" (the Milvus Lite server)
    drain_timeout_s: float = 1800.0


@dataclass
class SuiteReport:
    uploaded: int = 0
    indexed: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # failure code -> count
    failed_without_reason: int = 0
    unexpected_failures: list[str] = field(default_factory=list)  # good videos that ended failed
    lost: list[str] = field(default_factory=list)  # keys with no final state, or deleted ones still there
    duplicate_vectors: int = 0
    vector_mismatches: int = 0
    fsck: dict[str, int] = field(default_factory=dict)
    drain_s: float = 0.0
    recoveries: dict[str, float | None] = field(default_factory=dict)  # fault -> seconds to its video indexed
    faults: list[str] = field(default_factory=list)
    poison_sent: int = 0
    restarts_seen: int = 0
    deleted: list[str] = field(default_factory=list)  # uploads deleted again during the run

    @property
    def fsck_total(self) -> int:
        return sum(self.fsck.values())


class Services:
    """The stack's backing services, each restartable in place (same port, same data)."""

    def __init__(self, root: Path, milvus: str) -> None:
        pg_root = Path(tempfile.mkdtemp(prefix="copycat-faults-pg-"))
        pg_root.chmod(0o755)  # the server runs as the postgres user
        self.ports = {"postgres": free_port(), "redis": free_port(), "seaweedfs": free_port(with_grpc=True),
                      "milvus": free_port()}
        self.processes: dict[str, ManagedProcess] = {
            "postgres": private_postgres(pg_root / "data", port=self.ports["postgres"]),
            "redis": private_redis(root / "redis", port=self.ports["redis"]),
            "seaweedfs": seaweed_s3(root / "seaweedfs", port=self.ports["seaweedfs"], access_key=S3_KEYS[0],
                                    secret_key=S3_KEYS[1]),
            "milvus": (milvus_standalone(root / "milvus", port=self.ports["milvus"]) if milvus == "standalone"
                       else milvus_lite_server(root / "milvus", port=self.ports["milvus"])),
        }
        self.pg_root = pg_root

    @property
    def env(self) -> dict[str, str]:
        p = self.ports
        return {"COPYCAT_DATABASE__URL": f"postgresql+psycopg://postgres@127.0.0.1:{p['postgres']}/postgres",
                "COPYCAT_BROKER__URL": f"redis://127.0.0.1:{p['redis']}/0",
                "COPYCAT_S3__ENDPOINT": f"127.0.0.1:{p['seaweedfs']}", "COPYCAT_S3__ACCESS_KEY": S3_KEYS[0],
                "COPYCAT_S3__SECRET_KEY": S3_KEYS[1], "COPYCAT_MILVUS__URI": f"http://127.0.0.1:{p['milvus']}"}

    def start(self, name: str) -> None:
        process = self.processes[name]
        process.start()
        if name == "milvus":
            wait_for_milvus(process, self.env["COPYCAT_MILVUS__URI"])
        else:
            process.wait_for_port(self.ports[name], timeout=120)
        if name == "seaweedfs":
            _wait_s3(self.env)

    def restart(self, name: str, down_s: float = 3.0) -> None:
        self.processes[name].stop(30)
        time.sleep(down_s)
        self.start(name)

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            process.stop(30)
        subprocess.run(["rm", "-rf", str(self.pg_root)], check=False)


def _wait_s3(env: dict[str, str], timeout: float = 60.0) -> None:
    from workers.errors import StorageUnavailable
    from workers.stores.objects import S3ObjectStore

    store = S3ObjectStore(env["COPYCAT_S3__ENDPOINT"], *S3_KEYS, timeout_s=5)
    deadline = time.monotonic() + timeout
    while True:
        try:
            store.ensure_bucket(BUCKET)
            return
        except StorageUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def build_media(out: Path, clips: Path, long_s: int) -> dict[str, Path]:
    """Short clips (2 s, 320 px wide), a long video and broken files; every file's fate is known."""
    out.mkdir(parents=True, exist_ok=True)
    media: dict[str, Path] = {}
    sources = sorted(p for p in clips.iterdir() if p.suffix in {".mp4", ".webm", ".mkv"})[:8]
    for i, source in enumerate(sources):
        path = out / f"short{i}.mp4"
        _ffmpeg("-ss", "1", "-t", "2", "-i", str(source), "-vf", "scale=320:-2", "-c:v", "libx264", "-preset",
                "ultrafast", "-an", str(path))
        media[f"short{i}"] = path
    loops = max(0, round(long_s / 23.0) - 1)  # clip16_highway is 23 s of 1280x720 H.264
    media["long"] = out / "long.mp4"
    _ffmpeg("-stream_loop", str(loops), "-i", str(clips / "clip16_highway.mp4"), "-c", "copy", "-an",
            str(media["long"]))
    broken = {"text": b"this is not a video\n" * 50, "empty": b"",
              "truncated": media["short0"].read_bytes()[:2000],
              "playlist": f"#EXTM3U\n#EXTINF:10,\nfile://{media['short1']}\n#EXT-X-ENDLIST\n".encode()}
    for name, data in broken.items():
        (out / f"broken-{name}.mp4").write_bytes(data)
        media[f"broken-{name}"] = out / f"broken-{name}.mp4"
    return media


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


class Stack:
    """``copycat up`` on the services, and what it printed."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.env, self.log = env, root / "up.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("w") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "cli.main", "up"], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while "press Ctrl-C" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"copycat up did not become ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def pid(self, name: str) -> int:
        """The current pid of one of the stack's processes (after restarts, the newest)."""
        found = re.findall(rf"^{name}\s+(?:pid |restarted \(pid )(\d+)", self.log.read_text(), re.M)
        return int(found[-1])

    def kill(self, name: str, *, group: bool = False) -> int:
        """``kill -9`` of the process (its children live on until ``up`` restarts it), or with ``group`` of
        it and its children at once (a machine or container dying)."""
        pid = self.pid(name)
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pid(name) == old_pid:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not restarted:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()


@contextmanager
def stack_environment(env: dict[str, str]) -> Iterator[None]:
    """This process talks to the stack (for uploads, events, polling and fsck) while the block runs."""
    from service import resources

    saved = dict(os.environ)
    os.environ.update(env)
    resources.reset()
    try:
        yield
    finally:
        resources.reset()
        os.environ.clear()
        os.environ.update(saved)


def rows() -> dict[str, tuple[str, str | None, str | None]]:
    """key -> (status, failure code, failure detail) of every video."""
    from sqlalchemy import select

    from db.models import Video
    from service.resources import session

    with session() as s:
        return {key: (status, code, detail) for key, status, code, detail in
                s.execute(select(Video.key, Video.status, Video.failure_code, Video.failure_detail)).all()}


def status_of(key: str) -> str | None:
    try:
        found = rows().get(key)
    except Exception:  # the database may be restarting
        return None
    return found[0] if found else None


def wait_for(predicate: Callable[[], bool], timeout: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # services restart under us
            pass
        time.sleep(poll_s)
    return False


def run_suite(config: SuiteConfig, work: Path, clips: Path = CLIPS, say: Callable[[str], None] = print) -> SuiteReport:
    report = SuiteReport()
    media = build_media(work / "media", clips, config.long_s)
    services = Services(work, config.milvus)
    stack: Stack | None = None
    try:
        for name in ("postgres", "redis", "seaweedfs", "milvus"):
            services.start(name)
        say(f"services up: {services.ports}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("COPYCAT_")} | services.env | {
            "COPYCAT_HOME": str(work / "home"), "COPYCAT_FLOWER__PORT": str(free_port()),
            "COPYCAT_API__PORT": str(free_port()),
            "COPYCAT_WATCH__POLL_INTERVAL_S": "1", "COPYCAT_BROKER__LEASE_S": str(config.lease_s),
            "COPYCAT_BROKER__RECOVER_INTERVAL_S": str(config.recover_interval_s),
            "COPYCAT_MILVUS__INSERT_BATCH": "20", "COPYCAT_STACK__STOP_GRACE_S": "10"}
        stack = Stack(work, env)
        stack.start()
        say("stack ready")
        with stack_environment(env):
            _inject_faults(config, services, stack, media, report, say)
            _drain(config, report, say)
            _measure(report)
        report.restarts_seen = stack.log.read_text().count(" restarted (pid ")
    finally:
        if stack is not None:
            stack.stop()
        services.stop()
    return report


def _inject_faults(config: SuiteConfig, services: Services, stack: Stack, media: dict[str, Path],
                   report: SuiteReport, say: Callable[[str], None]) -> None:
    from service import resources

    store = resources.current().objects
    shorts = [media[k] for k in sorted(media) if k.startswith("short")]
    batch = {f"batch/{i:04d}.mp4": shorts[i % len(shorts)] for i in range(config.uploads)}
    batch |= {f"broken/{name}.mp4": path for name, path in media.items() if name.startswith("broken-")}
    started = time.monotonic()
    pool = ThreadPoolExecutor(16)
    uploads = [pool.submit(store.put_file, BUCKET, key, path) for key, path in batch.items()]
    report.uploaded = len(batch) + 2

    # 1. kill -9 of the embed worker while the first long video is being decoded and embedded
    store.put_file(BUCKET, "long/first.mp4", media["long"])
    if wait_for(lambda: status_of("long/first.mp4") in {"decoding", "embedding"}, timeout=600):
        time.sleep(1.0)
        killed_at = time.monotonic()
        old = stack.kill("worker-embed")
        report.faults.append(f"kill -9 worker-embed (pid {old}) while long/first.mp4 was"
                             f" {status_of('long/first.mp4')}")
        stack.wait_restarted("worker-embed", old)
        _watch_recovery(report, "kill embed worker mid-video", "long/first.mp4", killed_at)
    else:
        report.recoveries["kill embed worker mid-video"] = None

    # 2. kill -9 of the watcher while it sweeps the bucket the uploads are landing in
    for future in uploads[: len(uploads) // 2]:
        future.result()
    old = stack.kill("watcher")
    report.faults.append(f"kill -9 watcher (pid {old}) mid-sweep, {len(uploads) // 2} uploads landed")
    stack.wait_restarted("watcher", old)
    for future in uploads:
        future.result()
    say(f"batch of {len(batch)} uploaded in {time.monotonic() - started:.1f} s")

    # 3. every backing service restarted in the middle of the batch
    for name in ("redis", "seaweedfs", "milvus", "postgres"):
        services.restart(name)
        report.faults.append(f"restart {name}")
        say(f"restarted {name}")
        time.sleep(2.0)

    # 4. duplicate and out-of-order bucket events; poison messages on every queue
    _replay_events(store, list(batch)[:10])
    report.faults.append("duplicate and out-of-order events for 10 uploads")
    report.poison_sent = _send_poison()
    report.faults.append(f"{report.poison_sent} poison messages")

    # 5. kill -9 of the embed worker while the second long video's vectors are being inserted
    store.put_file(BUCKET, "long/second.mp4", media["long"])
    if wait_for(lambda: status_of("long/second.mp4") == "indexing", timeout=900, poll_s=0.05):
        killed_at = time.monotonic()
        old = stack.kill("worker-embed", group=True)
        report.faults.append(f"kill -9 of worker-embed's process group (pid {old}) while long/second.mp4's"
                             " vectors were inserted")
        stack.wait_restarted("worker-embed", old)
        _watch_recovery(report, "kill embed worker mid-insert", "long/second.mp4", killed_at)
    else:
        report.recoveries["kill embed worker mid-insert"] = None
        report.faults.append("mid-insert kill missed: long/second.mp4 never seen indexing")

    # 6. kill -9 of the index worker while it removes deleted uploads
    deleted = [f"batch/{i:04d}.mp4" for i in range(config.deletes)]
    wait_for(lambda: all(status_of(k) in TERMINAL for k in deleted), timeout=config.drain_timeout_s, poll_s=0.5)
    for key in deleted:
        store.remove(BUCKET, key)
    if wait_for(lambda: any(status_of(k) is None for k in deleted), timeout=120, poll_s=0.05):
        old = stack.kill("worker-index")
        report.faults.append(f"kill -9 worker-index (pid {old}) mid-removal")
        stack.wait_restarted("worker-index", old)
    report.uploaded -= len(deleted)
    report.deleted = deleted


def _watch_recovery(report: SuiteReport, fault: str, key: str, killed_at: float) -> None:
    """Record, in the background, the seconds from the kill until ``key`` is indexed."""
    import threading

    def watch() -> None:
        report.recoveries[fault] = (time.monotonic() - killed_at
                                    if wait_for(lambda: status_of(key) == "indexed", timeout=3600, poll_s=0.5)
                                    else None)

    report.recoveries[fault] = None
    threading.Thread(target=watch, daemon=True, name=f"recovery-{key}").start()


def _replay_events(store, keys: list[str]) -> None:  # noqa: ANN001
    """The events a flaky notification channel delivers: each twice, and a 'removed' before the 'created'
    of an object that exists (a delete and re-upload seen out of order)."""
    from service import resources
    from service.operations import handle_event
    from workers.stores.events import ObjectEvent

    res = resources.current()
    for key in keys:
        info = store.stat(BUCKET, key)
        created = ObjectEvent("created", BUCKET, key, info.size, info.etag)
        for event in (created, ObjectEvent("removed", BUCKET, key, None, None), created, created):
            handle_event(res, event)


def _send_poison() -> int:
    """Malformed arguments, unknown ids and an unknown task name, to every queue; none may kill a worker."""
    from service import resources

    app = resources.current().app
    unknown = "00000000-0000-0000-0000-0000000000ff"
    messages = [(name, args) for name in ("copycat.ingest.embed", "copycat.ingest.remove", "copycat.query.embed",
                                          "copycat.query.match", "copycat.signals.backfill")
                for args in ([], [unknown], [None], [{"id": 1}], [unknown, "extra", 3], ["../../etc/passwd"])]
    for name, args in messages:
        app.send_task(name, args=args)
    app.send_task("copycat.no.such.task", args=[unknown], queue="ops")
    return len(messages) + 1


def _drain(config: SuiteConfig, report: SuiteReport, say: Callable[[str], None]) -> None:
    from service import resources
    from tasks.app import queue_lengths

    deleted = set(report.deleted)
    started = time.monotonic()

    def drained() -> bool:
        states = rows()
        present = [k for k in states if k not in deleted]
        return (all(states[k][0] in TERMINAL for k in present) and not deleted & set(states)
                and len(present) >= report.uploaded
                and not any(queue_lengths(resources.current().settings).values())
                and all(seconds is not None for seconds in report.recoveries.values()))

    finished = wait_for(drained, timeout=config.drain_timeout_s, poll_s=1.0)
    report.drain_s = round(time.monotonic() - started, 1)
    say(f"drained in {report.drain_s} s" if finished else f"not drained after {report.drain_s} s")


def _measure(report: SuiteReport) -> None:
    from sqlalchemy import select

    from db.models import Video
    from service import resources
    from service.fsck import check
    from service.resources import session

    deleted = set(report.deleted)
    states = rows()
    expected_failures = {k for k in states if k.startswith("broken/")}
    for key, (status, code, detail) in states.items():
        if status == "indexed":
            report.indexed += 1
        elif status == "failed":
            report.failed[code or "?"] = report.failed.get(code or "?", 0) + 1
            if not code or not detail:
                report.failed_without_reason += 1
            if key not in expected_failures:
                report.unexpected_failures.append(f"{key}: {code}: {detail}")
        else:
            report.lost.append(f"{key} ({status})")
    report.lost += [f"{key} (deleted, row still there)" for key in deleted & set(states)]
    index = resources.current().frame_index
    with session() as s:
        recorded = dict(s.execute(select(Video.id, Video.vector_count).where(Video.status == "indexed")).all())
    counts = index.counts_by_video()
    report.vector_mismatches = sum(1 for vid, n in recorded.items() if counts.get(vid, 0) != (n or 0))
    report.duplicate_vectors = max(0, sum(counts.values()) - sum(n or 0 for n in recorded.values()))
    report.fsck = {k: n for k, n in check(resources.current(), repair=False).findings.counts().items() if n}


def print_report(report: SuiteReport) -> None:
    print("\nfaults injected:")
    for fault in report.faults:
        print(f"  - {fault}")
    lines = [("uploaded (kept)", report.uploaded), ("indexed", report.indexed),
             ("failed with reason", f"{sum(report.failed.values()) - report.failed_without_reason} {report.failed}"),
             ("failed without reason", report.failed_without_reason),
             ("unexpected failures", len(report.unexpected_failures)), ("lost", len(report.lost)),
             ("duplicate vectors", report.duplicate_vectors),
             ("videos with wrong vector count", report.vector_mismatches),
             ("fsck inconsistencies", f"{report.fsck_total} {report.fsck or ''}"),
             ("time to drain (s)", report.drain_s),
             ("poison messages sent", report.poison_sent), ("process restarts by up", report.restarts_seen)]
    lines += [(f"{fault}: kill -> indexed (s)", "missed" if s is None else f"{s:.1f}")
              for fault, s in report.recoveries.items()]
    width = max(len(name) for name, _ in lines)
    print()
    for name, value in lines:
        print(f"{name:<{width}}  {value}")
    for item in report.unexpected_failures + report.lost:
        print(f"  ! {item}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = SuiteConfig()
    parser.add_argument("--uploads", type=int, default=defaults.uploads)
    parser.add_argument("--long-s", type=int, default=defaults.long_s)
    parser.add_argument("--deletes", type=int, default=defaults.deletes)
    parser.add_argument("--lease-s", type=int, default=defaults.lease_s)
    parser.add_argument("--recover-interval-s", type=int, default=defaults.recover_interval_s)
    parser.add_argument("--milvus", choices=["standalone", "lite"], default=defaults.milvus)
    parser.add_argument("--drain-timeout-s", type=float, default=defaults.drain_timeout_s)
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    args = parser.parse_args()
    config = SuiteConfig(uploads=args.uploads, long_s=args.long_s, deletes=args.deletes, lease_s=args.lease_s,
                         recover_interval_s=args.recover_interval_s, milvus=args.milvus,
                         drain_timeout_s=args.drain_timeout_s)
    with tempfile.TemporaryDirectory(prefix="copycat-faults-") as work:
        report = run_suite(config, Path(work), say=lambda line: print(line, flush=True))
    print_report(report)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    ok = not report.lost and not report.duplicate_vectors and not report.fsck_total and not report.failed_without_reason
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
