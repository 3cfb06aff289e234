"""What a running ``copycat up`` tells every other command that uses the same ``COPYCAT_HOME``.

``up`` writes the stack's connection settings (broker and its namespace, S3 endpoint and keys, Milvus URI,
database) to ``$COPYCAT_HOME/stack.env`` and its pid to ``stack.pid``. ``service.settings.load_settings`` reads
the env file beneath the environment (a variable that is set still wins), so ``copycat query`` in a second
terminal talks to the stack instead of searching an empty embedded index. When the file is there but its
stack is not running, commands refuse (``StackFile.stopped``) rather than answer from the wrong place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_NAME = "stack.env"
PID_NAME = "stack.pid"


@dataclass(frozen=True)
class StackFile:
    home: Path

    @property
    def env_path(self) -> Path:
        return self.home / ENV_NAME

    @property
    def pid_path(self) -> Path:
        return self.home / PID_NAME

    def write(self, values: dict[str, str], pid: int) -> None:
        """Record the stack's settings (owner-only: it holds keys) and claim the home for ``pid``."""
        self.home.mkdir(parents=True, exist_ok=True)
        lines = [f"{name}={_quoted(value)}" for name, value in sorted(values.items())]
        _write_private(self.env_path, "# written by `copycat up`; every copycat command with this home reads it\n"
                       + "\n".join(lines) + "\n")
        _write_private(self.pid_path, f"{pid}\n")

    def release(self, pid: int) -> None:
        """The stack stopped: the home is free again (its env file stays, for the next ``up``)."""
        if self.owner() == pid:
            self.pid_path.unlink(missing_ok=True)

    def owner(self) -> int | None:
        """Pid of the live ``up`` that owns this home, if any."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def present(self) -> bool:
        return self.env_path.exists()

    def stopped(self) -> bool:
        """A stack has owned this home but is not running now."""
        return self.present() and self.owner() is None

    def values(self) -> dict[str, str]:
        if not self.present():
            return {}
        pairs = (line.split("=", 1) for line in self.env_path.read_text().splitlines()
                 if "=" in line and not line.startswith("#"))
        return {name: _unquoted(value) for name, value in pairs}


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "") + "'"


def _unquoted(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)
