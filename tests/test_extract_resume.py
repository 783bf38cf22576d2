"""extract() at scale: DataLoader workers, chunked resumable cache, camera ids (TransReID SIE)."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pose2id.data import DatasetError
from pose2id.features import HandcraftedExtractor, TransReIDExtractor, extract, get_extractor

FIXTURE = "fixtures/transreid/transreid.safetensors"


def _images(folder, n, seed=0):
    """n random Market-named images (camera 1..6 from the name)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i + 1:04d}_c{i % 6 + 1}s1_{i:06d}_00.jpg"
        Image.fromarray(rng.integers(0, 255, (128 + 8 * (i % 3), 64, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


class Interrupt(RuntimeError):
    pass


def _counting_forward(extractor, fail_after=None):
    """Replace extractor.forward by one that records batch sizes and raises after ``fail_after`` batches."""
    inner = extractor.forward
    sizes = []

    def forward(batch, camids=None):
        if fail_after is not None and len(sizes) == fail_after:
            raise Interrupt("stopped on purpose")
        sizes.append(len(batch))
        return inner(batch, camids)

    extractor.forward = forward
    return sizes


def test_interrupted_run_resumes_with_missing_chunks_only(tmp_path):
    paths = _images(tmp_path / "imgs", 10)
    cache = tmp_path / "cache"
    reference = extract(HandcraftedExtractor(), paths, cache_dir=False, batch_size=2, chunk_size=4, num_workers=0)

    broken = HandcraftedExtractor()
    sizes = _counting_forward(broken, fail_after=3)  # chunks [0, 4) [4, 8) [8, 10); fails inside the second
    with pytest.raises(Interrupt):
        extract(broken, paths, cache_dir=cache, batch_size=2, chunk_size=4, num_workers=0)
    assert sizes == [2, 2, 2]
    assert not list(cache.glob("*.npy"))  # no final file yet
    assert [p.name for p in cache.glob("*.parts-4/*.npy")] == ["000000.npy"]

    again = HandcraftedExtractor()
    sizes = _counting_forward(again)
    calls = []
    feats = extract(again, paths, cache_dir=cache, batch_size=2, chunk_size=4, num_workers=0,
                    progress=lambda done, total: calls.append((done, total)))
    assert sizes == [2, 2, 2]  # images 4..9 only
    assert calls[0] == (4, 10) and calls[-1] == (10, 10)
    np.testing.assert_allclose(feats, reference, atol=1e-6, rtol=0)
    assert len(list(cache.glob("*.npy"))) == 1 and not list(cache.glob("*.parts-*"))

    third = HandcraftedExtractor()
    sizes = _counting_forward(third)
    np.testing.assert_array_equal(extract(third, paths, cache_dir=cache, batch_size=2, chunk_size=4), feats)
    assert sizes == []  # served from the merged file


def test_worker_processes_give_the_same_features(tmp_path):
    paths = _images(tmp_path / "imgs", 9)
    ex = get_extractor("handcrafted")
    serial = extract(ex, paths, cache_dir=False, batch_size=2, num_workers=0)
    parallel = extract(ex, paths, cache_dir=False, batch_size=2, num_workers=2)
    np.testing.assert_allclose(parallel, serial, atol=1e-6, rtol=0)
    np.testing.assert_allclose(serial, ex([Image.open(p) for p in paths]), atol=1e-6, rtol=0)


def test_unreadable_image_in_a_worker_names_the_file(tmp_path):
    paths = _images(tmp_path / "imgs", 6)
    paths[4].write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=paths[4].name):
        extract(get_extractor("handcrafted"), paths, cache_dir=False, batch_size=2, num_workers=2)


class CallOnly:
    """An extractor with only name / dim / __call__ (no DataLoader hooks)."""

    name, dim = "call-only", 3

    def __init__(self):
        self.seen = 0

    def __call__(self, images, batch_size=64, progress=None):
        self.seen += len(images)
        return np.array([np.asarray(im, dtype=np.float32).mean(axis=(0, 1)) for im in images], dtype=np.float32)


def test_extractor_without_loader_hooks(tmp_path):
    paths = _images(tmp_path / "imgs", 5)
    ex = CallOnly()
    feats = extract(ex, paths, cache_dir=tmp_path / "c", batch_size=2, num_workers=1, chunk_size=2)
    expected = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32).mean(axis=(0, 1)) for p in paths]
    np.testing.assert_allclose(feats, expected, rtol=1e-6)
    assert ex.seen == 5


