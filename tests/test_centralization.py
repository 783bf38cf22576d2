import numpy as np
import pytest
import torch

import pose2id as p2
from pose2id.centralization import _nfc_torch
from test_knn import brute_knn, clustered
from testkit import WORKER_SETUPS, use_worker_setup


@pytest.fixture(scope="module")
def ref(shared_dir):
    return np.load(shared_dir / "data" / "reference_vectors.npz")


def l2n(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_nfc(x, k1, k2, normalize=True):
    """The paper's definition, written out: j in N_k1(i) counts if i in N_k2(j)."""
    x = x.astype(np.float64)
    if normalize:
        x = l2n(x)
    knn = brute_knn(x, max(k1, k2))
    out = x.copy()
    for i in range(len(x)):
        for j in knn[i, :k1]:
            if i in knn[j, :k2]:
                out[i] += x[j]
    return l2n(out) if normalize else out


@pytest.mark.parametrize("case", ["small", "mid"])
@pytest.mark.parametrize("k1,k2", [(1, 1), (2, 2), (3, 2), (5, 5)])
def test_nfc_matches_reference(ref, case, k1, k2):
    x = ref[f"nfc_{case}_x"]
    out = p2.nfc(x, k1=k1, k2=k2)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, ref[f"nfc_{case}_demo_k{k1}_{k2}"], atol=1e-5)
    raw = p2.nfc(l2n(x), k1=k1, k2=k2, normalize=False)
    np.testing.assert_allclose(raw, ref[f"nfc_{case}_raw_k{k1}_{k2}"], atol=1e-5)


@pytest.mark.parametrize("case", ["small", "mid"])
def test_nfc_k2_larger_than_k1_follows_the_paper(ref, case):
    # The reference truncates k2 to k1 (its k2_4 vectors equal its k2_2 ones); we must not.
    x = ref[f"nfc_{case}_x"]
    out = p2.nfc(x, k1=2, k2=4)
    np.testing.assert_allclose(out, brute_nfc(x, 2, 4), atol=1e-5)
    assert not np.allclose(out, ref[f"nfc_{case}_demo_k2_2"], atol=1e-3)


@pytest.mark.parametrize("block_size", [1, 7, 32, 100, 4096])
@pytest.mark.parametrize("k1,k2", [(2, 2), (1, 3), (4, 2), (3, 6)])
def test_blocked_nfc_equals_brute_force(block_size, k1, k2):
    x, _ = clustered(150, 16, 20, seed=k1 * 10 + k2)
    out = p2.nfc(x, k1=k1, k2=k2, block_size=block_size)
    np.testing.assert_allclose(out, brute_nfc(x, k1, k2), atol=1e-5)
    raw = p2.nfc(x, k1=k1, k2=k2, normalize=False, block_size=block_size)
    np.testing.assert_allclose(raw, brute_nfc(x, k1, k2, normalize=False), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("block_size", [3, 16, 64])
def test_nfc_with_tied_distances_follows_the_lower_index(block_size):
    # Small integer features: many distances are equal (duplicate rows included).
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (70, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        p2.nfc(x, 2, 3, normalize=False, block_size=block_size), brute_nfc(x, 2, 3, False)
    )


@pytest.mark.parametrize("setup", WORKER_SETUPS)
def test_nfc_same_for_every_worker_setup(monkeypatch, setup):
    use_worker_setup(monkeypatch, setup)
    x, _ = clustered(400, 10, 30, seed=7)
    np.testing.assert_allclose(p2.nfc(x, 2, 3, block_size=20), brute_nfc(x, 2, 3), atol=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
def test_nfc_with_searched_neighbours_equals_nfc_for_every_k(normalize):
    # Ties everywhere (small integer rows, duplicates): one search at K serves every k1, k2 <= K.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (90, 4)).astype(np.float32)
    neighbours = p2.nfc_neighbors(x, 6, normalize=normalize, block_size=16)
    assert neighbours.shape == (90, 6) and neighbours.dtype == np.int64
    for k1, k2 in [(1, 1), (2, 3), (6, 2), (4, 6)]:
        np.testing.assert_array_equal(
            p2.nfc(x, k1, k2, normalize=normalize, neighbors=neighbours),
            p2.nfc(x, k1, k2, normalize=normalize, block_size=16))
    np.testing.assert_array_equal(p2.nfc(x, 2, 3, normalize=False, neighbors=neighbours if not normalize else
                                         p2.nfc_neighbors(x, 3, normalize=False)), brute_nfc(x, 2, 3, False))


def test_nfc_neighbours_torch_in_torch_out():
    x, _ = clustered(60, 8, 10, seed=4)
    neighbours = p2.nfc_neighbors(torch.from_numpy(x), 4)
    assert isinstance(neighbours, torch.Tensor)
    np.testing.assert_array_equal(neighbours.numpy(), p2.nfc_neighbors(x, 4))
    out = p2.nfc(torch.from_numpy(x), 2, 3, neighbors=neighbours)
    np.testing.assert_allclose(out.numpy(), p2.nfc(x, 2, 3), atol=1e-6)


@pytest.mark.parametrize(
    "neighbours,match",
    [
        (np.zeros((5, 2), dtype=np.int64), r"neighbors must have shape \(6, K\) with K >= max\(k1, k2\) = 3"),
        (np.zeros((6, 2), dtype=np.int64), r"K >= max\(k1, k2\) = 3, got \(6, 2\)"),
        (np.zeros((6, 3)), "neighbors must hold integer row indices"),
        (np.full((6, 3), 6), r"row indices in \[0, 6\)"),
        ([[0, 1, 2]] * 6, "neighbors must have shape"),
    ],
)
def test_nfc_bad_neighbours(neighbours, match):
    with pytest.raises(ValueError, match=match):
        p2.nfc(np.eye(6, dtype=np.float32), 2, 3, neighbors=neighbours)


def test_nfc_only_adds_mutual_neighbours():
    # 0 and 1 are each other's nearest; 2 is nearest to 1, but 1's nearest is 0.
    x = np.array([[0.0, 0.0], [1.0, 0.0], [2.5, 0.0], [10.0, 0.0]], dtype=np.float32)
    out = p2.nfc(x, k1=1, k2=1, normalize=False)
    np.testing.assert_array_equal(out, [[1, 0], [1, 0], [2.5, 0], [10, 0]])


def test_nfc_torch_in_torch_out():
    x, _ = clustered(80, 8, 10, seed=1)
    out = p2.nfc(torch.from_numpy(x), k1=2, k2=2)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), p2.nfc(x), atol=1e-6)


