import numpy as np
import pytest
import torch

import pose2id as p2


@pytest.fixture(scope="module")
def ref(shared_dir):
    return np.load(shared_dir / "data" / "reference_vectors.npz")


def l2n(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def loop_evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50, ties="index"):
    """The per-query protocol, written out (as torchreid's eval_market1501).

    ties: order of equal distances, "index" (gallery order), "matches_last" or "matches_first".
    """
    cmcs, aps, inps = [], [], []
    for q in range(distmat.shape[0]):
        is_match = g_pids == q_pids[q]
        tiebreak = {"index": 0 * is_match, "matches_last": is_match, "matches_first": ~is_match}[ties]
        order = np.lexsort((np.arange(g_pids.size), tiebreak, distmat[q]))
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        hits = (g_pids[order][keep] == q_pids[q]).astype(np.float64)
        if not hits.any():
            continue
        cmc = np.minimum(hits.cumsum(), 1)
        cmcs.append(np.pad(cmc, (0, max(0, max_rank - cmc.size)), mode="edge")[:max_rank])
        precision = hits.cumsum() / np.arange(1, hits.size + 1)
        aps.append((precision * hits).sum() / hits.sum())
        inps.append(hits.sum() / (np.flatnonzero(hits)[-1] + 1))
    return np.mean(cmcs, 0), np.mean(aps), np.mean(inps), np.array(aps)


def random_eval_case(seed, nq=40, ng=300, n_ids=30, n_cams=4, integer=False):
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, n_ids, nq)
    g_pids = rng.integers(0, n_ids + 5, ng)  # some gallery identities never queried
    q_camids = rng.integers(0, n_cams, nq)
    g_camids = rng.integers(0, n_cams, ng)
    if integer:  # many identical distances
        distmat = rng.integers(0, 20, (nq, ng)).astype(np.float32)
    else:
        distmat = rng.random((nq, ng)).astype(np.float32)
        distmat -= 0.3 * (q_pids[:, None] == g_pids[None, :])
    return distmat, q_pids, g_pids, q_camids, g_camids


@pytest.mark.parametrize("ipg", [0, 1])
@pytest.mark.parametrize("use_nfc", [0, 1])
def test_evaluation_pipeline_matches_reference(ref, ipg, use_nfc):
    if ipg:
        qf = p2.ipg_fuse(ref["ev_qf"], ref["ev_q_ipg"][:, None], eta=2.0)
        gf = p2.ipg_fuse(ref["ev_gf"], ref["ev_g_ipg"][:, None], eta=2.0)
    else:
        qf, gf = l2n(ref["ev_qf"]), l2n(ref["ev_gf"])
    if use_nfc:  # query and gallery centralized separately
        qf, gf = p2.nfc(qf), p2.nfc(gf)
    result = p2.evaluate(
        p2.pairwise_sqeuclidean(qf, gf),
        ref["ev_q_pids"], ref["ev_g_pids"], ref["ev_q_camids"], ref["ev_g_camids"],
    )
    assert result.cmc.shape == (50,)
    # After NFC many distances are exactly equal, and the reference's order among them is its
    # machine's: it lies within the range of tie orders of the same distances.
    expected_map = float(ref[f"ev_ipg{ipg}_nfc{use_nfc}_map"])
    worst, best = result.mAP_tie_range
    assert worst - 1e-6 <= expected_map <= best + 1e-6
    assert worst - 1e-12 <= result.mAP <= best + 1e-12
    cmc_worst, cmc_best = result.cmc_tie_range
    expected_cmc = ref[f"ev_ipg{ipg}_nfc{use_nfc}_cmc"]
    assert np.all(cmc_worst - 1e-6 <= expected_cmc) and np.all(expected_cmc <= cmc_best + 1e-6)
    if not use_nfc:  # no exactly equal distances: one well-defined answer
        assert best - worst < 1e-12
        assert abs(result.mAP - expected_map) < 1e-6
        np.testing.assert_allclose(result.cmc, expected_cmc, atol=1e-6)


def test_evaluation_after_nfc_is_the_same_on_every_run(ref):
    def run():
        qf, gf = p2.nfc(ref["ev_qf"]), p2.nfc(ref["ev_gf"])
        d = p2.pairwise_sqeuclidean(qf, gf)
        return p2.evaluate(d, ref["ev_q_pids"], ref["ev_g_pids"], ref["ev_q_camids"], ref["ev_g_camids"])

    first, second = run(), run()
    assert first.mAP == second.mAP and first.mAP_tie_range == second.mAP_tie_range
    np.testing.assert_array_equal(first.cmc, second.cmc)
    # NFC does make exactly equal distances here: the range is not empty
    assert first.mAP_tie_range[0] < first.mAP_tie_range[1]