@pytest.mark.parametrize("option, value", [("batch_size", 0), ("chunk_size", -1), ("num_workers", -2)])
def test_bad_options(tmp_path, option, value):
    paths = _images(tmp_path / "imgs", 1)
    with pytest.raises(ValueError, match=option):
        extract(get_extractor("handcrafted"), paths, cache_dir=False, **{option: value})


# --- camera ids -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sie_weights(tmp_path_factory, shared_dir):
    sd = load_file(shared_dir / FIXTURE)
    sd["base.sie_embed"] = 0.5 * torch.randn(6, 1, 32, generator=torch.Generator().manual_seed(1))
    path = tmp_path_factory.mktemp("sie") / "market_sie.pth"
    torch.save(sd, path)
    return path


def _camids(paths):
    return [int(p.name.split("_")[1][1]) - 1 for p in paths]  # c3 -> 2, as TransReID counts


def test_camera_ids_in_extract_and_cache_key(tmp_path, sie_weights, shared_dir):
    paths = _images(tmp_path / "imgs", 6)
    camids = _camids(paths)
    ex = get_extractor(f"transreid:{sie_weights}", camera_ids="auto")
    assert ex.uses_camera_ids and ex.num_cameras == 6
    cache = tmp_path / "cache"
    with_cam = extract(ex, paths, cache_dir=cache, camids=camids, batch_size=4)
    without = extract(ex, paths, cache_dir=cache, batch_size=4)
    assert len(list(cache.glob("*.npy"))) == 2  # camera ids are part of the key
    assert np.abs(with_cam - without).max() > 1e-2
    # row by row the same as the model with that camera
    images = [Image.open(p) for p in paths]
    np.testing.assert_allclose(with_cam, ex(images, camids=camids), atol=1e-5, rtol=0)
    # no camera ids = the checkpoint without its embedding = camera_ids "off" (which ignores camids)
    off = get_extractor(f"transreid:{sie_weights}", camera_ids="off")
    assert not off.uses_camera_ids
    np.testing.assert_allclose(without, extract(off, paths, cache_dir=False, camids=camids), atol=1e-5, rtol=0)
    # other camera ids -> another cache entry
    shifted = [(c + 1) % 6 for c in camids]
    other = extract(ex, paths, cache_dir=cache, camids=shifted, batch_size=4)
    assert len(list(cache.glob("*.npy"))) == 3 and np.abs(other - with_cam).max() > 1e-2


def test_camera_ids_ignored_without_embedding(tmp_path, shared_dir):
    paths = _images(tmp_path / "imgs", 3)
    ex = get_extractor(f"transreid:{shared_dir / FIXTURE}")
    assert not ex.uses_camera_ids
    cache = tmp_path / "cache"
    a = extract(ex, paths, cache_dir=cache, camids=_camids(paths))
    b = extract(ex, paths, cache_dir=cache)
    np.testing.assert_array_equal(a, b)
    assert len(list(cache.glob("*.npy"))) == 1


def test_bad_camera_ids_before_any_work(tmp_path, sie_weights, shared_dir):
    paths = _images(tmp_path / "imgs", 3)
    ex = TransReIDExtractor(sie_weights)
    sizes = _counting_forward(ex)
    with pytest.raises(ValueError, match="camids has 2 entries but paths has 3"):
        extract(ex, paths, cache_dir=False, camids=[0, 1])
    with pytest.raises(ValueError, match=rf"camids\[1\] = 6 for {paths[1].name}"):
        extract(ex, paths, cache_dir=False, camids=[0, 6, 1])
    with pytest.raises(ValueError, match="camids must be integers"):
        extract(ex, paths, cache_dir=False, camids=[0.0, 1.0, 2.0])
    assert sizes == []
    with pytest.raises(ValueError, match=r"transreid\.safetensors.*sie_embed"):
        get_extractor(f"transreid:{shared_dir / FIXTURE}", camera_ids="on")
    with pytest.raises(ValueError, match="camera_ids"):
        get_extractor("handcrafted", camera_ids="on")
    with pytest.raises(ValueError, match="camera_ids"):
        get_extractor("handcrafted", camera_ids="maybe")


def test_float16_batches_close_to_float32(tmp_path, shared_dir):
    paths = _images(tmp_path / "imgs", 2)
    fp32 = TransReIDExtractor(shared_dir / FIXTURE, precision="float32")
    fp16 = TransReIDExtractor(shared_dir / FIXTURE, precision="float16")
    assert fp16.name != fp32.name and fp32.name == get_extractor(f"transreid:{shared_dir / FIXTURE}").name
    a = extract(fp32, paths, cache_dir=False)
    b = extract(fp16, paths, cache_dir=False)
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, atol=0.05 * np.abs(a).max(), rtol=0)
