"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), as in the authors' public code and the TransReID evaluation.

Steps, over the N = nq + ng query and gallery features together:

1. Squared Euclidean distances, each divided by the largest distance of its row.
2. R(i, k1): the k-reciprocal neighbours of i (j in the k1 + 1 nearest of i, i in those of j).
   It is expanded by R(c, k1 / 2) for every c in it whose half-size set shares more than 2/3 of
   its members with R(i, k1).
3. V[i] = softmax-like weights exp(-d(i, j)) over the expanded set (a sparse row summing to 1),
   then averaged over the k2 nearest rows of i (local query expansion).
4. Jaccard distance 1 - sum_k min(V_q, V_g) / sum_k max(V_q, V_g), mixed with the original:
   (1 - lambda) * jaccard + lambda * original.

Like the public code, V and the Jaccard sums are kept in float16; this keeps the output equal
to the reference one (its rounding is about 1e-3) and V half the size.
"""

import numpy as np
from scipy import sparse

from ._checks import as_feature_pair, check_int, check_real, is_tensor
from .metrics import pairwise_sqeuclidean


def re_ranking(qf, gf, k1=20, k2=6, lambda_value=0.3):
    """k-reciprocal re-ranked query x gallery distances.

    Parameters
    ----------
    qf : (nq, D) float array or torch.Tensor
        Query features (normalize them first, as for plain evaluation).
    gf : (ng, D) float array or torch.Tensor
        Gallery features.
    k1 : int, default 20
        Size of the k-reciprocal neighbourhoods, ``1 <= k1 < nq + ng``.
    k2 : int, default 6
        Rows averaged in the local query expansion, ``1 <= k2 <= nq + ng``.
    lambda_value : float in [0, 1], default 0.3
        Weight of the original distance.

    Returns
    -------
    dist : (nq, ng) float32 array, or a torch.Tensor on ``qf``'s device.

    Like the public code it holds the (nq + ng)^2 float32 distance matrix (1.5 GB for
    Market-1501); the k-reciprocal encoding itself is kept sparse.
    """
    qf, gf = as_feature_pair(qf, gf, "qf", "gf")
    nq, n = qf.shape[0], qf.shape[0] + gf.shape[0]
    k1 = check_int(k1, "k1", 1, n - 1, f"qf and gf have {n} rows together")
    k2 = check_int(k2, "k2", 1, n, f"qf and gf have {n} rows together")
    lambda_value = check_real(lambda_value, "lambda_value", low=0.0)
    if lambda_value > 1:
        raise ValueError(f"lambda_value must be <= 1, got {lambda_value}")

    device = qf.device if is_tensor(qf) else None
    if is_tensor(qf):
        qf = qf.detach().cpu().float().numpy()
        gf = gf.detach().cpu().float().numpy()
    feats = np.concatenate([qf, gf])

    dist = pairwise_sqeuclidean(feats, feats)
    # The public code divides each column by its maximum and transposes; the matrix is
    # symmetric, so that is each row divided by its own maximum.
    dist /= np.maximum(dist.max(axis=1, keepdims=True), np.finfo(np.float32).tiny)
    rank = _initial_rank(dist, max(k1 + 1, k2))

    v = _encode(dist, rank, k1)
    if k2 > 1:
        # Sum in float32, then divide: the float16 rows' np.mean in the public code.
        expand = sparse.csr_matrix(
            (np.ones(n * k2, dtype=np.float32), rank[:, :k2].ravel(),
             np.arange(0, n * k2 + 1, k2)),
            shape=(n, n),
        )
        v = expand @ v
        v.data = _round_half(v.data / np.float32(k2))
        v.eliminate_zeros()

    jaccard = _jaccard(v, nq)
    final = jaccard * np.float16(1 - lambda_value) + dist[:nq, nq:] * np.float32(lambda_value)
    final = final.astype(np.float32)
    if device is not None:
        import torch

        return torch.from_numpy(final).to(device)
    return final


def _initial_rank(dist, k, chunk=1024):
    """(N, k) indices of the k smallest entries of every row, in numpy's default sort order."""
    rank = np.empty((dist.shape[0], k), dtype=np.int64)
    for s in range(0, dist.shape[0], chunk):
        rank[s : s + chunk] = np.argsort(dist[s : s + chunk], axis=1)[:, :k]
    return rank


def _reciprocal(rank, k):
    """(N, k + 1) int array: the k-reciprocal neighbours of each row, -1 where not reciprocal."""
    forward = rank[:, : k + 1]
    back = forward[forward]  # (N, k + 1, k + 1)
    is_mutual = (back == np.arange(rank.shape[0])[:, None, None]).any(-1)
    return np.where(is_mutual, forward, -1)


def _encode(dist, rank, k1, chunk=2048):
    """Sparse (N, N) float16 V: weights over every row's expanded k-reciprocal set."""
    n = dist.shape[0]
    full = _reciprocal(rank, k1)  # (N, k1 + 1)
    half = _reciprocal(rank, int(np.around(k1 / 2)))  # (N, kh + 1)
    half_size = (half >= 0).sum(1)

    rows, cols, vals = [], [], []
    for s in range(0, n, chunk):
        r_i = full[s : s + chunk]  # (C, k1 + 1)
        cand = np.where(r_i >= 0, r_i, 0)
        h = half[cand]  # (C, k1 + 1, kh + 1): half-size sets of the candidates
        shared = ((h[..., None] == r_i[:, None, None, :]) & (h[..., None] >= 0)).any(-1).sum(-1)
        accept = (r_i >= 0) & (shared > 2 / 3 * half_size[cand])
        members = np.concatenate(
            [r_i, np.where(accept[..., None], h, -1).reshape(len(r_i), -1)], axis=1
        )
        # Unique members of each row: sort, then blank repeats.
        members = np.sort(np.where(members >= 0, members, n), axis=1)
        repeat = np.zeros_like(members, dtype=bool)
        repeat[:, 1:] = members[:, 1:] == members[:, :-1]
        valid = (members < n) & ~repeat
        r, c = np.nonzero(valid)
        j = members[r, c]
        weight = np.exp(-dist[r + s, j])
        total = np.zeros(len(r_i), dtype=np.float32)
        np.add.at(total, r, weight)
        rows.append(r + s)
        cols.append(j)
        vals.append(_round_half(weight / total[r]))
    rows, cols, vals = (np.concatenate(a) for a in (rows, cols, vals))
    v = sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))
    v.eliminate_zeros()
    return v


def _round_half(values):
    """Round to float16 precision, kept as float32 (scipy.sparse has no float16)."""
    return values.astype(np.float16).astype(np.float32)


def _jaccard(v, nq):
    """(nq, ng) float16 Jaccard distances between the query rows and the gallery rows of V.

    Sum of minima accumulated column by column in float16, in the public code's order.
    """
    n = v.shape[0]
    v = v.tocsc()
    v.sort_indices()
    overlap = np.zeros((nq, n - nq), dtype=np.float16)
    for k in range(n):
        start, stop = v.indptr[k], v.indptr[k + 1]
        rows = v.indices[start:stop]
        vals = v.data[start:stop].astype(np.float16)
        split = np.searchsorted(rows, nq)
        if split == 0 or split == rows.size:
            continue
        q_rows, g_rows = rows[:split], rows[split:] - nq
        overlap[q_rows[:, None], g_rows[None, :]] += np.minimum(
            vals[:split, None], vals[None, split:]
        )
    return np.float16(1) - overlap / (np.float16(2) - overlap)
