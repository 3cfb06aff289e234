"""Ingest throughput: each stage alone and end to end, in one run, and their ratio.

Pipeline efficiency = (slowest stage alone) / (end to end): 1.0 means every other stage hides behind the
slowest one. Workloads (built once by ``bench.ingest_media`` into ``--cache``): a 10-minute 720p H.264
video (x264 veryfast, 3 B-frames), a batch of ``--clips`` short clips, and (``--long``) a 2-hour video,
whose end-to-end peak RSS is compared with the 10-minute video's (``long_video``).

Stages alone, in this process on a fresh embedded home, with the product's settings:

- ``startup``: a fresh process importing the ingest path and building what an ingest needs (model loaded,
  the database migrated, the Milvus collection opened): what `copycat ingest` pays once per command;
- ``fetch``: upload into the object store, download into a scratch file, hash (what the CLI and the task do);
- ``decode``: ``workers.decode.sample_views`` with the product's options, frames thrown away;
- ``embed``: the model on the already decoded frames (and the uninformative-frame filter);
- ``index``: matrix stored, vectors written to Milvus Lite.

End to end: ``copycat ingest FILES`` (embedded mode, one command, start-up included) on another fresh home,
its wall time and its peak RSS (``wait4``). Also printed: each stage's CPU seconds, and the bound CPU time
puts on the end-to-end time on this machine (sum of CPU seconds / cores): on a machine whose cores are all
busy with the decode, no amount of overlap can hide the other stages' CPU work.

    python -m bench.ingest_throughput [--cache DIR] [--clips 50] [--long] [--modes] [--compare ../main]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.ingest_media import build_media
from service.resources import Resources
from service.settings import Settings
from workers.decode import probe, sample_views
from workers.signals.frames import pattern_features
from workers.spool import sha256_file
from workers.stores.objects import save_matrix

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stage:
    wall: float = 0.0
    cpu: float = 0.0


@dataclass
class Workload:
    name: str
    files: list[Path]
    stages: dict[str, Stage] = field(default_factory=dict)
    end_to_end: float = 0.0
    peak_rss_mib: float = 0.0
    end_to_end_cpu: float = 0.0


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def measured(stages: dict[str, Stage], name: str) -> Iterator[None]:
    """Add the block's wall and CPU seconds (this process and its waited-for children) to ``stages[name]``."""
    wall, cpu = time.perf_counter(), _cpu()
    try:
        yield
    finally:
        stage = stages.setdefault(name, Stage())
        stage.wall += time.perf_counter() - wall
        stage.cpu += _cpu() - cpu


