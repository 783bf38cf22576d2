"""The official evaluation's rules on made-up data laid out as published: generated images for the
real identities only, re-ranking parameters, camera ids for the original images only."""

import json

import numpy as np
import pytest
from test_data_market1501 import make_market
from testkit import run_cli

import pose2id as p2
from pose2id.data import Market1501
from pose2id.experiments import METHODS, Benchmark, prepare_benchmark


@pytest.fixture
def published(tmp_path):
    """Market layout with query_gen/ and bounding_box_test_gen/ for pids 0001-0003 only: the two
    distractors (0000) and the junk (-1) have none, as in the authors' generated sets."""
    return make_market(tmp_path / "Market", gen_for_distractors=False)


def test_images_without_generated_ones_keep_their_own_feature(published, tmp_path):
    calls = []
    bench = prepare_benchmark(Market1501(published), "handcrafted", cache_dir=tmp_path / "feats",
                              progress=lambda done, total: calls.append((done, total)))
    assert bench.methods == METHODS and bench.ipg_note == ""
    assert bench.ipg_coverage == {"query": {"with_generated": 3, "total": 3},
                                  "gallery": {"with_generated": 6, "total": 8}}
    assert "6 of 8 gallery" in bench.ipg_coverage_note and "other 2" in bench.ipg_coverage_note
    # only the existing generated images are described: 11 originals + 9 x 8 poses
    assert calls[-1] == (11 + 9 * 8, 11 + 9 * 8)

    distractor = np.array([im.pid == 0 for im in bench.gallery])
    assert distractor.sum() == 2
    base_q, base_g = bench.features("Base")
    ipg_q, ipg_g = bench.features("+IPG", eta=2.0)
    # the authors' reader repeats the original in place of the P generated images:
    # normalize(f + eta * mean(f, ..., f)) = normalize(f), the Base feature
    np.testing.assert_allclose(ipg_g[distractor], base_g[distractor], atol=1e-6)
    np.testing.assert_allclose(bench.g_gen[distractor], np.repeat(bench.gf[distractor, None], 8, axis=1))
    # the others are fused with their generated images, as ipg_fuse says
    real = ~distractor
    np.testing.assert_allclose(ipg_g[real], p2.ipg_fuse(bench.gf[real], bench.g_gen[real], eta=2.0), atol=1e-6)
    assert not np.allclose(ipg_g[real], base_g[real], atol=1e-3)
    np.testing.assert_allclose(ipg_q, p2.ipg_fuse(bench.qf, bench.q_gen, eta=2.0), atol=1e-6)
    assert bench.row("+NFC+IPG", k1=1, k2=1)["method"] == "+NFC+IPG"


def test_the_fused_rows_equal_a_benchmark_given_the_repeated_features(published, tmp_path):
    bench = prepare_benchmark(Market1501(published), "handcrafted", cache_dir=tmp_path / "feats")
    has_gen = np.array([im.pid != 0 for im in bench.gallery])
    g_gen = bench.g_gen.copy()
    g_gen[~has_gen] = bench.gf[~has_gen, None]
    by_hand = Benchmark(query=bench.query, gallery=bench.gallery, qf=bench.qf, gf=bench.gf, q_gen=bench.q_gen,
                        g_gen=g_gen)
    for method in ("+IPG", "+NFC+IPG"):
        assert by_hand.row(method, k1=1, k2=1)["mAP"] == bench.row(method, k1=1, k2=1)["mAP"]


