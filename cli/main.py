"""``copycat``: ingest videos, query with a video, read results, run and watch the system.

With no broker configured every command runs its tasks in this process (embedded mode); with
``COPYCAT_BROKER__URL`` set it enqueues them for the workers and, with ``--wait``, follows them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from cli.output import Progress, hms, table
from workers.errors import CopycatError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".flv", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv",
                  ".3gp", ".ogv"}
TERMINAL_VIDEO = {"indexed", "failed"}
TERMINAL_JOB = {"done", "failed"}


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Find copied video segments."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "pymilvus", "milvus_lite", "alembic", "celery", "kombu", "faiss"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # Milvus Lite's embedded gRPC server logs pymilvus's optional AllocTimestamp probe as an error.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    ctx.ensure_object(dict)


def _app() -> Any:
    from tasks.app import get_app

    return get_app()


def _session() -> Any:
    from db.session import session_scope
    from tasks import context

    return session_scope(context.engine())


def _settings() -> Any:
    from tasks import context

    return context.settings()


def expand_inputs(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given, and the video files inside given folders (sorted, not recursive into hidden ones)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")))
        else:
            files.append(path)
    return files


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--prefix", default="", help="Key prefix inside the uploads bucket.")
@click.option("--wait/--no-wait", default=True, help="Follow the jobs until they end (queue mode).")
@click.option("--force", is_flag=True, help="Re-ingest videos that are already indexed.")
@click.option("--json", "as_json", is_flag=True, help="Print the resulting rows as JSON.")
def ingest(paths: tuple[Path, ...], prefix: str, wait: bool, force: bool, as_json: bool) -> None:
    """Upload video files (or folders of them) and index them."""
    from db import videos
    from tasks import context
    from tasks.ingest import embed_video, progress_hook

    _app()
    cfg = _settings()
    files = expand_inputs(paths)
    progress = Progress(len(files))
    ids: list[str] = []
    try:
        for path in files:
            key = f"{prefix.strip('/')}/{path.name}" if prefix.strip("/") else path.name
            progress.start_file(path.name)
            obj = context.objects().put_file(cfg.s3.uploads_bucket, key, path, "video/octet-stream")
            with _session() as session:
                video, needed = videos.register_upload(session, obj.bucket, key, size=obj.size, etag=obj.etag,
                                                       retry_failed=True)
                if force and not needed:
                    videos.set_status(session, video.id, videos.VideoStatus.PENDING)
                    needed = True
                video_id = video.id
            ids.append(video_id)
            if needed:
                token = progress_hook.set(progress.frames_done)
                try:
                    embed_video.delay(video_id)
                finally:
                    progress_hook.reset(token)
            progress.finish_file()
    finally:
        progress.close()
    if wait and not cfg.embedded:
        _wait_for_videos(ids)
    with _session() as session:
        rows = [videos.get_video(session, vid) for vid in ids]
    _print_videos([r for r in rows if r is not None], as_json)
    if any(r is not None and r.status == "failed" for r in rows):
        sys.exit(1)


def _wait_for_videos(ids: list[str], poll_s: float = 1.0) -> None:
    from db import videos

    progress = Progress(len(ids))
    try:
        while True:
            with _session() as session:
                rows = [videos.get_video(session, vid) for vid in ids]
            done = sum(1 for r in rows if r is None or r.status in TERMINAL_VIDEO)
            progress.files_done = done
            progress.start_file(f"{done} of {len(ids)} finished")
            if done == len(ids):
                return
            time.sleep(poll_s)
    finally:
        progress.close()


@cli.command("videos")
@click.option("--status", default=None, help="Only videos in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_videos(status: str | None, as_json: bool) -> None:
    """List indexed (and failed, and in-progress) videos."""
    from db import videos

    with _session() as session:
        rows = videos.list_videos(session, status)
    _print_videos(rows, as_json)


def video_json(video: Any) -> dict[str, Any]:
    return {
        "video_id": video.id, "name": video.name, "bucket": video.bucket, "key": video.key,
        "status": video.status, "duration": video.duration, "frames": video.frame_count, "fps": video.fps,
        "model": video.model, "dim": video.dim, "size": video.size, "etag": video.etag, "sha256": video.sha256,
        "matrix_key": video.matrix_key, "timings": video.timings or {},
        "error": f"{video.failure_code}: {video.failure_detail}" if video.failure_code else None,
    }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_videos(rows: list[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([video_json(v) for v in rows], indent=2))
        return
    if not rows:
        click.echo("no videos")
        return
    click.echo(table(
        [(v.name, f"{v.duration:.1f}s" if v.duration else "", v.frame_count or "", v.model or "", v.status,
          _clip(f"{v.failure_code}: {v.failure_detail}", 100) if v.failure_code else "") for v in rows],
        ["name", "duration", "frames", "model", "status", "error"],
    ))


@cli.command()
@click.argument("source")
@click.option("--top-k", type=int, default=None, help="Candidate videos to localise (default from settings).")
@click.option("--min-score", type=float, default=None, help="Smallest video score reported.")
@click.option("--reduce", type=click.Choice(["sum", "mean", "max", "min", "count"]), default=None)
@click.option("--exclude-self/--include-self", default=None, help="Drop indexed copies with the query's content.")
@click.option("--wait/--no-wait", default=True, help="Wait for the result (queue mode).")
@click.option("--timeout", type=float, default=3600.0, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def query(source: str, top_k: int | None, min_score: float | None, reduce: str | None,
          exclude_self: bool | None, wait: bool, timeout: float, as_json: bool) -> None:
    """Find which indexed videos SOURCE (a file or s3://bucket/key) copies, and where."""
    from db import jobs
    from tasks import context
    from tasks.query import default_params, embed_query

    _app()
    cfg = _settings()
    overrides = {"top_k": top_k, "min_score": min_score, "reduce": reduce, "exclude_self": exclude_self}
    params = {**default_params(), **{k: v for k, v in overrides.items() if v is not None}}
    if source.startswith("s3://"):
        bucket, _, key = source[5:].partition("/")
        if not bucket or not key:
            raise click.BadParameter("expected s3://bucket/key", param_hint="SOURCE")
        with _session() as session:
            job_id = jobs.create_job(session, source=source, name=key.rsplit("/", 1)[-1], bucket=bucket, key=key,
                                     params=params).id
    else:
        path = Path(source)
        if not path.is_file():
            raise click.BadParameter(f"{source} is not a file", param_hint="SOURCE")
        import uuid

        job_id = str(uuid.uuid4())
        key = f"{job_id}/{path.name}"
        with _session() as session:
            jobs.create_job(session, job_id=job_id, source=str(path), name=path.name, bucket=cfg.s3.queries_bucket,
                            key=key, params=params)
        context.objects().put_file(cfg.s3.queries_bucket, key, path, "video/octet-stream")
    embed_query.delay(job_id)
    if not wait and not cfg.embedded:
        click.echo(job_id)
        return
    result = _wait_for_job(job_id, timeout)
    _print_result(result, as_json)
    if result["status"] == "failed":
        sys.exit(1)


def _wait_for_job(job_id: str, timeout: float, poll_s: float = 0.5) -> dict[str, Any]:
    from db import jobs

    deadline = time.monotonic() + timeout
    while True:
        with _session() as session:
            job = jobs.get_job(session, job_id)
            result = jobs.result_json(job) if job else None
        if result is None:
            raise click.ClickException(f"query job {job_id} vanished")
        if result["status"] in TERMINAL_JOB:
            return result
        if time.monotonic() > deadline:
            raise click.ClickException(f"query job {job_id} still {result['status']} after {timeout:.0f} s; "
                                       f"check later with: copycat result {job_id}")
        time.sleep(poll_s)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def result(job_id: str, as_json: bool) -> None:
    """Print the stored result of a query job."""
    from db import jobs

    with _session() as session:
        job = jobs.get_job(session, job_id)
        data = jobs.result_json(job) if job else None
    if data is None:
        raise click.ClickException(f"no query job {job_id}")
    _print_result(data, as_json)


def _print_result(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"query {data['query']}  (job {data['job_id']}, {data['status']})")
    if data["error"]:
        click.echo(f"  error: {data['error']}")
    if data["status"] == "done" and not data["matches"]:
        click.echo("  no copied footage found")
    for match in data["matches"]:
        similarity = f", video similarity {match['video_similarity']:.3f}" if "video_similarity" in match else ""
        click.echo(f"\n  {match['name']}  score {match['score']:.3f}{similarity}  ({match['video_id']})")
        click.echo(table(
            [(f"{hms(s['query_start'])}-{hms(s['query_end'])}", "~", f"{hms(s['ref_start'])}-{hms(s['ref_end'])}",
              f"{s['score']:.3f}") for s in match["segments"]],
            ["query", "", "reference", "score"],
        ).replace("\n", "\n    ").join(["    ", ""]))


@cli.command("jobs")
@click.option("--limit", type=int, default=20, help="How many of the newest jobs.")
@click.option("--status", default=None, help="Only jobs in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_jobs(limit: int, status: str | None, as_json: bool) -> None:
    """List query jobs, newest first."""
    from db import jobs

    with _session() as session:
        rows = jobs.list_jobs(session, limit, status)
        data = [(j.id, j.name, j.status, len(j.matches), j.created_at, j.failure_code) for j in rows]
    if as_json:
        keys = ("job_id", "name", "status", "matches", "created_at", "error")
        click.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in data], indent=2, default=str))
    else:
        click.echo(table([(*row[:4], row[4].strftime("%Y-%m-%d %H:%M:%S"), row[5] or "") for row in data],
                         ["job", "query", "status", "matches", "created", "error"]) if data else "no query jobs")


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from db.migrate import upgrade

    upgrade(_settings().database_url)
    click.echo("database schema is up to date")


def main() -> None:
    try:
        cli(obj={})
    except CopycatError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
