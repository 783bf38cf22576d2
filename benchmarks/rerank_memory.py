"""k-reciprocal re-ranking memory and speed: ``pose2id.re_ranking`` against the dense method.

The straightforward way, as the authors' public code is written, holds the whole (N, N)
float32 distance matrix of the N = nq + ng query and gallery features, sorts every row of it
completely, fills a dense (N, N) float16 V row by row in a Python loop, averages dense rows for
the query expansion, and accumulates the Jaccard sums over an inverted index. ``pose2id``
computes the distances a block of rows at a time, keeps V sparse, and holds only the (nq, ng)
output and a float16 accumulator.

Each method runs in a fresh subprocess on the same clustered features (Market-1501 sizes by
default: 3,368 queries, 15,913 gallery images, 768-d) and reports its time and the process's
peak resident memory; the parent compares the two outputs.

    python benchmarks/rerank_memory.py                 # Market-1501 size, both methods
    python benchmarks/rerank_memory.py --nq 500 --ng 3000
    python benchmarks/rerank_memory.py --msmt          # MSMT17 size (11,659 x 82,161), ours only
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pose2id as p2  # noqa: E402
from benchmarks.nfc_speed import make_features, normalize, peak_mb  # noqa: E402

MARKET = (3368, 15913)
MSMT = (11659, 82161)
DIM = 768


def dense_re_ranking(qf, gf, k1=20, k2=6, lambda_value=0.3):
    """The method with dense matrices and Python loops, structured like the public code."""
    feats = np.concatenate([qf, gf]).astype(np.float32)
    n, nq = len(feats), len(qf)
    sq = np.einsum("nd,nd->n", feats, feats)
    dist = sq[:, None] + sq[None, :] - 2 * (feats @ feats.T)
    np.maximum(dist, 0, out=dist)
    dist /= dist.max(axis=1, keepdims=True)
    rank = np.argsort(dist, axis=1).astype(np.int32)

    def reciprocal(i, k):
        forward = rank[i, : k + 1]
        return forward[(rank[forward, : k + 1] == i).any(axis=1)]

    half = int(np.around(k1 / 2))
    v = np.zeros((n, n), dtype=np.float16)
    for i in range(n):
        r_i = reciprocal(i, k1)
        expanded = [r_i]
        for c in r_i:
            r_c = reciprocal(c, half)
            if len(np.intersect1d(r_c, r_i)) > 2 / 3 * len(r_c):
                expanded.append(r_c)
        members = np.unique(np.concatenate(expanded))
        weight = np.exp(-dist[i, members])
        v[i, members] = weight / weight.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    del rank
    holders = [np.nonzero(v[:, j])[0] for j in range(n)]
    final = np.empty((nq, n - nq), dtype=np.float32)
    for i in range(nq):
        overlap = np.zeros(n, dtype=np.float16)
        for j in np.nonzero(v[i])[0]:
            rows = holders[j]
            overlap[rows] += np.minimum(v[i, j], v[rows, j])
        jaccard = 1 - overlap[nq:] / (2 - overlap[nq:])
        final[i] = jaccard * (1 - lambda_value) + dist[i, nq:] * lambda_value
    return final


def child(which, nq, ng, out):
    """Run one method in this (fresh) process; save its output; print time and peak memory."""
    feats = normalize(make_features(nq + ng, DIM))
    qf, gf = feats[:nq], feats[nq:]
    before = peak_mb()
    fn = dense_re_ranking if which == "dense" else p2.re_ranking
    start = time.perf_counter()
    dist = fn(qf, gf)
    seconds = time.perf_counter() - start
    peak = peak_mb()
    if out:
        np.save(out, dist)
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "before_mb": before}))


def in_subprocess(which, nq, ng, out=None):
    cmd = [sys.executable, __file__, "--child", which, "--nq", str(nq), "--ng", str(ng)]
    if out:
        cmd += ["--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        return {"error": (result.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nq", type=int, default=MARKET[0], help="queries (default: Market-1501)")
    parser.add_argument("--ng", type=int, default=MARKET[1], help="gallery images")
    parser.add_argument("--msmt", action="store_true", help="MSMT17 size, pose2id only")
    parser.add_argument("--child", choices=["ours", "dense"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.nq, args.ng, args.out)

    nq, ng = MSMT if args.msmt else (args.nq, args.ng)
    n = nq + ng
    print(f"re-ranking (k1=20, k2=6, lambda=0.3): {nq:,} queries x {ng:,} gallery, {DIM}-d, "
          "fresh process each:")
    print(f"  the full distance matrix alone: {n * n * 4 / 2**30:.1f} GiB; "
          f"the (nq, ng) float32 output: {nq * ng * 4 / 2**30:.2f} GiB")
    with tempfile.TemporaryDirectory() as tmp:
        ours = in_subprocess("ours", nq, ng, None if args.msmt else Path(tmp) / "ours.npy")
        if "error" in ours:
            print(f"  pose2id.re_ranking failed: {ours['error']}")
            return 1
        print(f"  pose2id.re_ranking: {ours['seconds']:7.1f} s, peak {ours['peak_mb']:7.0f} MB "
              f"(features alone: {ours['before_mb']:.0f} MB)")
        if args.msmt:
            return 0
        dense = in_subprocess("dense", nq, ng, Path(tmp) / "dense.npy")
        if "error" in dense:
            print(f"  dense method failed: {dense['error']}")
            return 0
        print(f"  dense method:       {dense['seconds']:7.1f} s, peak {dense['peak_mb']:7.0f} MB")
        a, b = np.load(Path(tmp) / "ours.npy"), np.load(Path(tmp) / "dense.npy")
    extra = lambda r: r["peak_mb"] - r["before_mb"]  # noqa: E731
    print(f"  dense / ours: time {dense['seconds'] / ours['seconds']:.2f}, memory above the "
          f"features {extra(dense) / extra(ours):.2f} ({extra(dense):.0f} MB vs {extra(ours):.0f} MB)")
    print(f"  outputs: max |diff| {np.abs(a - b).max():.2e}, entries that differ "
          f"{np.mean(a != b):.2e} (both round V to float16, so about 1e-3 is expected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
