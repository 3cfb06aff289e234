"""``copycat``: ingest videos, query with a video, read results, run and watch the system.

With no broker configured every command runs its tasks in this process (embedded mode); with
``COPYCAT_BROKER__URL`` set it enqueues them for the workers and, with ``--wait``, follows them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.api_commands import api, keys
from cli.dns_commands import dedup, weights
from cli.output import Progress, hms, table
from service.logs import quiet_libraries
from workers.errors import CopycatError

if TYPE_CHECKING:
    from service.resources import Resources

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".flv", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv",
                  ".3gp", ".ogv"}

# Commands that do not read or write the library, so a stopped stack does not concern them.
STACKLESS_COMMANDS = {"up", "config", "weights"}


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Find copied video segments."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries(level, client=True)
    ctx.ensure_object(dict)
    if ctx.invoked_subcommand not in STACKLESS_COMMANDS:
        _refuse_stopped_stack()


def _resources() -> Resources:
    """The resources of this process, built from the environment: a command takes them once, here at the
    command line's edge, and passes them to whatever it calls (tasks run in this process in embedded mode
    use the same ones)."""
    from service import resources

    return resources.current()


def _refuse_stopped_stack() -> None:
    """A home whose ``copycat up`` stack is not running keeps its data in that stack's services: a command
    run here in embedded mode would answer from an empty index, so it stops and says why."""
    from service.settings import load_settings
    from stack.stackfile import StackFile

    home = load_settings(stack_file=False).home.resolve()
    stack = StackFile(home)
    if stack.stopped() and "COPYCAT_BROKER__URL" not in os.environ:
        raise click.ClickException(
            f"COPYCAT_HOME={home} belongs to a `copycat up` stack that is not running (its settings:"
            f" {stack.env_path}). Start it with `copycat up`, or use another COPYCAT_HOME for embedded mode.")


def expand_inputs(paths: tuple[Path, ...]) -> list[tuple[Path, str]]:
    """(file, object key) for files as given (key: the file name) and for the video files inside given
    folders (key: the path below the folder, so ``a/intro.mp4`` and ``b/intro.mp4`` stay two videos)."""
    files: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            files.extend((p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*"))
                         if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))
        else:
            files.append((path, path.name))
    return files


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--prefix", default="", help="Key prefix inside the uploads bucket.")
@click.option("--wait/--no-wait", default=True, help="Follow the jobs until they end (queue mode).")
@click.option("--force", is_flag=True, help="Re-ingest videos that are already indexed.")
@click.option("--json", "as_json", is_flag=True, help="Print the resulting rows as JSON.")
def ingest(paths: tuple[Path, ...], prefix: str, wait: bool, force: bool, as_json: bool) -> None:
    """Upload video files (or folders of them) and index them."""
    from cli import client
    from db import videos

    res = _resources()
    files = expand_inputs(paths)
    progress = Progress(len(files))
    ids: list[str] = []
    try:
        with client.parallel_ingest(res, len(files)) as throttle:
            for path, relative in files:
                key = f"{prefix.strip('/')}/{relative}" if prefix.strip("/") else relative
                ids.append(client.ingest_file(res, path, key, force=force, progress=progress.frames_of(path.name)))
                throttle()
    finally:
        progress.close()
    if wait and not res.settings.embedded:
        waiting = Progress(len(ids))
        try:
            client.wait_for_videos(res, ids, on_poll=waiting.set_files_done)
        finally:
            waiting.close()
    with res.session() as session:
        rows = [videos.get_video(session, vid) for vid in ids]
    _print_videos([r for r in rows if r is not None], as_json)
    if any(r is not None and r.status == "failed" for r in rows):
        sys.exit(1)


@cli.command("videos")
@click.option("--status", default=None, help="Only videos in this state.")
@click.option("--limit", type=int, default=200, show_default=True, help="Rows per page (0 = all).")
@click.option("--offset", type=int, default=0, help="Rows to skip (next page: --offset 200).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_videos(status: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List indexed (and failed, and in-progress) videos, oldest first."""
    from db import videos

    with _resources().session() as session:
        rows = videos.list_videos(session, status, limit or None, offset)
        total = videos.count_videos(session, status)
    _print_videos(rows, as_json)
    if not as_json and offset + len(rows) < total:
        click.echo(f"({offset + 1}-{offset + len(rows)} of {total}; next page: --offset {offset + len(rows)})")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_videos(rows: list[Any], as_json: bool) -> None:
    if as_json:
        from db.videos import video_json

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
@click.option("--reduce", type=click.Choice(["sum", "mean", "max", "min", "count", "row_max"]), default=None)
@click.option("--exclude-self/--include-self", default=None, help="Drop indexed copies with the query's content.")
@click.option("--crops", "crop_grid", type=click.IntRange(1, 4), default=None,
              help="Also search NxN tiles of each frame (2 finds picture-in-picture copies; slower).")
