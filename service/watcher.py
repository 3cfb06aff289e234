"""The watcher process (``copycat watch``): uploads and query drops start their jobs by themselves.

At start it sweeps both buckets (anything uploaded while it was down is queued). Then, on MinIO, it
listens to bucket notifications, one thread per bucket, reconnecting with backoff and sweeping again
after every reconnect, since events sent while disconnected are lost. On servers without notifications
(SeaweedFS, AWS without a queue) it sweeps every ``COPYCAT_WATCH__POLL_INTERVAL_S`` seconds instead.
"""

from __future__ import annotations

import logging
import threading
import time

from service.operations import handle_event, sweep
from service.resources import Resources
from workers.errors import ConfigError
from workers.stores.events import NotificationsUnsupported

log = logging.getLogger(__name__)


def run_watcher(res: Resources, stop: threading.Event) -> None:
    """Watch the buckets of ``res`` until ``stop`` is set."""
    cfg = res.settings
    _sweep_safely(res)
    if cfg.watch.mode != "poll":
        buckets = (cfg.s3.uploads_bucket, cfg.s3.queries_bucket)
        unsupported: list[str] = []

        def listener(bucket: str) -> threading.Thread:
            thread = threading.Thread(target=_listen_forever, args=(res, bucket, stop, unsupported),
                                      name=f"listen-{bucket}", daemon=True)
            thread.start()
            return thread

        threads = {bucket: listener(bucket) for bucket in buckets}
        deadline = time.monotonic() + 5.0  # a server without notifications refuses at once
        for thread in threads.values():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if not unsupported:
            log.info("watching s3 bucket notifications of %s", ", ".join(buckets))
            while not stop.wait(5.0):
                for bucket, thread in threads.items():
                    if not thread.is_alive() and not stop.is_set():
                        log.error("listener of %s stopped; restarting it after a sweep", bucket)
                        _sweep_safely(res)
                        threads[bucket] = listener(bucket)
            return
        if cfg.watch.mode == "listen":
            raise ConfigError("COPYCAT_WATCH__MODE=listen, but the S3 server sends no bucket notifications "
                              "(only MinIO does); use poll or auto")
        log.info("the S3 server sends no notifications; sweeping every %.0f s", cfg.watch.poll_interval_s)
    while not stop.wait(cfg.watch.poll_interval_s):
        _sweep_safely(res)


def _listen_forever(res: Resources, bucket: str, stop: threading.Event, unsupported: list[str]) -> None:
    delay = 1.0
    limit = res.settings.watch.reconnect_max_s
    while not stop.is_set():
        try:
            for event in res.objects.listen(bucket):
                delay = 1.0
                try:
                    handle_event(res, event)
                except Exception as exc:  # one bad event (or a broker hiccup) must not end the listener
                    log.warning("event for s3://%s/%s not handled (%s: %s); the next sweep will catch it",
                                event.bucket, event.key, type(exc).__name__, exc)
        except NotificationsUnsupported:
            unsupported.append(bucket)
            return
        except Exception as exc:
            log.warning("notifications of %s interrupted (%s: %s); reconnecting in %.0f s", bucket,
                        type(exc).__name__, exc, delay)
        if stop.wait(delay):
            return
        delay = min(delay * 2, limit)
        _sweep_safely(res)  # events sent while disconnected are gone


def _sweep_safely(res: Resources) -> None:
    try:
        sweep(res)
    except Exception as exc:  # the next interval tries again; the watcher itself must keep running
        log.warning("sweep failed (%s: %s); retrying at the next interval", type(exc).__name__, exc)
