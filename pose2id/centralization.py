"""Feature centralization: neighbour feature centralization (NFC) and IPG feature fusion.

Both pull each feature towards the centre of its identity's cluster without any training
("From Poses to Identity", CVPR 2025). Semantics: ``shared/spec/ALGORITHMS.md``. The nearest
neighbours NFC needs come from :mod:`pose2id.knn` (exact, blockwise, no N x N matrix).
"""

import numpy as np

from ._checks import as_features, check_int, check_real, is_tensor
from .knn import DEFAULT_BLOCK_SIZE, _by_rows, nearest_neighbors

__all__ = ["ipg_fuse", "nfc", "nfc_neighbors", "nearest_neighbors"]


def _normalize_np(x, out=None):
    norms = np.sqrt(np.einsum("nd,nd->n", x, x, dtype=np.float32))
    return np.divide(x, np.maximum(norms, 1e-12)[:, None], out=out)


def _normalize_torch(x):
    import torch.nn.functional as F

    return F.normalize(x, dim=1)


def nfc(feats, k1=2, k2=2, normalize=True, block_size=None, neighbors=None):
    """Neighbour feature centralization.

    Each feature is replaced by itself plus the features of its *mutual* nearest neighbours:
    ``j`` among the ``k1`` nearest rows of ``i`` counts when ``i`` is also among the ``k2`` nearest
    rows of ``j`` (squared Euclidean distance; a row is never its own neighbour).

    Apply it to a query set and to a gallery set separately, never to both together.

    Parameters
    ----------
    feats : (N, D) float array or torch.Tensor
        One feature per image.
    k1 : int, default 2
        Neighbours considered per row, ``1 <= k1 < N``.
    k2 : int, default 2
        Size of the neighbour list in which ``i`` must appear for ``j`` to be mutual,
        ``1 <= k2 < N``. Values above ``k1`` are honoured (the reference code silently used k1).
    normalize : bool, default True
        L2-normalize the rows before the search and the result afterwards.
    block_size : int, optional
        Rows per panel of the distance computation (memory ~ 320 * block_size**2 bytes per
        worker thread, one per core up to 4).
    neighbors : (N, K) int array or torch.Tensor, optional, ``K >= max(k1, k2)``
        The rows' nearest neighbours, as :func:`nfc_neighbors` gives them for the same ``feats``
        and ``normalize``. The search is nearly all of NFC's cost and its first ``k`` columns
        are the ``k`` nearest for any ``k <= K`` (ties go to the lower index whatever ``K``),
        so one search serves every ``k1`` / ``k2`` up to ``K`` with the same result.

    Returns
    -------
    centred : (N, D) float32 array, or a torch.Tensor on the input's device.
    """
    feats = as_features(feats, "feats")
    n = feats.shape[0]
    if n < 2:
        raise ValueError(f"feats must have at least 2 rows for NFC, got {n}")
    k1 = check_int(k1, "k1", 1, n - 1, f"feats has {n} rows, a row is not its own neighbour")
    k2 = check_int(k2, "k2", 1, n - 1, f"feats has {n} rows, a row is not its own neighbour")
    block_size = DEFAULT_BLOCK_SIZE if block_size is None else block_size
    block_size = check_int(block_size, "block_size", 1)
    if neighbors is not None:
        neighbors = _check_neighbors(neighbors, n, max(k1, k2))

    if is_tensor(feats) and feats.device.type != "cpu":
        if neighbors is not None:
            import torch

            neighbors = torch.as_tensor(neighbors, device=feats.device)
        return _nfc_torch(feats.float(), k1, k2, normalize, block_size, neighbors)
    if is_tensor(neighbors):
        neighbors = neighbors.detach().cpu().numpy()
    out = _nfc_numpy(_to_numpy(feats), k1, k2, normalize, block_size, neighbors)
    if is_tensor(feats):
        import torch

        return torch.from_numpy(out)
    return out


def nfc_neighbors(feats, k, normalize=True, block_size=None):
    """The ``k`` nearest other rows of every row, nearest first (ties: the lower index), as
    :func:`nfc` searches them: pass the result as its ``neighbors`` to centralize with any
    ``k1``, ``k2`` up to ``k`` without searching again.

    Parameters
    ----------
    feats : (N, D) float array or torch.Tensor
    k : int, ``1 <= k < N``
    normalize : bool, default True
        L2-normalize the rows first (give :func:`nfc` the same).
    block_size : int, optional, as for :func:`nfc`.

    Returns
    -------
    (N, k) int64 array, or a torch.Tensor on the input's device.
    """
    feats = as_features(feats, "feats")
    n = feats.shape[0]
    if n < 2:
        raise ValueError(f"feats must have at least 2 rows for NFC, got {n}")
    k = check_int(k, "k", 1, n - 1, f"feats has {n} rows, a row is not its own neighbour")
    block_size = check_int(DEFAULT_BLOCK_SIZE if block_size is None else block_size, "block_size", 1)
    if is_tensor(feats) and feats.device.type != "cpu":
        x = feats.float()
        return nearest_neighbors(_normalize_torch(x) if normalize else x, k, block_size)
    x = _to_numpy(feats)
    idx = nearest_neighbors(_normalized_rows(x) if normalize else x, k, block_size)
    if is_tensor(feats):
        import torch

        return torch.from_numpy(idx)
    return idx


