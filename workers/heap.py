"""The C heap of a long-running process: large buffers go back to the system when freed.

glibc serves an allocation above its mmap threshold with its own mapping, unmapped on free, but raises
that threshold to the size of any such block freed (up to 32 MiB), after which the decoder's frame
chunks (~10 MB each) come from per-thread heap arenas and stay there, fragmented. Range decoding
(``workers.decode.plan_ranges``) reads chunks on a fresh thread per range: decoding a 2-hour video
peaked at 153 MiB against 76 MiB with one arena. A fixed threshold keeps every such buffer a mapping of
its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number (malloc.h)."""
MMAP_THRESHOLD_BYTES = 1 << 20
"""Allocations of at least this size get a mapping of their own (glibc's default starts at 128 KiB)."""


@functools.cache
def release_large_buffers() -> bool:
    """Fix glibc's mmap threshold for this process (once; a no-op elsewhere). True when it was set."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.debug("no glibc mallopt here: the heap keeps its default thresholds")
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
