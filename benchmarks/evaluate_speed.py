"""Market-1501 evaluation speed: ``pose2id.evaluate`` against the per-query loop.

A 3,368 x 15,913 float32 distance matrix with Market-1501-like labels (751 identities, 6 cameras,
one query per identity and camera where it has images, 2,798 distractors with pid 0) is
evaluated by the classic per-query loop (torchreid's ``eval_market1501``: one argsort of the
whole matrix, then a Python loop over the queries) and by ``pose2id.evaluate``. float32
distances in a 15,913-wide row tie now and then, and the loop's unstable sort orders tied entries
its own way where ``evaluate`` keeps gallery order: the loop's mAP must lie within
``evaluate``'s tie range, its CMC equal.

    python benchmarks/evaluate_speed.py
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pose2id as p2  # noqa: E402


def market_like(seed=0, n_ids=751, n_cams=6, n_query=3368, n_gallery=15913, n_distractors=2798):
    rng = np.random.default_rng(seed)
    # Gallery: identities 1..n_ids with varying numbers of images, plus pid-0 distractors.
    n_real = n_gallery - n_distractors
    g_pids = np.concatenate([np.arange(1, n_ids + 1), rng.integers(1, n_ids + 1, n_real - n_ids)])
    g_pids = np.concatenate([g_pids, np.zeros(n_distractors, dtype=np.int64)])
    g_camids = rng.integers(0, n_cams, n_gallery)
    # Queries: identities with images, on random cameras.
    q_pids = np.concatenate([np.arange(1, n_ids + 1), rng.integers(1, n_ids + 1, n_query - n_ids)])
    q_camids = rng.integers(0, n_cams, n_query)
    # Distances: noise, true matches pulled closer so that the metrics are not trivial.
    distmat = rng.random((n_query, n_gallery), dtype=np.float32)
    distmat -= np.float32(0.4) * (q_pids[:, None] == g_pids[None, :])
    return distmat, q_pids, g_pids, q_camids, g_camids


def loop_evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The per-query protocol as torchreid and TransReID write it."""
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(distmat.shape[0]):
        order = indices[q]
        remove = (g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q])
        hits = matches[q][~remove]
        if not np.any(hits):
            continue
        cmc = hits.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        positions = np.flatnonzero(hits)
        all_inp.append(hits.sum() / (positions[-1] + 1.0))
        precision = hits.cumsum() / np.arange(1.0, hits.size + 1)
        all_ap.append((precision * hits).sum() / hits.sum())
    return np.mean(all_cmc, 0), float(np.mean(all_ap)), float(np.mean(all_inp))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timing runs (best is kept)")
    args = parser.parse_args()
    case = market_like()
    print(f"evaluate on {case[0].shape[0]:,} x {case[0].shape[1]:,} float32, best of "
          f"{args.repeat} (interleaved):")
    loop_s, ours_s = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        cmc, mAP, mINP = loop_evaluate(*case)
        loop_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = p2.evaluate(*case)
        ours_s.append(time.perf_counter() - start)
    loop_s, ours_s = min(loop_s), min(ours_s)
    print(f"  per-query loop    {loop_s:6.2f} s")
    print(f"  pose2id.evaluate  {ours_s:6.2f} s")
    print(f"  loop / ours       {loop_s / ours_s:6.2f}   (target >= 3)")
    diffs = (abs(result.mAP - mAP), abs(result.mINP - mINP), np.abs(result.cmc - cmc).max())
    worst, best = result.mAP_tie_range
    print(f"  mAP {result.mAP:.6f}  rank-1 {result.cmc[0]:.6f}  mINP {result.mINP:.6f}")
    print(f"  same numbers: {worst - 1e-12 <= mAP <= best + 1e-12 and diffs[2] == 0} (loop's mAP within the "
          f"tie range {worst:.12f}-{best:.12f}; max |diff| mAP {diffs[0]:.1e}, mINP {diffs[1]:.1e}, "
          f"CMC {diffs[2]:.1e})")


if __name__ == "__main__":
    main()
