import numpy as np
import pytest
from PIL import Image

from pose2id import ArgumentError
from pose2id.data import DatasetError
from pose2id.features import MissingWeightsError, extract, get_extractor, load_images

FIXTURE = "transreid/transreid.safetensors"


def _person(top, bottom, background=(120, 120, 120), size=(64, 128)):
    """A crude person: coloured torso over coloured legs in the middle of a background."""
    w, h = size
    x = np.empty((h, w, 3), dtype=np.uint8)
    x[:] = background
    x[h // 8 : h // 2, w // 4 : 3 * w // 4] = top
    x[h // 2 : 15 * h // 16, w // 3 : 2 * w // 3] = bottom
    return Image.fromarray(x)


def test_handcrafted_shape_dtype_norm():
    ex = get_extractor("handcrafted")
    images = [_person((200, 0, 0), (0, 0, 200)), _person((0, 150, 0), (30, 30, 30), size=(48, 100))]
    feats = ex(images)
    assert feats.shape == (2, ex.dim) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(feats).all()
    assert get_extractor("handcrafted") is ex  # built once


def test_handcrafted_separates_clothes_not_lighting():
    ex = get_extractor("handcrafted")
    red_blue = _person((200, 30, 30), (30, 30, 160))
    darker = Image.fromarray((np.asarray(red_blue, dtype=float) * 0.7).astype(np.uint8))
    green_black = _person((30, 160, 30), (20, 20, 20))
    f = ex([red_blue, darker, green_black])
    same = np.sum((f[0] - f[1]) ** 2)
    different = np.sum((f[0] - f[2]) ** 2)
    assert same < 0.25 * different


def test_handcrafted_batches_and_progress():
    ex = get_extractor("handcrafted")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)) for _ in range(7)]
    calls = []
    a = ex(images, batch_size=3, progress=lambda done, total: calls.append((done, total)))
    b = ex(images, batch_size=64)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert calls == [(3, 7), (6, 7), (7, 7)]


def _write_images(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i + 1:04d}_c1s1_{i:06d}_00.jpg"
        _person((30 * i, 100, 50), (10, 10, 10 * i)).save(path)
        paths.append(path)
    return paths


