"""Thread limits for BLAS and OpenMP that concurrent callers may overlap.

threadpoolctl's limits are process-wide, and each ``with threadpool_limits(...)`` restores, on
exit, the limits it found on entry. Two such blocks in different threads (two app requests: an
NFC scan and a t-SNE, say) that exit in the order they entered therefore leave the process at
the inner block's limit for good. :func:`limited_threads` keeps one count for the process: every
caller's limits apply while it is inside, and the limits from before the first caller come back
when the last one leaves.
"""

import contextlib
import threading

_lock = threading.Lock()
_holders = 0
_first = None  # the first holder's limiter: it remembers the limits from before anyone


@contextlib.contextmanager
def limited_threads(limits, user_api=None):
    """Limit the thread pools of ``user_api`` ("blas", "openmp", or None for both) to ``limits``
    threads while inside; see the module docstring for overlapping callers."""
    global _holders, _first
    from threadpoolctl import ThreadpoolController

    with _lock:
        limiter = ThreadpoolController().limit(limits=limits, user_api=user_api)
        if _holders == 0:
            _first = limiter
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _first.restore_original_limits()
                _first = None
