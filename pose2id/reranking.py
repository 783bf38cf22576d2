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

Memory: the public code holds the (N, N) distance matrix and a dense (N, N) float16 V. Here the
distances are computed a block of rows at a time (each block gives its rows' nearest neighbours
and their share of the output), the few distances V needs are recomputed from the features (read
from the matrix when it was a single block), and V is sparse. What remains is the (nq, ng) output
plus a float16 (nq, ng) Jaccard accumulator: about 6 GB for MSMT17 (11,659 queries, 82,161
gallery images) against 35 GB for its distance matrix alone.

Neighbour order: the first entries of each row's stable ``argsort``, equal distances in index
order. Equal distances are common after NFC gives mutual neighbours identical features; the
public code's ``np.argsort`` (an unstable sort) orders them differently from one CPU to
another, a stable order gives the same result on every machine. Each row's nearest neighbours
come from a partial sort, about ten times faster than sorting the whole row.
"""

import numpy as np
from scipy import sparse

from ._checks import as_feature_pair, check_int, check_real, is_tensor
from .metrics import pairwise_sqeuclidean

# Entries of one (rows, N) block of distances: 16M float32 = 64 MB per temporary.
BLOCK_ELEMENTS = 1 << 24


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

    Memory is about 6 bytes per output entry (the output and a float16 accumulator) plus blocks
    of ``BLOCK_ELEMENTS`` distances; the (nq + ng)^2 matrix is never held.
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
    feats = np.concatenate([qf, gf]).astype(np.float32, copy=False)

    # final starts as lambda * original distance; the Jaccard term is added at the end
    rank, scale, final, whole = _neighbours(feats, nq, max(k1 + 1, k2), np.float32(lambda_value))
    v = _encode(feats, scale, rank, k1, whole)
    del whole
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
    del rank
    _add_jaccard(final, v, nq, np.float16(1 - lambda_value))
    if device is not None:
        import torch

        return torch.from_numpy(final).to(device)
    return final


def _blocks(n_rows, n_cols):
    step = max(1, min(n_rows, BLOCK_ELEMENTS // max(n_cols, 1)))
    for s in range(0, n_rows, step):
        yield s, min(s + step, n_rows)


def _neighbours(feats, nq, k, lambda_value):
    """One pass over row blocks of the distance matrix.

    Returns the (N, k) nearest neighbours of every row (nearest first), every row's
    normalizing maximum (N,), the (nq, ng) float32 ``lambda_value * distance``, and the whole
    (N, N) normalized distance matrix when it was one block (else None), so that the weights of
    V can be read from it instead of recomputed.
    """
    n = feats.shape[0]
    rank = np.empty((n, k), dtype=np.int64)
    scale = np.empty(n, dtype=np.float32)
    final = np.empty((nq, n - nq), dtype=np.float32)
    for s, e in _blocks(n, n):
        dist = pairwise_sqeuclidean(feats[s:e], feats)
        # The public code divides each column by its maximum and transposes; the matrix is
        # symmetric, so that is each row divided by its own maximum.
        scale[s:e] = np.maximum(dist.max(axis=1), np.finfo(np.float32).tiny)
        dist /= scale[s:e, None]
        rank[s:e] = _smallest(dist, k)
        if s < nq:
            stop = min(e, nq)
            np.multiply(dist[: stop - s, nq:], lambda_value, out=final[s:stop])
    return rank, scale, final, (dist if e - s == n else None)


def _smallest(dist, k):
    """(rows, k) column indices of each row's k smallest entries, equal values in index order:
    ``np.argsort(dist, kind="stable")[:, :k]``."""
    rows = dist.shape[0]
    kth = np.partition(dist, k - 1, axis=1)[:, k - 1 : k]
    r, c = np.nonzero(dist <= kth)  # at least k per row; more where values tie with the kth
    order = np.lexsort((c, dist[r, c], r))
    r, c = r[order], c[order]
    count = np.bincount(r, minlength=rows)
    position = np.arange(r.size) - np.repeat(np.cumsum(count) - count, count)
    return c[position < k].reshape(rows, k)


def _pair_distances(feats, scale, rows, cols):
    """Normalized squared distances between ``feats[rows]`` and ``feats[cols]``, pair by pair,
    computed like :func:`pairwise_sqeuclidean` (``|a|^2 + |b|^2 - 2 a.b``, clamped at 0)."""
    out = np.empty(rows.size, dtype=np.float32)
    step = max(1, BLOCK_ELEMENTS // (4 * feats.shape[1]))
    for s in range(0, rows.size, step):
        a, b = feats[rows[s : s + step]], feats[cols[s : s + step]]
        d = np.einsum("nd,nd->n", a, a) + np.einsum("nd,nd->n", b, b)
        d -= 2 * np.einsum("nd,nd->n", a, b)
        out[s : s + step] = np.maximum(d, 0)
    return out / scale[rows]


def _reciprocal(rank, k):
    """(N, k + 1) int array: the k-reciprocal neighbours of each row, -1 where not reciprocal."""
    forward = rank[:, : k + 1]
    back = forward[forward]  # (N, k + 1, k + 1)
    is_mutual = (back == np.arange(rank.shape[0])[:, None, None]).any(-1)
    return np.where(is_mutual, forward, -1)


def _encode(feats, scale, rank, k1, whole=None):
    """Sparse (N, N) float16 V: weights over every row's expanded k-reciprocal set, from the
    normalized distances ``whole`` when given, else recomputed pair by pair."""
    n = feats.shape[0]
    full = _reciprocal(rank, k1)  # (N, k1 + 1)
    half = _reciprocal(rank, int(np.around(k1 / 2)))  # (N, kh + 1)
    half_size = (half >= 0).sum(1)

    rows, cols, vals = [], [], []
    chunk = max(1, min(2048, BLOCK_ELEMENTS // (4 * n)))  # rows per pass: a (chunk, N) membership mask
    for s in range(0, n, chunk):
        r_i = full[s : s + chunk]  # (C, k1 + 1)
        cand = np.where(r_i >= 0, r_i, 0)
        h = half[cand]  # (C, k1 + 1, kh + 1): half-size sets of the candidates
        # how many of each candidate's half-size set are in R(i): a lookup in R(i)'s membership mask
        member = np.zeros((len(r_i), n), dtype=bool)
        at = np.nonzero(r_i >= 0)
        member[at[0], r_i[at]] = True
        inside = member[np.arange(len(r_i))[:, None, None], np.where(h >= 0, h, 0)] & (h >= 0)
        shared = inside.sum(-1)
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
        pair = whole[r + s, j] if whole is not None else _pair_distances(feats, scale, r + s, j)
        weight = np.exp(-pair)
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


def _add_jaccard(final, v, nq, weight, step_elements=1 << 22):
    """Add ``weight`` times the float16 Jaccard distances between the query rows and the
    gallery rows of V to ``final`` (nq, ng), in place.

    Sums of minima accumulated column by column in float16, in the public code's order: every
    (query entry, gallery entry) pair of a column of V gives one term, and the terms are added
    (``np.add.at``, one after the other) in column order, a few columns' terms at a time.
    """
    n = v.shape[0]
    ng = n - nq
    v = v.tocsc()
    v.sort_indices()
    rows, data = v.indices, v.data.astype(np.float16)
    column = np.repeat(np.arange(n), np.diff(v.indptr))
    is_query = rows < nq
    # per column: its query entries' count, its gallery entries' start (in data) and count
    n_query = np.bincount(column[is_query], minlength=n)
    n_gallery = np.diff(v.indptr) - n_query
    gallery_start = v.indptr[:-1] + n_query  # rows are sorted: query entries come first
    terms = n_query * n_gallery
    overlap = np.zeros((nq, ng), dtype=np.float16)
    flat_overlap = overlap.reshape(-1)
    query_entries = np.flatnonzero(is_query)  # in column order
    query_column = column[query_entries]
    ends = np.cumsum(terms)
    k0 = 0
    while k0 < n:
        # columns k0..k1-1: at most step_elements terms, or one column that has more alone
        k1 = max(k0 + 1, int(np.searchsorted(ends, (ends[k0 - 1] if k0 else 0) + step_elements, "right")))
        k1 = min(k1, n)
        lo, hi = np.searchsorted(query_column, [k0, k1])
        q_entry, q_col = query_entries[lo:hi], query_column[lo:hi]
        reps = n_gallery[q_col]
        q_entry = np.repeat(q_entry, reps)
        offset = np.arange(q_entry.size) - np.repeat(np.cumsum(reps) - reps, reps)
        g_entry = np.repeat(gallery_start[q_col], reps) + offset
        np.add.at(flat_overlap, rows[q_entry] * ng + (rows[g_entry] - nq),
                  np.minimum(data[q_entry], data[g_entry]))
        k0 = k1
    del v
    # (1 - o / (2 - o)) * weight in float16, each step rounded to float16 as numpy's float16
    # arithmetic does (in float32, then rounded), but with numpy's fast float32 loops
    one, two, weight = np.float32(1), np.float32(2), np.float32(weight)
    for s, e in _blocks(nq, ng):
        o = overlap[s:e].astype(np.float32)
        term = _round_half(one - _round_half(o / _round_half(two - o)))
        final[s:e] += _round_half(term * weight)
