"""MSMT17's list-file layout, on a tiny made-up copy written by the tests."""

import logging

import pytest
from PIL import Image

from pose2id.data import MSMT17, DatasetError, open_dataset
from pose2id.data.msmt17 import parse_msmt17_camera

# PPPP_III_CC_<date/time>_FFFF_N.jpg, listed as "PPPP/NAME label" (the label is the pid within the split)
QUERY = ["0000/0000_000_01_0303morning_0008_0.jpg 0", "0001/0001_003_07_0303afternoon_0131_1.jpg 1"]
GALLERY = ["0000/0000_005_15_0303noon_0210_2.jpg 0", "0000/0000_011_01_0303morning_0302_0.jpg 0",
           "0001/0001_000_02_0303morning_0040_0.jpg 1", "0002/0002_001_12_0303noon_0500_3.jpg 2"]
TRAIN = ["0000/0000_000_04_0303morning_0001_0.jpg 0"]


def _jpeg(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 128), colour).save(path)


def make_msmt17(root, test_dir="test", train_dir="train", with_gen=False, missing=()):
    """A tiny MSMT17 folder: list files, images under test/ and train/, optional generated images."""
    root.mkdir(parents=True)
    for list_name, lines, folder in (("list_query.txt", QUERY, test_dir), ("list_gallery.txt", GALLERY, test_dir),
                                     ("list_train.txt", TRAIN, train_dir), ("list_val.txt", [], train_dir)):
        (root / list_name).write_text("".join(line + "\n" for line in lines))
        for i, line in enumerate(lines):
            relative = line.split()[0]
            if relative not in missing:
                _jpeg(root / folder / relative, (40 * i, 90, 120))
            if with_gen and folder == test_dir and not relative.startswith("0002"):
                for pose in (1, 2, 3):
                    _jpeg(root / f"{test_dir}_gen" / f"pose{pose}" / relative, (10 * pose, 50, 50))
    return root


def test_parse_msmt17_camera():
    assert parse_msmt17_camera("0000_000_01_0303morning_0008_0.jpg") == 0
    assert parse_msmt17_camera("0001/0001_003_15_0303afternoon_0131_1.jpg") == 14
    assert parse_msmt17_camera("0001_c1s1_000151_00.jpg") is None


def test_reads_the_list_files(tmp_path):
    ds = MSMT17(make_msmt17(tmp_path / "MSMT17_V1"))
    assert ds.name == "MSMT17" and not ds.is_synthetic
    # label + 1: pid 0 keeps meaning "distractor" (MSMT17 has none); the camera is the 3rd field, 0-based
    assert [(im.pid, im.camid) for im in ds.query] == [(1, 0), (2, 6)]
    assert [(im.pid, im.camid) for im in ds.gallery] == [(1, 14), (1, 0), (2, 1), (3, 11)]
    assert ds.query[0].name == "0000/0000_000_01_0303morning_0008_0.jpg"
    assert all(im.path.is_file() and im.path.parent.parent.name == "test" for im in ds.query + ds.gallery)
    assert len(ds.train) == 1
    assert ds.generated("query") == {}


def test_v2_folders_and_a_parent_folder(tmp_path):
    make_msmt17(tmp_path / "data" / "MSMT17_V2", test_dir="mask_test_v2", train_dir="mask_train_v2")
    for spec in (f"msmt17:{tmp_path / 'data'}", str(tmp_path / "data")):  # named, or recognised from the lists
        ds = open_dataset(spec)
        assert isinstance(ds, MSMT17) and ds.root.name == "MSMT17_V2"
        assert len(ds.query) == 2 and len(ds.gallery) == 4


def test_generated_images(tmp_path):
    ds = MSMT17(make_msmt17(tmp_path / "MSMT17", with_gen=True))
    gen = ds.generated("gallery")
    # pid folder 0002 has no generated images
    assert set(gen) == {im.name for im in ds.gallery if not im.name.startswith("0002")}
    assert [p.parent.parent.name for p in gen[ds.gallery[0].name]] == ["pose1", "pose2", "pose3"]
    assert set(ds.generated("query")) == {im.name for im in ds.query}


