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


# ---------------------------------------------------------------------------- what is wrong with a zip's images
def _zip_files(zip_path, files):
    with zipfile.ZipFile(zip_path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return zip_path


def _jpeg_bytes(colour=(90, 40, 40)):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 64), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_zip_of_unreadable_images_says_the_names_are_fine_and_lists_them(tmp_path):
    names = ["0001_c1s1_000001_00.jpg", "0001_c2s1_000001_00.jpg", "0002_c1s1_000001_00.jpg"]
    archive = _zip_files(tmp_path / "fake.zip", {name: b"not a jpeg" for name in names})
    with pytest.raises(DatasetError) as info:
        open_dataset(str(archive), cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "none of the 3 file(s) with Market-1501 style names" in message and "readable image" in message
    assert all(f"{name} (not image data)" in message for name in names)
    assert "Expected Market-1501 style names" not in message  # the names are not the problem
    assert not message.startswith(("root:", "zip_path:"))


def test_zip_without_market_names_shows_one_of_its_names(tmp_path):
    archive = _zip_files(tmp_path / "holiday.zip", {f"photos/holiday_{i}.jpg": _jpeg_bytes() for i in range(3)})
    with pytest.raises(DatasetError, match=r"^holiday.zip: none of the 3 image file\(s\) has a Market-1501 style name "
                                           r"\(for example 'holiday_0.jpg'\)"):
        open_dataset(str(archive), cache_dir=tmp_path / "cache")


def test_empty_zip_says_there_are_no_images(tmp_path):
    archive = _zip_files(tmp_path / "empty.zip", {})
    with pytest.raises(DatasetError, match="there are no image files"):
        open_dataset(str(archive), cache_dir=tmp_path / "cache")


def test_zip_with_one_camera_per_identity_says_so(tmp_path):
    archive = _zip_files(tmp_path / "one.zip", {f"0001_c1s1_00000{i}_00.jpg": _jpeg_bytes() for i in range(2)})
    with pytest.raises(DatasetError, match=r"no identity is seen by at least two cameras.*\(2 usable image"):
        open_dataset(str(archive), cache_dir=tmp_path / "cache")


def test_zip_with_an_unreadable_gallery_names_the_folder_and_the_files(tmp_path):
    archive = _zip_files(tmp_path / "half.zip", {"query/0001_c1s1_000001_00.jpg": _jpeg_bytes(),
                                                "bounding_box_test/0001_c2s1_000001_00.jpg": b"\xff\xd8 broken"})
    with pytest.raises(DatasetError, match=r"query/ has 1 usable image\(s\) and bounding_box_test/ has 0; .* "
                                           r"1 unreadable image\(s\) skipped: 0001_c2s1_000001_00.jpg"):
        open_dataset(str(archive), cache_dir=tmp_path / "cache")


def test_archive_errors_carry_the_archive_as_a_field(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DatasetError) as info:
        open_archive(archive, tmp_path / "out")
    error = info.value
    assert (error.argument, error.file, error.shown_as) == ("zip_path", str(archive), None)
    assert error.problem.startswith("not a readable zip archive") and str(archive) not in error.problem
    assert str(error).startswith(f"{archive}: ")  # the library's message names the path, once
    assert error.told("my.zip").startswith("my.zip: not a readable zip archive")
    assert error.worded("--dataset").startswith(f"--dataset {archive}: not a readable")
    unsafe = _zip_files(tmp_path / "evil.zip", {"../escape.jpg": b"x"})
    with pytest.raises(DatasetError) as info:
        open_archive(unsafe, tmp_path / "out")
    assert info.value.file == str(unsafe) and "'../escape.jpg'" in info.value.problem


def test_zip_without_query_names_the_zip_and_the_missing_folder(tmp_path):
    """Only bounding_box_test/ under a top folder: the message says query/ is missing, and names
    the zip (never the folder it was extracted to)."""
    from tiny_market import market_folder

    source = market_folder(tmp_path / "src", with_gen=False)
    archive = _zip_files(tmp_path / "noquery.zip", {f"nq/bounding_box_test/{p.name}": p.read_bytes()
                                                    for p in sorted((source / "bounding_box_test").iterdir())})
    cache = tmp_path / "cache"
    for _ in range(2):  # extracted, then from the extracted copy
        with pytest.raises(DatasetError) as info:
            open_dataset(str(archive), cache_dir=cache)
        error = info.value
        assert error.shown_as == "noquery.zip" and error.file == str(cache) and str(error).startswith("noquery.zip: ")
        assert error.problem == ("has nq/bounding_box_test/ (30 images) but no query/ folder: a Market-1501 style "
                                 "dataset needs query/ and bounding_box_test/ side by side")
    assert (cache / ".pose2id-extracted").is_file()


def test_zip_messages_name_the_zip_not_the_extraction_folder(tmp_path):
    archive = _zip_files(tmp_path / "one.zip", {f"{day}/0001_c1s1_00000{i}_00.jpg": _jpeg_bytes()
                                                for i in range(2) for day in ("day1", "day2")})
    archive_flat = _zip_files(tmp_path / "flat.zip", {f"0001_c1s1_00000{i}_00.jpg": _jpeg_bytes() for i in range(2)})
    junk = _zip_files(tmp_path / "junk.zip", {"-1_c1s1_000001_00.jpg": _jpeg_bytes()})
    messages = []
    for zip_path in (archive, archive_flat, junk):
        with pytest.raises(DatasetError) as info:
            open_dataset(str(zip_path), cache_dir=tmp_path / zip_path.stem)
        messages.append(str(info.value))
        # the file is the extraction folder, shown as the zip; the problem names neither
        assert info.value.shown_as == zip_path.name and info.value.file == str(tmp_path / zip_path.stem)
        assert str(tmp_path) not in info.value.problem
    assert messages[0].startswith("one.zip: there are no Market-1501 style images directly in this folder: its 4 "
                                  "file(s) with such names are in other folders (for example "
                                  "day1/0001_c1s1_000000_00.jpg)")
    assert messages[1].startswith("flat.zip: no identity is seen by at least two cameras")
    assert messages[2].startswith("junk.zip: no usable query/gallery images: all 1 file(s) with Market-1501 style "
                                  "names are junk (pid -1")
    assert not any(str(tmp_path) in message for message in messages)


def test_zip_opened_is_named_after_the_zip(tmp_path):
    names = ["0001_c1s1_000001_00.jpg", "0001_c2s1_000001_00.jpg", "0002_c1s1_000001_00.jpg", "0002_c2s1_000001_00.jpg"]
    flat = _zip_files(tmp_path / "flat.zip", {name: _jpeg_bytes() for name in names})
    assert open_dataset(str(flat), cache_dir=tmp_path / "cache").name == "flat.zip"


def test_a_zip_of_one_folder_of_images_opens_like_a_flat_zip(tmp_path):
    """`zip -r cams.zip cams/` puts every image under cams/: read as if they were at the top."""
    names = ["0001_c1s1_000001_00.jpg", "0001_c2s1_000001_00.jpg", "0002_c1s1_000001_00.jpg", "0002_c2s1_000001_00.jpg"]
    wrapped = _zip_files(tmp_path / "cams.zip", {f"cams/{name}": _jpeg_bytes() for name in names}
                         | {"__MACOSX/cams/._0001_c1s1_000001_00.jpg": b"resource fork"})
    dataset = open_dataset(str(wrapped), cache_dir=tmp_path / "cache")
    flat = open_dataset(str(_zip_files(tmp_path / "flat.zip", {name: _jpeg_bytes() for name in names})),
                        cache_dir=tmp_path / "cache2")
    assert dataset.name == "cams.zip"
    assert [im.name for im in dataset.query] == [im.name for im in flat.query] and len(dataset.query) == 4
    assert [im.name for im in dataset.gallery] == [im.name for im in flat.gallery]
