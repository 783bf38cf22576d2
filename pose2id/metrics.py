"""Re-identification metrics: distances, identity density (ID²) and Market-1501 evaluation.

Semantics: ``shared/spec/ALGORITHMS.md``. ``evaluate`` gives the numbers of the standard
Market-1501 protocol (torchreid / TransReID ``eval_func``) without a per-query loop over the
gallery: one sort of the distance matrix, then work proportional to the number of
(query, same-identity gallery image) pairs.
"""

from dataclasses import dataclass

import numpy as np

from ._checks import as_feature_pair, as_features, as_labels, check_int, is_tensor


def pairwise_sqeuclidean(a, b):
    """Squared Euclidean distances between the rows of ``a`` and the rows of ``b``.

    Parameters
    ----------
    a : (Na, D) float array or torch.Tensor
    b : (Nb, D) float array or torch.Tensor (same kind, and device, as ``a``)

    Returns
    -------
    dist : (Na, Nb) float32 array or torch.Tensor, clamped at 0 (rounding can make
        ``|a|^2 + |b|^2 - 2 a.b`` slightly negative).
    """
    a, b = as_feature_pair(a, b, "a", "b")
    if is_tensor(a):
        b = b.to(device=a.device, dtype=a.dtype)
        dist = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :]
        return dist.addmm_(a, b.T, beta=1, alpha=-2).clamp_min_(0)
    dist = np.einsum("nd,nd->n", a, a)[:, None] + np.einsum("nd,nd->n", b, b)[None, :]
    dist -= 2 * (a @ b.T)
    return np.maximum(dist, 0, out=dist)


def _normalized_numpy(feats):
    if is_tensor(feats):
        feats = feats.detach().cpu().float().numpy()
    norms = np.sqrt(np.einsum("nd,nd->n", feats, feats, dtype=np.float32))
    return feats / np.maximum(norms, 1e-12)[:, None]


def id2(feats, pids):
    """Identity density of every sample (lower = more centralized).

    Rows are L2-normalized; each identity's centre is the mean of its rows (not re-normalized);
    a sample's density is its squared distance to its identity's centre. The global ID² of a set
    is ``id2(feats, pids).mean()``.

    Parameters
    ----------
    feats : (N, D) float array or torch.Tensor
    pids : (N,) int array
        Identity of every row.

    Returns
    -------
    density : (N,) float32 array, or a torch.Tensor on the input's device.
    """
    feats = as_features(feats, "feats")
    pids = as_labels(pids, "pids", feats.shape[0], f"feats has {feats.shape[0]} rows")
    density = _id2_numpy(_normalized_numpy(feats), pids)
    return _like(density, feats)


def _like(values, reference):
    """``values`` (numpy) as a tensor on ``reference``'s device if that is a tensor."""
    if is_tensor(reference):
        import torch

        return torch.from_numpy(values).to(reference.device)
    return values


def _id2_numpy(x, pids):
    _, group, counts = np.unique(pids, return_inverse=True, return_counts=True)
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    centres = np.add.reduceat(x[order], starts, axis=0) / counts[:, None].astype(np.float32)
    diff = x - centres[group]
    return np.einsum("nd,nd->n", diff, diff).astype(np.float32)


def id2_per_identity(feats, pids):
    """Mean identity density per identity.

    Returns
    -------
    unique_pids : (K,) int64 array, sorted.
    density : (K,) float32 array, the mean of :func:`id2` over each identity's samples
        (both torch tensors on the input's device for a tensor input).
    """
    feats = as_features(feats, "feats")
    pids = as_labels(pids, "pids", feats.shape[0], f"feats has {feats.shape[0]} rows")
    density = _id2_numpy(_normalized_numpy(feats), pids)
    unique, group = np.unique(pids, return_inverse=True)
    sums = np.bincount(group, weights=density.astype(np.float64))
    return _like(unique, feats), _like((sums / np.bincount(group)).astype(np.float32), feats)


