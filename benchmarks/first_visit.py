"""Time to the first SynthPed rankings on a fresh cache: staged build against the one-shot build.

The app's first Retrieve visit needs SynthPed and its handcrafted features. Built in one shot
(``open_dataset("synthped")``: originals and the oracle's generated sets, then the features of
all of them) the Base and +NFC rankings wait for everything. Built in stages they wait only for
stage 1:

- stage 1: ``open_dataset("synthped", generated=False)`` + ``prepare_benchmark`` (originals drawn
  and described: Base and +NFC rankings ready);
- stage 2: ``open_dataset("synthped")`` + ``prepare_benchmark`` (generated sets drawn and
  described, the originals' features read back from the cache: +IPG ready).

Each build runs on its own fresh temporary cache, in this run; the script prints the times, the
ratio of stage 1 to the one-shot build, and checks that the staged features equal the one-shot ones.
Target (issue 17): stage 1 within 10 s.

    python benchmarks/first_visit.py
    python benchmarks/first_visit.py --seed 1 --staged-first
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pose2id.data import open_dataset  # noqa: E402
from pose2id.experiments import prepare_benchmark  # noqa: E402


def _timed(seed, generated):
    start = time.perf_counter()
    dataset = open_dataset(f"synthped:{seed}", generated=generated)
    drawn = time.perf_counter()
    bench = prepare_benchmark(dataset, "handcrafted")
    return bench, drawn - start, time.perf_counter() - drawn


def one_shot(seed):
    """(Benchmark, seconds drawing, seconds describing) of the full build on a fresh cache."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["POSE2ID_CACHE"] = cache
        return _timed(seed, True)


def staged(seed):
    """(stage-1 Benchmark, (draw s, describe s)), (full Benchmark, (draw s, describe s)) on a fresh cache."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["POSE2ID_CACHE"] = cache
        first, d1, f1 = _timed(seed, False)
        second, d2, f2 = _timed(seed, True)
        return (first, (d1, f1)), (second, (d2, f2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="SynthPed seed (default 0)")
    parser.add_argument("--staged-first", action="store_true", help="time the staged build before the one-shot one")
    args = parser.parse_args(argv)
    saved = os.environ.get("POSE2ID_CACHE")
    try:
        if args.staged_first:
            (first, t1), (second, t2) = staged(args.seed)
            full, draw, describe = one_shot(args.seed)
        else:
            full, draw, describe = one_shot(args.seed)
            (first, t1), (second, t2) = staged(args.seed)
    finally:
        if saved is None:
            os.environ.pop("POSE2ID_CACHE", None)
        else:
            os.environ["POSE2ID_CACHE"] = saved
    total = draw + describe
    stage1, stage2 = sum(t1), sum(t2)
    print(f"one-shot build: {total:6.2f} s  (draw {draw:.2f} s, features {describe:.2f} s; all methods)")
    print(f"stage 1       : {stage1:6.2f} s  (draw {t1[0]:.2f} s, features {t1[1]:.2f} s; Base and +NFC ready; "
          f"{len(first.query)} query / {len(first.gallery)} gallery)")
    print(f"stage 2       : {stage2:6.2f} s  (draw {t2[0]:.2f} s, features {t2[1]:.2f} s; +IPG ready)")
    print(f"first rankings: stage 1 / one-shot = {stage1 / total:.3f} ({total / stage1:.1f}x sooner); "
          f"staged total / one-shot = {(stage1 + stage2) / total:.3f}; target: stage 1 <= 10 s "
          f"({'met' if stage1 <= 10 else 'not met'} on this machine)")
    same = all(np.array_equal(getattr(second, name), getattr(full, name)) for name in ("qf", "gf", "q_gen", "g_gen"))
    print(f"staged features equal the one-shot ones: {same}")
    return 0 if same and first.q_gen is None else 1


if __name__ == "__main__":
    sys.exit(main())