def test_reranked_distances_evaluate_like_reference(ref):
    result = p2.evaluate(
        ref["ev_rerank_k20_6_03_dist"],
        ref["ev_q_pids"], ref["ev_g_pids"], ref["ev_q_camids"], ref["ev_g_camids"],
    )
    worst, best = result.mAP_tie_range
    assert worst - 1e-6 <= float(ref["ev_rerank_map"]) <= best + 1e-6
    assert np.all(result.cmc_tie_range[0] - 1e-6 <= ref["ev_rerank_cmc"])
    assert np.all(ref["ev_rerank_cmc"] <= result.cmc_tie_range[1] + 1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("integer", [False, True])
def test_evaluate_equals_per_query_loop(seed, integer):
    case = random_eval_case(seed, integer=integer)
    result = p2.evaluate(*case, max_rank=20)
    cmc, mAP, mINP, aps = loop_evaluate(*case, max_rank=20)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-12)
    assert result.mAP == pytest.approx(mAP, abs=1e-12)
    assert result.mINP == pytest.approx(mINP, abs=1e-12)
    np.testing.assert_allclose(result.all_AP, aps, atol=1e-12)
    assert result.valid.shape == (case[0].shape[0],)
    assert result.valid.sum() == aps.size
    # the tie range: the same protocol with true matches last / first among equal distances
    for bound, ties in zip((0, 1), ("matches_last", "matches_first")):
        cmc_t, mAP_t, _, _ = loop_evaluate(*case, max_rank=20, ties=ties)
        assert result.mAP_tie_range[bound] == pytest.approx(mAP_t, abs=1e-12)
        np.testing.assert_allclose(result.cmc_tie_range[bound], cmc_t, atol=1e-12)
    if not integer:
        assert result.mAP_tie_range == pytest.approx((mAP, mAP), abs=1e-12)


def test_evaluate_is_the_same_in_any_chunk_size(monkeypatch):
    import functools

    from pose2id import metrics

    case = random_eval_case(2, integer=True)  # ties everywhere
    cmc, mAP, mINP, aps = loop_evaluate(*case, max_rank=20)
    positions = metrics._positions
    for chunk, step in [(1, 1), (3, 50), (7, 1 << 22)]:
        monkeypatch.setattr(metrics, "_positions", functools.partial(positions, chunk=chunk, step_elements=step))
        result = p2.evaluate(*case, max_rank=20)
        np.testing.assert_allclose(result.cmc, cmc, atol=1e-12)
        np.testing.assert_allclose(result.all_AP, aps, atol=1e-12)
        assert result.mINP == pytest.approx(mINP, abs=1e-12)


def test_any_order_of_equal_distances_lies_in_the_tie_range():
    distmat, q_pids, g_pids, q_camids, g_camids = random_eval_case(5, integer=True)
    result = p2.evaluate(distmat, q_pids, g_pids, q_camids, g_camids)
    worst, best = result.mAP_tie_range
    assert worst < best  # integer distances: many ties
    maps = []
    for seed in range(5):  # the same gallery in another order: other ties come first
        perm = np.random.default_rng(seed).permutation(g_pids.size)
        shuffled = p2.evaluate(distmat[:, perm], q_pids, g_pids[perm], q_camids, g_camids[perm])
        assert shuffled.mAP_tie_range == pytest.approx((worst, best), abs=1e-12)
        maps.append(shuffled.mAP)
        assert worst - 1e-12 <= shuffled.mAP <= best + 1e-12
        assert np.all(result.cmc_tie_range[0] <= shuffled.cmc + 1e-12)
        assert np.all(shuffled.cmc <= result.cmc_tie_range[1] + 1e-12)
    assert len(set(maps)) > 1  # the order did matter


def test_evaluate_hand_example():
    # One query, pid 1 camera 0. Ranked gallery: junk (pid 1 cam 0), miss, hit, miss, hit.
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    result = p2.evaluate(distmat, [1], [1, 2, 1, 3, 1], [0], [0, 1, 1, 1, 2], max_rank=4)
    # After dropping the junk: miss, hit (rank 2), miss, hit (rank 4).
    assert result.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert result.mINP == pytest.approx(2 / 4)
    np.testing.assert_array_equal(result.cmc, [0, 1, 1, 1])
    assert result.rank1 == 0.0


def test_evaluate_skips_queries_without_true_match():
    distmat = np.array([[0.1, 0.2], [0.3, 0.1]])
    # Query 1 (pid 2) only has a same-camera image of itself in the gallery: skipped.
    result = p2.evaluate(distmat, [1, 2], [1, 2], [0, 0], [1, 0])
    np.testing.assert_array_equal(result.valid, [True, False])
    assert result.all_AP.shape == (1,) and result.mAP == 1.0