@dataclass
class EvalResult:
    """Market-1501 evaluation of a query x gallery distance matrix (fractions in [0, 1]).

    Attributes
    ----------
    cmc : (max_rank,) float array; ``cmc[r]`` = fraction of queries matched within rank r + 1.
    mAP : float, mean average precision.
    mINP : float, mean inverse negative penalty (fast-reid): matches / rank of the last match.
    all_AP : (n_valid,) float array, the AP of every query that has a true match, in query order.
    valid : (nq,) bool array, which queries have a true match (the others are skipped).
    mAP_tie_range : (worst, best) floats, the mAP if every true match came after / before the
        other images at exactly the same distance. Identical distances are common after NFC
        (mutual neighbours can get identical features), and the order of tied entries is a
        convention: ``mAP`` breaks ties by gallery index, while another implementation's order
        follows its sort and its floating-point rounding. Any such result lies in this range.
    cmc_tie_range : (worst, best) pair of (max_rank,) float arrays, the same for the CMC curve.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    all_AP: np.ndarray
    valid: np.ndarray
    mAP_tie_range: tuple = (float("nan"), float("nan"))
    cmc_tie_range: tuple = (None, None)

    @property
    def rank1(self):
        return float(self.cmc[0])


def evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Market-1501 evaluation: CMC, mAP and mINP.

    For every query the gallery is sorted by ascending distance, identical distances in gallery
    order (a stable sort, so the result is the same on every machine); gallery images of the
    query's identity seen by the query's camera are dropped; a query with no remaining true
    match is skipped. ``mAP_tie_range`` and ``cmc_tie_range`` bound what any other order of
    identical distances gives (the reference code's unstable sort among them).

    Parameters
    ----------
    distmat : (nq, ng) float array or torch.Tensor
    q_pids, q_camids : (nq,) int arrays
    g_pids, g_camids : (ng,) int arrays
    max_rank : int, default 50
        Length of the CMC curve.

    Returns
    -------
    EvalResult
    """
    distmat = as_features(distmat, "distmat", allow_inf=True, keep_float64=True)
    if is_tensor(distmat):
        distmat = distmat.detach().cpu().numpy()
    nq, ng = distmat.shape
    q_pids = as_labels(q_pids, "q_pids", nq, f"distmat has {nq} rows")
    q_camids = as_labels(q_camids, "q_camids", nq, f"distmat has {nq} rows")
    g_pids = as_labels(g_pids, "g_pids", ng, f"distmat has {ng} columns")
    g_camids = as_labels(g_camids, "g_camids", ng, f"distmat has {ng} columns")
    max_rank = check_int(max_rank, "max_rank", 1)

    # All (query, gallery) pairs of the same identity: true matches and same-camera junk.
    g_order = np.argsort(g_pids, kind="stable")
    g_sorted = g_pids[g_order]
    lo = np.searchsorted(g_sorted, q_pids, "left")
    counts = np.searchsorted(g_sorted, q_pids, "right") - lo
    pair_q = np.repeat(np.arange(nq), counts)
    offsets = np.arange(pair_q.size) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_g = g_order[lo[pair_q] + offsets]
    pair_d = distmat[pair_q, pair_g]
    junk = g_camids[pair_g] == q_camids[pair_q]

    # Position of every pair in its query's ranked list (0 = nearest), and how many entries of
    # the row lie strictly below / at or below its distance.
    pos, below, upto = _positions(distmat, pair_q, pair_g, pair_d, counts)
    order = np.lexsort((pos, pair_q))  # pairs of each query in ranked order
    pos, junk, below, upto = pos[order], junk[order], below[order], upto[order]
    pair_d = pair_d[order]
    group_start = np.repeat(np.cumsum(counts) - counts, counts)
    junk_before = _cumcount(junk, group_start)
    good = ~junk
    good_index = _cumcount(good, group_start) + 1  # 1-based index of the match among matches
    pair_q = pair_q[order]
    rank = (pos - junk_before + 1)[good]  # 1-based rank among the kept gallery entries
    match_q = pair_q[good]
    precision = good_index[good] / rank

    n_match = np.bincount(match_q, minlength=nq)
    valid = n_match > 0
    if not valid.any():
        raise ValueError(
            "no query has a true match in the gallery (same pid, other camera); "
            "check q_pids/g_pids and q_camids/g_camids"
        )
    ap = np.bincount(match_q, weights=precision, minlength=nq)[valid] / n_match[valid]
    first = np.ones(match_q.size, dtype=bool)
    first[1:] = match_q[1:] != match_q[:-1]
    last = np.ones(match_q.size, dtype=bool)
    last[:-1] = match_q[:-1] != match_q[1:]
    inp = n_match[valid] / rank[last]
    ranks = np.arange(1, max_rank + 1)[:, None]
    cmc = (rank[first][None, :] <= ranks).mean(1)

    # Tie bounds. Within a query, the pairs are in ascending distance, so the same-identity
    # pairs at a distance form one run: the entries of the row below (at or below) a match's
    # distance that are not of its identity are the other images ranked before it when true
    # matches come last (first) among equal distances.
    run_start = np.ones(pair_q.size, dtype=bool)
    run_start[1:] = (pair_q[1:] != pair_q[:-1]) | (pair_d[1:] != pair_d[:-1])
    run_id = np.cumsum(run_start) - 1
    starts = np.flatnonzero(run_start)
    ends = np.append(starts[1:], pair_q.size)
    same_below = (starts - group_start[starts])[run_id]
    same_upto = (ends - group_start[starts])[run_id]
    j = good_index[good]
    worst_rank = (upto - same_upto)[good] + j
    best_rank = (below - same_below)[good] + j
    map_range = tuple(
        float((np.bincount(match_q, weights=j / r, minlength=nq)[valid] / n_match[valid]).mean())
        for r in (worst_rank, best_rank)
    )
    cmc_range = tuple((r[first][None, :] <= ranks).mean(1) for r in (worst_rank, best_rank))
    return EvalResult(
        cmc=cmc, mAP=float(ap.mean()), mINP=float(inp.mean()), all_AP=ap, valid=valid,
        mAP_tie_range=map_range, cmc_tie_range=cmc_range,
    )


