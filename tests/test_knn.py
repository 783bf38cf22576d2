"""The exact blockwise k-nearest-neighbour engine (pose2id.knn) against a brute-force sort."""

import numpy as np
import pytest
import torch

from pose2id.knn import nearest_neighbors
from testkit import WORKER_SETUPS, use_worker_setup


def brute_knn(x, k):
    """k nearest other rows, by a stable sort of the full distance matrix (float64)."""
    x = x.astype(np.float64)
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    return np.argsort(dist, axis=1, kind="stable")[:, :k]


def clustered(n, d, n_ids, seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, d)) * 2
    pids = rng.integers(0, n_ids, n)
    return (centres[pids] + rng.standard_normal((n, d))).astype(np.float32), pids


@pytest.mark.parametrize("block_size", [3, 16, 64])
def test_neighbours_break_ties_by_lower_index(block_size):
    # Small integer features: every distance is exact in float32, and many are equal
    # (duplicate rows included), so the tie rule decides the lists.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (70, 3)).astype(np.float32)
    for k in (1, 3, 6):
        np.testing.assert_array_equal(nearest_neighbors(x, k, block_size), brute_knn(x, k))


def test_torch_neighbour_path_equals_numpy_path():
    # The path used for CUDA tensors, exercised on CPU tensors.
    x, _ = clustered(200, 8, 15, seed=2)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    via_torch = nearest_neighbors(torch.from_numpy(x), 5, block_size=64)
    assert isinstance(via_torch, torch.Tensor)
    np.testing.assert_array_equal(via_torch.numpy(), nearest_neighbors(x, 5, block_size=64))


def test_list_keys_round_trip_distances_in_order():
    from pose2id.knn import _key_distance, _sortable_bits

    vals = np.array([-3.5, -1e-30, -0.0, 0.0, 1e-30, 0.25, 2.0, np.inf], dtype=np.float32)
    keys = _sortable_bits(vals) << np.uint64(32)
    assert np.all(np.diff(keys.astype(np.float64)) >= 0)  # sorted as the values are
    assert keys[2] == keys[3]  # -0.0 and 0.0 tie, so the index decides
    np.testing.assert_array_equal(_key_distance(keys), vals + np.float32(0))


@pytest.mark.parametrize("spread", [100, 2**20])  # packed-integer sort, and the lexsort fallback
def test_merge_keeps_k_best_with_lower_index_on_ties(spread):
    from pose2id.knn import _EMPTY_KEY, _key_distance, _merge, _sortable_bits

    n, k = 2**21, 4
    best = np.full((n, k), _EMPTY_KEY | np.uint64(n), dtype=np.uint64)
    # Row 5 already holds (1.0, 9) and (2.0, 4); candidates arrive unsorted, with ties.
    best[5, :2] = (_sortable_bits(np.float32([1.0, 2.0])) << np.uint64(32)) | np.uint64([9, 4])
    rows = np.array([5, 0, 5, 5, 0, spread])
    cols = np.array([spread, 7, 3, 1, 2, 0])
    vals = np.float32([1.0, 0.5, 2.0, 1.0, 0.5, 4.0])
    _merge(best, rows, cols, 0, 10, vals)
    idx = (best & np.uint64(0xFFFFFFFF)).astype(np.int64)
    # Three at 1.0 by index, then 2.0 at the old 4 before the new 13.
    np.testing.assert_array_equal(idx[5], [9, 11, 10 + spread, 4])
    np.testing.assert_array_equal(_key_distance(best[5]), [1.0, 1.0, 1.0, 2.0])
    np.testing.assert_array_equal(idx[0, :2], [12, 17])
    np.testing.assert_array_equal(idx[spread], [10, n, n, n])
    assert np.isinf(_key_distance(best[0, 2:])).all()


def test_block_scan_in_small_steps_finds_the_same_neighbours(monkeypatch):
    # Blocks are compared with the thresholds a few rows at a time; force many small steps
    # (including one row per step) and check against the brute force.
    import pose2id.knn as knn

    x, _ = clustered(300, 12, 25, seed=5)
    for scan_bytes in (1, 200, 1000):
        monkeypatch.setattr(knn, "_SCAN_BYTES", scan_bytes)
        for block_size in (16, 50):
            np.testing.assert_array_equal(nearest_neighbors(x, 4, block_size), brute_knn(x, 4))


@pytest.mark.parametrize("setup", WORKER_SETUPS)
def test_worker_setups_find_the_same_neighbours(monkeypatch, setup):
    # Blocks are scanned by one worker per core (at most 4) and merged as they finish, or by
    # one worker when the BLAS threads cannot be limited; the lists must not depend on it.
    use_worker_setup(monkeypatch, setup)
    x, _ = clustered(400, 10, 30, seed=7)
    for block_size in (8, 33):
        np.testing.assert_array_equal(nearest_neighbors(x, 3, block_size), brute_knn(x, 3))
