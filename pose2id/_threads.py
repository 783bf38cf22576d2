"""Thread limits for BLAS and OpenMP that concurrent callers may overlap.

threadpoolctl's limits are process-wide, and each ``with threadpool_limits(...)`` restores, on
exit, the limits it found on entry. Two such blocks in different threads (two app requests: an
NFC scan and a t-SNE, say) that exit in the order they entered therefore leave the process at
the inner block's limit for good. :func:`limited_threads` keeps one count for the process: every
caller's limits apply while it is inside, and each library's limit from before the first caller
comes back when the last one leaves.

A server computes many requests at once, and OpenBLAS's thread count is one for the whole
process: a limit that one request sets changes the last bits of every other request's matrix
products meanwhile (a product's rounding depends on how many threads share it), and with exact
ties that changes rankings. :func:`fix_threads` therefore sets a count once for the process
(the app does at start-up); from then on :func:`limited_threads` leaves that library's count as
it is, so every request computes with the same count whatever else is running.

Every count set here is read back and set again if it did not take: with the OpenBLAS that numpy
ships (0.3.31), a count set from one worker thread shortly after another worker thread set one
is now and then dropped: it read back the old count in 1 to 8 of every 30 runs of
``tests/test_threads.py``'s overlapping scenario before this check.
"""

import contextlib
import os
import threading
import time

_lock = threading.Lock()
_holders = 0
_originals = {}  # library path -> (its controller, its thread count before the first holder)
_fixed = {}  # user_api -> the count fix_threads set for the whole process
_ATTEMPTS = 50  # reads back and sets again at most this many times, a millisecond apart


def available_cores():
    """The number of cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _set_counts(wanted):
    """Set each ``(library controller, count)`` in ``wanted``; set again the ones that read back
    otherwise. A library that never reports the count (one that caps it) is left as it reports."""
    pending = list(wanted)
    for _ in range(_ATTEMPTS):
        for library, count in pending:
            library.set_num_threads(count)
        pending = [(library, count) for library, count in pending if library.get_num_threads() != count]
        if not pending:
            return
        time.sleep(0.001)


def _libraries(user_api):
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    if user_api is not None:
        controller = controller.select(user_api=user_api)
    return controller.lib_controllers


def fix_threads(count, user_api="blas"):
    """Set the thread pools of ``user_api`` ("blas" or "openmp") to ``count`` threads for the
    rest of the process: :func:`limited_threads` no longer changes them. Returns ``count``.

    Raises
    ------
    ValueError when ``count`` is not a positive whole number or ``user_api`` is unknown.
    """
    if user_api not in ("blas", "openmp"):
        raise ValueError(f"user_api must be 'blas' or 'openmp', got {user_api!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive whole number, got {count!r}")
    with _lock:
        _set_counts([(library, count) for library in _libraries(user_api)])
        _fixed[user_api] = count
    return count


def fixed_threads(user_api="blas"):
    """The count :func:`fix_threads` set for ``user_api``, or None."""
    return _fixed.get(user_api)


def unfix_threads(user_api="blas"):
    """Undo :func:`fix_threads` for ``user_api`` (the count stays as it is; limits apply again)."""
    with _lock:
        _fixed.pop(user_api, None)


@contextlib.contextmanager
def limited_threads(limits, user_api=None):
    """Limit the thread pools of ``user_api`` ("blas", "openmp", or None for both) to ``limits``
    (an int) threads while inside; see the module docstring for overlapping callers. The pools
    of an API whose count :func:`fix_threads` set are left as they are."""
    global _holders

    with _lock:
        controller = [library for library in _libraries(user_api) if library.user_api not in _fixed]
        for library in controller:
            _originals.setdefault(library.filepath, (library, library.get_num_threads()))
        _set_counts([(library, limits) for library in controller])
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _set_counts(list(_originals.values()))
                _originals.clear()
