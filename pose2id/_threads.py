"""Thread limits for BLAS and OpenMP that concurrent callers may overlap.

threadpoolctl's limits are process-wide, and each ``with threadpool_limits(...)`` restores, on
exit, the limits it found on entry. Two such blocks in different threads (two app requests: an
NFC scan and a t-SNE, say) that exit in the order they entered therefore leave the process at
the inner block's limit for good. :func:`limited_threads` keeps one count for the process: every
caller's limits apply while it is inside, and each library's limit from before the first caller
comes back when the last one leaves.

Every count set here is read back and set again if it did not take: with the OpenBLAS that numpy
ships (0.3.31), a count set from one worker thread shortly after another worker thread set one
is now and then dropped: it read back the old count in 1 to 8 of every 30 runs of
``tests/test_threads.py``'s overlapping scenario before this check.
"""

import contextlib
import threading
import time

_lock = threading.Lock()
_holders = 0
_originals = {}  # library path -> (its controller, its thread count before the first holder)
_ATTEMPTS = 50  # reads back and sets again at most this many times, a millisecond apart


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


@contextlib.contextmanager
def limited_threads(limits, user_api=None):
    """Limit the thread pools of ``user_api`` ("blas", "openmp", or None for both) to ``limits``
    (an int) threads while inside; see the module docstring for overlapping callers."""
    global _holders
    from threadpoolctl import ThreadpoolController

    with _lock:
        controller = ThreadpoolController()
        if user_api is not None:
            controller = controller.select(user_api=user_api)
        for library in controller.lib_controllers:
            _originals.setdefault(library.filepath, (library, library.get_num_threads()))
        _set_counts([(library, limits) for library in controller.lib_controllers])
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _set_counts(list(_originals.values()))
                _originals.clear()
