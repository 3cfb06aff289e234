"""Keeping a stack's processes alive, and leaving none behind.

``copycat up`` hands each process it starts to a ``Supervisor``. A process that dies is restarted after a
backoff that doubles with every quick death (capped) and resets once the process has stayed up for a while;
each death is reported with its exit status and the end of its log, so an operator sees why. Before a
restart, whatever is left of the dead process's group (a Celery worker's pool children) is killed, so an
orphaned child cannot go on working a task the new process will be given again.

Every process group is also registered with a guardian process (``stack/guardian.py``) that kills them all
when ``up`` disappears without stopping them (``kill -9``, a crash). So the stack leaves nothing behind
however ``up`` ends.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stack.services import ManagedProcess


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff between restarts: ``first_s``, doubled per quick death up to ``max_s``; a process that ran for
    ``stable_s`` starts again from ``first_s``."""

    first_s: float = 1.0
    max_s: float = 60.0
    stable_s: float = 60.0


@dataclass
class _Supervised:
    process: ManagedProcess
    started_at: float = 0.0
    backoff_s: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Starts, watches, restarts and stops a set of ``ManagedProcess``es (see the module docstring)."""

    policy: RestartPolicy
    echo: Callable[[str], None]
    grace_s: float = 15.0
    _members: list[_Supervised] = field(default_factory=list)
    _guardian: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self._guardian = subprocess.Popen([sys.executable, "-m", "stack.guardian", "--grace", str(self.grace_s)],
                                          stdin=subprocess.PIPE, text=True, start_new_session=True)

    def start(self, process: ManagedProcess) -> None:
        """Start ``process`` and keep it running from now on."""
        member = _Supervised(process, backoff_s=self.policy.first_s)
        self._launch(member)
        self._members.append(member)

    def check(self) -> None:
        """One round of supervision: notice deaths, schedule and perform restarts (call it every second)."""
        now = time.monotonic()
        for member in self._members:
            process = member.process
            if member.restart_at is None and not process.running:
                uptime = now - member.started_at
                if uptime >= self.policy.stable_s:
                    member.backoff_s = self.policy.first_s
                member.restart_at = now + member.backoff_s
                self.echo(f"{process.name} exited ({_exit_status(process)}) after {uptime:.0f} s; restarting in"
                          f" {member.backoff_s:.0f} s. Last log lines ({process.log_path}):\n{process.log_tail(10)}")
                member.backoff_s = min(member.backoff_s * 2, self.policy.max_s)
            elif member.restart_at is not None and now >= member.restart_at:
                self._retire(process)
                self._launch(member)
                member.restarts += 1
                self.echo(f"{process.name} restarted (pid {process.process.pid}, restart {member.restarts})")

    def stop(self, names_last: tuple[str, ...] = ()) -> None:
        """Stop everything: first all processes not named in ``names_last`` together, then those, in order
        (servers the others use), each group SIGKILLed after the grace period; then release the guardian."""
        first = [m.process for m in self._members if m.process.name not in names_last]
        last = [m.process for m in reversed(self._members) if m.process.name in names_last]
        for batch in ([*first], *([p] for p in last)):
            for process in batch:
                process.signal_group()
            for process in batch:
                process.stop(self.grace_s)
                self._tell(f"-{process.process.pid}")
        self._release_guardian()

    def kill(self) -> None:
        """Kill every group at once (a second Ctrl-C while stopping)."""
        for member in self._members:
            member.process.kill_group()

    def _launch(self, member: _Supervised) -> None:
        member.process.start()
        member.started_at = time.monotonic()
        member.restart_at = None
        self._tell(str(member.process.process.pid))

    def _retire(self, process: ManagedProcess) -> None:
        process.stop(self.grace_s)  # kills what is left of the dead process's group
        self._tell(f"-{process.process.pid}")

    def _tell(self, line: str) -> None:
        if self._guardian is None or self._guardian.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._guardian.stdin.write(line + "\n")
            self._guardian.stdin.flush()

    def _release_guardian(self) -> None:
        if self._guardian is None:
            return
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._guardian.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._guardian.wait(self.grace_s + 5)
        self._guardian = None


def _exit_status(process: ManagedProcess) -> str:
    code = process.process.returncode if process.process else None
    if code is None:
        return "not started"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
