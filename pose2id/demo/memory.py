"""Keep a long-running server's memory from staying at its peak.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), so after
a few concurrent requests with large temporary arrays (re-ranking, distance matrices), later large
arrays come from the heap, and the heap keeps the pages once they are freed. With a fixed threshold,
every array of 1 MiB or more gets its own mapping and goes back to the system when it is freed.
"""

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers from glibc's malloc.h
M_ARENA_MAX = -8
MMAP_THRESHOLD = 1 << 20
ARENA_MAX = 4


def return_freed_memory():
    """Fix glibc's mmap threshold at 1 MiB and its arenas at 4 (see the module docstring).
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
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENA_MAX))


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