@click.option("--callback-url", default=None, help="http(s) URL that gets the job's query.done webhook.")
@click.option("--wait/--no-wait", default=True, help="Wait for the result (queue mode).")
@click.option("--timeout", type=float, default=3600.0, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def query(source: str, top_k: int | None, min_score: float | None, reduce: str | None,
          exclude_self: bool | None, crop_grid: int | None, callback_url: str | None, wait: bool, timeout: float,
          as_json: bool) -> None:
    """Find which indexed videos SOURCE (a file or s3://bucket/key) copies, and where."""
    from cli import client
    from service.settings import check_webhook_url

    res = _resources()
    params = res.settings.query_params({"top_k": top_k, "min_score": min_score, "reduce": reduce,
                                        "exclude_self": exclude_self, "crop_grid": crop_grid})
    if callback_url:
        try:
            check_webhook_url(callback_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--callback-url") from exc
    try:
        job_id = client.submit_query(res, source, params, callback_url=callback_url)
    except (ValueError, FileNotFoundError) as exc:
        raise click.BadParameter(str(exc), param_hint="SOURCE") from exc
    if not wait and not res.settings.embedded:
        click.echo(job_id)
        return
    try:
        result = client.wait_for_job(res, job_id, timeout=timeout)
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_result(result, as_json)
    if result["status"] == "failed":
        sys.exit(1)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def result(job_id: str, as_json: bool) -> None:
    """Print the stored result of a query job."""
    from db import jobs

    with _resources().session() as session:
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
              f"{s['score']:.3f}", "+".join(s["signals"])) for s in match["segments"]],
            ["query", "", "reference", "score", "found by"],
        ).replace("\n", "\n    ").join(["    ", ""]))


@cli.command("jobs")
@click.option("--limit", type=int, default=20, help="How many of the newest jobs.")
@click.option("--status", default=None, help="Only jobs in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_jobs(limit: int, status: str | None, as_json: bool) -> None:
    """List query jobs, newest first."""
    from db import jobs

    with _resources().session() as session:
        rows = jobs.list_jobs(session, limit, status)
        data = [(j.id, j.name, j.status, len(j.matches), j.created_at, j.failure_code) for j in rows]
    if as_json:
        keys = ("job_id", "name", "status", "matches", "created_at", "error")
        click.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in data], indent=2, default=str))
    else:
        click.echo(table([(*row[:4], row[4].strftime("%Y-%m-%d %H:%M:%S"), row[5] or "") for row in data],
                         ["job", "query", "status", "matches", "created", "error"]) if data else "no query jobs")


@cli.command()
@click.option("--video", "video_id", default=None, help="Only the relations of this video (seen from its side).")
@click.option("--limit", type=int, default=200, show_default=True, help="Rows (0 = all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def copies(video_id: str | None, limit: int, as_json: bool) -> None:
    """Copy relations found when videos were indexed (COPYCAT_COPIES__ON_INGEST), newest first."""
    from db.copies import list_copies

    with _resources().session() as session:
        rows = list_copies(session, video_id, limit or None)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no copy relations" + (f" for video {video_id}" if video_id else ""))
        return
    click.echo(table([(r["video_name"], f"{hms(r['video_start'])}-{hms(r['video_end'])}", "~", r["other_name"],
                       f"{hms(r['other_start'])}-{hms(r['other_end'])}", f"{r['score']:.3f}") for r in rows],
                     ["video", "segment", "", "copies", "segment", "score"]))


@cli.command()
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: report-JOB_ID.html).")
def report(job_id: str, output: Path | None) -> None:
    """Write a query job's HTML report: thumbnails side by side, similarity matrices, scores (one file)."""
    from service.report import JobNotFound, render_job_report

    try:
        page = render_job_report(_resources(), job_id)
    except JobNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    target = output or Path(f"report-{job_id}.html")
    target.write_bytes(page)
    click.echo(f"wrote {target} ({len(page) / 1024:.0f} KiB)")