class Counting:
    """Wraps an extractor and counts the images it is asked to describe."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.seen = inner, inner.name, inner.dim, 0

    def __call__(self, images, batch_size=64, progress=None):
        self.seen += len(images)
        return self.inner(images, batch_size=batch_size, progress=progress)


def test_extract_cache_hit_and_invalidation(tmp_path):
    paths = _write_images(tmp_path / "imgs", 5)
    ex = Counting(get_extractor("handcrafted"))
    first = extract(ex, paths, cache_dir=tmp_path / "cache")
    assert ex.seen == 5 and first.shape == (5, ex.dim)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    second = extract(ex, paths, cache_dir=tmp_path / "cache")
    assert ex.seen == 5  # served from disk
    np.testing.assert_array_equal(first, second)
    # a changed image is a new cache entry
    _person((255, 255, 0), (0, 0, 0)).save(paths[2])
    third = extract(ex, paths, cache_dir=tmp_path / "cache")
    assert ex.seen == 10
    assert not np.allclose(third[2], first[2]) and np.allclose(third[0], first[0])
    # another extractor name never reuses these features
    ex.name = "other"
    extract(ex, paths, cache_dir=tmp_path / "cache")
    assert ex.seen == 15
    # caching off
    extract(ex, paths, cache_dir=False)
    assert ex.seen == 20


def test_extract_default_cache_under_env(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "c"))
    paths = _write_images(tmp_path / "imgs", 2)
    extract(get_extractor("handcrafted"), paths)
    assert list((tmp_path / "c" / "features").glob("handcrafted*.npy"))


def test_extract_empty_and_unreadable(tmp_path):
    ex = get_extractor("handcrafted")
    assert extract(ex, [], cache_dir=False).shape == (0, ex.dim)
    bad = tmp_path / "0001_c1s1_000001_00.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="0001_c1s1_000001_00.jpg") as info:
        extract(ex, [bad], cache_dir=False)
    assert info.value.file == str(bad) and "not image data" in info.value.problem
    with pytest.raises(DatasetError, match="cannot read this image") as info:
        load_images([tmp_path / "missing.jpg"])
    # the reason is the system's, not its text, which would name the path a second time
    assert info.value.file == str(tmp_path / "missing.jpg") and str(tmp_path) not in info.value.problem


@pytest.mark.parametrize("spec", ["", "sift", "transreid", "handcrafted:x", None])
def test_bad_spec(spec):
    from pose2id import ArgumentError

    with pytest.raises(ArgumentError, match="spec") as info:
        get_extractor(spec)
    assert (info.value.argument, info.value.value) == ("spec", spec)


def test_transreid_extractor_matches_fixture(shared_dir):
    from safetensors.numpy import load_file

    folder = shared_dir / "fixtures" / "transreid"
    ex = get_extractor(f"transreid:{shared_dir / 'fixtures' / FIXTURE}")
    # The fixture's input was resized by the IPG inference (Lanczos); at 128x256 already, the
    # retrieval resize (bilinear) leaves these images unchanged.
    images = [Image.open(folder / f"image{i}_128x256.png") for i in (0, 1)]
    expected = load_file(folder / "expected.safetensors")["feat"][:2]
    feats = ex(images, batch_size=1)
    assert feats.shape == (2, 160) and ex.dim == 160 and feats.dtype == np.float32
    np.testing.assert_allclose(feats, expected, atol=1e-5)
    glob = get_extractor(f"transreid-global:{shared_dir / 'fixtures' / FIXTURE}")
    np.testing.assert_allclose(glob(images), expected[:, :32], atol=1e-5)
    assert ex.name != glob.name
    assert not ex.uses_camera_ids and ex.num_cameras == 0


def test_transreid_extractor_resizes_bilinear_like_the_evaluation(shared_dir):
    """Retrieval features: T.Resize((256, 128)) on a PIL image (bilinear), mean/std 0.5, as TransReID evaluates."""
    import torch

    from pose2id.reid import load_transreid, preprocess

    folder = shared_dir / "fixtures" / "transreid"
    ex = get_extractor(f"transreid:{shared_dir / 'fixtures' / FIXTURE}")
    images = [Image.open(folder / f"image{i}_orig.png") for i in (0, 1)]
    model = load_transreid(shared_dir / "fixtures" / FIXTURE)
    with torch.no_grad():
        bilinear = model(preprocess(images, interpolation="bilinear")).numpy()
        lanczos = model(preprocess(images, interpolation="lanczos")).numpy()
    feats = ex(images)
    np.testing.assert_allclose(feats, bilinear, atol=1e-5)
    assert np.abs(feats - lanczos).max() > 1e-3


def test_transreid_wrong_size_fails_at_construction(tmp_path, shared_dir):
    import torch
    from safetensors.torch import load_file, save_file

    sd = load_file(shared_dir / "fixtures" / FIXTURE)
    sd["base.pos_embed"] = torch.zeros(1, 129, 32)
    save_file(sd, tmp_path / "vit_stride16.safetensors")
    problem = _refused_weights(tmp_path / "vit_stride16.safetensors")
    assert "another size" in problem and "base.pos_embed" in problem


def _refused_weights(path):
    """The problem of the ArgumentError get_extractor raises for ``path``, after checking its fields."""
    with pytest.raises(ArgumentError) as caught:
        get_extractor(f"transreid:{path}")
    error = caught.value
    assert isinstance(error, ValueError) and (error.argument, error.file) == ("path", str(path))
    assert error.problem.startswith("cannot be used as TransReID weights")
    assert str(path) not in error.problem and str(error) == f"{path}: {error.problem}"  # the path once
    return error.problem


def test_transreid_wrong_model(shared_dir):
    problem = _refused_weights(shared_dir / "fixtures" / "ipg_pipeline" / "pose_guider.safetensors")
    assert "base.pos_embed" in problem


def test_transreid_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    assert "safetensors" in _refused_weights(tmp_path / "junk.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    problem = _refused_weights(tmp_path / "junk.pth")
    assert "torch" in problem and "checkpoint" in problem and "\n" not in problem


def test_transreid_pickled_objects_are_refused_in_one_line(tmp_path):
    import argparse

    import torch

    torch.save({"args": argparse.Namespace(lr=0.1), "weight": torch.zeros(2)}, tmp_path / "objects.pth")
    problem = _refused_weights(tmp_path / "objects.pth")
    # torch's own text is many lines advising weights_only=False, which would run code from the file
    assert "checkpoint of tensors" in problem and "\n" not in problem and "weights_only" not in problem
    (tmp_path / "empty.pth").write_bytes(b"")
    assert "empty" in _refused_weights(tmp_path / "empty.pth")


def test_transreid_missing_checkpoint(tmp_path):
    with pytest.raises(MissingWeightsError, match="transformer_20.pth"):
        get_extractor(f"transreid:{tmp_path / 'transformer_20.pth'}")


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8)
    folder = tmp_path_factory.mktemp("vit")
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def test_vit_extractor(tiny_vit):
    import torch
    from transformers import ViTModel

    ex = get_extractor(f"vit:{tiny_vit}")
    images = [_person((200, 0, 0), (0, 0, 200)), _person((0, 200, 0), (50, 50, 50))]
    feats = ex(images)
    assert feats.shape == (2, 32) and ex.dim == 32 and feats.dtype == np.float32
    # same as running the model by hand on the documented preprocessing
    model = ViTModel.from_pretrained(tiny_vit, add_pooling_layer=False).eval()
    x = np.stack([np.asarray(im.resize((32, 32), Image.BILINEAR), dtype=np.float32) / 255.0 for im in images])
    pixels = (torch.from_numpy(x).permute(0, 3, 1, 2) - 0.5) / 0.5
    with torch.no_grad():
        expected = model(pixel_values=pixels).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(feats, expected, atol=1e-5)


def test_vit_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="huggingface-cli download google/vit-base-patch16-224"):
        get_extractor(f"vit:{tmp_path / 'no-such-model'}")
