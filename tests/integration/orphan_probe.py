"""Run only by ``test_reaper.py``, in a pytest of its own (the file name keeps it out of collection): starts
the session's SeaweedFS and a server behind the netns forwarder, says so, and waits to be killed."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from stack.services import ManagedProcess, free_port, private_network_works

NETNS = Path(__file__).resolve().parents[2] / "stack" / "netns.py"


def test_start_services_and_wait_to_be_killed(seaweed: str, tmp_path: Path) -> None:
    forwarded = None
    if private_network_works():  # the forwarder with a server of its own inside, as Milvus standalone runs
        forwarded = ManagedProcess("sleeper", [sys.executable, str(NETNS), "--host-port", str(free_port()),
                                               "--port", "1", "--", "sleep", "600"], tmp_path / "sleeper.log")
        forwarded.start()
    ready = Path(os.environ["ORPHAN_PROBE_READY"])
    ready.write_text("netns" if forwarded else "")
    time.sleep(600)
