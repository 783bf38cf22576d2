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
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    all_AP: np.ndarray
    valid: np.ndarray

    @property
    def rank1(self):
        return float(self.cmc[0])


def evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Market-1501 evaluation: CMC, mAP and mINP.

    For every query the gallery is sorted by ascending distance (identical distances in numpy's
    default ``argsort`` order, as in the reference implementation); gallery images of the
    query's identity seen by the query's camera are dropped; a
    query with no remaining true match is skipped.

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

    # Position of every pair in its query's ranked list (0 = nearest).
    pos = _positions(distmat, pair_q, pair_g, pair_d, counts)
    order = np.lexsort((pos, pair_q))  # pairs of each query in ranked order
    pos, junk = pos[order], junk[order]
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
    first_rank = rank[first]
    cmc = (first_rank[None, :] <= np.arange(1, max_rank + 1)[:, None]).mean(1)
    return EvalResult(
        cmc=cmc, mAP=float(ap.mean()), mINP=float(inp.mean()), all_AP=ap, valid=valid
    )


def _cumcount(flags, group_start):
    """Number of True flags before each element within its group (groups are contiguous)."""
    total = np.cumsum(flags) - flags
    return total - total[group_start]


def _positions(distmat, pair_q, pair_g, pair_d, counts, chunk=512):
    """Position of gallery entry ``pair_g`` in the ascending sort of row ``pair_q`` of distmat.

    A value that occurs once in its row sits after the entries smaller than it, found by binary
    search in the sorted row. Identical distances are common (NFC can give mutual neighbours
    identical features); in a row where a pair is tied, positions are read from numpy's default
    ``argsort`` of that row, the order of the reference implementation, so the metrics match it.
    Rows are sorted in chunks to bound memory.
    """
    pos = np.empty(pair_q.size, dtype=np.int64)
    pair_start = np.cumsum(counts) - counts
    for s in range(0, distmat.shape[0], chunk):
        rows = np.sort(distmat[s : s + chunk], axis=1)
        for q in np.flatnonzero(counts[s : s + chunk]) + s:
            p = slice(pair_start[q], pair_start[q] + counts[q])
            lower = np.searchsorted(rows[q - s], pair_d[p], "left")
            upper = np.searchsorted(rows[q - s], pair_d[p], "right")
            if np.any(upper - lower > 1):
                rank_of = np.empty(distmat.shape[1], dtype=np.int64)
                rank_of[np.argsort(distmat[q])] = np.arange(distmat.shape[1])
                pos[p] = rank_of[pair_g[p]]
            else:
                pos[p] = lower
    return pos
