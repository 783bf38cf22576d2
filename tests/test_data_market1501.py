import logging

import numpy as np
import pytest
from PIL import Image

from pose2id.data import DatasetError, Market1501, open_dataset, parse_name
from pose2id.data.market1501 import split_market_protocol


def _jpeg(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 128), colour).save(path, quality=90)


def make_market(root, with_gen=True, corrupt=True, gen_for_distractors=True):
    """A tiny Market-1501 folder: 3 identities, junk, distractors, generated images, bad files.

    ``gen_for_distractors=False`` lays the generated images out as published: for the real
    identities only (none for the distractors, pid 0000, nor for junk, pid -1)."""
    query = ["0001_c1s1_000151_00.jpg", "0002_c2s1_000301_00.jpg", "0003_c3s2_000451_00.jpg"]
    gallery = [
        "0001_c2s1_000201_01.jpg", "0001_c3s1_000251_00.jpg", "0002_c1s1_000351_00.jpg",
        "0002_c2s1_000302_00.jpg", "0003_c1s2_000501_00.jpg", "0003_c6s1_000551_00.jpg",
        "0000_c1s1_000001_00.jpg", "0000_c4s1_000002_00.jpg",  # distractors: kept
        "-1_c1s1_000003_00.jpg", "-1_c2s1_000004_00.jpg",  # junk: skipped
    ]
    train = ["0010_c1s1_000100_00.jpg", "0010_c2s1_000110_00.jpg"]
    for i, name in enumerate(query):
        _jpeg(root / "query" / name, (40 * i, 100, 200))
    for i, name in enumerate(gallery):
        _jpeg(root / "bounding_box_test" / name, (200, 20 * i, 50))
    for name in train:
        _jpeg(root / "bounding_box_train" / name, (10, 200, 10))
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image")
    (root / "readme.txt").write_text("Market-1501 test copy")
    if corrupt:
        # Market-style names, broken content: one garbage file, one truncated JPEG.
        (root / "bounding_box_test" / "0001_c5s1_000999_00.jpg").write_bytes(b"\xff\xd8garbage" * 10)
        good = root / "bounding_box_test" / "0002_c5s1_000998_00.jpg"
        _jpeg(good, (1, 2, 3))
        data = good.read_bytes()
        good.write_bytes(data[: len(data) // 2])
    if with_gen:
        for split, names in (("query", query), ("bounding_box_test", gallery)):
            for p in range(1, 9):
                for name in names:
                    if not name.startswith("-1") and (gen_for_distractors or not name.startswith("0000")):
                        _jpeg(root / f"{split}_gen" / f"pose{p}" / name, (25 * p, 50, 50))
    return root


def test_parse_name():
    assert parse_name("0002_c1s1_000451_03.jpg") == (2, 0)
    assert parse_name("-1_c3s2_000001_00.jpg") == (-1, 2)
    assert parse_name("0000_c6s1_000001_00.png") == (0, 5)
    assert parse_name("0002_c1s1_000451_03.txt") is None
    assert parse_name("person_0002.jpg") is None
    assert parse_name("0002_c0s1_000451_03.jpg") is None


def test_reads_market_layout(tmp_path, caplog):
    root = make_market(tmp_path / "Market")
    with caplog.at_level(logging.WARNING, logger="pose2id.data.market1501"):
        ds = Market1501(root)
    assert ds.name == "Market-1501" and not ds.is_synthetic
    assert [im.name for im in ds.query] == ["0001_c1s1_000151_00.jpg", "0002_c2s1_000301_00.jpg", "0003_c3s2_000451_00.jpg"]
    assert [(im.pid, im.camid) for im in ds.query] == [(1, 0), (2, 1), (3, 2)]
    pids = [im.pid for im in ds.gallery]
    assert -1 not in pids
    assert pids.count(0) == 2
    assert len(ds.gallery) == 8
    assert len(ds.train) == 2
    assert all(im.path.is_file() for im in ds.query + ds.gallery)
    # The two broken files are skipped and reported, not fatal.
    assert sorted(p.name for p, _ in ds.skipped) == ["0001_c5s1_000999_00.jpg", "0002_c5s1_000998_00.jpg"]
    assert "skipped 2 unreadable image(s)" in caplog.text


def test_generated_images(tmp_path):
    ds = Market1501(make_market(tmp_path / "m"))
    q = ds.generated("query")
    g = ds.generated("gallery")
    assert set(q) == {im.name for im in ds.query}
    assert set(g) == {im.name for im in ds.gallery}
    paths = q["0001_c1s1_000151_00.jpg"]
    assert [p.parent.name for p in paths] == [f"pose{i}" for i in range(1, 9)]
    assert all(p.is_file() for p in paths)
    with pytest.raises(ValueError, match="split"):
        ds.generated("train")


def test_generated_images_one_folder_per_image(tmp_path):
    root = make_market(tmp_path / "m", with_gen=False, corrupt=False)
    ds = Market1501(root)
    for im in ds.query:
        for k in range(1, 9):
            _jpeg(root / "query_gen" / im.name.removesuffix(".jpg") / f"{k}.jpg", (k, k, k))
    (root / "query_gen" / ds.query[0].name.removesuffix(".jpg") / "8.jpg").unlink()  # incomplete
    gen = ds.generated("query")
    assert set(gen) == {im.name for im in ds.query[1:]}
    assert [p.name for p in gen[ds.query[1].name]] == [f"{k}.jpg" for k in range(1, 9)]
    assert ds.generated("gallery") == {}


def test_no_generated_images(tmp_path):
    ds = Market1501(make_market(tmp_path / "m", with_gen=False))
    assert ds.generated("query") == {} and ds.generated("gallery") == {}


def test_nested_release_folder(tmp_path):
    make_market(tmp_path / "Market-1501-v15.09.15", corrupt=False)
    ds = Market1501(tmp_path)
    assert ds.root.name == "Market-1501-v15.09.15"
    assert len(ds.query) == 3


def test_flat_folder_split_by_protocol(tmp_path):
    names = ["0001_c1_a.jpg", "0001_c2_b.jpg", "0001_c2_c.jpg", "0002_c1_a.jpg", "0003_c1_a.jpg",
             "0003_c3_b.jpg", "0000_c2_x.jpg", "-1_c1_y.jpg"]
    for name in names:
        _jpeg(tmp_path / name, (9, 9, 9))
    ds = open_dataset(str(tmp_path))
    assert [im.name for im in ds.query] == ["0001_c1_a.jpg", "0001_c2_b.jpg", "0003_c1_a.jpg", "0003_c3_b.jpg"]
    gallery = {im.name for im in ds.gallery}
    assert gallery == {"0001_c2_c.jpg", "0002_c1_a.jpg", "0000_c2_x.jpg"}
    assert not gallery & {im.name for im in ds.query}


def test_split_protocol_every_query_has_cross_camera_match(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(60):
        _jpeg(tmp_path / f"{rng.integers(1, 8):04d}_c{rng.integers(1, 5)}_{i:03d}.jpg", (0, 0, 0))
    ds = Market1501(tmp_path)
    for q in ds.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in ds.gallery + ds.query if g is not q)


def test_folder_without_market_names(tmp_path):
    for name in ("cat.jpg", "dog.png"):
        _jpeg(tmp_path / name, (1, 1, 1))
    with pytest.raises(DatasetError, match=r"0002_c1s1_000451_03\.jpg") as info:
        Market1501(tmp_path)
    assert info.value.file == str(tmp_path) and info.value.argument == "root"
    assert "none of the 2 image file(s)" in info.value.problem and "'cat.jpg'" in info.value.problem


def test_not_a_folder(tmp_path):
    from pose2id import ArgumentError

    with pytest.raises(DatasetError, match="not a folder") as info:
        Market1501(tmp_path / "missing")
    assert (info.value.argument, info.value.file) == ("root", str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="does not exist") as info:
        open_dataset(str(tmp_path / "missing"))
    # the fields: the spec's path as the file, the problem without it; the message names it once
    error = info.value
    assert (error.argument, error.file, error.value) == ("spec", str(tmp_path / "missing"), str(tmp_path / "missing"))
    assert str(tmp_path) not in error.problem and str(error).count(str(tmp_path / "missing")) == 1
    assert isinstance(error, ArgumentError) and isinstance(error, ValueError)
    with pytest.raises(ArgumentError) as info:
        open_dataset("")
    assert info.value.argument == "spec" and info.value.value == "" and str(info.value).startswith("spec must be")


def test_split_market_protocol_keeps_distractors_in_gallery():
    from pose2id.data import ReIDImage

    images = [ReIDImage(path=None, pid=0, camid=c, name=f"0000_c{c + 1}_{c}.jpg") for c in range(3)]
    query, gallery = split_market_protocol(images)
    assert query == [] and len(gallery) == 3


# ---------------------------------------------------------------------------- no folder with query/ and a gallery
def _without(root, split):
    """:func:`tiny_market.market_folder` (6 identities, 3 cameras) without its ``split`` folder."""
    import shutil

    from tiny_market import market_folder

    market_folder(root, with_gen=False)
    shutil.rmtree(root / split)
    return root


@pytest.mark.parametrize("split", ["query", "bounding_box_test", "bounding_box_train"])
def test_a_split_folder_of_a_dataset_is_refused_naming_the_dataset_folder(tmp_path, split):
    root = make_market(tmp_path / "Market-1501-v15.09.15", corrupt=False)
    for spec in (f"market1501:{root / split}", str(root / split)):
        with pytest.raises(DatasetError) as info:
            open_dataset(spec)  # was split by the protocol as if it were one pool of images
        assert info.value.file == str(root / split) and str(root) in info.value.problem


def test_folder_without_query_says_the_query_folder_is_missing(tmp_path):
    root = _without(tmp_path / "nq", "query")
    with pytest.raises(DatasetError) as info:
        open_dataset(f"market1501:{root}")
    assert info.value.file == str(root) and str(info.value).startswith(f"{root}: ")
    assert info.value.problem == ("has bounding_box_test/ (30 images) but no query/ folder: a Market-1501 style "
                                  "dataset needs query/ and bounding_box_test/ side by side")
    # one level down, as a release folder is: named from the folder that was given
    with pytest.raises(DatasetError) as info:
        Market1501(tmp_path)
    assert info.value.file == str(tmp_path) and info.value.problem.startswith("has nq/bounding_box_test/ (30 images) "
                                                                             "but no query/ folder")


def test_folder_without_gallery_says_the_gallery_folder_is_missing(tmp_path):
    root = _without(tmp_path / "ng", "bounding_box_test")
    with pytest.raises(DatasetError) as info:
        Market1501(root)
    assert info.value.file == str(root)
    assert info.value.problem.startswith("has query/ (6 images) but no bounding_box_test/ folder (the gallery;")
    assert "junk" not in str(info.value)


def test_query_and_gallery_in_different_folders(tmp_path):
    _without(tmp_path / "a", "bounding_box_test")
    _without(tmp_path / "b", "query")
    with pytest.raises(DatasetError, match=r"has a/query/ \(6 images\) and b/bounding_box_test/ \(30 images\), but not "
                                           r"side by side: a Market-1501 style dataset needs query/ and"):
        Market1501(tmp_path)


def test_two_datasets_in_one_folder_are_named(tmp_path):
    make_market(tmp_path / "first", with_gen=False, corrupt=False)
    make_market(tmp_path / "second", with_gen=False, corrupt=False)
    with pytest.raises(DatasetError, match=r"holds 2 Market-1501 style datasets \(first/, second/\), each with query/ "
                                           r"and a gallery folder; use one of them at a time"):
        Market1501(tmp_path)


def test_folder_of_unrelated_files(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("hello")
    (tmp_path / "test").mkdir()  # a folder named like a gallery, holding nothing Market-style
    _jpeg(tmp_path / "test" / "cat.jpg", (1, 1, 1))
    with pytest.raises(DatasetError) as info:
        Market1501(tmp_path)
    assert info.value.file == str(tmp_path)
    assert info.value.problem.startswith("none of the 1 image file(s) has a Market-1501 style name (for example "
                                         "'cat.jpg')")


def test_only_junk_is_reported_as_junk(tmp_path):
    for name in ("-1_c1s1_000001_00.jpg", "-1_c2s1_000002_00.jpg"):
        _jpeg(tmp_path / name, (5, 5, 5))
    with pytest.raises(DatasetError, match=rf"^{tmp_path}: no usable query/gallery images: all 2 file\(s\) with "
                                           r"Market-1501 style names are junk \(pid -1, a name starting with '-1_'\)"):
        Market1501(tmp_path)


def test_market_names_deeper_than_the_folders_read(tmp_path):
    for cam in (1, 2):
        _jpeg(tmp_path / "photos" / "2024" / "day1" / f"0001_c{cam}s1_000001_00.jpg", (5, 5, 5))
    with pytest.raises(DatasetError) as info:
        Market1501(tmp_path)
    assert info.value.file == str(tmp_path) and "in other folders" in info.value.problem
    assert "photos/2024/day1/0001_c1s1_000001_00.jpg" in info.value.problem


def _market_style(root, names_by_split):
    for split, names in names_by_split.items():
        for i, name in enumerate(names):
            _jpeg(root / split / name, (30 * i % 255, 90, 160))
    return root


# DukeMTMC-reID names: PPPP_cC_fFFFFFFF.jpg; CUHK03-NP names: PPPP_cC_N.png
DUKE = {"query": ["0005_c2_f0046985.jpg", "0007_c5_f0047402.jpg"],
        "bounding_box_test": ["0005_c1_f0046020.jpg", "0007_c3_f0047200.jpg", "0007_c5_f0047499.jpg",
                              "0000_c6_f0080000.jpg", "-1_c2_f0000001.jpg"],
        "bounding_box_train": ["0001_c2_f0046182.jpg"]}
CUHK = {"query": ["0003_c1_21.png", "0011_c2_8.png"],
        "bounding_box_test": ["0003_c2_26.png", "0011_c1_2.png", "0012_c1_1.png"],
        "bounding_box_train": ["0001_c1_1.png"]}


def test_dukemtmc_reid_layout(tmp_path):
    root = _market_style(tmp_path / "DukeMTMC-reID", DUKE)
    for spec in (str(root), f"dukemtmc:{root}", f"dukemtmc:{tmp_path}"):
        ds = open_dataset(spec)
        assert ds.name == "DukeMTMC-reID"
        assert [(im.pid, im.camid) for im in ds.query] == [(5, 1), (7, 4)]
        # junk dropped, the distractor kept, camera 6 -> 5
        assert sorted((im.pid, im.camid) for im in ds.gallery) == [(0, 5), (5, 0), (7, 2), (7, 4)]
        assert len(ds.train) == 1


def test_cuhk03_np_detected_and_labeled(tmp_path):
    top = tmp_path / "cuhk03-np"
    _market_style(top / "detected", CUHK)
    _market_style(top / "labeled", {k: v[:2] for k, v in CUHK.items()})
    detected = open_dataset(f"cuhk03-np:{top}")
    assert detected.name == "CUHK03-NP (detected)" and detected.root == top / "detected"
    assert [(im.pid, im.camid) for im in detected.query] == [(3, 0), (11, 1)] and len(detected.gallery) == 3
    labeled = open_dataset(f"cuhk03-np-labeled:{top}")
    assert labeled.name == "CUHK03-NP (labeled)" and len(labeled.gallery) == 2
    # one of the two sets, named as a folder, needs no kind
    assert open_dataset(str(top / "labeled")).name == "CUHK03-NP (labeled)"
    # the folder with both: the message says how to choose
    with pytest.raises(DatasetError, match=r"cuhk03-np-labeled:") as info:
        open_dataset(str(top))
    assert (info.value.argument, info.value.file) == ("spec", str(top))
    other = _market_style(tmp_path / "other", {"query": CUHK["query"]})
    with pytest.raises(DatasetError, match=r"no labeled/ folder") as info:
        open_dataset(f"cuhk03-np-labeled:{other}")
    assert (info.value.argument, info.value.file) == ("spec", str(other))


def test_any_folder_with_market_style_names_keeps_its_name(tmp_path):
    root = _market_style(tmp_path / "my_cams", {"query": DUKE["query"], "bounding_box_test": DUKE["bounding_box_test"]})
    ds = open_dataset(str(root))
    assert ds.name == "Market-1501" and len(ds.query) == 2
