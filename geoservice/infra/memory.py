"""Handing the C heap's freed pages back to the system after a one-off build.

An index build allocates and frees a few hundred megabytes of numpy temporaries. glibc keeps what is
freed in its arenas for the next allocation (its mmap threshold rises as large blocks are freed, so
later large arrays come from the heap too), and a worker that built its own index kept about 90 MB
on the prefecture it no longer used, for the rest of its life (bench/RESULTS.md, "The fan-out's
reads and writes per batch …", issue 23).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the system (glibc's ``malloc_trim``); nothing where there is none."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; musl and macOS have no such call
    except (OSError, AttributeError):
        return None
