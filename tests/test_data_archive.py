import stat
import zipfile

import pytest

from pose2id.data import DatasetError, Market1501, open_archive, open_dataset
from test_data_market1501 import make_market


def _zip_folder(folder, zip_path, prefix=""):
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + str(path.relative_to(folder)))
    return zip_path


def test_good_zip(tmp_path):
    make_market(tmp_path / "src", corrupt=False)
    archive = _zip_folder(tmp_path / "src", tmp_path / "market.zip", prefix="Market-1501-v15.09.15/")
    root = open_archive(archive, tmp_path / "out")
    assert root.resolve() == (tmp_path / "out" / "Market-1501-v15.09.15").resolve()
    ds = Market1501(root)
    assert len(ds.query) == 3 and len(ds.gallery) == 8
    assert len(ds.generated("gallery")) == 8


def test_open_dataset_from_zip_is_cached(tmp_path):
    make_market(tmp_path / "src", corrupt=False)
    archive = _zip_folder(tmp_path / "src", tmp_path / "market.zip")
    first = open_dataset(str(archive), cache_dir=tmp_path / "cache")
    second = open_dataset(str(archive), cache_dir=tmp_path / "cache")
    assert [im.name for im in first.query] == [im.name for im in second.query]
    assert (tmp_path / "cache" / ".pose2id-extracted").is_file()


@pytest.mark.parametrize("name", ["../evil.jpg", "query/../../evil.jpg", "/etc/evil.jpg", "C:/evil.jpg", "..\\evil.jpg"])
def test_rejects_paths_outside(tmp_path, name):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("query/0001_c1s1_000001_00.jpg", b"x")
        zf.writestr(name, b"x")
    with pytest.raises(DatasetError, match="refusing to extract"):
        open_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.jpg").exists()
    assert not (tmp_path / "out" / "query").exists()  # checked before anything is written


def test_rejects_symlink(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("query/0001_c1s1_000001_00.jpg")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="symbolic link"):
        open_archive(archive, tmp_path / "out")


def test_rejects_zip_bomb_ratio(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("query/0001_c1s1_000001_00.jpg", b"\0" * (8 * 1024**2))
    with pytest.raises(DatasetError, match="zip bomb"):
        open_archive(archive, tmp_path / "out")


def test_rejects_total_size_and_file_count(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(20):
            zf.writestr(f"query/{i:04d}_c1s1_000001_00.jpg", b"y" * 1000)
    with pytest.raises(DatasetError, match="expands to .* more than the limit"):
        open_archive(archive, tmp_path / "out", max_total_bytes=10_000)
    with pytest.raises(DatasetError, match="20 entries, more than the limit of 10"):
        open_archive(archive, tmp_path / "out", max_files=10)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 this is not really a zip", b"hello world"])
def test_broken_zip(tmp_path, content):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(content)
    with pytest.raises(DatasetError, match="not a readable zip archive"):
        open_archive(archive, tmp_path / "out")


def test_truncated_zip(tmp_path):
    make_market(tmp_path / "src", corrupt=False)
    archive = _zip_folder(tmp_path / "src", tmp_path / "market.zip")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="zip"):
        open_archive(archive, tmp_path / "out")


def test_missing_zip(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_archive(tmp_path / "nope.zip", tmp_path / "out")
