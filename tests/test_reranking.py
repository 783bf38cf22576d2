import numpy as np
import pytest
import torch

import pose2id as p2


@pytest.fixture(scope="module")
def ref(shared_dir):
    return np.load(shared_dir / "data" / "reference_vectors.npz")


def l2n(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_re_ranking(qf, gf, k1, k2, lam):
    """The method written out with sets and loops, in float64 (no float16 storage)."""
    feats = np.concatenate([qf, gf]).astype(np.float64)
    n, nq = len(feats), len(qf)
    dist = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    dist = dist / dist.max(axis=1, keepdims=True)
    rank = np.argsort(dist, axis=1, kind="stable")

    def reciprocal(i, k):
        return {j for j in rank[i, : k + 1] if i in rank[j, : k + 1]}

    v = np.zeros((n, n))
    for i in range(n):
        r_i = reciprocal(i, k1)
        expanded = set(r_i)
        for c in r_i:
            r_c = reciprocal(c, int(np.around(k1 / 2)))
            if len(r_c & r_i) > 2 / 3 * len(r_c):
                expanded |= r_c
        members = sorted(expanded)
        w = np.exp(-dist[i, members])
        v[i, members] = w / w.sum()
    v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    out = np.empty((nq, n - nq))
    for i in range(nq):
        for j in range(nq, n):
            m = np.minimum(v[i], v[j]).sum()
            out[i, j - nq] = (1 - lam) * (1 - m / (2 - m)) + lam * dist[i, j]
    return out


def test_re_ranking_matches_reference(ref):
    dist = p2.re_ranking(l2n(ref["ev_qf"]), l2n(ref["ev_gf"]), k1=20, k2=6, lambda_value=0.3)
    expected = ref["ev_rerank_k20_6_03_dist"]
    assert dist.dtype == np.float32 and dist.shape == expected.shape
    np.testing.assert_allclose(dist, expected, atol=1e-3)
    result = p2.evaluate(
        dist, ref["ev_q_pids"], ref["ev_g_pids"], ref["ev_q_camids"], ref["ev_g_camids"]
    )
    # float16 sums can make distances exactly equal: the reference lies within their tie range
    worst, best = result.mAP_tie_range
    assert worst - 1e-6 <= float(ref["ev_rerank_map"]) <= best + 1e-6
    assert best - worst < 1e-3 and abs(result.mAP - float(ref["ev_rerank_map"])) < 1e-3
    assert np.all(result.cmc_tie_range[0] - 1e-6 <= ref["ev_rerank_cmc"])
    assert np.all(ref["ev_rerank_cmc"] <= result.cmc_tie_range[1] + 1e-6)


@pytest.mark.parametrize("k1,k2,lam", [(6, 3, 0.3), (4, 1, 0.5), (9, 4, 0.0), (3, 2, 1.0)])
def test_re_ranking_equals_written_out_method(k1, k2, lam):
    rng = np.random.default_rng(k1)
    centres = rng.standard_normal((6, 8))
    qf = l2n(centres[rng.integers(0, 6, 12)] + 0.5 * rng.standard_normal((12, 8)))
    gf = l2n(centres[rng.integers(0, 6, 40)] + 0.5 * rng.standard_normal((40, 8)))
    got = p2.re_ranking(qf.astype(np.float32), gf.astype(np.float32), k1, k2, lam)
    # float16 storage of V and of the Jaccard sums (as in the public code): ~1e-3.
    np.testing.assert_allclose(got, brute_re_ranking(qf, gf, k1, k2, lam), atol=2e-3)


def clustered(seed, nq, ng, dim=8, n_ids=6):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim))
    qf = l2n(centres[rng.integers(0, n_ids, nq)] + 0.5 * rng.standard_normal((nq, dim)))
    gf = l2n(centres[rng.integers(0, n_ids, ng)] + 0.5 * rng.standard_normal((ng, dim)))
    return qf.astype(np.float32), gf.astype(np.float32)


def test_re_ranking_with_duplicate_images_breaks_ties_by_index():
    # The same image in the gallery three times, and a query that is also in the gallery:
    # equal distances, which the written-out method orders by index (a stable sort).
    qf, gf = clustered(3, 10, 30)
    gf = np.concatenate([gf, gf[:3], gf[:3], qf[:2]])
    got = p2.re_ranking(qf, gf, k1=6, k2=3)
    np.testing.assert_allclose(got, brute_re_ranking(qf, gf, 6, 3, 0.3), atol=2e-3)
    # duplicates of one gallery image are equally far from every query
    np.testing.assert_allclose(got[:, 0], got[:, 30], atol=1e-6)
    np.testing.assert_allclose(got[:, 0], got[:, 33], atol=1e-6)


