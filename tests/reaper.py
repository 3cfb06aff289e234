"""The test session's backstop: when pytest ends, however it ends, nothing it started is left running.

``tests/conftest.py`` starts this script first thing in a session, in a session of its own (a signal to
pytest's process group, a CI timeout's ``kill -9``, a closed terminal: none of them reaches it), and puts a
random token into pytest's environment (``REAPER_VARIABLE``). Every process the tests start inherits that
environment, and so does everything those processes start in turn: SeaweedFS, the Milvus servers and the
netns forwarder with the server inside it, Celery workers and their pool children, ``copycat up`` and its
stack. Each lives in a process group of its own, and a killed parent's children are re-parented to init, so
neither the process tree nor a process group finds them once pytest is gone; the token in
``/proc/PID/environ`` does.

This process waits for pytest to exit (a pidfd), then sends SIGTERM to every process that carries the token,
and SIGKILL to whatever still does after ``--grace`` seconds (scanning again, for children started meanwhile).
After a clean session there is nothing left to find; after ``kill -9`` everything is found.

Stdlib only, run by path: ``python tests/reaper.py --pid PYTEST_PID --token TOKEN [--grace S]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import time
from pathlib import Path

REAPER_VARIABLE = "TEST_SESSION_REAPER_TOKEN"  # no COPYCAT_ prefix: tests and `up` clear those


def carriers(token: str) -> list[int]:
    """Every live process (but this one) whose environment holds ``REAPER_VARIABLE=token``."""
    needle = f"{REAPER_VARIABLE}={token}".encode() + b"\0"
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes() + b"\0"
        except OSError:  # gone, a zombie, or not ours to read
            continue
        if b"\0" + needle in b"\0" + environ:
            found.append(int(entry.name))
    return found


def wait_for_exit(pid: int) -> None:
    """Block until process ``pid`` has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd (kernel < 5.3): poll
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)
    try:
        select.select([pidfd], [], [])  # readable once the process has exited
    finally:
        os.close(pidfd)


def reap(token: str, grace_s: float) -> list[int]:
    """SIGTERM every carrier of ``token``, SIGKILL what is left after ``grace_s``; the pids signalled."""
    signalled: set[int] = set()
    deadline = time.monotonic() + grace_s
    while (live := carriers(token)) and time.monotonic() < deadline:
        for pid in set(live) - signalled:  # newcomers too (a supervisor restarting what it lost)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
            signalled.add(pid)
        time.sleep(0.2)
    for _ in range(20):  # a killed parent's children may show up once more between two scans
        live = carriers(token)
        if not live:
            break
        for pid in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            signalled.add(pid)
        time.sleep(0.1)
    return sorted(signalled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="the pytest process to outlive")
    parser.add_argument("--token", required=True, help=f"the value of {REAPER_VARIABLE} to look for")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    wait_for_exit(args.pid)
    stopped = reap(args.token, args.grace)
    if stopped:
        with contextlib.suppress(OSError):
            print(f"tests/reaper.py: pytest (pid {args.pid}) left {len(stopped)} processes running; stopped"
                  f" pids {stopped}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
