"""The backstop that tears a stack down when ``copycat up`` dies in a way it cannot clean up after.

``up`` starts this process first, in a session of its own, and writes the process group of every service it
starts to the guardian's stdin, one per line. Signals to ``up`` (Ctrl-C, a supervisor's SIGTERM, a closed
terminal) are handled by ``up`` itself; the guardian ignores them. When its stdin reaches end of file, ``up``
is gone (a clean exit closes the pipe after stopping everything; ``kill -9`` closes it too), so every group
still alive gets SIGTERM, then SIGKILL after a grace period. Nothing the stack started outlives it.

Run as ``python -m stack.guardian [--grace S]``; it imports nothing else of Copycat.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tear_down(groups: set[int], grace_s: float) -> None:
    """SIGTERM every group that is still alive, then SIGKILL what remains after ``grace_s``."""
    live = {g for g in groups if _alive(g)}
    for pgid in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while live and time.monotonic() < deadline:
        time.sleep(0.2)
        live = {g for g in live if _alive(g)}
    for pgid in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        word = line.strip()
        if word.startswith("-"):  # a group ``up`` stopped itself: nothing to do for it any more
            groups.discard(int(word[1:]))
        elif word:
            groups.add(int(word))
    tear_down(groups, args.grace)


if __name__ == "__main__":
    main()