@cli.command()
@click.option("--event-id", default=None, help="Only the attempts of this event.")
@click.option("--event", "event_type", default=None, help="Only this event type (e.g. query.done).")
@click.option("--limit", type=int, default=50, show_default=True, help="Rows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def deliveries(event_id: str | None, event_type: str | None, limit: int, as_json: bool) -> None:
    """Webhook delivery attempts, newest first."""
    from db.webhooks import delivery_json, list_deliveries

    with _resources().session() as session:
        rows = [delivery_json(r) for r in list_deliveries(session, event_id=event_id, event=event_type, limit=limit)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(table([(r["created_at"][:19], r["event"], r["event_id"][:8], _clip(r["url"], 60), r["attempt"],
                       r["status_code"] or "", r["outcome"], _clip(r["error"] or "", 60)) for r in rows],
                     ["time", "event", "id", "url", "attempt", "status", "outcome", "error"])
               if rows else "no webhook deliveries")


@cli.command()
@click.argument("ground_truth", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--top-k", type=int, default=None, help="Candidate videos per query.")
@click.option("--min-score", type=float, default=None, help="Video-level decision threshold.")
@click.option("--crops", "crop_grid", type=click.IntRange(1, 4), default=None, help="As for query.")
@click.option("--skip-hard", is_flag=True, help="Leave out queries flagged hard (picture-in-picture).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def evaluate(ground_truth: Path, top_k: int | None, min_score: float | None, crop_grid: int | None, skip_hard: bool,
             as_json: bool) -> None:
    """Segment precision/recall/F1 (VCSL metric) and video-level precision/recall on a labelled set."""
    from cli.evaluate import run_evaluation

    res = _resources()
    params = res.settings.query_params({"top_k": top_k, "min_score": min_score, "crop_grid": crop_grid})
    progress = Progress(1)
    try:
        report = run_evaluation(res, ground_truth, params, include_hard=not skip_hard,
                                on_step=lambda text: progress.start_file(text))
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    seg, vid = report.segment, report.video
    click.echo(f"segment level (VCSL micro): precision {seg['precision']:.3f}  recall {seg['recall']:.3f}  "
               f"F1 {seg['f1']:.3f}  (FRR {seg['frr']:.3f}, FAR {seg['far']:.3f})")
    click.echo(f"video level: precision {vid['precision']:.3f}  recall {vid['recall']:.3f}")
    click.echo(table([(name, v["pairs"], f"{v['precision']:.3f}", f"{v['recall']:.3f}")
                      for name, v in report.per_transform.items()], ["transform", "pairs", "precision", "recall"]))


@cli.command()
@click.option("--clips", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of videos to index (default: the shared sample clips).")
def demo(clips: Path | None) -> None:
    """Index sample clips, forge an edited copy of one inside another, and find it."""
    import tempfile

    from cli import client
    from cli.demo import default_clips_dir, expected_segment, forge_query, pick_clips
    from db import videos

    res = _resources()
    folder = clips or default_clips_dir()
    if folder is None:
        raise click.ClickException("no sample clips found; pass --clips DIR with a few videos")
    files = [path for path, _ in expand_inputs((folder,))]
    source, host = pick_clips(files)
    click.echo(f"1. indexing {len(files)} videos from {folder} (embedded mode, state in {res.settings.home})")
    progress = Progress(len(files))
    try:
        ids = []
        with client.parallel_ingest(res, len(files)) as throttle:
            for path in files:
                ids.append(client.ingest_file(res, path, f"demo/{path.name}",
                                              progress=progress.frames_of(path.name)))
                throttle()
        client.wait_for_videos(res, ids)
    finally:
        progress.close()
    with res.session() as session:
        rows = [videos.get_video(session, vid) for vid in ids]
        indexed = sum(1 for r in rows if r and r.status == "indexed")
    click.echo(f"   {indexed} indexed, {len(ids) - indexed} failed (see: copycat videos)")
    qs, qe, rs, re_ = expected_segment()
    with tempfile.TemporaryDirectory() as tmp:
        query_path = Path(tmp) / f"edited_copy_of_{source.stem}.mp4"
        forge_query(source, host, query_path)
        click.echo(f"2. forged {query_path.name}: {source.name} {hms(rs)}-{hms(re_)}, cropped and brightened, "
                   f"spliced into {host.name} at {hms(qs)}")
        click.echo(f"   expected: {hms(qs)}-{hms(qe)} ~ {hms(rs)}-{hms(re_)} of {source.name}")
        click.echo("3. querying")
        result = client.wait_for_job(res, client.submit_query(res, str(query_path), res.settings.query_params()))
    _print_result(result, as_json=False)


@cli.command()
def watch() -> None:
    """Queue uploads and query drops as they arrive (bucket notifications, or periodic sweeps)."""
    import signal
    import threading

    from service.watcher import run_watcher

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_watcher(_resources(), stop)


@cli.command()
def flower() -> None:
    """Flower, the Celery dashboard, with the address and basic auth from the settings."""
    import os

    settings = _resources().settings
    cfg = settings.flower
    env = dict(os.environ)
    args = [sys.executable, "-m", "celery", "-A", "tasks.worker", "flower", f"--address={cfg.address}",
            f"--port={cfg.port}"]
    if cfg.basic_auth:
        args.append(f"--basic-auth={cfg.basic_auth}")
    elif cfg.address in {"127.0.0.1", "localhost", "::1"}:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"  # loopback only: the API is for this machine's user
    else:
        raise click.ClickException(f"Flower would listen on {cfg.address} without a password; set "
                                   "COPYCAT_FLOWER__BASIC_AUTH=user:password")
    if not settings.broker.url:
        raise click.ClickException("Flower needs a broker: set COPYCAT_BROKER__URL")
    os.execve(sys.executable, args, env)


@cli.command()
def up() -> None:
    """Start the whole system on this machine without Docker; Ctrl-C stops it."""
    from cli.stack import run_stack
    from service.settings import load_settings

    try:
        run_stack(load_settings(stack_file=False), click.echo)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Queue lengths, workers, and videos and query jobs per state."""
    from sqlalchemy import func, select

    from db import fsck as fsck_db
    from db import videos
    from db.models import QueryJob
    from tasks.app import queue_lengths

    res = _resources()
    cfg = res.settings
    with res.session() as session:
        video_states = videos.count_by_status(session)
        job_states = dict(session.execute(select(QueryJob.status, func.count()).group_by(QueryJob.status)).all())
        last = fsck_db.latest_run(session)
        last_fsck = None if last is None else {"at": last.started_at.isoformat(), "total": last.total,
                                               "counts": last.counts}
    workers: dict[str, list[str]] = {}
    queues: dict[str, int | None] = {}
    if cfg.broker.url:
        replies = res.app.control.inspect(timeout=1.0).active_queues() or {}
        workers = {name: sorted(q["name"] for q in qs) for name, qs in replies.items()}
        queues = queue_lengths(cfg)
    data = {"mode": "embedded" if cfg.embedded else "queue", "queues": queues, "workers": workers,
            "videos": video_states, "query_jobs": job_states, "last_fsck": last_fsck}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"mode: {data['mode']}")
    if cfg.broker.url:
        click.echo(table([(q, n if n is not None else "?") for q, n in queues.items()], ["queue", "waiting"]))
        click.echo(table([(w, ", ".join(qs)) for w, qs in workers.items()], ["worker", "queues"])
                   if workers else "no workers answered")
    click.echo(table(sorted(video_states.items()), ["video state", "count"]) if video_states else "no videos")
    click.echo(table(sorted(job_states.items()), ["job state", "count"]) if job_states else "no query jobs")
    click.echo("last fsck: never" if last_fsck is None else
               f"last fsck: {last_fsck['at']}, {last_fsck['total']} inconsistencies")


@cli.command()
@click.option("--repair", is_flag=True, help="Delete orphans, queue again what is missing, then check again.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def fsck(repair: bool, as_json: bool) -> None:
    """Compare database rows, Milvus vectors, every signal's objects and the uploads bucket.

    Exit code 0 when consistent, 1 when not (after --repair: whether the second check found anything).
    """
    from service.fsck import check
    from workers.consistency import KINDS

    result = check(_resources(), repair=repair)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        counts = result.findings.counts()
        click.echo(table([(kind, counts[kind], KINDS[kind]) for kind in KINDS], ["inconsistency", "count", "repair"]))
        if result.repaired:
            click.echo("repaired: " + ", ".join(f"{kind} {n}" for kind, n in result.repaired.items()))
        click.echo("consistent" if result.consistent else
                   f"{(result.after or result.findings).total} inconsistencies"
                   + ("" if repair else "; `copycat fsck --repair` fixes them"))
    sys.exit(0 if result.consistent else 1)


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    _resources().engine  # noqa: B018  (building the engine migrates the schema)
    click.echo("database schema is up to date")


@cli.command()
@click.option("--markdown", is_flag=True, help="Print a Markdown table (as in docs/configuration.md).")
def config(markdown: bool) -> None:
    """Every setting: environment variable, default and meaning."""
    from service.settings import describe_settings

    rows = describe_settings()
    if markdown:
        click.echo("| variable | default | meaning |\n|---|---|---|")
        for name, default, text in rows:
            click.echo(f"| `{name}` | {f'`{default}`' if default else ''} | {text} |")
        return
    click.echo(table(rows, ["variable", "default", "meaning"]))


cli.add_command(weights)
cli.add_command(dedup)
cli.add_command(api)
cli.add_command(keys)


def main() -> None:
    try:
        cli(obj={})
    except CopycatError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
