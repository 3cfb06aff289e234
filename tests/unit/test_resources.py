"""Per-process resources shared by threads (parallel videos), and the limits an ingest call runs under."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from service.resources import Resources, shared_property
from service.settings import Settings
from tasks.app import transport_options


class Slow:
    built = 0

    def __init__(self) -> None:
        self._build_lock = threading.RLock()

    @shared_property
    def model(self) -> object:
        Slow.built += 1
        time.sleep(0.2)  # long enough for every thread to ask while the first one builds
        return object()


def test_threads_asking_at_once_build_a_resource_once() -> None:
    holder, seen = Slow(), []
    threads = [threading.Thread(target=lambda: seen.append(holder.model)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Slow.built == 1 and len({id(x) for x in seen}) == 1


def test_an_ingest_call_has_room_for_the_longest_admitted_decode(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, broker={"task_time_limit_s": 3600},
                        decode={"timeout_s": 1800, "timeout_per_s": 0.5, "max_duration_s": 6 * 3600})
    assert settings.ingest_time_limit_s == 3600 + 3 * 3600
    assert transport_options(settings)["visibility_timeout"] == settings.ingest_time_limit_s + 600
    assert Settings(home=tmp_path, decode={"timeout_per_s": 0, "timeout_s": 1800}).ingest_time_limit_s == 3600 + 1800


def test_a_process_decodes_every_video_with_one_share_of_its_cores(tmp_path: Path) -> None:
    """Parallel videos of one process divide its cores (``DecodeOptions.cores``); after a fork the child
    gets a share of its own, never the parent's count of videos decoding."""
    res = Resources(Settings(home=tmp_path, decode={"hwaccel": "none"}))
    options = res.decode_options
    assert options is res.decode_options and options.cores is not None
    assert replace(options, cores=None) == res.settings.decode_options()
    res.after_fork()
    assert res.decode_options.cores is not options.cores