def _cumcount(flags, group_start):
    """Number of True flags before each element within its group (groups are contiguous)."""
    total = np.cumsum(flags) - flags
    return total - total[group_start]


def _positions(distmat, pair_q, pair_g, pair_d, counts, chunk=512, step_elements=1 << 22):
    """Position of gallery entry ``pair_g`` in the stable ascending sort of row ``pair_q``.

    Also returns, per pair, how many entries of its row are smaller than its distance and how
    many are smaller or equal: a binary search in the sorted row, run for all pairs of a chunk
    of rows at once. A value that occurs once in its row sits right after the smaller ones.
    Identical distances are common (NFC can give mutual neighbours identical features); a pair
    tied with others comes after the ones of lower gallery index (ties in gallery order), which
    are counted in its row. Rows are sorted, and tied pairs compared, in chunks to bound memory.
    """
    ng = distmat.shape[1]
    below = np.empty(pair_q.size, dtype=np.int64)
    upto = np.empty(pair_q.size, dtype=np.int64)
    ends = np.cumsum(counts)
    for s in range(0, distmat.shape[0], chunk):
        e = min(s + chunk, distmat.shape[0])
        p = slice(ends[s] - counts[s], ends[e - 1])  # the pairs of these rows, in query order
        if p.start == p.stop:
            continue
        rows = np.sort(distmat[s:e], axis=1)
        local = pair_q[p] - s
        below[p] = _search_rows(rows, local, pair_d[p], strict=True)
        upto[p] = _search_rows(rows, local, pair_d[p], strict=False)
    pos = below.copy()
    tied = np.flatnonzero(upto - below > 1)
    columns = np.arange(ng)
    step = max(1, step_elements // max(ng, 1))
    for t0 in range(0, tied.size, step):
        t = tied[t0 : t0 + step]
        same = distmat[pair_q[t]] == pair_d[t, None]
        same &= columns < pair_g[t, None]
        pos[t] += same.sum(1)
    return pos, below, upto


def _search_rows(rows, local, values, strict):
    """For every pair, how many entries of the sorted row ``rows[local]`` are < its value
    (``strict``) or <= it: ``np.searchsorted(rows[local], value, "left" / "right")``, as one
    binary search over all the pairs."""
    n = rows.shape[1]
    lo = np.zeros(values.size, dtype=np.int64)
    hi = np.full(values.size, n, dtype=np.int64)
    for _ in range(n.bit_length()):
        open_ = lo < hi
        mid = (lo + hi) >> 1
        seen = rows[local, np.minimum(mid, n - 1)]
        right = (seen < values) if strict else (seen <= values)
        lo = np.where(open_ & right, mid + 1, lo)
        hi = np.where(open_ & ~right, mid, hi)
    return lo
