import threading

import numpy as np
import pytest
from PIL import Image

from pose2id.data import Market1501, parse_name
from pose2id.data.oracle import OracleGenerator
from pose2id.data.synthped import DISPLAY_NAME, Identity, SynthPedConfig, load_synthped, synthped_stages
from pose2id.poses import load_standard_poses

SMALL = SynthPedConfig(num_identities=6, num_train_identities=2, num_cameras=3, num_distractors=3, num_junk=2)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return load_synthped(cache_dir=tmp_path_factory.mktemp("sp") / "a", seed=3, config=SMALL)


def test_labelled_synthetic(small):
    assert isinstance(small, Market1501)
    assert small.is_synthetic is True
    assert small.name == DISPLAY_NAME == "SynthPed (synthetic)"
    assert "synthetic" in repr(small)
    assert (small.root / "synthped.json").read_text().count('"synthetic": true') == 1


def test_market_layout_and_protocol(small):
    for im in small.query + small.gallery + small.train:
        assert parse_name(im.name) == (im.pid, im.camid)
        with Image.open(im.path) as image:
            assert image.size == (64, 128) and image.mode == "RGB"
    assert {im.pid for im in small.query} == set(range(1, 7))
    assert any(im.pid == 0 for im in small.gallery)  # distractors
    assert not any(im.pid == -1 for im in small.gallery)  # junk files exist but are skipped
    assert len(list((small.root / "bounding_box_test").glob("-1_*.jpg"))) == 2
    for q in small.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in small.gallery)
    assert {im.pid for im in small.train}.isdisjoint({im.pid for im in small.query})


def test_generated_images_complete(small):
    for split, images in (("query", small.query), ("gallery", small.gallery)):
        gen = small.generated(split)
        assert set(gen) == {im.name for im in images}
        assert all(len(paths) == 8 for paths in gen.values())


def test_identities_exposed(small):
    assert set(small.identities) == set(range(1, 9))  # 6 test + 2 train
    identity = small.identities[1]
    assert isinstance(identity, Identity)
    assert identity.upper_pattern in ("plain", "stripes", "checks")
    assert identity.upper_colour_name in identity.describe()
    assert len(small.cameras) == 3


def _digest(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def test_deterministic(small, tmp_path):
    again = load_synthped(cache_dir=tmp_path / "b", seed=3, config=SMALL)
    assert _digest(again.root) == _digest(small.root)
    other = load_synthped(cache_dir=tmp_path / "c", seed=4, config=SMALL)
    assert _digest(other.root) != _digest(small.root)


def test_cached_second_load_does_not_regenerate(small):
    stamp = (small.root / "synthped.json").stat().st_mtime_ns
    again = load_synthped(cache_dir=small.root, seed=3, config=SMALL)
    assert (small.root / "synthped.json").stat().st_mtime_ns == stamp
    assert [im.name for im in again.query] == [im.name for im in small.query]


def test_default_cache_folder_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path))
    tiny = SynthPedConfig(num_identities=2, num_train_identities=0, num_cameras=2, num_distractors=0, num_junk=0)
    ds = load_synthped(seed=1, config=tiny)
    assert ds.root.parent == tmp_path and ds.root.name.startswith("synthped-")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        load_synthped(cache_dir=tmp_path, seed=-1)
    with pytest.raises(ValueError, match="config"):
        load_synthped(cache_dir=tmp_path, config={"num_identities": 3})


def _mean_abs(a, b):
    return np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean()


def test_oracle_perfect_and_degraded(small):
    perfect = OracleGenerator(0.0, identities=small.identities)
    images = perfect.generate(1)
    assert len(images) == 8 and all(im.size == (64, 128) for im in images)
    # fidelity 0 ignores the seed: the same identity is redrawn exactly
    again = perfect.generate(1, seed=123)
    assert all(_mean_abs(a, b) == 0 for a, b in zip(images, again))
    weak = OracleGenerator(2.0, identities=small.identities)
    noisy = weak.generate(1, seed=5)
    assert np.mean([_mean_abs(a, b) for a, b in zip(images, noisy)]) > 3
    assert np.mean([_mean_abs(a, b) for a, b in zip(noisy, weak.generate(1, seed=6))]) > 1


def test_oracle_custom_poses_and_errors(small):
    oracle = OracleGenerator(0.0, identities=small.identities)
    poses = load_standard_poses()
    images = oracle.generate(2, poses=[poses[0].mirror(), poses[3]])
    assert len(images) == 2
    with pytest.raises(ValueError, match="pid"):
        oracle.generate(999)
    with pytest.raises(ValueError, match="fidelity"):
        OracleGenerator(-1)
    assert "oracle" in repr(oracle).lower()


def test_oracle_importable_from_synthped():
    from pose2id.data import synthped

    assert synthped.OracleGenerator is OracleGenerator


def test_oracle_default_identities_match_default_synthped():
    # built from the seed alone, without generating any image
    oracle = OracleGenerator(0.3, seed=0)
    assert len(oracle.identities) == SynthPedConfig().num_identities + SynthPedConfig().num_train_identities


def test_staged_build_equals_one_shot_file_by_file(small, tmp_path):
    root = tmp_path / "staged"
    calls = []
    originals = load_synthped(cache_dir=root, seed=3, config=SMALL, generated=False,
                              progress=lambda done, total: calls.append((done, total)))
    assert originals.has_generated is False
    assert originals.generated("query") == {} and originals.generated("gallery") == {}
    assert not (root / "query_gen").exists() and not (root / "bounding_box_test_gen").exists()
    assert (root / "originals.json").is_file() and not (root / "synthped.json").is_file()
    assert synthped_stages(root, seed=3, config=SMALL) == {"originals": True, "generated": False}
    # the originals are the one-shot build's, byte for byte
    assert _digest(root) == {k: v for k, v in _digest(small.root).items() if "_gen/" not in k}
    assert calls[-1][0] == calls[-1][1] == len(list(root.rglob("*.jpg")))
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")}

    calls.clear()
    full = load_synthped(cache_dir=root, seed=3, config=SMALL, progress=lambda done, total: calls.append((done, total)))
    assert full.has_generated is True
    assert _digest(root) == _digest(small.root)
    # stage 2 drew only the generated sets (one step per query/gallery person) and left the originals alone
    assert calls[-1][0] == calls[-1][1] == len(small.query) + len(small.gallery)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert set(full.generated("query")) == {im.name for im in full.query}
    assert synthped_stages(root, seed=3, config=SMALL) == {"originals": True, "generated": True}
    # asking for the originals of a complete dataset draws nothing and still hides the generated sets
    again = load_synthped(cache_dir=root, seed=3, config=SMALL, generated=False)
    assert again.generated("gallery") == {}


def test_concurrent_builds_of_both_stages_agree(small, tmp_path):
    root = tmp_path / "together"
    errors = []

    def build(generated):
        try:
            load_synthped(cache_dir=root, seed=3, config=SMALL, generated=generated)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=build, args=(flag,)) for flag in (False, True, True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _digest(root) == _digest(small.root)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["together"]  # no temporary folder left


def test_generated_argument_checked(tmp_path):
    with pytest.raises(ValueError, match="generated"):
        load_synthped(cache_dir=tmp_path / "x", config=SMALL, generated="no")


def test_open_dataset_originals_only(tmp_path):
    from pose2id.data import open_dataset

    ds = open_dataset("synthped:5", cache_dir=tmp_path / "d", generated=False)
    assert ds.is_synthetic and ds.has_generated is False and ds.generated("query") == {}
    assert not (tmp_path / "d" / "query_gen").exists()