def run_child(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MiB, stdout) of a child process run in ``cwd``, measured with ``wait4``."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.PIPE, cwd=cwd)
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        stdout = out.read().decode()
    if proc.returncode not in (0,):
        raise RuntimeError(f"{cmd[:4]} exited with {proc.returncode}: {stderr.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout


def child_env(home: Path, extra: dict[str, str] | None = None, tree: Path = ROOT) -> dict[str, str]:
    """The environment of a child on a fresh home, importing the product from ``tree``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPYCAT_")}
    env.update({"COPYCAT_HOME": str(home), "PYTHONPATH": str(tree), "COPYCAT_LOG_LEVEL": "WARNING", **(extra or {})})
    return env


def startup_only() -> None:
    """In a fresh process: what `copycat ingest` builds before its first frame (see module docstring)."""
    import service.operations  # noqa: F401
    import tasks.ingest  # noqa: F401  (what the command's upload and ingest import)
    from service import resources

    res = resources.current()
    res.warm_up()
    res.close()


def stages_alone(work: Workload, home: Path, settings_env: dict[str, str]) -> None:
    """Each stage of ``work`` alone, sequentially over its files (see module docstring)."""
    wall, cpu, _, _ = run_child([sys.executable, "-m", "bench.ingest_throughput", "--startup-only"],
                                child_env(home / "startup", settings_env))
    work.stages["startup"] = Stage(wall, cpu)
    os.environ.update(settings_env)
    res = Resources(Settings(home=home / "alone"))
    res.warm_up()
    cfg, options = res.settings, res.decode_options
    frame_filter, patterns = cfg.frame_filter(), pattern_features(res.embedder)
    scratch = home / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(work.files):
        dest = scratch / f"input{path.suffix}"
        with measured(work.stages, "fetch"):
            res.objects.put_file(cfg.s3.uploads_bucket, path.name, path)
            res.objects.get_file(cfg.s3.uploads_bucket, path.name, dest)
            sha256_file(dest)
        frames = []
        with measured(work.stages, "decode"):
            info = probe(dest, path.name, options.limits)
            for (chunk,) in sample_views(dest, info, (res.embedder.geometry,), options):
                frames.append(chunk)
        with measured(work.stages, "embed"):
            features = []
            for chunk in frames:
                out = res.embedder.embed(chunk)
                out[~frame_filter.keep(chunk, out, patterns)] = 0.0
                features.append(out)
            matrix = np.concatenate(features)
        del frames
        with measured(work.stages, "index"):
            save_matrix(res.objects, cfg.s3.matrices_bucket, f"bench/{index}.npy", matrix.astype(np.float16))
            res.frame_index.replace_video(f"bench{index}", matrix)
        dest.unlink()
    res.close()


def end_to_end(work: Workload, home: Path, settings_env: dict[str, str],
               tree: Path = ROOT) -> tuple[float, float, float]:
    """``copycat ingest`` of every file in one command, start-up included, with the product in ``tree``; every
    video must be indexed. Returns (wall seconds, peak RSS MiB, CPU seconds of the command and its children)."""
    cmd = [sys.executable, "-m", "cli.main", "ingest", "--json", *map(str, work.files)]
    wall, cpu, rss, stdout = run_child(cmd, child_env(home, settings_env, tree), tree)
    rows = json.loads(stdout)
    failed = [r for r in rows if r["status"] != "indexed"]
    if failed or len(rows) != len(work.files):
        raise RuntimeError(f"{work.name}: {len(failed)} of {len(rows)} videos not indexed: {failed[:2]}")
    return wall, rss, cpu


def report(work: Workload, cores: int, before: tuple[float, float, float] | None = None) -> dict[str, object]:
    slowest = max(work.stages, key=lambda s: work.stages[s].wall)
    cpu_bound = sum(s.cpu for s in work.stages.values()) / cores
    summary = {
        "workload": work.name, "files": len(work.files),
        "stages_s": {k: round(v.wall, 2) for k, v in work.stages.items()},
        "stages_cpu_s": {k: round(v.cpu, 2) for k, v in work.stages.items()},
        "slowest": slowest, "end_to_end_s": round(work.end_to_end, 2),
        "efficiency": round(work.stages[slowest].wall / work.end_to_end, 3),
        "cpu_bound_efficiency": round(work.stages[slowest].wall / max(work.stages[slowest].wall, cpu_bound), 3),
        "peak_rss_mib": round(work.peak_rss_mib, 1), "end_to_end_cpu_s": round(work.end_to_end_cpu, 2),
    }
    print(f"\n== {work.name} ({len(work.files)} file(s))")
    for name, stage in work.stages.items():
        print(f"  {name:<8} alone {stage.wall:7.2f} s   cpu {stage.cpu:7.2f} s")
    print(f"  end to end     {work.end_to_end:7.2f} s   cpu {work.end_to_end_cpu:7.2f} s   peak RSS "
          f"{work.peak_rss_mib:.0f} MiB")
    print(f"  efficiency {summary['efficiency']:.3f} (slowest: {slowest}); at most "
          f"{summary['cpu_bound_efficiency']:.3f} with {cores} busy cores (CPU seconds / cores)")
    if before is not None:
        summary["before"] = {"end_to_end_s": round(before[0], 2), "peak_rss_mib": round(before[1], 1),
                             "end_to_end_cpu_s": round(before[2], 2),
                             "efficiency": round(work.stages[slowest].wall / before[0], 3)}
        print(f"  before (--compare): end to end {before[0]:7.2f} s, cpu {before[2]:.2f} s, peak RSS "
              f"{before[1]:.0f} MiB, efficiency {summary['before']['efficiency']:.3f}")  # type: ignore[index]
    return summary


def long_video(ten_min: Path, two_hours: Path, tmp: Path, settings_env: dict[str, str],
               in_process: bool = False) -> dict[str, object]:
    """Peak RSS of the ingest process, 2 hours against 10 minutes, end to end, both with their vectors in a
    Milvus Lite server process (as under `copycat up`) and, with ``in_process``, also in embedded mode, where
    the pure-Python Milvus Lite engine holds the library in the ingest's own memory (~26 KB per vector)."""
    from stack.services import free_port, milvus_lite_server, wait_for_milvus

    port = free_port()
    server = milvus_lite_server(tmp / "milvus-server", port=port)
    server.start()
    figures: dict[str, object] = {}
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_for_milvus(server, uri)
        for where, extra in (("server", {"COPYCAT_MILVUS__URI": uri}), ("in-process", {}))[:2 if in_process else 1]:
            runs = {}
            for name, path in (("10-minute", ten_min), ("2-hour", two_hours)):
                env = {**settings_env, **extra, "COPYCAT_MILVUS__COLLECTION_PREFIX": f"bench_{where[:2]}_{name[:2]}"}
                wall, rss, cpu = end_to_end(Workload(name, [path]), tmp / f"long-{where}-{name}", env)
                runs[name] = {"end_to_end_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mib": round(rss, 1)}
            ratio = runs["2-hour"]["peak_rss_mib"] / runs["10-minute"]["peak_rss_mib"]
            figures[where] = {**runs, "rss_ratio": round(ratio, 3)}
            print(f"\n== 2-hour vs 10-minute 720p, vectors in Milvus Lite ({where}): "
                  + ", ".join(f"{n} {r['end_to_end_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB"
                              for n, r in runs.items()) + f" -> {ratio:.3f}x")
    finally:
        server.stop()
    return figures


def time_decode(path: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (ffmpeg's and this process's) of one decode with the product's options under
    ``env`` (other settings kept); CPU seconds compare modes fairly on a machine others load too."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        options = Settings().decode_options()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    from workers.types import FrameGeometry

    tick, cpu = time.perf_counter(), _cpu()
    info = probe(path, limits=options.limits)
    for _ in sample_views(path, info, (FrameGeometry(224),), options):
        pass
    return time.perf_counter() - tick, _cpu() - cpu


def decode_modes(path: Path, modes: dict[str, dict[str, str]], rounds: int) -> dict[str, list[float]]:
    """Best of ``rounds`` decode (wall, CPU) seconds per mode, the modes interleaved so load hits them alike."""
    best: dict[str, list[float]] = {}
    for _ in range(rounds):
        for mode, env in modes.items():
            wall, cpu = time_decode(path, env)
            old = best.get(mode, [wall, cpu])
            best[mode] = [min(old[0], wall), min(old[1], cpu)]
    base = best[next(iter(modes))]
    print(f"\n== decode modes, {path.name} (best of {rounds}; ratios to the first mode)")
    for mode, (wall, cpu) in best.items():
        print(f"  {mode:<34} {wall:7.2f} s {base[0] / wall:5.2f}x   cpu {cpu:7.2f} s {base[1] / cpu:5.2f}x")
    return best


FULL = {"COPYCAT_DECODE__SKIP_NONREF": "false", "COPYCAT_DECODE__KEYFRAME_MAX_GAP_S": "0"}
ONE = {"COPYCAT_DECODE__DECODERS": "1"}
MODES: dict[str, dict[str, str]] = {
    "full decode, one decoder": {**FULL, **ONE},
    "skip non-ref, one decoder": ONE,
    "full decode, range decoders": FULL,
    "skip non-ref, range decoders (default)": {},
    "skip non-ref, one decoder, 1 thread": {**ONE, "COPYCAT_DECODE__THREADS": "1"},
}
DENSE_MODES: dict[str, dict[str, str]] = {
    "full decode, one decoder": {**FULL, **ONE},
    "skip non-ref, range decoders (default)": {},
    "key frames only (gap <= 0.5 s)": {"COPYCAT_DECODE__KEYFRAME_MAX_GAP_S": "0.5"},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "copycat-bench-media")
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--long", action="store_true", help="also the 2-hour video (end to end, peak RSS)")
    parser.add_argument("--modes", action="store_true", help="also decode modes side by side (10-minute video)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the decode-mode comparison")
    parser.add_argument("--long-in-process", action="store_true", help="--long also in embedded mode")
    parser.add_argument("--only", choices=["ten_min", "clips", "none"], default=None)
    parser.add_argument("--compare", type=Path, default=None, help="another checkout (e.g. main) whose `copycat"
                        " ingest` runs end to end beside this one's, interleaved")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--startup-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.startup_only:
        startup_only()
        return
    media = build_media(args.cache, args.clips)
    cores = os.cpu_count() or 1
    print(f"load average before: {os.getloadavg()}, {cores} cores")
    settings_env = {k: v for k, v in os.environ.items() if k.startswith("COPYCAT_") and k != "COPYCAT_HOME"}
    workloads = [Workload("10-minute 720p", [media.ten_min]), Workload(f"{len(media.clips)} clips", media.clips)]
    if args.only:
        workloads = {"ten_min": workloads[:1], "clips": workloads[1:], "none": []}[args.only]
    results: dict[str, object] = {"cores": cores, "load_before": os.getloadavg()}
    summaries = []
    with tempfile.TemporaryDirectory(prefix="copycat-ingest-bench-") as tmp:
        for index, work in enumerate(workloads):
            stages_alone(work, Path(tmp) / f"alone{index}", settings_env)
            before = None
            if args.compare:
                before = end_to_end(work, Path(tmp) / f"before{index}", settings_env, args.compare.resolve())
            work.end_to_end, work.peak_rss_mib, work.end_to_end_cpu = end_to_end(work, Path(tmp) / f"e2e{index}",
                                                                                settings_env)
            summaries.append(report(work, cores, before))
        if args.long:
            results["long"] = long_video(media.ten_min, media.two_hours, Path(tmp), settings_env,
                                         args.long_in_process)
    if args.modes:
        results["decode_modes"] = decode_modes(media.ten_min, MODES, args.rounds)
        results["decode_modes_dense_keys"] = decode_modes(media.dense_keys, DENSE_MODES, args.rounds)
    results["workloads"] = summaries
    results["load_after"] = os.getloadavg()
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
