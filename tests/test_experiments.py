import argparse
import json

import numpy as np
import pytest
from test_data_market1501 import make_market

import pose2id as p2
from pose2id.data import Market1501, ReIDImage
from pose2id.experiments import METHODS, Benchmark, format_table, prepare_benchmark, register
from pose2id.features.handcrafted import HandcraftedExtractor


def run_cli(argv):
    """Run one of this module's sub-commands the way `python -m pose2id` does."""
    parser = argparse.ArgumentParser(prog="pose2id")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _images(pids, camids, prefix):
    return [ReIDImage(path=None, pid=int(p), camid=int(c), name=f"{prefix}{i}") for i, (p, c) in enumerate(zip(pids, camids))]


@pytest.fixture
def bench():
    """10 identities; query and gallery features = identity centre + pose/camera noise."""
    rng = np.random.default_rng(0)
    d, poses = 16, 4
    centres = rng.normal(size=(11, d))
    q_pids = np.repeat(np.arange(1, 11), 2)
    g_pids = np.concatenate([np.repeat(np.arange(1, 11), 3), [0, 0]])
    q_cams = np.tile([0, 1], 10)
    g_cams = np.concatenate([np.tile([2, 3, 2], 10), [0, 1]])
    qf = centres[q_pids] + 1.2 * rng.normal(size=(len(q_pids), d))
    gf = centres[g_pids] + 1.2 * rng.normal(size=(len(g_pids), d))
    q_gen = centres[q_pids][:, None] + 0.8 * rng.normal(size=(len(q_pids), poses, d))
    g_gen = centres[g_pids][:, None] + 0.8 * rng.normal(size=(len(g_pids), poses, d))
    return Benchmark(
        query=_images(q_pids, q_cams, "q"), gallery=_images(g_pids, g_cams, "g"),
        qf=qf.astype(np.float32), gf=gf.astype(np.float32),
        q_gen=q_gen.astype(np.float32), g_gen=g_gen.astype(np.float32), dataset_name="toy",
    )