def test_missing_listed_files_are_skipped_and_reported(tmp_path, caplog):
    root = make_msmt17(tmp_path / "MSMT17", missing={GALLERY[1].split()[0]})
    with caplog.at_level(logging.WARNING, logger="pose2id.data.msmt17"):
        ds = MSMT17(root)
    assert len(ds.gallery) == 3 and [why for _, why in ds.skipped] == ["listed but missing"]
    assert "0000_011_01_0303morning_0302_0.jpg" in caplog.text


def test_bad_layouts_name_the_file_and_line(tmp_path):
    with pytest.raises(DatasetError, match="list_query.txt") as info:
        MSMT17(tmp_path)
    assert (info.value.argument, info.value.file) == ("root", str(tmp_path))
    root = make_msmt17(tmp_path / "MSMT17")
    (root / "list_gallery.txt").write_text(GALLERY[0] + "\n0000/0000_a.jpg zero\n")
    with pytest.raises(DatasetError) as info:
        MSMT17(root)
    assert info.value.file == str(root / "list_gallery.txt") and info.value.problem.startswith("line 2 is ")
    (root / "list_gallery.txt").write_text("0000/0000_c1s1_000151_00.jpg 0\n")
    with pytest.raises(DatasetError, match=r"list_gallery.txt: line 1.*camera") as info:
        MSMT17(root)
    assert info.value.file == str(root / "list_gallery.txt")
    (root / "list_gallery.txt").write_text(GALLERY[0] + "\n")
    for image in (root / "test").rglob("*.jpg"):
        image.unlink()
    with pytest.raises(DatasetError, match=r"usable image.*listed but missing"):
        MSMT17(root)


def test_a_missing_list_file_is_named_for_msmt17_and_a_plain_path(tmp_path):
    root = make_msmt17(tmp_path / "data" / "MSMT17_V1")
    (root / "list_gallery.txt").unlink()  # a half-extracted download
    for spec in (f"msmt17:{tmp_path / 'data'}", str(tmp_path / "data"), str(root)):
        with pytest.raises(DatasetError) as info:
            open_dataset(spec)
        assert info.value.file == str(root)
        assert "no list_gallery.txt" in info.value.problem and "list_query.txt and list_train.txt" in info.value.problem


def test_a_folder_holding_several_kinds_of_dataset_names_them_all(tmp_path):
    from tiny_market import market_folder

    data = tmp_path / "data"
    market_folder(data / "Market-1501-v15.09.15", with_gen=False)
    make_msmt17(data / "MSMT17_V1")
    with pytest.raises(DatasetError) as info:
        open_dataset(str(data))  # either one would be a guess
    assert "MSMT17_V1/ (MSMT17)" in info.value.problem and "Market-1501-v15.09.15/ (Market-1501" in info.value.problem
    # the usual shelf of downloads: every one is named, CUHK03-NP once (not its detected/ and labeled/)
    market_folder(data / "DukeMTMC-reID", with_gen=False)
    for which in ("detected", "labeled"):
        market_folder(data / "cuhk03-np" / which, pids=2, with_gen=False)
    with pytest.raises(DatasetError) as info:
        open_dataset(str(data))
    assert info.value.problem.startswith("holds 4 datasets")
    for shown in ("cuhk03-np/ (CUHK03-NP)", "DukeMTMC-reID/", "Market-1501-v15.09.15/", "MSMT17_V1/"):
        assert shown in info.value.problem
    # one of them, or the kind written before the path, chooses
    assert isinstance(open_dataset(str(data / "MSMT17_V1")), MSMT17)
    assert isinstance(open_dataset(f"msmt17:{data}"), MSMT17)
    duke = open_dataset(f"dukemtmc:{data / 'DukeMTMC-reID'}")
    assert duke.name == "DukeMTMC-reID" and duke.query and all(image.pid > 0 for image in duke.query)


def test_eval_on_msmt17(tmp_path, monkeypatch, capsys):
    import json

    from pose2id.cli import main

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    root = make_msmt17(tmp_path / "MSMT17_V1", with_gen=True)
    out = tmp_path / "t.json"
    assert main(["eval", "--dataset", f"msmt17:{root}", "--k1", "1", "--k2", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "MSMT17" and result["num_query"] == 2 and result["num_gallery"] == 4
    assert [r["method"] for r in result["rows"]][-1] == "+NFC+IPG"
    # pid folder 0002 has no generated images: it keeps its own feature
    assert result["ipg_coverage"]["gallery"] == {"with_generated": 3, "total": 4}
    assert "3 of 4 gallery" in capsys.readouterr().err
