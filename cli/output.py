"""Terminal output: tables, times and a progress line that only draws on a terminal."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO


def hms(seconds: float) -> str:
    """00:02:21 for 141.0 (whole seconds; segment ends are exclusive)."""
    total = int(round(seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class Progress:
    """One redrawn status line on a terminal; silent in pipes and logs (the final summary says it all)."""

    def __init__(self, total_files: int, stream: TextIO = sys.stderr) -> None:
        self.total_files = total_files
        self.stream = stream
        self.enabled = stream.isatty()
        self.files_done = 0
        self.frames = 0
        self.started = time.monotonic()
        self._name = ""
        self._file_frames = (0, 0)
        self._lock = threading.Lock()

    def start_file(self, name: str) -> None:
        self._name = name
        self._file_frames = (0, 0)
        self._draw()

    def frames_of(self, name: str) -> Callable[[int, int], None]:
        """The progress callback of one file; several files may be decoding at once (parallel ingest)."""
        last = [0]

        def report(done: int, expected: int) -> None:
            with self._lock:
                self.frames += done - last[0]
                if done >= expected > last[0]:
                    self.files_done += 1
                last[0] = done
                self._name, self._file_frames = name, (done, expected)
                self._draw()

        return report

    def set_files_done(self, done: int) -> None:
        self.files_done = done
        self._name = f"{done} of {self.total_files} finished"
        self._draw()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _draw(self) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        done, expected = self._file_frames
        bar_width = 20
        filled = int(bar_width * done / expected) if expected else 0
        line = (f"[{self.files_done}/{self.total_files}] {self._name[:40]:40s} "
                f"{'#' * filled}{'.' * (bar_width - filled)} {done}/{expected} frames  "
                f"{self.frames / elapsed:5.1f} frames/s")
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
