"""TransReID against the official model's outputs on the public fixture (random small weights)."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from pose2id.reid import TransReID, TransReIDConfig, load_transreid, preprocess
from pose2id.reid.transreid import convert_official


@pytest.fixture(scope="module")
def fixture_dir(shared_dir):
    return shared_dir / "fixtures" / "transreid"


def _clone(d):
    # Fresh, aligned storage: safetensors' mmap'd tensors can change GEMM rounding at 1e-7.
    return {k: v.clone() for k, v in d.items()}


@pytest.fixture(scope="module")
def model(fixture_dir):
    return load_transreid(fixture_dir / "transreid.safetensors")


def test_config_inferred_from_fixture(model):
    assert (model.config.embed_dim, model.config.depth, model.config.num_heads) == (32, 3, 4)
    assert model.config.grid == (21, 10) and model.config.out_dim == 160


def test_matches_official_outputs(model, fixture_dir):
    images = _clone(load_file(fixture_dir / "inputs.safetensors"))["images"]
    expected = load_file(fixture_dir / "expected.safetensors")
    with torch.no_grad():
        feat = model(images)
        tokens = model.forward_tokens(images)
    assert feat.shape == (3, 160)
    assert (tokens - expected["base_tokens"]).abs().max() <= 1e-4
    assert (feat[:, :32] - expected["global_feat"]).abs().max() <= 1e-4
    assert (feat - expected["feat"]).abs().max() <= 1e-4


def test_preprocess_reproduces_reference_input(fixture_dir):
    images = [Image.open(fixture_dir / f"image{i}_orig.png") for i in range(2)]
    x = preprocess(images)
    expected = load_file(fixture_dir / "inputs.safetensors")["images"][:2]
    assert x.shape == (2, 3, 256, 128) and x.dtype == torch.float32
    assert torch.equal(x, expected)


def test_preprocess_rejects_non_images():
    with pytest.raises(ValueError, match="images"):
        preprocess([])
    with pytest.raises(ValueError, match=r"images\[0\]"):
        preprocess([torch.zeros(3, 4, 4)])


def test_pth_with_module_prefix_loads(tmp_path, fixture_dir, model):
    sd = load_file(fixture_dir / "transreid.safetensors")
    path = tmp_path / "market.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, path)
    loaded = load_transreid(path)
    x = torch.randn(1, 3, 256, 128)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))


def test_convert_keeps_every_used_key_strictly(fixture_dir):
    sd = load_file(fixture_dir / "transreid.safetensors")
    config = TransReIDConfig(embed_dim=32, depth=3, num_heads=4)
    converted = convert_official(sd, config)
    TransReID(config).load_state_dict(converted, strict=True)
    dropped = set(sd) - set(converted)
    assert all(k.startswith(("classifier", "bottleneck", "base.norm.", "base.fc.", "base.blocks.2.")) for k in dropped)


def test_wrong_model_is_a_clear_error(tmp_path, fixture_dir):
    sd = load_file(fixture_dir / "transreid.safetensors")
    broken = {k: v for k, v in sd.items() if not k.startswith("b2.")}
    broken["head.weight"] = torch.zeros(3, 3)
    path = tmp_path / "other.safetensors"
    save_file(broken, path)
    with pytest.raises(ValueError, match=r"missing .*b2\.0.*unexpected .*head\.weight"):
        load_transreid(path)
    save_file({"conv.weight": torch.zeros(2, 2)}, tmp_path / "cnn.safetensors")
    with pytest.raises(ValueError, match="not a TransReID checkpoint"):
        load_transreid(tmp_path / "cnn.safetensors")


def test_full_size_forward_shape():
    model = TransReID(TransReIDConfig(depth=2)).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 256, 128))
    assert out.shape == (1, 3840)


# --- camera embedding (SIE) -------------------------------------------------------------------

CAMERAS = 6


@pytest.fixture(scope="module")
def sie_checkpoint(tmp_path_factory, fixture_dir):
    """The fixture's weights plus a random camera embedding, saved like an official Market model."""
    sd = load_file(fixture_dir / "transreid.safetensors")
    generator = torch.Generator().manual_seed(3)
    sd["base.sie_embed"] = 0.5 * torch.randn(CAMERAS, 1, 32, generator=generator)
    path = tmp_path_factory.mktemp("sie") / "market_sie.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, path)
    return path, sd["base.sie_embed"].clone()