def test_evaluate_accepts_torch():
    case = random_eval_case(7)
    expected = p2.evaluate(*case)
    got = p2.evaluate(*(torch.from_numpy(np.asarray(a)) for a in case))
    assert got.mAP == expected.mAP
    np.testing.assert_array_equal(got.cmc, expected.cmc)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"q_pids": np.zeros(3, int)}, "q_pids has 3 entries but distmat has 4 rows"),
        ({"q_camids": np.zeros(5, int)}, "q_camids has 5 entries but distmat has 4 rows"),
        ({"g_pids": np.zeros(5, int)}, "g_pids has 5 entries but distmat has 6 columns"),
        ({"g_camids": np.zeros(7, int)}, "g_camids has 7 entries but distmat has 6 columns"),
        ({"q_pids": np.zeros((4, 1), int)}, "q_pids must be a 1-D array"),
        ({"g_pids": np.array(list("abcdef"))}, "g_pids must hold integer ids"),
        ({"distmat": np.full((4, 6), np.nan)}, "distmat contains NaN"),
        ({"distmat": np.ones(6)}, "distmat must be a 2-D array"),
        ({"distmat": np.ones((4, 6), dtype=complex)}, "distmat must hold real numbers"),
        ({"distmat": np.ones((0, 6))}, "distmat is empty"),
        ({"max_rank": 0}, "max_rank must be >= 1"),
        ({"g_pids": np.full(6, 9)}, "no query has a true match"),
    ],
)
def test_evaluate_bad_input(change, match):
    args = {
        "distmat": np.random.default_rng(0).random((4, 6)),
        "q_pids": np.array([0, 1, 2, 3]),
        "g_pids": np.array([0, 1, 2, 3, 0, 1]),
        "q_camids": np.zeros(4, int),
        "g_camids": np.ones(6, int),
    }
    args.update(change)
    with pytest.raises(ValueError, match=match):
        p2.evaluate(**args)


@pytest.mark.parametrize("case", ["small", "mid"])
def test_id2_matches_reference(ref, case):
    density = p2.id2(ref[f"nfc_{case}_x"], ref[f"nfc_{case}_pids"])
    assert density.shape == ref[f"id2_{case}"].shape
    np.testing.assert_allclose(density, ref[f"id2_{case}"], atol=1e-5)


def test_id2_definition_and_per_identity():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 5)).astype(np.float32)
    pids = rng.integers(0, 4, 30) * 7
    xn = l2n(x)
    expected = np.array([((xn[i] - xn[pids == p].mean(0)) ** 2).sum() for i, p in enumerate(pids)])
    np.testing.assert_allclose(p2.id2(x, pids), expected, rtol=1e-5)
    unique, per_id = p2.id2_per_identity(x, pids)
    np.testing.assert_array_equal(unique, np.unique(pids))
    np.testing.assert_allclose(per_id, [expected[pids == p].mean() for p in unique], rtol=1e-5)
    # torch in, torch out
    density_t = p2.id2(torch.from_numpy(x), torch.from_numpy(pids))
    assert isinstance(density_t, torch.Tensor)
    np.testing.assert_allclose(density_t.numpy(), expected, rtol=1e-5)
    unique_t, per_id_t = p2.id2_per_identity(torch.from_numpy(x), pids)
    assert isinstance(per_id_t, torch.Tensor)
    np.testing.assert_allclose(per_id_t.numpy(), per_id, rtol=1e-6)
    # Centralization lowers the density: the point of NFC.
    assert p2.id2(p2.nfc(x), pids).mean() < p2.id2(x, pids).mean() + 1e-6


def test_id2_bad_input():
    with pytest.raises(ValueError, match="pids has 10 entries but feats has 12 rows"):
        p2.id2(np.ones((12, 3)), np.zeros(10, int))
    with pytest.raises(ValueError, match="pids must hold integer ids"):
        p2.id2(np.ones((2, 3)), [0.5, 1.0])
    with pytest.raises(ValueError, match="feats contains NaN"):
        p2.id2(np.full((2, 3), np.nan), [0, 1])


def test_pairwise_sqeuclidean():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((7, 4)).astype(np.float32)
    b = rng.standard_normal((5, 4)).astype(np.float32)
    expected = ((a[:, None] - b[None]) ** 2).sum(-1)
    np.testing.assert_allclose(p2.pairwise_sqeuclidean(a, b), expected, rtol=1e-5, atol=1e-5)
    as_torch = p2.pairwise_sqeuclidean(torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(as_torch, torch.Tensor)
    np.testing.assert_allclose(as_torch.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert (p2.pairwise_sqeuclidean(a, a).diagonal() >= 0).all()
    with pytest.raises(ValueError, match="b has feature dimension 3 but a has 4"):
        p2.pairwise_sqeuclidean(a, b[:, :3])
    with pytest.raises(ValueError, match="a must be a 2-D array"):
        p2.pairwise_sqeuclidean(a[0], b)
