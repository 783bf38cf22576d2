"""Keep a long-running server's memory from staying at its peak, without paying for it on every request.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), so after
a few concurrent requests with large temporary arrays (re-ranking, distance matrices), later large
arrays come from the heap, and the heap keeps the pages once they are freed. With the threshold
fixed at 16 MiB, arrays past it get their own mapping and go back to the system when freed; the
heap gives back free memory past 16 MiB at its top (its trim threshold, which a fixed mmap
threshold would otherwise leave at 128 KiB), and there are at most two heaps (arenas).

A lower threshold keeps less, but costs CPU on every request: each array past it is a fresh
mapping whose pages the kernel must fault in and zero. With a 1 MiB threshold, a redraw of the
Feature space tab spent 0.06 of its 0.16 CPU seconds in the kernel.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 16 << 20
TRIM_THRESHOLD = 16 << 20
ARENA_MAX = 2


def return_freed_memory():
    """Fix glibc's mmap and trim thresholds at 16 MiB and its arenas at 2 (see the module docstring).
    Returns True where this took effect, and False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return (bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            and bool(mallopt(M_ARENA_MAX, ARENA_MAX)))


def release_freed_memory():
    """Hand the heap's free pages back to the system now (glibc's ``malloc_trim(0)``), e.g. after
    a request that allocated and freed much. Returns True where something was released, and
    False where nothing was or the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(trim(0))
