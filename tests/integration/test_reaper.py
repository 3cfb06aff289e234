"""A test session killed with SIGKILL leaves nothing it started running (``tests/reaper.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("orphan_probe.py")


def children() -> dict[int, list[int]]:
    """Each live process's children (from /proc/PID/stat)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed process waits, as a zombie, for whoever adopted it to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def test_a_session_killed_with_sigkill_leaves_no_service_behind(tmp_path: Path) -> None:
    """A pytest that started SeaweedFS (and the netns forwarder with a server inside) is killed with -9: its
    reaper stops every process it started, grandchildren included, within its grace period."""
    ready = tmp_path / "ready"
    log = tmp_path / "inner.log"
    with log.open("wb") as out:
        inner = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--basetemp", str(tmp_path / "inner"),
             "-o", "timeout=120", str(PROBE)],
            cwd=ROOT, env={**os.environ, "ORPHAN_PROBE_READY": str(ready)}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        wait_until(lambda: ready.exists() or inner.poll() is not None, timeout=90, what="the inner session's services")
        assert inner.poll() is None, log.read_text()[-3000:]
        started = descendants(inner.pid)
        names = {pid: command(pid) for pid in started}
        assert any("weed" in name for name in names.values()), names
        if ready.read_text() == "netns":
            assert any(name.startswith("sleep 600") for name in names.values()), names
    finally:
        os.kill(inner.pid, signal.SIGKILL)
        inner.wait()
    wait_until(lambda: not any(running(pid) for pid in started), timeout=30, what="every process of the session gone")