def _check_neighbors(neighbors, n, k):
    """``neighbors`` as an (n, >= k) integer array or tensor of row indices, or ValueError."""
    shape = tuple(neighbors.shape) if hasattr(neighbors, "shape") else None
    if shape is None or len(shape) != 2 or shape[0] != n or shape[1] < k:
        raise ValueError(f"neighbors must have shape ({n}, K) with K >= max(k1, k2) = {k}, got {shape}")
    values = neighbors.detach().cpu().numpy() if is_tensor(neighbors) else np.asarray(neighbors)
    if values.dtype.kind not in "iu":
        raise ValueError(f"neighbors must hold integer row indices, got dtype {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= n):
        raise ValueError(f"neighbors must hold row indices in [0, {n}), got values in "
                         f"[{values.min()}, {values.max()}]")
    return neighbors if is_tensor(neighbors) else values


def _normalized_rows(x):
    normalized = np.empty_like(x)
    _by_rows(lambda rows: _normalize_np(x[rows], out=normalized[rows]), len(x))
    return normalized


def _to_numpy(x):
    if is_tensor(x):
        x = x.detach().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def _nfc_numpy(x, k1, k2, normalize, block_size, nbr=None):
    if normalize:
        x = _normalized_rows(x)
    if nbr is None:
        nbr = nearest_neighbors(x, max(k1, k2), block_size)
    first, mutual = nbr[:, :k1], _mutual_mask(nbr, k1, k2)
    out = np.zeros_like(x)

    def centre(rows):
        total = _centralize(x, x[rows], first[rows], mutual[rows], out[rows])
        if normalize:
            _normalize_np(total, out=total)

    _by_rows(centre, len(x))
    return out


def _nfc_torch(x, k1, k2, normalize, block_size, nbr=None):
    if normalize:
        x = _normalize_torch(x)
    if nbr is None:
        nbr = nearest_neighbors(x, max(k1, k2), block_size)
    mutual = _mutual_mask(nbr, k1, k2)
    out = _centralize(x, x, nbr[:, :k1], mutual, x.new_zeros(x.shape))
    return _normalize_torch(out) if normalize else out


def _mutual_mask(nbr, k1, k2):
    """(N, k1) bool: is ``nbr[i, r]`` (r < k1) a mutual neighbour, i.e. i in its k2 list."""
    n = nbr.shape[0]
    first = nbr[:, :k1]
    back = nbr[:, :k2][first]  # (N, k1, k2): the k2 lists of i's k1 neighbours
    if is_tensor(back):
        import torch

        rows = torch.arange(n, device=back.device)[:, None, None]
    else:
        rows = np.arange(n)[:, None, None]
    return (back == rows).any(-1)


def _centralize(x, own, first, mutual, total):
    """``total`` (zeros) <- F_i + sum of F_j over the mutual neighbours j of each row i.

    ``own`` holds the rows' own features, ``first`` (rows, k1) their nearest rows in ``x`` and
    ``mutual`` which of those count; neighbours are always input rows, never updated ones.
    """
    for r in range(first.shape[1]):  # neighbours in rank order, then the row: F_i + (F_j1 + ..)
        sel = mutual[:, r].nonzero().flatten() if is_tensor(x) else np.flatnonzero(mutual[:, r])
        total[sel] += x[first[sel, r]]
    total += own
    return total


def ipg_fuse(feats, gen_feats, eta=2.0, reduce="mean"):
    """Fuse each feature with the features of its IPG-generated images.

    ``F' = normalize(F + eta * mean_p G_p)`` (or the sum over p with ``reduce="sum"``), on the raw,
    unnormalized model features.

    Parameters
    ----------
    feats : (N, D) float array or torch.Tensor
    gen_feats : (N, P, D) float array or torch.Tensor
        Features of P generated images (one per pose) of each of the N images.
    eta : float, default 2.0
        Weight of the generated features.
    reduce : {"mean", "sum"}

    Returns
    -------
    fused : (N, D) float32 array, or a torch.Tensor on the input's device, rows L2-normalized.
    """
    feats = as_features(feats, "feats")
    gen_feats = as_features(gen_feats, "gen_feats", ndim=3)
    eta = check_real(eta, "eta", low=0.0)
    if reduce not in ("mean", "sum"):
        raise ValueError(f'reduce must be "mean" or "sum", got {reduce!r}')
    if gen_feats.shape[0] != feats.shape[0]:
        raise ValueError(
            f"gen_feats has {gen_feats.shape[0]} rows but feats has {feats.shape[0]} rows"
        )
    if gen_feats.shape[2] != feats.shape[1]:
        raise ValueError(
            f"gen_feats has feature dimension {gen_feats.shape[2]} but feats has {feats.shape[1]}"
        )
    if is_tensor(feats) != is_tensor(gen_feats):
        raise ValueError("feats and gen_feats must both be numpy arrays or both torch tensors")
    if is_tensor(feats):
        gen = gen_feats.float().to(feats.device)
        pooled = gen.mean(1) if reduce == "mean" else gen.sum(1)
        return _normalize_torch(feats.float() + eta * pooled)
    pooled = gen_feats.mean(1) if reduce == "mean" else gen_feats.sum(1)
    return _normalize_np(feats + np.float32(eta) * pooled)