def _norm(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_methods_follow_algorithms_md(bench):
    q, g = bench.features("Base")
    np.testing.assert_allclose(q, _norm(bench.qf), atol=1e-6)
    q, g = bench.features("+NFC", k1=2, k2=2)
    np.testing.assert_allclose(q, p2.nfc(bench.qf, 2, 2), atol=1e-6)  # query alone
    np.testing.assert_allclose(g, p2.nfc(bench.gf, 2, 2), atol=1e-6)  # gallery alone
    q, g = bench.features("+IPG", eta=1.5)
    np.testing.assert_allclose(q, _norm(bench.qf + 1.5 * bench.q_gen.mean(axis=1)), atol=1e-5)
    q, g = bench.features("+NFC+IPG", k1=3, k2=2, eta=2.0)
    np.testing.assert_allclose(g, p2.nfc(p2.ipg_fuse(bench.gf, bench.g_gen, eta=2.0), 3, 2), atol=1e-6)


def test_distances_and_rerank(bench):
    q, g = bench.features("+NFC")
    np.testing.assert_allclose(bench.distances("+NFC"), p2.pairwise_sqeuclidean(q, g), atol=1e-5)
    np.testing.assert_allclose(bench.distances("+NFC", rerank=True), p2.re_ranking(q, g), atol=1e-5)
    # cached per parameters; parameters a method ignores share the entry
    assert bench.distances("+NFC", k1=2) is bench.distances("+NFC", k1=2, eta=5.0)
    assert bench.distances("+NFC", k1=1) is not bench.distances("+NFC", k1=2)


def test_table_rows(bench):
    rows = bench.table()
    assert [r["method"] for r in rows] == list(METHODS)
    for r in rows:
        assert set(r) >= {"method", "mAP", "rank1", "rank5", "rank10", "id2"}
        assert 0 <= r["mAP"] <= 1 and 0 <= r["rank1"] <= r["rank5"] <= r["rank10"] <= 1
        lo, hi = r["mAP_tie_range"]
        assert lo - 1e-12 <= r["mAP"] <= hi + 1e-12
    base = bench.evaluate("Base")
    d = p2.pairwise_sqeuclidean(*bench.features("Base"))
    expected = p2.evaluate(d, bench.q_pids, bench.g_pids, bench.q_camids, bench.g_camids)
    assert rows[0]["mAP"] == pytest.approx(expected.mAP) == pytest.approx(base.mAP)
    # ID² of query+gallery, distractors (pid 0) left out
    q, g = bench.features("+IPG")
    feats, pids = np.concatenate([q, g]), np.concatenate([bench.q_pids, bench.g_pids])
    assert rows[2]["id2"] == pytest.approx(p2.id2(feats[pids > 0], pids[pids > 0]).mean(), rel=1e-5)
    ids, per_identity = bench.id2_per_identity("+IPG")
    expected_ids, expected = p2.id2_per_identity(feats[pids > 0], pids[pids > 0])
    np.testing.assert_array_equal(ids, expected_ids)
    assert 0 not in ids
    np.testing.assert_allclose(per_identity, expected, rtol=1e-6)
    # generated images close to the identity centre: fusion centralizes
    assert rows[2]["id2"] < rows[0]["id2"]
    table = format_table(rows, "toy")
    assert "| +NFC+IPG |" in table and f"{100 * rows[0]['mAP']:.2f}" in table


def test_table_stars_a_map_that_depends_on_the_order_of_equal_distances():
    row = {"method": "+NFC", "mAP": 0.7697, "mAP_tie_range": [0.76872, 0.7699], "rank1": 0.9,
           "rank5": 0.95, "rank10": 0.97, "id2": 0.1}
    steady = dict(row, method="Base", mAP=0.5, mAP_tie_range=[0.5, 0.5])
    table = format_table([steady, row])
    assert "| +NFC | 76.97* |" in table and "| Base | 50.00 |" in table
    assert "76.87–76.99" in table
    assert "*" not in format_table([steady])


def test_bad_requests(bench):
    with pytest.raises(ValueError, match="method"):
        bench.features("NFC")
    with pytest.raises(ValueError, match="method"):
        bench.distances(None)
    with pytest.raises(ValueError, match="k1"):
        bench.features("+NFC", k1=0)
    with pytest.raises(ValueError, match="k2"):
        bench.features("+NFC", k2=1.5)
    # a slider's 2.0 is 2, and shares the cache entry
    assert bench.distances("+NFC", k1=2.0, k2=2.0) is bench.distances("+NFC", k1=2, k2=2)
    with pytest.raises(ValueError, match="eta"):
        bench.features("+IPG", eta=float("nan"))
    no_gen = Benchmark(query=bench.query, gallery=bench.gallery, qf=bench.qf, gf=bench.gf, ipg_note="no images")
    assert no_gen.methods == ("Base", "+NFC") and len(no_gen.table()) == 2
    with pytest.raises(ValueError, match="no images"):
        no_gen.distances("+IPG")
    with pytest.raises(ValueError, match="rows"):
        Benchmark(query=bench.query[:3], gallery=bench.gallery, qf=bench.qf, gf=bench.gf)


def test_a_ranking_update_reuses_what_it_computed():
    # the app recomputes distances on every slider move; the same parameters come from the cache
    # (its speed is measured by benchmarks/app_latency.py)
    rng = np.random.default_rng(0)
    nq, ng, d = 32, 72, 16
    bench = Benchmark(
        query=_images(rng.integers(1, 8, nq), rng.integers(0, 6, nq), "q"),
        gallery=_images(rng.integers(0, 8, ng), rng.integers(0, 6, ng), "g"),
        qf=rng.normal(size=(nq, d)).astype(np.float32), gf=rng.normal(size=(ng, d)).astype(np.float32),
        q_gen=rng.normal(size=(nq, 8, d)).astype(np.float32), g_gen=rng.normal(size=(ng, 8, d)).astype(np.float32),
    )
    first = bench.distances("+NFC+IPG", k1=3, k2=2, eta=1.0)
    assert bench.distances("+NFC+IPG", k1=3, k2=2, eta=1.0) is first
    bench._cache.clear()
    np.testing.assert_array_equal(bench.distances("+NFC+IPG", k1=3, k2=2, eta=1.0), first)


def test_nfc_for_any_k_searches_neighbours_once_per_feature_set(monkeypatch):
    # ties everywhere (small integer features); every k1, k2 up to 10 reuses one search per set
    rng = np.random.default_rng(1)
    nq, ng, d = 24, 40, 4
    bench = Benchmark(
        query=_images(rng.integers(1, 6, nq), rng.integers(0, 3, nq), "q"),
        gallery=_images(rng.integers(1, 6, ng), rng.integers(0, 3, ng), "g"),
        qf=rng.integers(0, 3, (nq, d)).astype(np.float32) + 0.5, gf=rng.integers(0, 3, (ng, d)).astype(np.float32) + 0.5,
        q_gen=rng.integers(0, 3, (nq, 2, d)).astype(np.float32), g_gen=rng.integers(0, 3, (ng, 2, d)).astype(np.float32),
    )
    search_free_nfc = p2.nfc  # NFC searching its own neighbours, as for a single k1, k2
    searches = []
    search = p2.nfc_neighbors
    monkeypatch.setattr(p2, "nfc_neighbors", lambda x, k, **kw: searches.append(k) or search(x, k, **kw))
    for k1, k2 in [(1, 1), (2, 3), (10, 4), (3, 10)]:
        for method, eta in [("+NFC", 0.0), ("+NFC+IPG", 1.5)]:
            q, g = bench.features(method, k1, k2, eta)
            plain_q, plain_g = bench.features(method.replace("+NFC", "") or "Base", eta=eta)
            np.testing.assert_array_equal(q, search_free_nfc(plain_q, k1, k2))
            np.testing.assert_array_equal(g, search_free_nfc(plain_g, k1, k2))
    assert searches == [10, 10, 10, 10]  # query and gallery, for Base and for +IPG at eta 1.5
    bench.features("+NFC", k1=12, k2=2)  # more than was searched: a new search
    assert searches[4:] == [12, 12]
    with pytest.raises(ValueError, match="k1 must be <= 23"):
        bench.features("+NFC", k1=24, k2=2)


@pytest.fixture
def market(tmp_path):
    return make_market(tmp_path / "Market")


def test_prepare_benchmark_on_market_folder(market, tmp_path):
    calls = []
    bench = prepare_benchmark(Market1501(market), "handcrafted", progress=lambda d, t: calls.append((d, t)),
                              cache_dir=tmp_path / "feats")
    assert bench.qf.shape == (3, bench.gf.shape[1]) and bench.gf.shape[0] == 8
    assert bench.q_gen.shape == (3, 8, bench.qf.shape[1]) and bench.g_gen.shape[:2] == (8, 8)
    assert bench.methods == METHODS and bench.ipg_note == ""
    assert calls[-1] == ((3 + 8) * 9, (3 + 8) * 9)
    assert not bench.is_synthetic and bench.dataset_name == "Market-1501"


def test_prepare_benchmark_without_generated_images(tmp_path):
    root = make_market(tmp_path / "Market", with_gen=False)
    bench = prepare_benchmark(f"market1501:{root}", "handcrafted", cache_dir=tmp_path / "feats")
    assert bench.q_gen is None and bench.methods == ("Base", "+NFC")
    assert "no generated images" in bench.ipg_note
    assert "query_gen/" in bench.ipg_note and "bounding_box_test_gen/" in bench.ipg_note


def test_no_generated_note_names_the_datasets_own_folder(tmp_path):
    from test_data_msmt17 import make_msmt17

    from pose2id.data import MSMT17

    root = make_msmt17(tmp_path / "MSMT17", test_dir="mask_test_v2")
    bench = prepare_benchmark(MSMT17(root), "handcrafted", cache_dir=tmp_path / "feats")
    assert bench.q_gen is None and "no generated images" in bench.ipg_note
    assert "mask_test_v2_gen/" in bench.ipg_note and "query_gen" not in bench.ipg_note


def test_eval_cli_on_market_folder(market, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "table.json"
    assert run_cli(["eval", "--dataset", f"market1501:{market}", "--features", "handcrafted", "--k1", "1",
                    "--k2", "1", "--eta", "1.0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Market-1501" in printed and "| +NFC+IPG |" in printed and "ID²" in printed
    result = json.loads(out.read_text())
    assert [r["method"] for r in result["rows"]] == list(METHODS)
    assert result["params"] == {"k1": 1, "k2": 1, "eta": 1.0, "rerank": False}
    assert result["synthetic"] is False and result["num_query"] == 3
    assert all(0 <= r["mAP"] <= 1 for r in result["rows"])


def test_python_m_pose2id_eval_entry_point(market, tmp_path, monkeypatch, capsys):
    from pose2id.cli import main

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "t.json"
    assert main(["eval", "--dataset", str(market), "--json", str(out)]) == 0
    assert "| Base |" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["rows"]) == 4


def test_eval_cli_skips_ipg_rows_without_generated_images(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    root = make_market(tmp_path / "Market", with_gen=False)
    out = tmp_path / "t.json"
    assert run_cli(["eval", "--dataset", str(root), "--json", str(out), "--rerank"]) == 0
    captured = capsys.readouterr()
    assert "+IPG rows skipped" in captured.err
    assert [r["method"] for r in json.loads(out.read_text())["rows"]] == ["Base", "+NFC"]


def test_sweep_cli(market, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep.json"
    assert run_cli(["sweep", "--dataset", str(market), "--k1", "1", "2", "--k2", "1", "--eta", "1", "2",
                    "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["k1"], r["k2"], r["eta"]) for r in rows] == [(1, 1, 1.0), (1, 1, 2.0), (2, 1, 1.0), (2, 1, 2.0)]
    assert "best mAP" in capsys.readouterr().out


def test_cli_rejects_bad_arguments(market):
    with pytest.raises(SystemExit):
        run_cli(["eval", "--dataset", str(market), "--k1", "0"])


@pytest.fixture(scope="module")
def synthped_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSE2ID_CACHE", str(tmp_path_factory.mktemp("pose2id-cache")))
        yield


@pytest.mark.slow
def test_synthped_reproduces_the_papers_claims(synthped_cache, tmp_path, capsys):
    """Default SynthPed + handcrafted features: NFC and IPG each raise mAP and lower ID² (paper, Table 2)."""
    out = tmp_path / "synthped.json"
    assert run_cli(["eval", "--dataset", "synthped", "--features", "handcrafted", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SynthPed (synthetic)" in printed
    result = json.loads(out.read_text())
    assert result["synthetic"] is True
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == list(METHODS)
    base = rows["Base"]
    assert 0.3 < base["mAP"] < 0.8  # hard enough that pose and camera matter
    for method in ("+NFC", "+IPG", "+NFC+IPG"):
        assert rows[method]["mAP"] > base["mAP"] + 0.02, method
        assert rows[method]["id2"] < base["id2"], method
    assert rows["+NFC+IPG"]["id2"] < min(rows["+NFC"]["id2"], rows["+IPG"]["id2"])

    # a second run reads the dataset and its features from the cache: no person is drawn, no
    # image decoded
    def refuse(*args, **kwargs):
        raise AssertionError("the cached run did the work again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("pose2id.data.synthped.render_person", refuse)
        mp.setattr("pose2id.features.load_images", refuse)
        assert run_cli(["eval", "--dataset", "synthped", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["rows"] == result["rows"]


class _CountingHandcrafted(HandcraftedExtractor):
    """The handcrafted extractor, counting the images it describes (cache hits describe none)."""

    def __init__(self):
        super().__init__()
        self.described = 0

    def forward(self, batch, camids=None):
        self.described += len(batch)
        return super().forward(batch, camids)


def test_staged_synthped_benchmark_reuses_original_features(tmp_path):
    from pose2id.data.synthped import SynthPedConfig, load_synthped

    config = SynthPedConfig(num_identities=5, num_train_identities=1, num_cameras=3, num_distractors=2, num_junk=1)
    counter = _CountingHandcrafted()
    originals = load_synthped(cache_dir=tmp_path / "staged", seed=2, config=config, generated=False)
    first = prepare_benchmark(originals, counter, cache_dir=tmp_path / "feats")
    originals_count = len(first.query) + len(first.gallery)
    assert counter.described == originals_count
    assert first.q_gen is None and first.g_gen is None and first.methods == METHODS[:2]
    assert first.ipg_note and "+IPG" not in [row["method"] for row in first.table()]

    full = load_synthped(cache_dir=tmp_path / "staged", seed=2, config=config)
    second = prepare_benchmark(full, counter, cache_dir=tmp_path / "feats")
    # the originals came from the cache: only the 8 generated images of each were described
    assert counter.described == originals_count + 8 * originals_count
    assert second.methods == METHODS

    once = load_synthped(cache_dir=tmp_path / "one-shot", seed=2, config=config)
    reference = prepare_benchmark(once, _CountingHandcrafted(), cache_dir=tmp_path / "feats-one-shot")
    for name in ("qf", "gf", "q_gen", "g_gen"):
        np.testing.assert_array_equal(getattr(second, name), getattr(reference, name))
    np.testing.assert_array_equal(first.qf, reference.qf)
    for method in METHODS:
        assert second.row(method) == reference.row(method)
