"""--features npz:FILE: features of any model, evaluated with the dataset's pids and cameras."""

import json

import numpy as np
import pytest
from test_data_market1501 import make_market
from testkit import run_cli

from pose2id import ArgumentError
from pose2id.data import Market1501
from pose2id.experiments import METHODS, Benchmark, prepare_benchmark
from pose2id.features.npz import FeatureFile, FeatureFileError


@pytest.fixture
def dataset(tmp_path):
    return Market1501(make_market(tmp_path / "Market", gen_for_distractors=False))


def _arrays(dataset, d=6, poses=3, seed=0, extra=("-1_c1s1_000003_00.jpg", "0010_c1s1_000100_00.jpg")):
    """A model's output for the dataset's images, in a shuffled order, plus rows the dataset does not use."""
    rng = np.random.default_rng(seed)
    images = dataset.query + dataset.gallery
    names = [im.name for im in images] + list(extra)
    order = rng.permutation(len(names))
    centres = rng.normal(size=(10, d))
    pids = [im.pid for im in images] + [0] * len(extra)
    feats = np.stack([centres[p] + 0.5 * rng.normal(size=d) for p in pids])
    gen = feats[:, None] + 0.3 * rng.normal(size=(len(names), poses, d))
    return {"names": np.array(names)[order], "feats": feats[order].astype(np.float32),
            "gen_feats": gen[order].astype(np.float32)}


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_features_give_the_same_rows_as_a_benchmark_of_those_features(dataset, tmp_path):
    arrays = _arrays(dataset)
    file = _save(tmp_path / "feats.npz", **arrays)
    bench = prepare_benchmark(dataset, f"npz:{file}")
    row = {name: i for i, name in enumerate(arrays["names"])}
    q = [row[im.name] for im in dataset.query]
    g = [row[im.name] for im in dataset.gallery]
    np.testing.assert_array_equal(bench.qf, arrays["feats"][q])
    np.testing.assert_array_equal(bench.gf, arrays["feats"][g])
    # pids / cameras from the dataset's names
    np.testing.assert_array_equal(bench.g_pids, [im.pid for im in dataset.gallery])
    np.testing.assert_array_equal(bench.q_camids, [im.camid for im in dataset.query])
    assert bench.methods == METHODS and bench.extractor_name.startswith("npz:feats.npz:")
    by_hand = Benchmark(query=dataset.query, gallery=dataset.gallery, qf=arrays["feats"][q], gf=arrays["feats"][g],
                        q_gen=arrays["gen_feats"][q], g_gen=arrays["gen_feats"][g])
    assert bench.table(k1=1, k2=1) == by_hand.table(k1=1, k2=1)


def test_gen_mask_rows_keep_their_own_feature(dataset, tmp_path):
    arrays = _arrays(dataset)
    mask = np.array([not name.startswith("0000") for name in arrays["names"]])
    arrays["gen_feats"][~mask] = np.nan  # not read
    bench = prepare_benchmark(dataset, f"npz:{_save(tmp_path / 'f.npz', gen_mask=mask, **arrays)}")
    assert bench.ipg_coverage["gallery"] == {"with_generated": 6, "total": 8}
    distractor = bench.g_pids == 0
    np.testing.assert_allclose(bench.features("+IPG")[1][distractor], bench.features("Base")[1][distractor], atol=1e-6)
    assert np.isfinite(bench.features("+NFC+IPG", k1=1, k2=1)[1]).all()



def test_a_real_identity_without_gen_feats_is_told_as_missing_from_the_file(dataset, tmp_path):
    arrays = _arrays(dataset)
    lacking = next(name for name in arrays["names"] if name[:4] not in ("0000", "-1_c"))
    mask = arrays["names"] != lacking
    bench = prepare_benchmark(dataset, f"npz:{_save(tmp_path / 'f.npz', gen_mask=mask, **arrays)}")
    split = "query" if lacking in {im.name for im in dataset.query} else "gallery"
    assert bench.ipg_missing[split] == [lacking]
    note = bench.ipg_coverage_note
    assert lacking in note and "gen_feats" in note and "poseK/" not in note  # the file lacks them, not folders

def test_without_gen_feats_only_base_and_nfc(dataset, tmp_path):
    arrays = _arrays(dataset)
    del arrays["gen_feats"]
    bench = prepare_benchmark(dataset, f"npz:{_save(tmp_path / 'f.npz', **arrays)}")
    assert bench.methods == ("Base", "+NFC") and "gen_feats" in bench.ipg_note


def test_names_with_their_folder(dataset, tmp_path):
    arrays = _arrays(dataset, extra=())
    folder = {im.name: im.path.parent.name for im in dataset.query + dataset.gallery}
    arrays["names"] = np.array([f"{folder[n]}/{n}" for n in arrays["names"]])
    bench = prepare_benchmark(dataset, FeatureFile(_save(tmp_path / "f.npz", **arrays)))
    assert bench.qf.shape == (3, 6)


