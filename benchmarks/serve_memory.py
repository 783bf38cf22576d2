"""Where a serving app's memory grows: a fixed mix of ``/retrieve`` calls under tracemalloc.

Serves the app in this process (tiny test pipeline, a temporary pose2id cache, as
``tests/app_server.py`` does), builds SynthPed with one call, then makes ``--requests`` calls
(default 60) to ``/retrieve`` with k1 / k2 / eta / re-ranking / query drawn from a fixed seed, so
every run asks the same things. Prints:

- the process RSS before and after the calls (and after a final ``malloc_trim``);
- the ``--top`` tracemalloc growth sites (file:line), Python allocations only;
- every bounded cache in the process with its configured limit beside what it holds now: the
  :class:`pose2id.lru.ByteLRU` instances (bytes / max_bytes) and the ``functools.lru_cache``
  functions of the pose2id modules (entries / maxsize).

``--trim`` calls ``malloc_trim(0)`` after every request; ``--no-mallopt`` leaves glibc's malloc
as it is (the app fixes its mmap threshold and arenas at start, ``pose2id.demo.memory``); the
target (benchmarks/serve_load.py) is RSS growth < 300 MB. The RSS figures depend on the machine;
compare runs made one after the other. Run: ``python benchmarks/serve_memory.py [--trim]``.
"""

import argparse
import functools
import gc
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _bounded_caches():
    """[(name, held, limit, unit)] of the ByteLRU instances and pose2id's lru_cache functions."""
    from pose2id.lru import ByteLRU

    rows = []
    for obj in gc.get_objects():
        if isinstance(obj, ByteLRU):
            rows.append((f"ByteLRU@{id(obj):x}", obj.bytes / 2**20, obj.max_bytes / 2**20, "MiB"))
    for name, module in sorted(sys.modules.items()):
        if not name.startswith("pose2id") or module is None:
            continue
        for attr, value in sorted(vars(module).items()):
            if isinstance(value, functools._lru_cache_wrapper) and getattr(value, "__module__", "") == name:
                info = value.cache_info()
                rows.append((f"{name}.{attr}", info.currsize, info.maxsize, "entries"))
    return rows


def _trim():
    from pose2id.demo.memory import release_freed_memory

    return release_freed_memory()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--top", type=int, default=15, help="growth sites to print")
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) after every request")
    parser.add_argument("--no-mallopt", action="store_true", help="leave glibc's malloc settings as they are")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.top < 1:
        parser.error("--requests and --top must be at least 1")

    from gradio_client import Client

    from app_server import launched
    from pose2id._threads import fix_threads
    from pose2id.demo.memory import return_freed_memory

    fix_threads(1)
    mallopt = False if args.no_mallopt else return_freed_memory()
    root = Path(tempfile.mkdtemp(prefix="pose2id-serve-memory-"))
    with launched(root) as url:
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 900})
        start = time.perf_counter()
        client.predict("synthped", 0, 2, 2, 2.0, False, 8, api_name="/retrieve")
        print(f"app at {url}; SynthPed ready in {time.perf_counter() - start:.0f} s "
              f"(mallopt {'on' if mallopt else 'off'}, trim {'on' if args.trim else 'off'})", flush=True)
        gc.collect()
        rss0 = _rss_mb()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        rng = random.Random(args.seed)
        start = time.perf_counter()
        for r in range(args.requests):
            client.predict("synthped", rng.randrange(0, 50), rng.randint(1, 10), rng.randint(1, 10),
                           round(rng.uniform(0, 5), 1), rng.random() < 0.3, 8, api_name="/retrieve")
            if args.trim:
                _trim()
        elapsed = time.perf_counter() - start
        gc.collect()
        after = tracemalloc.take_snapshot()
        traced_now, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1 = _rss_mb()
        trimmed = _trim()
        rss2 = _rss_mb()

        print(f"{args.requests} /retrieve calls in {elapsed:.0f} s")
        print(f"RSS before {rss0:.0f} MB, after {rss1:.0f} MB (growth {rss1 - rss0:+.0f} MB), "
              f"after malloc_trim {rss2:.0f} MB ({'trimmed' if trimmed else 'no malloc_trim'})")
        print(f"tracemalloc: {traced_now / 2**20:.1f} MiB traced now, peak {traced_peak / 2**20:.1f} MiB")
        print(f"\ntop {args.top} growth sites (Python allocations):")
        stats = after.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]).compare_to(
            before.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]), "lineno")
        for stat in stats[:args.top]:
            frame = stat.traceback[0]
            path = os.path.relpath(frame.filename, ROOT) if frame.filename.startswith(str(ROOT)) else frame.filename
            print(f"  {stat.size_diff / 2**20:+8.2f} MiB {stat.count_diff:+7d} blocks  {path}:{frame.lineno}")
        print("\nbounded caches (held / configured limit):")
        for name, held, limit, unit in _bounded_caches():
            print(f"  {name}: {held:.1f} / {limit if limit is None else round(limit, 1)} {unit}")


if __name__ == "__main__":
    main()