def test_eval_cli_reports_the_coverage(published, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "t.json"
    assert run_cli(["eval", "--dataset", str(published), "--k1", "1", "--k2", "1", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "| +NFC+IPG |" in captured.out
    assert "6 of 8 gallery" in captured.err and "skipped" not in captured.err
    result = json.loads(out.read_text())
    assert [r["method"] for r in result["rows"]] == list(METHODS)
    assert result["ipg_coverage"]["gallery"] == {"with_generated": 6, "total": 8}
    assert result["ipg_note"] == ""



def test_a_broken_generated_image_is_named_with_how_to_redraw_it(published, tmp_path):
    from pose2id.data import DatasetError

    broken = published / "query_gen" / "pose2" / "0002_c2s1_000301_00.jpg"
    broken.write_bytes(broken.read_bytes()[:40])  # a download or copy cut short
    with pytest.raises(DatasetError) as raised:
        prepare_benchmark(Market1501(published), "handcrafted", cache_dir=tmp_path / "feats")
    # generate --dataset skips files that exist: the message says to delete this one first
    assert raised.value.file == str(broken)
    assert "delete" in raised.value.problem and "generate --dataset" in raised.value.problem

def test_real_identities_without_generated_images_are_told_apart_from_distractors(published, tmp_path,
                                                                                   monkeypatch, capsys):
    # an incomplete generated set: one query lacks one pose, one gallery image has none at all
    (published / "query_gen" / "pose3" / "0002_c2s1_000301_00.jpg").unlink()
    for folder in (published / "bounding_box_test_gen").iterdir():
        (folder / "0003_c1s2_000501_00.jpg").unlink()
    bench = prepare_benchmark(Market1501(published), "handcrafted", cache_dir=tmp_path / "feats")
    assert bench.ipg_coverage["gallery"] == {"with_generated": 5, "total": 8}
    assert bench.ipg_missing == {"query": ["0002_c2s1_000301_00.jpg"], "gallery": ["0003_c1s2_000501_00.jpg"]}
    note = bench.ipg_coverage_note
    assert "0002_c2s1_000301_00.jpg" in note and "0003_c1s2_000501_00.jpg" in note and "incomplete" in note
    # the published layout (only distractors without) names none
    complete = prepare_benchmark(Market1501(make_market(tmp_path / "M2", gen_for_distractors=False)), "handcrafted",
                                 cache_dir=tmp_path / "feats")
    assert complete.ipg_missing == {"query": [], "gallery": []} and "incomplete" not in complete.ipg_coverage_note

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "t.json"
    assert run_cli(["eval", "--dataset", str(published), "--k1", "1", "--k2", "1", "--json", str(out)]) == 0
    assert "0003_c1s2_000501_00.jpg" in capsys.readouterr().err
    assert json.loads(out.read_text())["ipg_missing"] == {"query": 1, "gallery": 1}


def test_splits_with_different_numbers_of_poses_are_refused_naming_each_folder(published, tmp_path):
    import shutil

    shutil.rmtree(published / "bounding_box_test_gen" / "pose8")  # the gallery's download stopped early
    with pytest.raises(ValueError) as caught:
        prepare_benchmark(Market1501(published), "handcrafted", cache_dir=tmp_path / "feats")
    message = str(caught.value)
    assert f"{published / 'query_gen'}/ has 8" in message and f"{published / 'bounding_box_test_gen'}/ has 7" in message


def test_only_a_dataset_without_any_generated_image_skips_the_ipg_rows(tmp_path):
    root = make_market(tmp_path / "Market", with_gen=False)
    bench = prepare_benchmark(Market1501(root), "handcrafted", cache_dir=tmp_path / "feats")
    assert bench.methods == ("Base", "+NFC") and "no generated images" in bench.ipg_note
    assert bench.ipg_coverage["gallery"] == {"with_generated": 0, "total": 8}
    # one generated set for one query image is enough for the +IPG rows
    for pose in (1, 2):
        folder = root / "query_gen" / f"pose{pose}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "0001_c1s1_000151_00.jpg").write_bytes((root / "query" / "0001_c1s1_000151_00.jpg").read_bytes())
    bench = prepare_benchmark(Market1501(root), "handcrafted", cache_dir=tmp_path / "feats")
    assert bench.methods == METHODS
    assert bench.ipg_coverage["query"] == {"with_generated": 1, "total": 3}


# ---------------------------------------------------------------- re-ranking parameters

def _bench(n=12, d=8, seed=0):
    from pose2id.data import ReIDImage

    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(1, n // 2 + 1), 2)
    images = [ReIDImage(path=None, pid=int(p), camid=i % 2, name=f"x{i}") for i, p in enumerate(pids)]
    return Benchmark(query=images[::2], gallery=images[1::2], qf=rng.normal(size=(n // 2, d)).astype(np.float32),
                     gf=rng.normal(size=(n // 2, d)).astype(np.float32))


def test_rerank_parameters_reach_the_re_ranking():
    bench = _bench()
    q, g = bench.features("Base")
    for params in ((5, 3, 0.3), (4, 6, 0.8)):
        expected = p2.re_ranking(q, g, k1=params[0], k2=params[1], lambda_value=params[2])
        np.testing.assert_allclose(bench.distances("Base", rerank=params), expected, atol=1e-6)
    default = p2.re_ranking(q, g, k1=min(20, 11), k2=min(6, 11), lambda_value=0.3)
    np.testing.assert_allclose(bench.distances("Base", rerank=True), default, atol=1e-6)
    assert not np.allclose(bench.distances("Base", rerank=(5, 3, 0.3)), bench.distances("Base", rerank=(4, 6, 0.8)))


@pytest.mark.parametrize("rerank, word", [((0, 6, 0.3), "k1"), ((20, 2.5, 0.3), "k2"), ((20, 6, 1.5), "lambda"),
                                          ((20, 6), "rerank"), ("yes", "rerank")])
def test_bad_rerank_parameters_name_the_parameter(rerank, word):
    with pytest.raises(ValueError, match=word):
        _bench().distances("Base", rerank=rerank)


def test_rerank_options_in_the_cli(published, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "t.json"
    assert run_cli(["eval", "--dataset", str(published), "--k1", "1", "--k2", "1", "--rerank", "--rerank-k1", "5",
                    "--rerank-k2", "3", "--rerank-lambda", "0.5", "--json", str(out)]) == 0
    assert "k1=5 k2=3 lambda=0.5" in capsys.readouterr().out
    params = json.loads(out.read_text())["params"]
    assert (params["rerank"], params["rerank_k1"], params["rerank_k2"], params["rerank_lambda"]) == (True, 5, 3, 0.5)
    # without --rerank the parameters would do nothing: refused, naming the option
    from pose2id.cli import main

    assert main(["eval", "--dataset", str(published), "--rerank-k1", "50"]) == 1
    assert "--rerank-k1" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--rerank-k1", "0"), ("--rerank-k2", "x"), ("--rerank-lambda", "1.5"),
                                           ("--rerank-lambda", "nan")])
def test_rerank_options_are_validated(option, value, capsys):
    with pytest.raises(SystemExit):
        run_cli(["eval", "--rerank", option, value])
    assert option.lstrip("-") in capsys.readouterr().err


def test_help_says_what_transreid_uses(capsys):
    with pytest.raises(SystemExit):
        run_cli(["eval", "--help"])
    text = capsys.readouterr().out
    assert "50" in text and "15" in text and "--camera-ids" in text


# ---------------------------------------------------------------- camera ids

class CameraExtractor:
    """A stand-in network that adds its camera to the feature: tells which images got one."""

    name, dim, uses_camera_ids = "camera-test", 4, True

    def __call__(self, images, batch_size=64, progress=None):
        return np.stack([np.asarray(im.resize((2, 2))).mean(axis=(0, 1)).tolist() + [0.0] for im in images]
                        ).astype(np.float32)


def test_camera_ids_go_to_the_original_images_only(published, tmp_path, monkeypatch):
    import pose2id.features as features

    seen = []

    def fake_extract(extractor, paths, cache_dir=None, progress=None, camids=None, **kwargs):
        seen.append((len(paths), None if camids is None else list(camids)))
        feats = extractor(features.load_images(paths))
        if camids is not None:
            feats[:, 3] = camids
        if progress is not None:
            progress(len(paths), len(paths))
        return feats

    monkeypatch.setattr(features, "extract", fake_extract)
    dataset = Market1501(published)
    bench = prepare_benchmark(dataset, CameraExtractor(), cache_dir=tmp_path / "feats")
    assert bench.uses_camera_ids
    assert seen[0] == (3, [im.camid for im in dataset.query])
    assert seen[1] == (8, [im.camid for im in dataset.gallery])
    assert [camids for _, camids in seen[2:]] == [None, None]  # generated images: no camera embedding
    np.testing.assert_array_equal(bench.qf[:, 3], bench.q_camids)


def test_camera_ids_on_for_an_extractor_without_them_is_refused(published, tmp_path, monkeypatch, capsys):
    from pose2id.cli import main

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    assert main(["eval", "--dataset", str(published), "--camera-ids", "on"]) == 1
    err = capsys.readouterr().err
    assert "--camera-ids on" in err and "Traceback" not in err
    assert run_cli(["eval", "--dataset", str(published), "--camera-ids", "off", "--k1", "1", "--k2", "1"]) == 0


def test_sweep_with_rerank_parameters(published, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "s.json"
    assert run_cli(["sweep", "--dataset", str(published), "--method", "+IPG", "--eta", "1", "2", "--rerank",
                    "--rerank-k1", "6", "--rerank-k2", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["rerank_k1"], result["rerank_k2"], result["rerank_lambda"]) == (6, 2, 0.3)
    assert result["ipg_coverage"]["gallery"]["with_generated"] == 6 and len(result["rows"]) == 2
    assert "k1=6 k2=2 lambda=0.3" in capsys.readouterr().out