def test_nfc_torch_path_equals_numpy_path():
    # The path used for CUDA tensors, exercised on CPU tensors.
    x, _ = clustered(200, 8, 15, seed=2)
    x = l2n(x).astype(np.float32)
    out = _nfc_torch(torch.from_numpy(x), 2, 3, normalize=True, block_size=64)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), p2.nfc(x, 2, 3), atol=1e-6)


def test_ipg_fuse_mean_and_sum():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((5, 6)).astype(np.float32)
    g = rng.standard_normal((5, 8, 6)).astype(np.float32)
    np.testing.assert_allclose(p2.ipg_fuse(f, g), l2n(f + 2.0 * g.mean(1)), atol=1e-6)
    np.testing.assert_allclose(
        p2.ipg_fuse(f, g, eta=1.0, reduce="sum"), l2n(f + g.sum(1)), atol=1e-6
    )
    fused = p2.ipg_fuse(torch.from_numpy(f), torch.from_numpy(g))
    assert isinstance(fused, torch.Tensor)
    np.testing.assert_allclose(fused.numpy(), p2.ipg_fuse(f, g), atol=1e-6)


@pytest.mark.parametrize(
    "feats,kwargs,match",
    [
        (np.ones(5), {}, "feats must be a 2-D array"),
        (np.zeros((0, 4)), {}, "feats is empty"),
        (np.array([[1.0, np.nan], [0, 1], [1, 1]]), {}, "feats contains NaN"),
        (np.array([[1.0, np.inf], [0, 1], [1, 1]]), {}, "feats contains NaN or infinite"),
        (np.ones((3, 2), dtype=complex), {}, "feats must hold real numbers"),
        (np.array([["a", "b"], ["c", "d"]]), {}, "feats must hold numbers"),
        (np.array([[1, None], [2, 3]], dtype=object), {}, "feats must hold numbers"),
        (np.ones((3, 2), dtype=bool), {}, "feats must hold numbers"),
        (np.ones((1, 2)), {}, "at least 2 rows"),
        (np.eye(4), {"k1": 4}, "k1 must be <= 3"),
        (np.eye(4), {"k2": 5}, "k2 must be <= 3"),
        (np.eye(4), {"k1": 0}, "k1 must be >= 1"),
        (np.eye(4), {"k1": 1.5}, "k1 must be an integer"),
        (np.eye(4), {"block_size": 0}, "block_size must be >= 1"),
    ],
)
def test_nfc_bad_input(feats, kwargs, match):
    with pytest.raises(ValueError, match=match):
        p2.nfc(feats, **kwargs)


def test_nfc_bad_torch_input():
    with pytest.raises(ValueError, match="feats contains NaN"):
        p2.nfc(torch.tensor([[1.0, float("nan")], [0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="feats must hold real numbers"):
        p2.nfc(torch.ones(3, 2, dtype=torch.complex64))


@pytest.mark.parametrize(
    "gen,kwargs,match",
    [
        (np.ones((4, 2, 3)), {}, "gen_feats has 4 rows but feats has 3 rows"),
        (np.ones((3, 2, 5)), {}, "gen_feats has feature dimension 5 but feats has 3"),
        (np.ones((3, 3)), {}, r"gen_feats must be a 3-D array \(N, P, D\)"),
        (np.ones((3, 2, 3)), {"reduce": "max"}, 'reduce must be "mean" or "sum"'),
        (np.ones((3, 2, 3)), {"eta": float("nan")}, "eta must be a finite number"),
        (np.ones((3, 2, 3)), {"eta": -1.0}, "eta must be >= 0"),
        (torch.ones(3, 2, 3), {}, "must both be numpy arrays or both torch tensors"),
    ],
)
def test_ipg_fuse_bad_input(gen, kwargs, match):
    with pytest.raises(ValueError, match=match):
        p2.ipg_fuse(np.ones((3, 3)), gen, **kwargs)
