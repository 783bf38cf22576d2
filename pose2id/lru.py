"""A least-recently-used cache bounded in bytes, safe to share between threads.

:class:`pose2id.experiments.Benchmark` keeps the results of each parameter set in one, so a
server that many visitors ask for many parameter sets holds only the most recently used ones
(the ones a visitor is looking at stay) instead of all of them. Several benchmarks can share one
bound (the app keeps one for the whole server, whatever the number of galleries) through
:meth:`ByteLRU.scope`.
"""

import os
import sys
import threading
from collections import OrderedDict

import numpy as np

DEFAULT_MAX_BYTES = 64 * 2**20
ENV_MAX_MB = "POSE2ID_RESULT_CACHE_MB"


def default_max_bytes():
    """The bound from ``$POSE2ID_RESULT_CACHE_MB`` (megabytes), else 64 MiB.

    Raises
    ------
    ValueError naming the variable when it is not a positive number.
    """
    text = os.environ.get(ENV_MAX_MB, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"environment variable {ENV_MAX_MB}={text!r} must be a positive number of megabytes")
    return int(value * 2**20)


def nbytes(value, _seen=None):
    """Bytes held by ``value``: numpy arrays by their buffers, containers and objects by what
    they hold (each object counted once), anything else by ``sys.getsizeof``."""
    seen = set() if _seen is None else _seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + (nbytes(value.base, seen) if isinstance(value.base, np.ndarray) else 0)
    if isinstance(value, (str, bytes, int, float, bool, type(None), np.generic)):
        return sys.getsizeof(value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(nbytes(k, seen) + nbytes(v, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sys.getsizeof(value) + sum(nbytes(v, seen) for v in value)
    fields = getattr(value, "__dict__", None)
    if fields is None and hasattr(value, "__slots__"):
        fields = {name: getattr(value, name, None) for name in value.__slots__}
    return sys.getsizeof(value) + (nbytes(fields, seen) if fields else 0)


class ByteLRU:
    """A mapping that evicts its least recently used entries once they hold more than
    ``max_bytes`` (None: ``default_max_bytes()``).

    Reading an entry (``cache[key]``, ``get``) makes it the most recently used. The entry a
    thread last stored, read or found with ``in`` is never evicted by another thread's store,
    so the usual ``if key not in cache: cache[key] = make(); return cache[key]`` cannot lose it
    in between, whichever branch it takes; a single entry larger than the bound is kept until
    the next store.
    """

    def __init__(self, max_bytes=None):
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        if self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes!r}")
        self._items = OrderedDict()  # key -> (value, bytes)
        self._bytes = 0
        self._pinned = {}  # thread id -> the key it last stored, read or found
        self._lock = threading.Lock()

    @property
    def bytes(self):
        """Bytes held now."""
        return self._bytes

    def __len__(self):
        return len(self._items)

    def __contains__(self, key):
        with self._lock:
            if key not in self._items:
                return False
            self._pinned[threading.get_ident()] = key
            return True

    def __iter__(self):
        with self._lock:
            return iter(list(self._items))

    def __getitem__(self, key):
        with self._lock:
            value, _ = self._items[key]
            self._items.move_to_end(key)
            self._pinned[threading.get_ident()] = key
            return value

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key, value):
        size = nbytes(value)
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            self._items[key] = (value, size)
            self._bytes += size
            self._pinned[threading.get_ident()] = key
            pinned = set(self._pinned.values())
            for old in list(self._items):
                if self._bytes <= self.max_bytes:
                    break
                if old in pinned:
                    continue
                self._bytes -= self._items.pop(old)[1]
            if len(self._pinned) > 256:  # threads that have ended
                alive = {thread.ident for thread in threading.enumerate()}
                self._pinned = {t: k for t, k in self._pinned.items() if t in alive}

    def __delitem__(self, key):
        with self._lock:
            self._bytes -= self._items.pop(key)[1]

    def clear(self):
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def scope(self):
        """A :class:`CacheScope`: a view of this cache whose keys cannot meet another scope's, so
        several owners share this one bound; its :meth:`CacheScope.clear` drops only its own entries."""
        return CacheScope(self)

    def _drop_where(self, drop):
        """Remove every entry whose key ``drop(key)`` is true."""
        with self._lock:
            for key in [key for key in self._items if drop(key)]:
                self._bytes -= self._items.pop(key)[1]


class CacheScope:
    """Entries of one owner within a shared :class:`ByteLRU` (see :meth:`ByteLRU.scope`): the same
    mapping operations, each key stored as ``(scope, key)``, evicted by the shared bound."""

    def __init__(self, cache):
        self.cache = cache

    @property
    def max_bytes(self):
        return self.cache.max_bytes

    @property
    def bytes(self):
        """Bytes this scope's entries hold now."""
        with self.cache._lock:
            return sum(size for key, (_, size) in self.cache._items.items() if self._owns(key))

    def _owns(self, key):
        return isinstance(key, tuple) and len(key) == 2 and key[0] is self

    def __len__(self):
        return sum(1 for key in self.cache if self._owns(key))

    def __contains__(self, key):
        return (self, key) in self.cache

    def __getitem__(self, key):
        return self.cache[(self, key)]

    def get(self, key, default=None):
        return self.cache.get((self, key), default)

    def __setitem__(self, key, value):
        self.cache[(self, key)] = value

    def __delitem__(self, key):
        del self.cache[(self, key)]

    def clear(self):
        """Drop this scope's entries (the other scopes' stay)."""
        self.cache._drop_where(self._owns)