def test_eval_cli_with_npz(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    arrays = _arrays(dataset)
    mask = np.array([not name.startswith("0000") for name in arrays["names"]])
    file = _save(tmp_path / "model.npz", gen_mask=mask, **arrays)
    out = tmp_path / "t.json"
    assert run_cli(["eval", "--dataset", str(dataset.root), "--features", f"npz:{file}", "--k1", "1", "--k2", "1",
                    "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["method"] for r in result["rows"]] == list(METHODS)
    assert result["features"].startswith("npz:model.npz")
    assert result["ipg_coverage"]["gallery"] == {"with_generated": 6, "total": 8}
    assert "6 of 8 gallery" in capsys.readouterr().err


def _fields(error, file):
    """The problem of a FeatureFileError about ``file``, after checking its fields."""
    assert isinstance(error, ValueError) and isinstance(error, ArgumentError)
    assert (error.file, error.argument) == (str(file), "spec")
    assert "features file" in error.problem and str(file) not in error.problem  # the path is a field, once
    assert str(error) == f"{file}: {error.problem}"
    return error.problem


def _error(tmp_path, dataset, **arrays):
    file = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(FeatureFileError) as info:
        FeatureFile(file).rows_for(dataset)
    return _fields(info.value, file)


def test_bad_files_name_the_file_and_the_field(dataset, tmp_path):
    good = _arrays(dataset)
    assert "'feats'" in _error(tmp_path, dataset, names=good["names"])
    assert "'names'" in _error(tmp_path, dataset, feats=good["feats"])
    message = _error(tmp_path, dataset, names=good["names"], feats=good["feats"][:-1])
    assert "'feats'" in message and f"{len(good['names']) - 1} rows" in message
    assert "2-D" in _error(tmp_path, dataset, names=good["names"], feats=good["feats"][:, :, None])
    nan = good["feats"].copy()
    nan[[1, 4]] = np.nan
    message = _error(tmp_path, dataset, names=good["names"], feats=nan)
    assert "'feats'" in message and "NaN" in message and "2 row" in message
    other_d = good["gen_feats"][:, :, :4]
    message = _error(tmp_path, dataset, names=good["names"], feats=good["feats"], gen_feats=other_d)
    assert "'gen_feats'" in message and "4" in message and "6" in message
    assert "'gen_feats'" in _error(tmp_path, dataset, names=good["names"], feats=good["feats"],
                                   gen_feats=good["gen_feats"][:-2])
    repeated = good["names"].copy()
    repeated[1] = repeated[0]
    assert "more than once" in _error(tmp_path, dataset, names=repeated, feats=good["feats"])
    assert "'names'" in _error(tmp_path, dataset, names=np.arange(len(good["names"])), feats=good["feats"])
    message = _error(tmp_path, dataset, names=good["names"], feats=good["feats"], gen_mask=np.ones(3, bool),
                     gen_feats=good["gen_feats"])
    assert "'gen_mask'" in message


def test_names_that_do_not_match_say_how_many_do(dataset, tmp_path):
    good = _arrays(dataset, extra=())
    names = good["names"].copy()
    names[:4] = [f"other_{i}.jpg" for i in range(4)]
    message = _error(tmp_path, dataset, names=names, feats=good["feats"])
    assert "matches 7 of the 11" in message and "other_0.jpg" in message and "missing e.g." in message


def _refused(path):
    with pytest.raises(FeatureFileError) as info:
        FeatureFile(path)
    return _fields(info.value, path)


def test_not_an_npz(dataset, tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    assert "not a .npz" in _refused(tmp_path / "x.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    assert "single array" in _refused(tmp_path / "one.npy")
    assert "does not exist" in _refused(tmp_path / "nowhere.npz")
    np.savez(tmp_path / "obj.npz", names=np.array(["a", 1], dtype=object), feats=np.zeros((2, 3)))
    assert "dtype=str" in _refused(tmp_path / "obj.npz")


def test_empty_folder_and_damaged_files_are_refused_with_the_file(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")  # numpy raises EOFError for it
    assert "not a .npz" in _refused(tmp_path / "empty.npz")
    (tmp_path / "folder.npz").mkdir()
    assert "folder" in _refused(tmp_path / "folder.npz")
    good = _save(tmp_path / "good.npz", names=np.array(["a.jpg", "b.jpg"]), feats=np.ones((2, 3), np.float32))
    data = bytearray(good.read_bytes())
    header = data.rfind(b"\x93NUMPY")  # the last array, 'feats', stored as .npy version 1
    values = header + 10 + int.from_bytes(data[header + 8 : header + 10], "little")
    data[values] ^= 0xFF  # one of its values changed: its stored checksum no longer matches
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(data))
    problem = _refused(damaged)
    assert "'feats'" in problem and "damaged" in problem


def test_cli_refuses_a_bad_file_before_any_work(dataset, tmp_path, monkeypatch, capsys):
    from pose2id.cli import main

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    good = _arrays(dataset)
    file = _save(tmp_path / "bad.npz", names=good["names"][:3], feats=good["feats"][:3])

    def refuse(*args, **kwargs):
        raise AssertionError("features were computed")

    monkeypatch.setattr("pose2id.experiments.prepare_benchmark", refuse)
    assert main(["eval", "--dataset", str(dataset.root), "--features", f"npz:{file}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --features {file}: ") and "matches 3 of the 11" in err and "Traceback" not in err
    assert err.count(str(file)) == 1
    assert main(["eval", "--dataset", str(dataset.root), "--features", f"npz:{file}", "--camera-ids", "on"]) == 1
    assert "--camera-ids" in capsys.readouterr().err