def test_camera_embedding_detected_and_applied(sie_checkpoint, fixture_dir):
    path, sie = sie_checkpoint
    model = load_transreid(path)
    assert model.camera_num == CAMERAS and model.has_camera_embedding
    x = torch.randn(3, 3, 256, 128, generator=torch.Generator().manual_seed(0))
    camids = torch.tensor([0, 5, 2])
    with torch.no_grad():
        out = model(x, camids)
        plain = model(x)
    # The camera term is coef * sie_embed[c] on every token: the same as a model without SIE whose
    # position embedding (class token included) is shifted by it.
    reference = load_transreid(fixture_dir / "transreid.safetensors")
    with torch.no_grad():
        base_pos = reference.base.pos_embed.clone()
        for row, cam in enumerate(camids.tolist()):
            reference.base.pos_embed.copy_(base_pos + 3.0 * sie[cam])
            torch.testing.assert_close(out[row], reference(x[row : row + 1])[0], atol=1e-5, rtol=0)
        reference.base.pos_embed.copy_(base_pos)
        # without camera ids nothing is added: the Pose2ID (no-SIE) features
        torch.testing.assert_close(plain, reference(x), atol=1e-6, rtol=0)
    assert (out - plain).abs().max() > 1e-2  # the embedding does change the features


def test_camera_modes(sie_checkpoint, fixture_dir):
    path, _ = sie_checkpoint
    assert load_transreid(path, camera_ids="on").camera_num == CAMERAS
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "off" is deliberate: no warning
        off = load_transreid(path, camera_ids="off")
    assert off.camera_num == 0 and not hasattr(off.base, "sie_embed")
    with pytest.raises(ValueError, match=r"transreid\.safetensors.*sie_embed"):
        load_transreid(fixture_dir / "transreid.safetensors", camera_ids="on")
    with pytest.raises(ValueError, match="camera_ids"):
        load_transreid(path, camera_ids="yes")
    # the IPG path (a config without cameras) still drops the embedding, with a warning
    with pytest.warns(UserWarning, match="camera embedding"):
        convert_official(torch.load(path, weights_only=True), TransReIDConfig(embed_dim=32, depth=3, num_heads=4))


def test_bad_camids_are_clear_errors(sie_checkpoint, model):
    path, _ = sie_checkpoint
    sie_model = load_transreid(path)
    x = torch.zeros(2, 3, 256, 128)
    with pytest.raises(ValueError, match=r"camids must lie in 0\.\.5"):
        sie_model(x, torch.tensor([0, 6]))
    with pytest.raises(ValueError, match="camids must be 2 integers"):
        sie_model(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="camids must be 2 integers"):
        sie_model(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="no camera embedding"):
        model(x, torch.tensor([0, 1]))


def test_checkpoint_of_another_size_names_file_and_key(tmp_path, fixture_dir):
    sd = load_file(fixture_dir / "transreid.safetensors")
    sd["base.pos_embed"] = torch.zeros(1, 129, 32)  # stride 16 instead of 12: 16 x 8 patches
    save_file(sd, tmp_path / "stride16.safetensors")
    with pytest.raises(ValueError, match=r"stride16\.safetensors.*another size.*base\.pos_embed.*\(1, 129, 32\)"):
        load_transreid(tmp_path / "stride16.safetensors")
    sd = load_file(fixture_dir / "transreid.safetensors")
    sd["base.sie_embed"] = torch.zeros(6, 32)
    save_file(sd, tmp_path / "badsie.safetensors")
    with pytest.raises(ValueError, match=r"badsie\.safetensors.*base\.sie_embed"):
        load_transreid(tmp_path / "badsie.safetensors")


def _meta_state(shapes):
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


def test_manifest_sized_checkpoint_with_camera_embedding(shared_dir):
    """A ViT-B TransReID Market checkpoint (the manifest's keys plus sie_embed) maps onto the model key for key."""
    import json

    from pose2id.reid.transreid import _check_shapes, infer_camera_num, infer_config

    shapes = json.loads((shared_dir / "data" / "checkpoint_manifests" / "transreid.json").read_text())
    shapes["base.sie_embed"] = [6, 1, 768]
    state = _meta_state(shapes)
    config, cameras = infer_config(state), infer_camera_num(state)
    assert (config.embed_dim, config.depth, config.num_heads, cameras) == (768, 12, 12, 6)
    with torch.device("meta"):
        model = TransReID(config, camera_num=cameras)
    converted = convert_official(state, config, camera_num=cameras)
    assert set(converted) == set(model.state_dict()) and _check_shapes(model, converted) is None
    assert model.base.sie_embed.shape == (6, 1, 768)
    assert infer_camera_num(state, camera_ids="off") == 0
    del shapes["base.sie_embed"]
    assert infer_camera_num(_meta_state(shapes)) == 0  # Pose2ID's transformer_20.pth


def test_preprocess_interpolations(fixture_dir):
    image = Image.open(fixture_dir / "image0_orig.png")
    lanczos, bilinear = preprocess([image]), preprocess([image], interpolation="bilinear")
    assert torch.equal(lanczos, preprocess([image], interpolation="lanczos"))
    expected = np.asarray(image.convert("RGB").resize((128, 256), Image.BILINEAR), dtype=np.float32) / 255
    np.testing.assert_array_equal(bilinear[0].permute(1, 2, 0).numpy(), (expected - 0.5) / 0.5)
    assert (lanczos - bilinear).abs().max() > 0.01
    with pytest.raises(ValueError, match="interpolation"):
        preprocess([image], interpolation="cubic")