def test_nearest_neighbours_keep_equal_distances_in_index_order():
    # After NFC equal distances are common; they are ordered by index (a stable sort), so the
    # result does not depend on the machine's sort.
    from pose2id.reranking import _smallest

    rng = np.random.default_rng(0)
    for n in (8, 40, 500):
        dist = rng.integers(0, 4, size=(30, n)).astype(np.float32)  # many ties
        dist[::3] = rng.random((10, n), dtype=np.float32)  # and rows without
        for k in {1, 5, min(21, n)}:
            expected = np.argsort(dist, axis=1, kind="stable")[:, :k]
            np.testing.assert_array_equal(_smallest(dist, k), expected)


def test_re_ranking_is_the_same_in_any_block_size(monkeypatch):
    qf, gf = clustered(5, 25, 90)
    whole = p2.re_ranking(qf, gf, k1=8, k2=4)
    from pose2id import reranking

    for elements in (1, 150, 1000):  # one row (and one feature pair) at a time, a few rows
        monkeypatch.setattr(reranking, "BLOCK_ELEMENTS", elements)
        np.testing.assert_allclose(p2.re_ranking(qf, gf, k1=8, k2=4), whole, atol=1e-3)


def test_jaccard_sums_are_the_same_in_any_number_of_columns_at_a_time(monkeypatch):
    # float16 sums in the public code's column order, however many columns' terms go at once
    import functools

    from pose2id import reranking

    qf, gf = clustered(6, 20, 70)
    whole = p2.re_ranking(qf, gf, k1=6, k2=3)
    add = reranking._add_jaccard
    for step in (1, 40, 5000):
        monkeypatch.setattr(reranking, "_add_jaccard", functools.partial(add, step_elements=step))
        np.testing.assert_array_equal(p2.re_ranking(qf, gf, k1=6, k2=3), whole)


def test_re_ranking_never_holds_the_full_distance_matrix(monkeypatch):
    import tracemalloc

    from pose2id import reranking

    monkeypatch.setattr(reranking, "BLOCK_ELEMENTS", 1 << 16)
    qf, gf = clustered(7, 20, 3000, dim=16, n_ids=150)
    n = len(qf) + len(gf)
    tracemalloc.start()
    try:
        dist = p2.re_ranking(qf, gf, k1=10, k2=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert dist.shape == (20, 3000) and np.isfinite(dist).all()
    # the (N, N) float32 matrix would be 36 MB; the output is 0.24 MB
    assert peak < n * n * 4 / 4, f"peak {peak / 2**20:.1f} MB"


def test_re_ranking_improves_retrieval(ref):
    q_pids, g_pids = ref["ev_q_pids"], ref["ev_g_pids"]
    q_cams, g_cams = ref["ev_q_camids"], ref["ev_g_camids"]
    qf, gf = l2n(ref["ev_qf"]), l2n(ref["ev_gf"])
    plain = p2.evaluate(p2.pairwise_sqeuclidean(qf, gf), q_pids, g_pids, q_cams, g_cams)
    reranked = p2.evaluate(p2.re_ranking(qf, gf), q_pids, g_pids, q_cams, g_cams)
    assert reranked.mAP > plain.mAP


def test_re_ranking_torch_in_torch_out(ref):
    qf, gf = l2n(ref["ev_qf"][:30]), l2n(ref["ev_gf"][:80])
    got = p2.re_ranking(torch.from_numpy(qf), torch.from_numpy(gf), k1=5, k2=3)
    assert isinstance(got, torch.Tensor) and got.shape == (30, 80)
    np.testing.assert_array_equal(got.numpy(), p2.re_ranking(qf, gf, k1=5, k2=3))


@pytest.mark.parametrize(
    "qf,gf,kwargs,match",
    [
        (np.ones((3, 4)), np.ones((5, 3)), {}, "gf has feature dimension 3 but qf has 4"),
        (np.ones(4), np.ones((5, 4)), {}, "qf must be a 2-D array"),
        (np.ones((3, 4)), np.zeros((0, 4)), {}, "gf is empty"),
        (np.ones((3, 4)), np.full((5, 4), np.inf), {}, "gf contains NaN or infinite"),
        (np.eye(4)[:2], np.eye(4)[2:], {"k1": 4}, r"k1 must be <= 3"),
        (np.eye(4)[:2], np.eye(4)[2:], {"k1": 2, "k2": 5}, r"k2 must be <= 4"),
        (np.eye(4)[:2], np.eye(4)[2:], {"k1": 2, "k2": 0}, r"k2 must be >= 1"),
        (np.eye(4)[:2], np.eye(4)[2:], {"k1": 2, "k2": 2, "lambda_value": 1.5},
         "lambda_value must be <= 1"),
        (np.eye(4)[:2], np.eye(4)[2:], {"k1": 2, "k2": 2, "lambda_value": -0.1},
         "lambda_value must be >= 0"),
        (np.eye(4)[:2], torch.eye(4)[2:], {"k1": 2}, "must both be numpy arrays or both torch"),
    ],
)
def test_re_ranking_bad_input(qf, gf, kwargs, match):
    with pytest.raises(ValueError, match=match):
        p2.re_ranking(qf, gf, **kwargs)
