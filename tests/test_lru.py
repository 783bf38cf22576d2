"""The byte-bounded LRU that holds a Benchmark's results per parameter set."""

import threading
from pathlib import Path

import numpy as np
import pytest

from pose2id.lru import ByteLRU, default_max_bytes, nbytes

MB = 2**20


def test_least_recently_used_entries_go_once_the_bound_is_passed():
    cache = ByteLRU(max_bytes=3 * MB + 4096)
    for name in "abc":
        cache[name] = np.zeros(MB, dtype=np.uint8)
    cache["a"]  # read: now the most recently used
    cache["d"] = np.zeros(MB, dtype=np.uint8)
    assert set(cache) == {"a", "c", "d"} and cache.bytes <= cache.max_bytes


def test_scopes_share_one_bound_and_keep_their_keys_apart():
    cache = ByteLRU(max_bytes=3 * MB + 4096)
    first, second = cache.scope(), cache.scope()
    first["x"] = np.zeros(MB, dtype=np.uint8)
    second["x"] = np.ones(MB, dtype=np.uint8)
    assert first["x"][0] == 0 and second["x"][0] == 1  # the same key, two entries
    first["y"] = np.zeros(MB, dtype=np.uint8)
    second["y"] = np.zeros(MB, dtype=np.uint8)  # a fourth MiB: the least recently used goes
    assert cache.bytes <= cache.max_bytes and len(cache) == 3
    assert "x" not in first and "x" in second  # first's "x" was the least recently used
    first.clear()
    assert len(first) == 0 and first.bytes == 0 and len(second) == 2 and len(cache) == 2


def test_sizes_count_arrays_in_tuples_and_objects_once():
    array = np.zeros(1000, dtype=np.float32)
    assert nbytes((array, array)) < 2 * array.nbytes
    holder = type("Result", (), {})()
    holder.cmc, holder.mAP = np.zeros(500, dtype=np.float64), 0.5
    assert nbytes(holder) >= 4000


def test_an_entry_larger_than_the_bound_is_kept_until_the_next_store():
    cache = ByteLRU(max_bytes=MB)
    cache["big"] = np.zeros(2 * MB, dtype=np.uint8)
    assert "big" in cache
    cache["small"] = np.zeros(10, dtype=np.uint8)
    assert "big" not in cache and "small" in cache


def test_an_entry_just_stored_by_a_thread_is_not_evicted_by_another_threads_store():
    cache = ByteLRU(max_bytes=MB)
    stored, other_done = threading.Event(), threading.Event()
    seen = {}

    def first():
        cache["mine"] = np.zeros(MB - 1000, dtype=np.uint8)
        stored.set()
        assert other_done.wait(300)
        seen["mine"] = cache.get("mine") is not None

    def second():
        assert stored.wait(300)
        cache["theirs"] = np.zeros(MB - 1000, dtype=np.uint8)
        other_done.set()

    _run_together(first, second)
    assert seen == {"mine": True}


def _run_together(*functions):
    """Run ``functions`` in threads of their own (they order themselves with events); wait for all."""
    threads = [threading.Thread(target=function) for function in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)


def test_an_entry_a_thread_found_in_the_cache_is_not_evicted_before_it_reads_it():
    # the `if key not in cache: ...; return cache[key]` pattern taking its "already there" branch
    cache = ByteLRU(max_bytes=MB)
    cache["mine"] = np.zeros(MB - 1000, dtype=np.uint8)
    cache["filler"] = np.zeros(10, dtype=np.uint8)  # this thread's last store is no longer "mine"
    found, other_done = threading.Event(), threading.Event()
    seen = {}

    def first():
        seen["found"] = "mine" in cache
        found.set()
        assert other_done.wait(300)
        try:
            seen["read"] = cache["mine"].shape == (MB - 1000,)
        except KeyError:
            seen["read"] = False

    def second():
        assert found.wait(300)
        cache["theirs"] = np.zeros(MB - 1000, dtype=np.uint8)
        other_done.set()

    _run_together(first, second)
    assert seen == {"found": True, "read": True}


def test_benchmark_results_stay_within_the_bound(monkeypatch):
    from pose2id.experiments import Benchmark
    from pose2id.data.market1501 import ReIDImage

    rng = np.random.default_rng(0)
    names = [f"{pid:04d}_c{cam}s1_000001_00.jpg" for pid in range(1, 21) for cam in (1, 2)]
    images = [ReIDImage(path=Path(name), pid=int(name[:4]), camid=int(name[6]) - 1, name=name) for name in names]
    bench = Benchmark(query=images[::2], gallery=images[1::2], qf=rng.random((20, 64), dtype=np.float32),
                      gf=rng.random((20, 64), dtype=np.float32))
    bench._cache = ByteLRU(max_bytes=64 * 1024)
    first = bench.table(k1=2, k2=2)
    for k1 in range(1, 8):
        for k2 in range(1, 6):
            bench.table(k1=k1, k2=k2)
    assert bench._cache.bytes <= 64 * 1024 + 32 * 1024  # the bound, plus at most the last entries stored
    assert bench.table(k1=2, k2=2) == first  # recomputed after eviction: the same numbers


@pytest.mark.parametrize("text", ["abc", "0", "-5", "nan"])
def test_a_bad_bound_in_the_environment_is_named(monkeypatch, text):
    monkeypatch.setenv("POSE2ID_RESULT_CACHE_MB", text)
    with pytest.raises(ValueError, match="POSE2ID_RESULT_CACHE_MB"):
        default_max_bytes()
    monkeypatch.setenv("POSE2ID_RESULT_CACHE_MB", "64")
    assert default_max_bytes() == 64 * MB


def test_release_freed_memory_answers_without_glibc(monkeypatch):
    import ctypes.util

    from pose2id.demo import memory

    assert isinstance(memory.release_freed_memory(), bool)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert memory.release_freed_memory() is False
    assert memory.return_freed_memory() is False
